import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Lessons and quizzes read their fast settings from here, whoever starts pytest.
os.environ.setdefault("DLEFF_FAST", "1")


@pytest.fixture(scope="session")
def released_course(tmp_path_factory) -> Path:
    """A fresh course root: the solutions copied in and released by nbgrader, as `make release` does."""
    from dleff.release import release

    root = tmp_path_factory.mktemp("course")
    shutil.copytree(ROOT / "solutions", root / "solutions")
    release(root=root)
    return root
