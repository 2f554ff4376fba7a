import json
from pathlib import Path

import pytest

from dleff import quiz

ROOT = Path(__file__).resolve().parents[1]

SOURCE = {
    "section": "99-test",
    "salt": "s",
    "questions": [
        {"id": "pick", "prompt": "Pick B.", "kind": "single", "points": 1,
         "choices": {"A": "a", "B": "b"}, "answer": "B", "hint": "Not A.", "explanation": "B is right."},
        {"id": "both", "prompt": "Pick A and C.", "kind": "multiple", "points": 1,
         "choices": {"A": "a", "B": "b", "C": "c"}, "answer": ["C", "A"], "explanation": "A and C."},
        {"id": "count", "prompt": "How many?", "kind": "number", "points": 1, "answer": 6,
         "explanation": "Six."},
        {"id": "code", "prompt": "Write f.", "kind": "code", "points": 2},
    ],
}


@pytest.fixture
def bank(tmp_path):
    (tmp_path / "99-test.json").write_text(json.dumps(quiz.build_bank(SOURCE)))
    return quiz.load_bank("99-test", tmp_path)


def test_public_bank_holds_no_plain_answer_or_explanation():
    public = json.dumps(quiz.build_bank(SOURCE))
    assert "B is right" not in public and "Six." not in public
    assert '"answer"' not in public


def test_answers_are_normalised_before_hashing(bank):
    assert bank["pick"].is_correct("b ")
    assert not bank["pick"].is_correct("A")
    assert bank["both"].is_correct(["A", "C"]) and bank["both"].is_correct(["c", "a"])
    assert not bank["both"].is_correct(["A"])
    assert bank["count"].is_correct(6.0) and not bank["count"].is_correct(5)


def test_wrong_types_are_wrong_not_errors(bank):
    assert not bank["pick"].is_correct(2)
    assert not bank["both"].is_correct("AC")
    assert not bank["count"].is_correct(True)


def test_explanation_opens_only_with_the_right_answer(bank):
    assert bank["pick"].explanation("B") == "B is right."
    with pytest.raises(ValueError):
        bank["pick"].explanation("A")


def test_check_form_says_what_shape_is_expected(bank):
    bank["pick"].check_form("A")  # wrong but well formed: passes
    with pytest.raises(ValueError, match="not among the choices"):
        bank["pick"].check_form("D")
    with pytest.raises(TypeError, match="string"):
        bank["pick"].check_form(None)
    with pytest.raises(TypeError, match="list of choice keys"):
        bank["both"].check_form("A")


def test_unknown_question_names_the_known_ones(bank):
    with pytest.raises(KeyError, match="pick, both, count, code"):
        bank["nope"]


def test_missing_bank_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no question bank"):
        quiz.load_bank("00-none", tmp_path)


def test_widget_gives_feedback_on_wrong_then_right_answer(bank):
    widget = quiz.QuizWidget(bank["pick"])
    widget.button.click()
    assert "Choose an answer" in widget.feedback
    widget.select("A")
    widget.button.click()
    assert "Not quite" in widget.feedback and "Not A." in widget.feedback
    assert "B is right" not in widget.feedback
    widget.select("B")
    widget.button.click()
    assert "Right" in widget.feedback and "B is right." in widget.feedback
    assert widget.attempts == 3


def test_multiple_choice_widget(bank):
    widget = quiz.QuizWidget(bank["both"])
    widget.select(["C", "A"])
    assert widget.check()
    assert "A and C." in widget.feedback


def test_widget_renders_without_a_kernel_and_without_the_answer(bank):
    bundle = quiz.QuizWidget(bank["pick"])._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert "Pick B." in bundle["text/html"] and "B is right" not in bundle["text/html"]


def test_code_questions_have_no_widget(bank):
    with pytest.raises(ValueError, match="graded quiz"):
        quiz.QuizWidget(bank["code"])


def test_expect_answer_passes_right_and_fails_wrong_or_missing():
    answer_q = "b"
    quiz.expect_answer("01-devices/threads-beyond-cores", "answer_q", "B")
    with pytest.raises(AssertionError, match="not right"):
        quiz.expect_answer("01-devices/threads-beyond-cores", "answer_q", "C")
    with pytest.raises(AssertionError, match="deleted"):
        quiz.expect_answer("01-devices/threads-beyond-cores", "no_such_variable", "B")
    assert answer_q


def test_expect_value_compares_plain_data_with_tolerance():
    import torch

    def double(x):
        return x * 2

    quiz.expect_value("double(torch.tensor([1.0, 2.0]))", [2.0, 4.0])
    quiz.expect_value("{1: (1.0, 0.5)}", {1: [1.0, 0.5 + 1e-9]})
    with pytest.raises(AssertionError, match="expected result"):
        quiz.expect_value("double(1)", 3)
    with pytest.raises(AssertionError, match="raised ZeroDivisionError"):
        quiz.expect_value("1 / 0", 1)
    assert torch


def test_committed_banks_equal_a_fresh_build(tmp_path):
    quiz.build_banks(ROOT / "solutions" / "banks", tmp_path)
    built = sorted(p.name for p in tmp_path.glob("*.json"))
    committed = sorted(p.name for p in quiz.banks_folder().glob("*.json"))
    assert built == committed, "run `make release` and commit quizzes/banks"
    for name in built:
        assert (tmp_path / name).read_text() == (quiz.banks_folder() / name).read_text(), f"{name}: run `make release`"
