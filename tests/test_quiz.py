import json
from pathlib import Path

import pytest

from dleff import quiz, variants

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


def test_unknown_question_names_the_known_ones(bank):
    with pytest.raises(KeyError, match="pick, both, count"):
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


def test_committed_banks_equal_a_fresh_build(tmp_path):
    quiz.build_banks(ROOT / "solutions" / "banks", tmp_path)
    built = sorted(p.name for p in tmp_path.glob("*.json"))
    committed = sorted(p.name for p in quiz.banks_folder().glob("*.json"))
    assert built == committed, "run `make release` and commit quizzes/banks"
    for name in built:
        assert (tmp_path / name).read_text() == (quiz.banks_folder() / name).read_text(), f"{name}: run `make release`"


# ---------------------------------------------------------------- graded quizzes: the student's side

OPTIONS = ["first option", "second option", "third option", "fourth option"]


@pytest.fixture
def started():
    quiz.start("99-test", " S001 ")
    yield
    quiz._student.clear()


def test_start_needs_an_id_or_the_hub_user(monkeypatch):
    monkeypatch.delenv(quiz.STUDENT_ENV, raising=False)
    monkeypatch.delenv(quiz.GRADED_STUDENT_ENV, raising=False)
    with pytest.raises(quiz.QuizError, match="write your student id"):
        quiz.start("99-test", "")
    monkeypatch.setenv(quiz.STUDENT_ENV, "Hub-User")
    quiz.start("99-test", "")
    assert quiz.student_id() == "hub-user"
    monkeypatch.setenv(quiz.GRADED_STUDENT_ENV, "s042")  # grading: the submission folder names the student
    quiz.start("99-test", "")
    assert quiz.student_id() == "s042"
    quiz.start("99-test", "S007")  # an id written in the cell always wins
    assert quiz.student_id() == "s007"
    quiz._student.clear()


def test_options_are_shown_in_the_students_own_order(started):
    shown = quiz.options("q", OPTIONS)
    assert shown.splitlines()[0].startswith("- **A.** ")
    assert sorted(line.split("** ", 1)[1] for line in shown.splitlines()) == sorted(OPTIONS)
    letter = quiz.letter_of("q", OPTIONS, "third option")
    assert f"**{letter}.** third option" in shown
    orders = {tuple(variants.order(OPTIONS, "99-test", "q", f"s{n:03d}")) for n in range(30)}
    assert len(orders) > 10  # the order depends on the student


def test_numbers_are_drawn_per_student_and_repeatable(started):
    mine = quiz.numbers("n", width=[16, 32, 64, 128], depth=[1, 2, 3])
    assert mine == quiz.numbers("n", width=[16, 32, 64, 128], depth=[1, 2, 3])
    assert mine == variants.draw({"width": [16, 32, 64, 128], "depth": [1, 2, 3]}, "99-test", "n", "s001")
    assert "`width` = " in mine._repr_markdown_()
    draws = {tuple(variants.draw({"w": list(range(10))}, "99-test", "n", f"s{n:03d}").values()) for n in range(30)}
    assert len(draws) > 5


def test_options_before_start_say_what_to_do():
    quiz._student.clear()
    with pytest.raises(quiz.QuizError, match="first code cell"):
        quiz.options("q", OPTIONS)


def test_form_checks_confirm_in_one_line_without_saying_right_or_wrong(capsys):
    answer_q = "b"
    answer_several = ["C", "a"]
    answer_n = 12
    quiz.check_choice("answer_q", "ABCD")
    quiz.check_choices("answer_several", "ABCD")
    quiz.check_number("answer_n")
    quiz.check_function("started")
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "\N{HEAVY CHECK MARK} 'B' is one of A-D; graded later."
    assert len(lines) == 4 and all(line.endswith("graded later.") for line in lines)
    assert answer_q and answer_several and answer_n


@pytest.mark.parametrize("value, check, message", [
    ("E", "check_choice", "one of the letters A-D"),
    (2, "check_choice", "one of the letters A-D"),
    ("AC", "check_choices", "list of letters"),
    (float("nan"), "check_number", "finite number"),
    (3, "check_function", "must be a function"),
])
def test_form_checks_report_a_wrong_form_in_one_line(value, check, message):
    answer_x = value
    with pytest.raises(quiz.QuizError, match=message) as raised:
        getattr(quiz, check)("answer_x", *(["ABCD"] if "choice" in check else []))
    assert len(raised.value._render_traceback_()) == 1  # IPython shows this line instead of a traceback
    assert answer_x is value


def test_a_missing_answer_is_one_line_not_a_name_error():
    with pytest.raises(quiz.QuizError, match="`answer_nowhere` is not set yet") as raised:
        quiz.check_choice("answer_nowhere", "ABC")
    assert raised.value._render_traceback_() == [f"\N{HEAVY BALLOT X} {raised.value}"]


def test_to_plain_turns_tensors_and_numpy_into_plain_data():
    import numpy as np
    import torch

    assert quiz.to_plain({np.int64(2): torch.tensor([1.5]), "a": (np.float64(0.5),)}) == {2: [1.5], "a": [0.5]}
