"""A real nbgrader autograde run: the solutions score full marks, the blank quizzes zero."""

import json
import shutil
from pathlib import Path

import pytest
from nbgrader.api import Gradebook

from dleff_instructor.release import nbgrader, quiz_ids

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def graded(released_course):
    root = released_course
    for quiz_id in quiz_ids(root):
        notebook = f"{quiz_id}-quiz.ipynb"
        for student, source in (("solution", root / "solutions"), ("blank", root / "quizzes")):
            target = root / "submitted" / student / quiz_id
            target.mkdir(parents=True, exist_ok=True)
            shutil.copy(source / quiz_id / notebook, target / notebook)
    # The seed's JIT quiz: the traced `if` gives 6 twice; answering "6 and 5" (B) is the classic mistake.
    solution = json.loads((root / "solutions" / "04-jit" / "04-jit-quiz.ipynb").read_text())
    for cell in solution["cells"]:
        cell["source"] = "".join(cell["source"]).replace('answer_trace_if = "A"', 'answer_trace_if = "B"')
    target = root / "submitted" / "six_and_five" / "04-jit"
    target.mkdir(parents=True)
    (target / "04-jit-quiz.ipynb").write_text(json.dumps(solution))
    for quiz_id in quiz_ids(root):
        nbgrader("autograde", quiz_id, "--create", root=root)
    return root


@pytest.mark.parametrize("quiz_id", quiz_ids(ROOT))
def test_solution_scores_full_marks_and_blank_scores_zero(graded, quiz_id):
    with Gradebook(f"sqlite:///{graded / 'gradebook.db'}") as gradebook:
        solution = gradebook.find_submission(quiz_id, "solution")
        blank = gradebook.find_submission(quiz_id, "blank")
        assert solution.max_code_score > 0
        assert solution.code_score == solution.max_code_score
        assert blank.code_score == 0
        assert solution.needs_manual_grade  # the "explain why" cells wait for the instructor


def test_jit_answer_six_and_five_scores_zero_on_that_question(graded):
    with Gradebook(f"sqlite:///{graded / 'gradebook.db'}") as gradebook:
        grade = gradebook.find_grade("test_trace_if", "04-jit-quiz", "04-jit", "six_and_five")
        assert grade.max_score == 1 and grade.auto_score == 0
        submission = gradebook.find_submission("04-jit", "six_and_five")
        assert submission.code_score == submission.max_code_score - 1
