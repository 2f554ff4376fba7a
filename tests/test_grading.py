"""A real nbgrader autograde run: each student's own right variant scores full marks, blank quizzes zero.

One notebook per student and quiz, run once (the whole fixture is one `nbgrader autograde` per quiz).
"""

import json
from pathlib import Path

import nbformat
import pytest
from nbgrader.api import Gradebook

from dleff_instructor import classroom
from dleff_instructor.release import nbgrader, quiz_ids

ROOT = Path(__file__).resolve().parents[1]
COPIED = "04-jit"  # the quiz where one student copies another's answers, and one hands in another's notebook
HUB = "06-validation"  # the quiz a JupyterHub student hands in with the id cell left empty


def submit(root: Path, student: str, quiz_id: str, notebook) -> None:
    target = root / "submitted" / student / quiz_id / f"{quiz_id}-quiz.ipynb"
    target.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, target)


@pytest.fixture(scope="module")
def graded(released_course):
    root = released_course
    for quiz_id in quiz_ids(root):
        submit(root, "s001", quiz_id, classroom.filled(quiz_id, root=root, student="s001"))
        submit(root, "blank", quiz_id, classroom.blank(quiz_id, root))
    submit(root, "s002", COPIED, classroom.copied(COPIED, root, "s002", "s001"))
    submit(root, "s003", COPIED, classroom.filled(COPIED, root=root, student="s001"))  # s001's notebook, as s003
    # no id written, answers computed in the notebook from the variant it shows (the solution's code)
    submit(root, "hubuser", HUB, classroom.filled(HUB, classroom.answers(HUB, root), root=root, student=""))
    for quiz_id in quiz_ids(root):
        nbgrader("autograde", quiz_id, "--create", root=root)
    return root


@pytest.mark.parametrize("quiz_id", quiz_ids(ROOT))
def test_own_variant_scores_full_marks_and_blank_scores_zero(graded, quiz_id):
    with Gradebook(f"sqlite:///{graded / 'gradebook.db'}") as gradebook:
        solution = gradebook.find_submission(quiz_id, "s001")
        blank = gradebook.find_submission(quiz_id, "blank")
        assert solution.max_code_score > 0
        assert solution.code_score == solution.max_code_score
        assert blank.code_score == 0
        assert solution.needs_manual_grade  # the "explain why" cells wait for the instructor


def test_a_copied_neighbours_answers_lose_points(graded):
    with Gradebook(f"sqlite:///{graded / 'gradebook.db'}") as gradebook:
        own = gradebook.find_submission(COPIED, "s001")
        copied = gradebook.find_submission(COPIED, "s002")
        assert copied.code_score < own.code_score
        # code that computes its answer still scores: the exercise reads the notebook's own `fill`, and the
        # own-run question is judged on this run's measurement
        assert gradebook.find_grade("test_safe_divide", f"{COPIED}-quiz", COPIED, "s002").auto_score == 2


def test_a_notebook_under_another_id_is_graded_as_its_folder_with_a_note(graded):
    with Gradebook(f"sqlite:///{graded / 'gradebook.db'}") as gradebook:
        assert gradebook.find_submission(COPIED, "s003").code_score < gradebook.find_submission(
            COPIED, "s001").code_score
        # its exercise filled with the `fill` shown to s001, not s003's: a whole copied notebook loses it too
        assert gradebook.find_grade("test_safe_divide", f"{COPIED}-quiz", COPIED, "s003").auto_score == 0
    notebook = nbformat.read(graded / "autograded" / "s003" / COPIED / f"{COPIED}-quiz.ipynb", as_version=4)
    note = notebook.cells[0].source
    assert "started with the student id 's001'" in note and "graded against the options and numbers of 's003'" in note


def test_own_run_questions_were_judged_on_measurements_of_the_grading_run(graded):
    notebook = nbformat.read(graded / "autograded" / "s001" / COPIED / f"{COPIED}-quiz.ipynb", as_version=4)
    measured = next(c for c in notebook.cells
                    if c.metadata.get("nbgrader", {}).get("grade_id") == "trace_speedup_measure")
    timings = json.loads(json.dumps(eval(measured.outputs[-1]["data"]["text/plain"])))  # noqa: S307 - our own output
    assert set(timings) == {"eager", "traced"} and all(t > 0 for t in timings.values())


def test_an_empty_id_cell_is_graded_with_the_variant_of_its_folder(graded):
    with Gradebook(f"sqlite:///{graded / 'gradebook.db'}") as gradebook:
        submission = gradebook.find_submission(HUB, "hubuser")
        assert submission.code_score == submission.max_code_score
