"""The grader's verdicts on hidden checks (dleff_instructor.checks), judged without a kernel.

Fast unit tests: they are what the mutation check (`make mutation M=checks`) runs, so each
verdict is pinned down here: right, wrong, unreadable, deleted, the tolerance, and the
student's own variant. The kernel is faked by `Kernel`, which answers from a dict.
"""

import pytest

from dleff import variants
from dleff_instructor.checks import PLAIN, HiddenCheck, Note, split_hidden

OPTIONS = ["alpha", "beta", "gamma", "delta"]
CHOICE = HiddenCheck("expect_choice", ("04-jit/trace-branch", "answer_branch", "gamma", OPTIONS))
CHOICES = HiddenCheck("expect_choices", ("04-jit/pick-two", "answer_pick", ["alpha", "gamma"], OPTIONS))
NUMBER = HiddenCheck("expect_number", ("04-jit/threads", "answer_threads", "n * k", {"n": [2, 3, 4, 5], "k": [10, 20]}))
MEASURED = HiddenCheck("expect_measured", ("04-jit/speedup", "speedup", "quiz_measured", "m['slow'] / m['fast']"))
STUDENT_ID = "__import__('dleff.quiz', fromlist=['student_id']).student_id()"
PLAIN_PREFIX, PLAIN_SUFFIX = PLAIN.split("{}")
# Two students whose variants differ in every question above (asserted in the first test).
ONE, TWO = "s001", "s002"


class Kernel:
    """A fake `evaluate`: plain values (or plain functions) by name, and a record of what was asked."""

    def __init__(self, student=None, **names):
        self.names, self.student, self.asked = names, student, []

    def __call__(self, expression):
        self.asked.append(expression)
        if expression == STUDENT_ID:
            return (True, self.student) if self.student is not None else (False, "ImportError: no quiz")
        assert expression.startswith(PLAIN_PREFIX) and expression.endswith(PLAIN_SUFFIX), expression
        inner = expression[len(PLAIN_PREFIX):-len(PLAIN_SUFFIX)]
        try:
            return True, eval(inner, {"__builtins__": {}}, dict(self.names))  # noqa: S307 - the test's own text
        except Exception as error:  # noqa: BLE001 - reported as the kernel would
            return False, f"{type(error).__name__}: {error}"


def letter(right, question, student):
    return variants.letter_of(right, OPTIONS, "04-jit", question, student)


def test_the_two_students_see_different_variants():
    assert letter("gamma", "trace-branch", ONE) != letter("gamma", "trace-branch", TWO)
    assert CHOICE.expected(ONE) != CHOICE.expected(TWO)
    assert CHOICES.expected(ONE) != CHOICES.expected(TWO)
    assert NUMBER.expected(ONE) != NUMBER.expected(TWO)


def test_expected_answers_are_the_students_own_variant():
    for student in (ONE, TWO, " S001 "):
        assert CHOICE.expected(student) == letter("gamma", "trace-branch", student)
        assert CHOICES.expected(student) == sorted(letter(r, "pick-two", student) for r in ["alpha", "gamma"])
        drawn = variants.draw({"n": [2, 3, 4, 5], "k": [10, 20]}, "04-jit", "threads", student)
        assert NUMBER.expected(student) == drawn["n"] * drawn["k"]
    assert MEASURED.expected(ONE) is None
    assert HiddenCheck("expect_value", ("double(2)", 4.0)).expected(ONE) is None


def test_choice_verdicts():
    mine, theirs = letter("gamma", "trace-branch", ONE), letter("gamma", "trace-branch", TWO)
    assert CHOICE.judge(Kernel(answer_branch=mine), ONE) is None
    assert CHOICE.judge(Kernel(answer_branch=f" {mine.lower()} "), ONE) is None
    assert CHOICE.judge(Kernel(answer_branch=theirs), TWO) is None
    wrong = "04-jit/trace-branch: the answer in `answer_branch` is not right."
    assert CHOICE.judge(Kernel(answer_branch=theirs), ONE) == wrong  # right for another student only
    assert CHOICE.judge(Kernel(answer_branch="gamma"), ONE) == wrong  # the text is not the letter
    assert CHOICE.judge(Kernel(answer_branch=[mine]), ONE) == wrong
    assert CHOICE.judge(Kernel(), ONE) == (
        "04-jit/trace-branch: no answer in `answer_branch`; was its answer cell deleted or not run?")
    assert CHOICE.judge(Kernel(answer_branch=None, answer=1), ONE) == wrong


