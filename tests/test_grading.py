"""A real nbgrader autograde run: the solutions score full marks, the blank quizzes zero."""

import shutil

import pytest
from nbgrader.api import Gradebook

from dleff.release import nbgrader, quiz_ids


@pytest.fixture(scope="module")
def graded(released_course):
    root = released_course
    for quiz_id in quiz_ids(root):
        notebook = f"{quiz_id}-quiz.ipynb"
        for student, source in (("solution", root / "solutions"), ("blank", root / "quizzes")):
            target = root / "submitted" / student / quiz_id
            target.mkdir(parents=True, exist_ok=True)
            shutil.copy(source / quiz_id / notebook, target / notebook)
        nbgrader("autograde", quiz_id, "--create", root=root)
    return root


@pytest.mark.parametrize("quiz_id", quiz_ids())
def test_solution_scores_full_marks_and_blank_scores_zero(graded, quiz_id):
    with Gradebook(f"sqlite:///{graded / 'gradebook.db'}") as gradebook:
        solution = gradebook.find_submission(quiz_id, "solution")
        blank = gradebook.find_submission(quiz_id, "blank")
        assert solution.max_code_score > 0
        assert solution.code_score == solution.max_code_score
        assert blank.code_score == 0
        assert solution.needs_manual_grade  # the "explain why" cells wait for the instructor
