"""Every lesson runs top to bottom with fast settings, as `make run` runs it with full ones.

The one run of each lesson also checks what it printed:
* its "your turn" exercise, filled in with the reference answer from exercise_answers.py,
  gets "Done" from its self-check;
* every printed sentence that calls something faster or slower is a verdict whose own
  numbers agree with it (a conclusion written by hand would not be).
Lesson 01, the cheapest, runs a second time with every timing table reversed (the fastest
row gets the slowest time): its verdicts must turn round with the numbers.
"""

import re
from pathlib import Path

import nbformat
import pytest
from exercise_answers import ANSWERS

from dleff import exercises
from dleff.course import execute, lessons

ROOT = Path(__file__).resolve().parents[1]
UNITS = {"s": 1.0, "ms": 1e-3, "µs": 1e-6, "ns": 1e-9}
VERDICT = re.compile(r"(?P<a>[^\n]+?) was (?P<ratio>[\d.]+)x (?P<word>faster|slower) than (?P<b>.+?) "
                     r"\((?P<time_a>[\d.]+ (?:s|ms|µs|ns))(?: ± [^)]*?)? against (?P<time_b>[\d.]+ (?:s|ms|µs|ns))")

# Put before the lesson's first cell: bench.mark returns its table with the times reversed.
REVERSE_TIMINGS = """
import dleff.bench as _bench
_measured = _bench.mark


def _reversed_mark(*args, **kwargs):
    table = _measured(*args, **kwargs)
    for column in ("min_s", "median_s", "iqr_s"):
        if column in table.columns:
            table[column] = table[column].to_numpy()[::-1]
    table["itr_per_s"] = 1.0 / table["median_s"]
    table["relative"] = table["median_s"] / table["median_s"].min()
    return table


_bench.mark = _reversed_mark
"""


def seconds(text: str) -> float:
    value, unit = text.split()
    return float(value) * UNITS[unit]


def printed_lines(notebook) -> list[str]:
    lines = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream" and output.get("name") == "stdout":
                lines += output["text"].splitlines()
    return lines


def contradictions(lines: list[str]) -> list[str]:
    """Printed lines that call something faster or slower without numbers that say so."""
    wrong = []
    for line in lines:
        if not re.search(r"\b(faster|slower)\b", line):
            continue
        match = VERDICT.search(line)
        if match is None:
            wrong.append(f"not a verdict: {line}")
            continue
        time_a, time_b = seconds(match["time_a"]), seconds(match["time_b"])
        if (match["word"] == "faster") != (time_a < time_b):
            wrong.append(f"contradicts its numbers: {line}")
    return wrong


def with_reference_answers(path: Path):
    """The lesson with its your-turn cell filled in (exercise id None for a lesson without one)."""
    notebook = nbformat.read(path, as_version=4)
    cells = [cell for cell in notebook.cells if "your-turn" in cell.get("metadata", {}).get("tags", [])]
    assert len(cells) == (1 if path.stem in ANSWERS else 0), \
        f"{path.name}: one cell tagged your-turn, and its reference answer in exercise_answers.py"
    if not cells:
        return notebook, None
    cells[0].source = ANSWERS[path.stem]
    return notebook, cells[0].id


def check_output(notebook, exercise_id: str) -> str:
    ids = [cell.get("id") for cell in notebook.cells]
    check = notebook.cells[ids.index(exercise_id) + 1]
    return "".join(output.get("text", "") for output in check.get("outputs", []))


@pytest.mark.parametrize("path", lessons(ROOT / "notebooks"), ids=lambda p: p.stem)
def test_lesson_executes(path, monkeypatch):
    monkeypatch.setenv("DLEFF_FAST", "1")
    notebook, exercise_id = with_reference_answers(path)
    ran, run = execute(path, timeout=600, progress=False, notebook=notebook)
    assert run.ok, f"{path.name} failed at cell {run.failed_cell}: {run.error}"
    if exercise_id is not None:
        assert check_output(ran, exercise_id).startswith(exercises.DONE), check_output(ran, exercise_id)
    assert contradictions(printed_lines(ran)) == []  # every lesson words its conclusions through dleff.verdicts


def test_every_lesson_has_an_exercise_with_a_reference_answer():
    stems = {path.stem for path in lessons(ROOT / "notebooks")}
    assert stems and stems == set(ANSWERS)


def test_verdicts_turn_round_with_reversed_timings(monkeypatch):
    monkeypatch.setenv("DLEFF_FAST", "1")
    path = ROOT / "notebooks" / "01-devices.ipynb"
    notebook, _ = with_reference_answers(path)
    notebook.cells.insert(0, nbformat.v4.new_code_cell(REVERSE_TIMINGS))
    ran, run = execute(path, timeout=600, progress=False, notebook=notebook)
    assert run.ok, f"failed at cell {run.failed_cell}: {run.error}"
    lines = printed_lines(ran)
    verdict_lines = [line for line in lines if VERDICT.search(line) or "within the noise" in line]
    assert len(verdict_lines) >= 2, lines  # the thread and exercise verdicts at least
    assert contradictions(lines) == []


def test_the_contradiction_check_catches_a_hand_written_conclusion():
    assert contradictions(["fused was 2.00x faster than forloop (1 ms against 2 ms)"]) == []
    assert contradictions(["fused was 2.00x faster than forloop (2 ms against 1 ms)"]) != []
    assert contradictions(["the workers made loading faster"]) != []


def test_student_lab_hides_the_instructor_panels():
    """`make lab` points JupyterLab at tools/student-lab, which switches off every nbgrader plugin."""
    import json
    import sys

    config = ROOT / "tools" / "student-lab"
    assert f"JUPYTER_CONFIG_PATH=$(abspath {config.relative_to(ROOT)})" in (ROOT / "Makefile").read_text()
    disabled = json.loads((config / "labconfig" / "page_config.json").read_text())["disabledExtensions"]
    static = Path(sys.prefix) / "share" / "jupyter" / "labextensions" / "@jupyter" / "nbgrader" / "static"
    plugin_name = re.compile(r'"(@jupyter/nbgrader:[a-z-]+)"')
    plugins = {name for js in static.glob("*.js") for name in plugin_name.findall(js.read_text())}
    assert {"@jupyter/nbgrader:create-assignment", "@jupyter/nbgrader:validate-assignment"} <= plugins
    assert all(disabled.get(plugin) for plugin in plugins)
    installed = json.loads((Path(sys.prefix) / "etc" / "jupyter" / "jupyter_server_config.d" / "nbgrader.json")
                           .read_text())["ServerApp"]["jpserver_extensions"]
    ours = json.loads((config / "jupyter_server_config.json").read_text())["ServerApp"]["jpserver_extensions"]
    assert all(ours.get(name) is False for name in installed)
