"""The grader's verdicts on hidden checks (dleff_instructor.checks), judged without a kernel.

Fast unit tests: they are what the mutation check (`make mutation M=checks`) runs, so each
verdict is pinned down here: right, wrong, unreadable, deleted, and the tolerance.
"""

import pytest

from dleff_instructor.checks import HiddenCheck, split_hidden

CELL = '''answer_threads = "B"
### BEGIN HIDDEN TESTS
quiz.expect_answer("01-devices/threads-beyond-cores", "answer_threads", "B")
quiz.expect_value("double(2)", 4.0, 0.01)
expect_value("triple(1)", [3, 3])
### END HIDDEN TESTS
'''


def test_hidden_checks_are_parsed_as_data_and_removed_from_the_visible_cell():
    visible, checks = split_hidden(CELL)
    assert visible == 'answer_threads = "B"'
    assert checks == [
        HiddenCheck("expect_answer", ("01-devices/threads-beyond-cores", "answer_threads", "B")),
        HiddenCheck("expect_value", ("double(2)", 4.0, 0.01)),
        HiddenCheck("expect_value", ("triple(1)", [3, 3])),
    ]


def test_a_parsed_check_cannot_be_changed_afterwards():
    check = HiddenCheck("expect_value", ("double(2)", 4.0))
    with pytest.raises(AttributeError):
        check.arguments = ("double(2)", 5.0)


def test_a_cell_without_hidden_tests_has_no_checks():
    assert split_hidden("x = 1\n") == ("x = 1", [])


@pytest.mark.parametrize("statement", ["import os", "quiz.expect_answer(*args)", "print(secret)",
                                       "quiz.expect_value(compute(), 1)", 'print("literal arguments")',
                                       "quiz.expect_answer"])
def test_anything_but_literal_checks_is_refused(statement):
    with pytest.raises(ValueError):
        split_hidden(f"### BEGIN HIDDEN TESTS\n{statement}\n### END HIDDEN TESTS\n")


def test_the_kernel_is_asked_for_the_students_value_never_the_expected_one():
    answer = HiddenCheck("expect_answer", ("01-devices/threads-beyond-cores", "answer_threads", "B"))
    assert answer.expression == "answer_threads"
    value = HiddenCheck("expect_value", ("double(2)", 4.0))
    assert "double(2)" in value.expression and "4.0" not in value.expression
    assert value.expression.startswith("__import__('dleff.quiz'")


def test_answer_verdicts():
    check = HiddenCheck("expect_answer", ("01-devices/threads-beyond-cores", "answer_threads", "B"))
    assert check.judge(True, "B") is None
    assert check.judge(True, "b") is None  # normalised the bank's way
    assert check.judge(True, "C") == "01-devices/threads-beyond-cores: the answer in `answer_threads` is not right."
    assert check.judge(False, "NameError: name 'answer_threads' is not defined") == (
        "01-devices/threads-beyond-cores: no variable `answer_threads`; was its answer cell deleted?")
    assert check.judge(False, "TypeError: boom") == (
        "01-devices/threads-beyond-cores: `answer_threads` could not be read (TypeError: boom).")
    # A failed read is never a pass, even when the error text happens to equal the answer.
    assert check.judge(False, "B") is not None


def test_value_verdicts_and_tolerance():
    check = HiddenCheck("expect_value", ("double(2)", 4.0, 0.01))
    assert check.judge(True, 4.0) is None
    assert check.judge(True, 4.03) is None  # within 1 % (relative to 4)
    assert check.judge(True, 4.05) == "`double(2)` does not give the expected result."
    assert check.judge(False, "ZeroDivisionError") == "`double(2)` raised ZeroDivisionError"
    default = HiddenCheck("expect_value", ("triple(1)", [3, 3]))
    assert default.judge(True, [3, 3]) is None and default.judge(True, (3, 3)) is None
    assert default.judge(True, [3, 3.00001]) is not None  # the default tolerance is tight
    assert default.judge(True, [3, 3.0000000001]) is None
