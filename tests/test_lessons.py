"""Every lesson runs top to bottom with fast settings, as `make run` runs it with full ones."""

from pathlib import Path

import pytest

from dleff.course import execute, lessons

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("path", lessons(ROOT / "notebooks"), ids=lambda p: p.stem)
def test_lesson_executes(path, monkeypatch):
    monkeypatch.setenv("DLEFF_FAST", "1")
    _, run = execute(path, timeout=600, progress=False)
    assert run.ok, f"{path.name} failed at cell {run.failed_cell}: {run.error}"