def test_a_failed_read_is_never_a_pass():
    mine = letter("gamma", "trace-branch", ONE)
    # The error text happens to equal the right answer: still no pass.
    assert CHOICE.judge(lambda expression: (False, mine), ONE) == (
        f"04-jit/trace-branch: `answer_branch` could not be read ({mine}).")
    assert CHOICES.judge(lambda expression: (False, "TypeError: boom"), ONE) == (
        "04-jit/pick-two: `answer_pick` could not be read (TypeError: boom).")
    assert NUMBER.judge(lambda expression: (False, NUMBER.expected(ONE)), ONE) is not None
    assert HiddenCheck("expect_value", ("double(2)", 4.0)).judge(lambda expression: (False, 4.0), ONE) is not None


def test_choices_verdicts():
    mine = CHOICES.expected(ONE)
    assert CHOICES.judge(Kernel(answer_pick=list(reversed(mine))), ONE) is None
    assert CHOICES.judge(Kernel(answer_pick=tuple(x.lower() + " " for x in mine)), ONE) is None
    assert CHOICES.judge(Kernel(answer_pick=[*mine, mine[0]]), ONE) is None  # a repeat is the same choice
    wrong = "04-jit/pick-two: the answer in `answer_pick` is not right."
    assert CHOICES.judge(Kernel(answer_pick=CHOICES.expected(TWO)), ONE) == wrong
    assert CHOICES.judge(Kernel(answer_pick=mine[:1]), ONE) == wrong
    extra = sorted(set("ABCD") - set(mine))[:1]
    assert CHOICES.judge(Kernel(answer_pick=[*mine, *extra]), ONE) == wrong
    assert CHOICES.judge(Kernel(answer_pick="".join(mine)), ONE) == wrong  # a string is not a list of letters
    assert CHOICES.judge(Kernel(answer_pick=[*mine, 1]), ONE) == wrong
    assert CHOICES.judge(Kernel(), ONE) == (
        "04-jit/pick-two: no answer in `answer_pick`; was its answer cell deleted or not run?")


def test_number_verdicts_and_tolerance():
    mine, theirs = NUMBER.expected(ONE), NUMBER.expected(TWO)
    assert NUMBER.judge(Kernel(answer_threads=mine), ONE) is None
    assert NUMBER.judge(Kernel(answer_threads=float(mine)), ONE) is None
    assert NUMBER.judge(Kernel(answer_threads=theirs), TWO) is None
    wrong = "04-jit/threads: the answer in `answer_threads` is not right."
    assert NUMBER.judge(Kernel(answer_threads=theirs), ONE) == wrong
    assert NUMBER.judge(Kernel(answer_threads=mine * 1.001), ONE) == wrong  # the default tolerance is tight
    assert NUMBER.judge(Kernel(answer_threads=str(mine)), ONE) == wrong
    assert NUMBER.judge(Kernel(answer_threads=[mine]), ONE) == wrong
    loose = HiddenCheck("expect_number", (*NUMBER.arguments, 0.01))
    assert loose.judge(Kernel(answer_threads=mine * 1.009), ONE) is None
    assert loose.judge(Kernel(answer_threads=mine * 1.02), ONE) == wrong
    one = HiddenCheck("expect_number", ("04-jit/one", "answer_one", "n // n", {"n": [3]}))
    assert one.judge(Kernel(answer_one=1), ONE) is None
    assert one.judge(Kernel(answer_one=True), ONE) is not None  # a bool is not a number
    assert NUMBER.judge(Kernel(), ONE) == (
        "04-jit/threads: no answer in `answer_threads`; was its answer cell deleted or not run?")


def test_measured_compares_the_function_with_the_formula_on_this_runs_values():
    measured = {"slow": 3.0, "fast": 1.5}
    kernel = Kernel(quiz_measured=measured, speedup=lambda m: m["slow"] / m["fast"])
    assert MEASURED.judge(kernel, ONE) is None
    assert kernel.asked == [PLAIN.format("quiz_measured"), PLAIN.format(f"speedup({measured!r})")]
    assert MEASURED.judge(Kernel(quiz_measured={"slow": 9.0, "fast": 1.5}, speedup=lambda m: 6.0), ONE) is None
    assert MEASURED.judge(Kernel(quiz_measured=measured, speedup=lambda m: 2.0005), ONE) is None  # rounded
    wrong = "04-jit/speedup: `speedup` does not give the right result on this run's measurement."
    assert MEASURED.judge(Kernel(quiz_measured=measured, speedup=lambda m: m["fast"] / m["slow"]), ONE) == wrong
    assert MEASURED.judge(Kernel(quiz_measured=measured, speedup=lambda m: 2.01), ONE) == wrong
    loose = HiddenCheck("expect_measured", (*MEASURED.arguments, 0.01))
    assert loose.judge(Kernel(quiz_measured=measured, speedup=lambda m: 2.01), ONE) is None
    assert loose.judge(Kernel(quiz_measured=measured, speedup=lambda m: 2.05), ONE) == wrong


