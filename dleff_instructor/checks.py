"""Hidden checks, judged outside the student's kernel, against the student's own variant.

A hidden test cell may only call the checks below with literal arguments. The grader parses
those calls here as data, asks the kernel only for the student's *values* (as plain data), and
computes the expected answer in the grading process, for the student id of the submission
folder (see `dleff.variants`): the kernel never sees an expected value.

- `expect_choice(qid, variable, right, options)`: one letter; `right` is the right option's text.
- `expect_choices(qid, variable, rights, options)`: a list of letters; `rights` the right texts.
- `expect_number(qid, variable, formula, choices[, tolerance])`: a number; `formula` is evaluated
  here on this student's numbers, drawn from `choices` as `quiz.numbers` drew them.
- `expect_measured(qid, function, measurement, formula[, tolerance])`: the student's `function`
  applied to the values the quiz measured in this run (read once, as plain data) must equal
  `formula` evaluated here on the same values (named `m`).
- `expect_call(qid, call, inputs, formula[, tolerance])`: a code exercise run on this student's
  inputs. `inputs` maps names to lists of possible values; one value per name is drawn for the
  student as `quiz.numbers(qid, ...)` draws (names listed first, in the same order, get the
  numbers that quiz cell showed). `call` is the code run in the kernel, with `$name` replaced by
  the drawn value's literal; `formula`, evaluated here on the drawn values, gives what it must
  return. A neighbour's copied answers were checked on other inputs than this student's.
- `expect_value(expression, expected[, tolerance])`: a code exercise's result on fixed inputs
  (edge cases every student's code must handle).
- `expect_student(quiz_id)`: not a test but a note when the notebook was started under another
  student id than the folder it was handed in from (it is graded as the folder's student).
"""

from __future__ import annotations

import ast
import math
import re
import string
from collections.abc import Callable
from dataclasses import dataclass

from dleff import variants

HIDDEN_BLOCK = re.compile(r"^[ \t]*### BEGIN HIDDEN TESTS[ \t]*\n(.*?)^[ \t]*### END HIDDEN TESTS[ \t]*\n?",
                          re.DOTALL | re.MULTILINE)
CHECKS = ("expect_choice", "expect_choices", "expect_number", "expect_measured", "expect_call", "expect_value",
          "expect_student")
PLAIN = "__import__('dleff.quiz', fromlist=['to_plain']).to_plain({})"
DEFAULT_TOLERANCE = 1e-6
MEASURED_TOLERANCE = 1e-3  # a student may round a ratio of timings to three or four digits
FORMULA_NAMES = {"abs": abs, "all": all, "any": any, "bool": bool, "dict": dict, "enumerate": enumerate,
                 "float": float, "int": int, "len": len, "list": list, "max": max, "min": min, "range": range,
                 "round": round, "sorted": sorted, "sum": sum, "tuple": tuple, "zip": zip, "math": math}

Evaluate = Callable[[str], tuple[bool, object]]


class Note(str):
    """A remark for the student's feedback that costs no points."""


def formula_value(formula: str, names: dict):
    """The instructor's formula (from a hidden test) evaluated on plain data, with no built-ins but a few."""
    return eval(formula, {"__builtins__": {}, **FORMULA_NAMES, **names})  # noqa: S307 - instructor's text


def values_match(given, expected, tolerance: float = DEFAULT_TOLERANCE) -> bool:
    """Plain data equal, numbers within `tolerance` (relative or absolute; tuples and lists alike)."""
    return _plain_equal(_listed(given), _listed(expected), tolerance)


def _listed(value):
    if isinstance(value, (list, tuple)):
        return [_listed(item) for item in value]
    if isinstance(value, dict):
        return {key: _listed(item) for key, item in value.items()}
    return value


def _plain_equal(a, b, tolerance: float) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return math.isclose(a, b, rel_tol=tolerance, abs_tol=tolerance)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_plain_equal(x, y, tolerance) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_plain_equal(a[k], b[k], tolerance) for k in a)
    return type(a) is type(b) and a == b


def _letters_of(given) -> list[str] | None:
    if isinstance(given, str) or not isinstance(given, (list, tuple)):
        return None
    if not all(isinstance(key, str) for key in given):
        return None
    return sorted({key.strip().upper() for key in given})


# ---------------------------------------------------------------- hidden checks, out of the kernel


