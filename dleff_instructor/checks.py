"""Hidden checks, judged outside the student's kernel.

A hidden test cell may only call `quiz.expect_answer` / `quiz.expect_value` with literal
arguments. The grader parses those calls here as data, asks the kernel only for the
student's *value* (as plain data), and compares it in the grading process with the
expected value the kernel never sees.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass

from dleff import quiz

HIDDEN_BLOCK = re.compile(r"^[ \t]*### BEGIN HIDDEN TESTS[ \t]*\n(.*?)^[ \t]*### END HIDDEN TESTS[ \t]*\n?",
                          re.DOTALL | re.MULTILINE)
CHECKS = ("expect_answer", "expect_value")
PLAIN = "__import__('dleff.quiz', fromlist=['to_plain']).to_plain({})"


# ---------------------------------------------------------------- hidden checks, out of the kernel


@dataclass(frozen=True)
class HiddenCheck:
    kind: str  # "expect_answer" or "expect_value"
    arguments: tuple

    @property
    def expression(self) -> str:
        """What the kernel is asked to evaluate: the student's value, never the expected one."""
        if self.kind == "expect_answer":
            return self.arguments[1]
        return PLAIN.format(self.arguments[0])

    def judge(self, ok: bool, value) -> str | None:
        """None when the check passes, else the plain-words reason shown to the student."""
        if self.kind == "expect_answer":
            qualified_id, variable, expected = self.arguments
            if not ok:
                if "NameError" in str(value):
                    return f"{qualified_id}: no variable `{variable}`; was its answer cell deleted?"
                return f"{qualified_id}: `{variable}` could not be read ({value})."
            question = quiz.find_question(qualified_id)
            return None if quiz.answers_match(question, value, expected) else (
                f"{qualified_id}: the answer in `{variable}` is not right.")
        expression, expected, *rest = self.arguments
        if not ok:
            return f"`{expression}` raised {value}"
        tolerance = rest[0] if rest else quiz.DEFAULT_TOLERANCE
        return None if quiz.values_match(value, expected, tolerance) else (
            f"`{expression}` does not give the expected result.")


def split_hidden(source: str) -> tuple[str, list[HiddenCheck]]:
    """The test cell's visible code, and its hidden checks parsed as literal data."""
    checks = []
    for block in HIDDEN_BLOCK.findall(source):
        for statement in ast.parse(block).body:
            call = getattr(statement, "value", None)
            name = getattr(getattr(call, "func", None), "attr", None) or getattr(
                getattr(call, "func", None), "id", None)
            if not isinstance(call, ast.Call) or name not in CHECKS:
                raise ValueError(f"hidden tests may only call quiz.expect_answer/expect_value, found: "
                                 f"{ast.unparse(statement)}")
            checks.append(HiddenCheck(name, tuple(ast.literal_eval(arg) for arg in call.args)))
    visible = HIDDEN_BLOCK.sub("", source).rstrip()
    return visible, checks