def test_measured_never_passes_on_a_failed_read():
    assert MEASURED.judge(Kernel(speedup=lambda m: 2.0), ONE) == (
        "04-jit/speedup: the quiz's measurement `quiz_measured` could not be read "
        "(NameError: name 'quiz_measured' is not defined).")
    assert MEASURED.judge(Kernel(quiz_measured={"slow": 3.0, "fast": 1.5}), ONE) == (
        "04-jit/speedup: `speedup(...)` on this run's measurement raised NameError: name 'speedup' is not defined")
    assert MEASURED.judge(Kernel(quiz_measured={"slow": 3.0}, speedup=lambda m: m["fast"]), ONE) == (
        "04-jit/speedup: `speedup(...)` on this run's measurement raised KeyError: 'fast'")
    assert MEASURED.judge(Kernel(quiz_measured={"slow": 3.0}, speedup=lambda m: 2.0), ONE) == (
        "04-jit/speedup: this run's measurement cannot be judged (KeyError: 'fast').")
    judged = MEASURED.judge(Kernel(quiz_measured={"slow": 3.0, "fast": 0.0}, speedup=lambda m: 0.0), ONE)
    assert judged == ("04-jit/speedup: this run's measurement cannot be judged "
                      "(ZeroDivisionError: float division by zero).")
    missing = HiddenCheck("expect_measured", ("04-jit/speedup", "speedup", "quiz_measured", "m['slower']"))
    assert missing.judge(Kernel(quiz_measured={"slow": 3.0}, speedup=lambda m: 3.0), ONE) is not None


def test_value_verdicts_and_tolerance():
    check = HiddenCheck("expect_value", ("double(2)", 4.0, 0.01))
    assert check.judge(Kernel(double=lambda x: 2.0 * x), ONE) is None
    assert check.judge(Kernel(double=lambda x: 4.03), ONE) is None  # within 1 % (relative to 4)
    assert check.judge(Kernel(double=lambda x: 4.05), ONE) == "`double(2)` does not give the expected result."
    assert check.judge(Kernel(double=lambda x: 1 / 0), ONE) == "`double(2)` raised ZeroDivisionError: division by zero"
    default = HiddenCheck("expect_value", ("triple(1)", [3, 3]))
    assert default.judge(Kernel(triple=lambda x: [3, 3]), ONE) is None
    assert default.judge(Kernel(triple=lambda x: (3, 3)), ONE) is None
    assert default.judge(Kernel(triple=lambda x: [3, 3.0000000001]), ONE) is None
    assert default.judge(Kernel(triple=lambda x: [3, 3.00001]), ONE) is not None  # the default tolerance is tight
    assert default.judge(Kernel(triple=lambda x: [3, 3, 3]), ONE) is not None
    assert default.judge(Kernel(triple=lambda x: [3]), ONE) is not None
    plain = HiddenCheck("expect_value", ("f()", {"a": 1, "b": "x"}))
    assert plain.judge(Kernel(f=lambda: {"a": 1.0, "b": "x"}), ONE) is None
    assert plain.judge(Kernel(f=lambda: {"a": 1, "b": "y"}), ONE) is not None
    assert plain.judge(Kernel(f=lambda: {"a": 1}), ONE) is not None
    assert plain.judge(Kernel(f=lambda: {"a": 1, "c": "x"}), ONE) is not None
    zero = HiddenCheck("expect_value", ("f()", 0.0))
    assert zero.judge(Kernel(f=lambda: 1e-9), ONE) is None  # absolute tolerance near zero
    assert zero.judge(Kernel(f=lambda: 1e-5), ONE) is not None
    assert HiddenCheck("expect_value", ("f()", 1)).judge(Kernel(f=lambda: True), ONE) is not None
    assert HiddenCheck("expect_value", ("f()", True)).judge(Kernel(f=lambda: True), ONE) is None
    assert HiddenCheck("expect_value", ("f()", "1")).judge(Kernel(f=lambda: 1), ONE) is not None