@dataclass(frozen=True)
class HiddenCheck:
    kind: str  # one of CHECKS
    arguments: tuple

    @property
    def question(self) -> str:
        """The qualified question id ("04-jit/trace-branch"), or '' for code exercises."""
        return self.arguments[0] if self.kind not in ("expect_value", "expect_student") else ""

    def _split(self) -> tuple[str, str]:
        quiz_id, _, question_id = self.question.partition("/")
        return quiz_id, question_id

    def expected(self, student: str):
        """The right answer `student` writes in a variable (a letter, letters or a number); None for other kinds."""
        quiz_id, question_id = self._split()
        if self.kind == "expect_choice":
            _, _, right, options = self.arguments
            return variants.letter_of(right, options, quiz_id, question_id, student)
        if self.kind == "expect_choices":
            _, _, rights, options = self.arguments
            return sorted(variants.letter_of(right, options, quiz_id, question_id, student) for right in rights)
        if self.kind == "expect_number":
            formula, choices = self.arguments[2:4]
            return formula_value(formula, variants.draw(choices, quiz_id, question_id, student))
        return None

    def inputs(self, student: str) -> dict:
        """An `expect_call`'s inputs for `student`, drawn from its question's stream."""
        quiz_id, question_id = self._split()
        return variants.draw(self.arguments[2], quiz_id, question_id, student)

    def returns(self, student: str):
        """What an `expect_call`'s code must return for `student` (the formula on their inputs)."""
        return formula_value(self.arguments[3], self.inputs(student))

    def call(self, student: str) -> str:
        """An `expect_call`'s code with this student's inputs written in as literals."""
        return string.Template(self.arguments[1]).substitute(
            {name: repr(value) for name, value in self.inputs(student).items()})

    def judge(self, evaluate: Evaluate, student: str) -> str | None:
        """None when the check passes, else the plain-words reason (or a `Note`) for the student.

        `evaluate(expression)` asks the kernel for one value as plain data: (ok, value or error).
        """
        if self.kind == "expect_value":
            expression, expected, *rest = self.arguments
            ok, value = evaluate(PLAIN.format(expression))
            if not ok:
                return f"`{expression}` raised {value}"
            tolerance = rest[0] if rest else DEFAULT_TOLERANCE
            return None if values_match(value, expected, tolerance) else (
                f"`{expression}` does not give the expected result.")
        if self.kind == "expect_student":
            ok, value = evaluate("__import__('dleff.quiz', fromlist=['student_id']).student_id()")
            started = value if ok and isinstance(value, str) else ""
            if student and started != variants.normalize_student(student):
                return Note(f"This notebook was started with the student id {started or '(none)'!r} but handed in "
                            f"as {student!r}; it was graded against the options and numbers of {student!r}.")
            return None
        if self.kind == "expect_measured":
            return self._judge_measured(evaluate)
        if self.kind == "expect_call":
            return self._judge_call(evaluate, student)
        variable = self.arguments[1]
        ok, value = evaluate(PLAIN.format(variable))
        if not ok:
            if "NameError" in str(value):
                return f"{self.question}: no answer in `{variable}`; was its answer cell deleted or not run?"
            return f"{self.question}: `{variable}` could not be read ({value})."
        expected = self.expected(student)
        if self.kind == "expect_choice":
            right = isinstance(value, str) and value.strip().upper() == expected
        elif self.kind == "expect_choices":
            right = _letters_of(value) == expected
        else:
            tolerance = self.arguments[4] if len(self.arguments) > 4 else DEFAULT_TOLERANCE
            right = isinstance(value, (int, float)) and not isinstance(value, bool) and values_match(
                value, expected, tolerance)
        return None if right else f"{self.question}: the answer in `{variable}` is not right."

    def _judge_call(self, evaluate: Evaluate, student: str) -> str | None:
        call = self.call(student)
        ok, value = evaluate(PLAIN.format(call))
        if not ok:
            return f"{self.question}: `{call}` raised {value}"
        tolerance = self.arguments[4] if len(self.arguments) > 4 else DEFAULT_TOLERANCE
        return None if values_match(value, self.returns(student), tolerance) else (
            f"{self.question}: `{call}` does not give the expected result.")

    def _judge_measured(self, evaluate: Evaluate) -> str | None:
        _, function, measurement, formula, *rest = self.arguments
        ok, measured = evaluate(PLAIN.format(measurement))
        if not ok:
            return f"{self.question}: the quiz's measurement `{measurement}` could not be read ({measured})."
        ok, value = evaluate(PLAIN.format(f"{function}({measured!r})"))
        if not ok:
            return f"{self.question}: `{function}(...)` on this run's measurement raised {value}"
        try:
            expected = formula_value(formula, {"m": measured})
        except (ArithmeticError, LookupError, TypeError, ValueError) as error:
            return f"{self.question}: this run's measurement cannot be judged ({type(error).__name__}: {error})."
        tolerance = rest[0] if rest else MEASURED_TOLERANCE
        return None if values_match(value, expected, tolerance) else (
            f"{self.question}: `{function}` does not give the right result on this run's measurement.")


def split_hidden(source: str) -> tuple[str, list[HiddenCheck]]:
    """The test cell's visible code, and its hidden checks parsed as literal data."""
    checks = []
    for block in HIDDEN_BLOCK.findall(source):
        for statement in ast.parse(block).body:
            call = getattr(statement, "value", None)
            name = getattr(getattr(call, "func", None), "attr", None) or getattr(
                getattr(call, "func", None), "id", None)
            if not isinstance(call, ast.Call) or name not in CHECKS:
                raise ValueError(f"hidden tests may only call quiz.{'/'.join(CHECKS)}, found: "
                                 f"{ast.unparse(statement)}")
            if call.keywords:  # an instructor's `tolerance=0.1` would otherwise be lost without a word
                raise ValueError(f"hidden tests take positional arguments only, found: {ast.unparse(statement)}")
            check = HiddenCheck(name, tuple(ast.literal_eval(arg) for arg in call.args))
            if name == "expect_call":
                _check_call_form(check, statement)
            checks.append(check)
    visible = HIDDEN_BLOCK.sub("", source).rstrip()
    return visible, checks


def _check_call_form(check: HiddenCheck, statement: ast.stmt) -> None:
    """An `expect_call` whose code names an input it does not draw would fail every student alike."""
    if len(check.arguments) not in (4, 5) or not isinstance(check.arguments[2], dict):
        raise ValueError("expect_call takes (qid, call, inputs, formula[, tolerance]), found: "
                         f"{ast.unparse(statement)}")
    named = set(string.Template(check.arguments[1]).get_identifiers())
    missing = named - set(check.arguments[2])
    if missing:
        raise ValueError(f"expect_call's code uses ${', $'.join(sorted(missing))} but draws no such input: "
                         f"{ast.unparse(statement)}")
