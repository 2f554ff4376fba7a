"""Write a graded quiz's solution notebook (solutions/<quiz>/<quiz>-quiz.ipynb) from a few calls.

The notebook is the source of truth; this only writes its cells in the house format (see
docs/authoring.md), so that every question has one heading, a visible form check, hidden checks
the grader can parse, and options written in sorted order (their order says nothing).

    quiz = QuizWriter("04-jit", "Just in time", "import torch\\n\\nfrom dleff import jit, quiz")
    quiz.choice("where-branch", "What happens?", right="It returns 6: ...", wrong=["...", "...", "..."])
    quiz.number("traced-branch", "What number ...?", {"x": [2.0, 3.0]}, "x + 1", "answer_traced_branch = ...")
    quiz.measured("trace-speedup", "Write `speedup_of(times)` ...", measure="...\\ntimings", function="speedup_of",
                  signature="times", body="    return times['eager'] / times['traced']",
                  formula="m['eager'] / m['traced']")
    quiz.write(root / "solutions" / "04-jit" / "04-jit-quiz.ipynb")
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from dleff.variants import LETTERS

LINE = 112  # string literals are cut below ruff's 120 columns


def literal(text: str, indent: str) -> str:
    """A string literal, cut into implicitly joined pieces when the line would be too long."""
    whole = json.dumps(text, ensure_ascii=False)
    if len(whole) + len(indent) <= LINE:
        return whole
    pieces = textwrap.wrap(text, LINE - len(indent) - 4, drop_whitespace=False)
    return "(" + ("\n" + indent + " ").join(json.dumps(p, ensure_ascii=False) for p in pieces) + ")"


def list_literal(items: list[str], indent: str = "    ") -> str:
    return "[\n" + "".join(f"{indent}{literal(item, indent)},\n" for item in items) + indent[:-4] + "]"


def _meta(grade_id: str, *, grade=False, solution=False, locked=True, points=None) -> dict:
    data = {"grade": grade, "grade_id": grade_id, "locked": locked, "schema_version": 3, "solution": solution}
    if points is not None:
        data["points"] = points
    return {"nbgrader": data}


class QuizWriter:
    """Cells of one graded quiz, in order: intro, student id, set-up, then questions and exercises."""

    def __init__(self, quiz_id: str, title: str, imports: str):
        self.quiz_id, self.cells, self.questions = quiz_id, [], 0
        self._noted = False
        self.markdown("intro", f"""# Graded quiz {quiz_id[:2]} · {title}