def test_the_kernel_is_asked_for_the_students_values_never_the_expected_ones():
    for check, kernel in [(CHOICE, Kernel(answer_branch="A")), (CHOICES, Kernel(answer_pick=["A"])),
                          (NUMBER, Kernel(answer_threads=0)),
                          (HiddenCheck("expect_value", ("double(2)", 4.5)), Kernel(double=lambda x: 0))]:
        check.judge(kernel, ONE)
        assert len(kernel.asked) == 1
        asked = kernel.asked[0]
        assert asked.startswith("__import__('dleff.quiz'")
        assert "gamma" not in asked and "alpha" not in asked and str(NUMBER.expected(ONE)) not in asked
        assert "4.5" not in asked


def test_student_note_only_when_the_ids_differ():
    check = HiddenCheck("expect_student", ("04-jit",))
    assert check.question == ""
    assert check.judge(Kernel(student="s001"), ONE) is None
    assert check.judge(Kernel(student="s001"), " S001 ") is None
    assert check.judge(Kernel(student="s002"), "") is None  # no folder id: nothing to compare
    note = check.judge(Kernel(student="s002"), ONE)
    assert isinstance(note, Note)
    assert note == ("This notebook was started with the student id 's002' but handed in as 's001'; "
                    "it was graded against the options and numbers of 's001'.")
    unread = check.judge(Kernel(), ONE)
    assert isinstance(unread, Note) and "(none)" in unread
    assert isinstance(check.judge(Kernel(student=42), ONE), Note)


CELL = '''answer_branch = "B"
### BEGIN HIDDEN TESTS
quiz.expect_choice("04-jit/trace-branch", "answer_branch", "gamma", ["alpha", "beta", "gamma", "delta"])
quiz.expect_choices("04-jit/pick-two", "answer_pick", ["alpha", "gamma"], ["alpha", "beta", "gamma", "delta"])
quiz.expect_number("04-jit/threads", "answer_threads", "n * k", {"n": [2, 3, 4, 5], "k": [10, 20]}, 0.5)
quiz.expect_measured("04-jit/speedup", "speedup", "quiz_measured", "m['slow'] / m['fast']")
quiz.expect_value("double(2)", 4.0, 0.01)
expect_value("triple(1)", [3, 3])
quiz.expect_student("04-jit")
### END HIDDEN TESTS
print("after")
'''


def test_hidden_checks_are_parsed_as_data_and_removed_from_the_visible_cell():
    visible, checks = split_hidden(CELL)
    assert visible == 'answer_branch = "B"\nprint("after")'
    assert checks == [
        CHOICE, CHOICES, HiddenCheck("expect_number", (*NUMBER.arguments, 0.5)), MEASURED,
        HiddenCheck("expect_value", ("double(2)", 4.0, 0.01)),
        HiddenCheck("expect_value", ("triple(1)", [3, 3])),
        HiddenCheck("expect_student", ("04-jit",)),
    ]
    assert [check.question for check in checks] == [
        "04-jit/trace-branch", "04-jit/pick-two", "04-jit/threads", "04-jit/speedup", "", "", ""]


def test_every_hidden_block_is_parsed():
    cell = ("x = 1\n### BEGIN HIDDEN TESTS\nquiz.expect_value('x', 1)\n### END HIDDEN TESTS\n"
            "y = 2\n  ### BEGIN HIDDEN TESTS  \nquiz.expect_value('y', 2)\n  ### END HIDDEN TESTS\n")
    visible, checks = split_hidden(cell)
    assert visible == "x = 1\ny = 2"
    assert checks == [HiddenCheck("expect_value", ("x", 1)), HiddenCheck("expect_value", ("y", 2))]


def test_a_parsed_check_cannot_be_changed_afterwards():
    _, [check, *_] = split_hidden(CELL)
    with pytest.raises(AttributeError):
        check.arguments = ("04-jit/trace-branch", "answer_branch", "alpha", OPTIONS)
    with pytest.raises(AttributeError):
        check.kind = "expect_value"


def test_a_cell_without_hidden_tests_has_no_checks():
    assert split_hidden("x = 1\n") == ("x = 1", [])


