"""What students receive: equal to a fresh release, and free of answers and hidden tests."""

import json
from pathlib import Path

import nbformat
import pytest

from dleff_instructor.checks import CHECKS
from dleff_instructor.release import quiz_ids

ROOT = Path(__file__).resolve().parents[1]
SOLUTIONS = sorted((ROOT / "solutions").glob("[0-9][0-9]-*/*.ipynb"))
STUDENT_NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb")) + sorted((ROOT / "quizzes").glob("*/*.ipynb"))


def test_every_quiz_has_a_lesson_and_a_release():
    lessons = {p.stem for p in (ROOT / "notebooks").glob("*.ipynb")}
    for quiz_id in quiz_ids(ROOT):
        assert quiz_id in lessons, f"quiz {quiz_id} has no lesson notebooks/{quiz_id}.ipynb"
        assert (ROOT / "quizzes" / quiz_id).is_dir(), f"run `make release`: quizzes/{quiz_id} is missing"


def test_committed_quizzes_equal_a_fresh_release(released_course):
    for quiz_id in quiz_ids(ROOT):
        fresh = sorted(p.name for p in (released_course / "quizzes" / quiz_id).iterdir())
        committed = sorted(p.name for p in (ROOT / "quizzes" / quiz_id).iterdir())
        assert fresh == committed, f"quizzes/{quiz_id}: run `make release` and commit"
        for name in fresh:
            new = (released_course / "quizzes" / quiz_id / name).read_bytes()
            assert new == (ROOT / "quizzes" / quiz_id / name).read_bytes(), f"{quiz_id}/{name}: run `make release`"


@pytest.mark.parametrize("path", STUDENT_NOTEBOOKS, ids=lambda p: str(p.relative_to(ROOT)))
def test_nothing_students_receive_holds_hidden_tests_or_solutions(path):
    text = path.read_text()
    for marker in ("BEGIN HIDDEN TESTS", "BEGIN SOLUTION", "BEGIN MARK SCHEME", "letter_of", *CHECKS):
        assert marker not in text, f"{path.name} contains {marker!r}"


def test_banks_hold_no_plain_explanations():
    for source_path in sorted((ROOT / "solutions" / "banks").glob("*.json")):
        public = (ROOT / "quizzes" / "banks" / source_path.name).read_text()
        for entry in json.loads(source_path.read_text())["questions"]:
            assert entry["explanation"] not in public
            assert '"answer"' not in public


@pytest.mark.parametrize("path", STUDENT_NOTEBOOKS + SOLUTIONS, ids=lambda p: str(p.relative_to(ROOT)))
def test_notebooks_use_the_python3_kernel_and_are_stored_without_outputs(path):
    notebook = nbformat.read(path, as_version=4)
    assert notebook.metadata["kernelspec"]["name"] == "python3"
    if "quizzes" not in path.parts:  # nbgrader keeps released quizzes as it writes them
        assert all(not c.get("outputs") for c in notebook.cells if c.cell_type == "code")


@pytest.mark.parametrize("solution", SOLUTIONS, ids=lambda p: p.parent.name)
def test_hidden_tests_are_literal_checks_the_grader_can_judge(solution):
    from dleff_instructor.checks import split_hidden

    for cell in nbformat.read(solution, as_version=4).cells:
        if "BEGIN HIDDEN TESTS" in cell.source:
            visible, checks = split_hidden(cell.source)  # raises on anything but literal expect_* calls
            assert checks and "HIDDEN" not in visible