**Before you start**, write your student id in the first code cell below and run it: the order of
the options and some numbers in the questions are drawn for *your* id, and your quiz is graded
with the same id. Answer each question in the cell marked for it (for example
`answer_x = "B"`), then run the cell below it: it checks only the *form* of your answer
(graded later). Write the explanations in your own words. Do not delete or copy cells.""")
        # a plain cell (no nbgrader metadata): the student edits it, and nbgrader leaves it as handed in
        self.cells.append(new_code_cell(
            "from dleff import quiz\n\n# Your student id between the quotes, as your instructor spells it "
            f'(on JupyterHub, leave it empty).\nquiz.start("{quiz_id}", "")'))
        self.code("setup", imports)

    def markdown(self, grade_id: str, text: str, **flags) -> None:
        cell = new_markdown_cell(text)
        cell.metadata = _meta(grade_id, **flags)
        self.cells.append(cell)

    def code(self, grade_id: str, source: str, **flags) -> None:
        cell = new_code_cell(source)
        cell.metadata = _meta(grade_id, **flags)
        self.cells.append(cell)

    def _heading(self, points: int, prompt: str) -> str:
        self.questions += 1
        return f"### Question {self.questions} · {points} point{'s' if points != 1 else ''}\n\n{prompt}"

    def _test(self, grade_id: str, visible: str, hidden: str, points: int) -> None:
        lines = ([f'quiz.expect_student("{self.quiz_id}")'] if not self._noted else []) + [hidden]
        self._noted = True
        self.code(grade_id, visible + "\n### BEGIN HIDDEN TESTS\n" + "\n".join(lines) + "\n### END HIDDEN TESTS",
                  grade=True, points=points)

    def choice(self, name: str, prompt: str, right: str | list[str], wrong: list[str], *,
               explain: tuple[str, str] | None = None) -> None:
        """A one-letter question (`right` a string) or a several-letter one (`right` a list)."""
        several = isinstance(right, list)
        rights = right if several else [right]
        options = sorted(rights + wrong)
        key = name.replace("-", "_")
        variable, shown, letters = f"answer_{key}", f"{key}_options", LETTERS[:len(options)]
        how = (f'Answer with a **list** of every right letter in `{variable}`, e.g. `{variable} = ["A", '
               f'"{letters[-1]}"]`.' if several else
               f'Answer with one letter (`"A"` to `"{letters[-1]}"`) in `{variable}`, e.g. `{variable} = "A"`.')
        self.markdown(key, self._heading(1, prompt) + "\n\n" + how)
        self.code(f"{key}_shown", f'{shown} = {list_literal(options)}\nquiz.options("{name}", {shown})')
        if several:
            solution = (f"right_options = {list_literal(rights)}\n"
                        f'{variable} = [quiz.letter_of("{name}", {shown}, option)\n'
                        f'{" " * (len(variable) + 4)}for option in right_options]')
        else:
            solution = f'{variable} = quiz.letter_of(\n    "{name}", {shown},\n    {literal(right, "    ")},\n)'
        self.code(variable, f"### BEGIN SOLUTION\n{solution}\n### END SOLUTION", solution=True, locked=False)
        expected = list_literal(rights, "        ") if several else literal(right, "    ")
        check = "choices" if several else "choice"
        self._test(f"test_{key}", f'quiz.check_{check}("{variable}", "{letters}")',
                   f'quiz.expect_{check}(\n    "{self.quiz_id}/{name}", "{variable}",\n    {expected},\n'
                   f'    {list_literal(options, "        ")},\n)', 1)
        if explain:
            self.explain(key, *explain)

    def number(self, name: str, prompt: str, choices: dict[str, list], formula: str, solution: str,
               tolerance: float | None = None) -> None:
        """A number drawn per student from `choices`; the answer is `formula` of the drawn names."""
        key = name.replace("-", "_")
        variable, numbers = f"answer_{key}", f"{key}_numbers"
        self.markdown(key, self._heading(1, prompt) + f"\n\nYour numbers are in `{numbers}` (printed below). "
                      f"Answer with a number in `{variable}`.")
        arguments = "".join(f"\n    {name_}={values!r}," for name_, values in choices.items())
        self.code(f"{key}_shown", f'{numbers} = quiz.numbers(\n    "{name}",{arguments}\n)\n{numbers}')
        self.code(variable, f"### BEGIN SOLUTION\n{solution}\n### END SOLUTION", solution=True, locked=False)
        extra = f", {tolerance!r}" if tolerance else ""
        self._test(f"test_{key}", f'quiz.check_number("{variable}")',
                   f'quiz.expect_number(\n    "{self.quiz_id}/{name}", "{variable}",\n    {json.dumps(formula)},\n'
                   f"    {choices!r}{extra},\n)", 1)

    def measured(self, name: str, prompt: str, measure: str, function: str, signature: str, body: str,
                 formula: str, points: int = 2) -> None:
        """A function the student writes, judged on what `measure` (last line: its variable) measured."""
        key = name.replace("-", "_")
        measurement = measure.rstrip().splitlines()[-1].strip()
        self.markdown(key, self._heading(points, prompt))
        self.code(f"{key}_measure", measure)
        self.code(f"answer_{function}", f"def {function}({signature}):\n    ### BEGIN SOLUTION\n{body}\n"
                  "    ### END SOLUTION", solution=True, locked=False)
        self.code(f"{function}_applied", f"{function}({measurement})")
        self._test(f"test_{function}", f'quiz.check_function("{function}")',
                   f'quiz.expect_measured(\n    "{self.quiz_id}/{name}", "{function}", "{measurement}",\n'
                   f"    {json.dumps(formula)},\n)", points)

    def explain(self, key: str, prompt: str, scheme: str, points: int = 1) -> None:
        """A manually graded explanation; the mark scheme never states a measured outcome.

        The mark scheme sits in the solution region: the release replaces it by "YOUR ANSWER HERE"
        under the prompt, which the student keeps.
        """
        self.markdown(f"explain_{key}", f"{prompt}\n\n### BEGIN SOLUTION\n=== BEGIN MARK SCHEME ===\n{scheme}\n"
                      "=== END MARK SCHEME ===\n### END SOLUTION",
                      grade=True, solution=True, locked=False, points=points)

    def write(self, path: Path) -> None:
        notebook = new_notebook(cells=self.cells)
        notebook.metadata = {"kernelspec": {"display_name": "Python 3 (ipykernel)", "language": "python",
                                            "name": "python3"}, "language_info": {"name": "python"}}
        for cell in notebook.cells:
            cell.id = (cell.metadata.get("nbgrader", {}).get("grade_id") or "student-id").replace("_", "-")
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(notebook, path)