@pytest.mark.parametrize("statement", [
    "import os", "x = 1", "quiz.expect_choice(*args)", "print(secret)", "quiz.expect_value(compute(), 1)",
    'print("literal arguments")', 'quiz.run("literal arguments")', 'os.system("rm -rf /")',
    "quiz.expect_choice", 'quiz.expect_answer("01-devices/threads", "answer_threads", "B")',
    'quiz.expect_value("x", value)', 'quiz.expect_value("x", [y])', 'quiz.expect_value("x", 1 + 2j * z)',
])
def test_anything_but_literal_checks_is_refused(statement):
    with pytest.raises(ValueError):
        split_hidden(f"y = 1\n### BEGIN HIDDEN TESTS\n{statement}\n### END HIDDEN TESTS\n")


def test_keyword_arguments_are_refused_rather_than_dropped():
    with pytest.raises(ValueError, match="positional"):
        split_hidden('### BEGIN HIDDEN TESTS\nquiz.expect_value("x", 1, tolerance=0.1)\n### END HIDDEN TESTS\n')


CALL = HiddenCheck("expect_call", ("04-jit/safe-divide", "safe_divide($a, $b)",
                                   {"a": [[1.0, 2.0], [3.0, -6.0], [5.0, 0.5]],
                                    "b": [[0.0, 2.0], [4.0, 0.0], [2.0, 8.0]]},
                                   "[x / y if y else 0.0 for x, y in zip(a, b)]"))


def safe_divide(a, b):
    return [x / y if y else 0.0 for x, y in zip(a, b)]


def test_call_runs_the_students_function_on_their_own_inputs():
    drawn = {student: CALL.inputs(student) for student in (ONE, TWO, "s003", "s004")}
    assert len({repr(inputs) for inputs in drawn.values()}) > 1, "inputs must differ between students"
    for student, inputs in drawn.items():
        kernel = Kernel(safe_divide=safe_divide)
        assert CALL.judge(kernel, student) is None
        assert kernel.asked == [PLAIN.format(f"safe_divide({inputs['a']!r}, {inputs['b']!r})")]
        assert CALL.returns(student) == safe_divide(inputs["a"], inputs["b"])
        assert CALL.expected(student) is None  # nothing a student writes in an answer variable
    # the same inputs as quiz.numbers draws them for that question: shown numbers and hidden inputs agree
    assert CALL.inputs(ONE) == variants.draw(CALL.arguments[2], "04-jit", "safe-divide", ONE)


def test_call_fails_a_function_fitted_to_someone_elses_inputs():
    one = CALL.inputs(ONE)
    other = next(student for student in (f"s{n:03d}" for n in range(2, 99)) if CALL.inputs(student) != one)
    two = CALL.inputs(other)
    copied = {repr((one["a"], one["b"])): safe_divide(one["a"], one["b"])}  # answers by lookup, not by computing
    kernel = Kernel(safe_divide=lambda a, b: copied.get(repr((a, b)), [0.0] * len(a)))
    assert CALL.judge(kernel, ONE) is None
    verdict = CALL.judge(Kernel(safe_divide=lambda a, b: copied.get(repr((a, b)), [0.0] * len(a))), other)
    assert verdict == (f"04-jit/safe-divide: `safe_divide({two['a']!r}, {two['b']!r})` does not give the "
                       "expected result.")
    raised = CALL.judge(Kernel(safe_divide=lambda a, b: 1 / 0), ONE)
    assert raised.startswith("04-jit/safe-divide: `safe_divide(") and raised.endswith("raised ZeroDivisionError: "
                                                                                        "division by zero")
    loose = HiddenCheck("expect_call", (*CALL.arguments, 0.1))
    assert loose.judge(Kernel(safe_divide=lambda a, b: [v * 1.05 for v in safe_divide(a, b)]), ONE) is None
    assert CALL.judge(Kernel(safe_divide=lambda a, b: [v * 1.05 for v in safe_divide(a, b)]), ONE) is not None


def test_call_form_is_checked_when_the_hidden_tests_are_read():
    good = '### BEGIN HIDDEN TESTS\nquiz.expect_call("q/x", "f($n)", {"n": [1, 2]}, "n + 1")\n### END HIDDEN TESTS\n'
    assert split_hidden(good)[1] == [HiddenCheck("expect_call", ("q/x", "f($n)", {"n": [1, 2]}, "n + 1"))]
    with pytest.raises(ValueError, match=r"uses \$m but draws no such input"):
        split_hidden(good.replace("f($n)", "f($n, $m)"))
    with pytest.raises(ValueError, match="takes"):
        split_hidden(good.replace(', "n + 1"', ""))
