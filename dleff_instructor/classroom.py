"""Synthetic classes of submissions, to rehearse and test the grading workflow.

A submission starts from the student version of a quiz (what a student really
receives) and fills its answer cells, right or wrong. The exported folder looks
like a learning-management system's download: one `<student_id>_<file>` per
student and quiz, notebooks or zips.
"""

from __future__ import annotations

import copy
import random
import re
import zipfile
from collections.abc import Callable
from pathlib import Path

import nbformat

from dleff_instructor.checks import HiddenCheck, split_hidden
from dleff_instructor.release import quiz_ids

MARKERS = re.compile(r"^[ \t]*### (BEGIN|END) SOLUTION[ \t]*\n?", re.MULTILINE)
MARK_SCHEME = re.compile(r"=== BEGIN MARK SCHEME ===.*?=== END MARK SCHEME ===\n?", re.DOTALL)


def _grade_id(cell) -> str | None:
    return cell.metadata.get("nbgrader", {}).get("grade_id")


STUDENT_CELL = re.compile(r'quiz\.start\("([^"]+)", "[^"]*"\)')


def _solution(quiz_id: str, root: Path) -> nbformat.NotebookNode:
    return nbformat.read(root / "solutions" / quiz_id / f"{quiz_id}-quiz.ipynb", as_version=4)


def hidden_checks(quiz_id: str, root: Path) -> dict[str, list[HiddenCheck]]:
    """The hidden checks of each test cell of the quiz's solution, by grade id."""
    return {_grade_id(c): split_hidden(c.source)[1] for c in _solution(quiz_id, root).cells
            if c.cell_type == "code" and "BEGIN HIDDEN TESTS" in c.source}


def key(quiz_id: str, root: Path, student: str) -> dict[str, object]:
    """`student`'s right answers, {answer variable: letter, letters or number}, derived as the grader does."""
    return {check.arguments[1]: check.expected(student)
            for checks in hidden_checks(quiz_id, root).values() for check in checks
            if check.expected(student) is not None}


def answers(quiz_id: str, root: Path, student: str | None = None) -> dict[str, str]:
    """The answer cells of a student who got everything right.

    With a `student`, choice and number answers are that student's own letters and values (what a
    student writes: literals); code answers are the solution's code.
    """
    own = key(quiz_id, root, student) if student else {}
    cells = {}
    for cell in _solution(quiz_id, root).cells:
        if not cell.metadata.get("nbgrader", {}).get("solution"):
            continue
        grade_id = _grade_id(cell)
        if grade_id in own:
            cells[grade_id] = f"{grade_id} = {own[grade_id]!r}\n"
        else:
            cells[grade_id] = MARK_SCHEME.sub("My explanation.", MARKERS.sub("", cell.source))
    return cells


def blank(quiz_id: str, root: Path, student: str | None = None) -> nbformat.NotebookNode:
    """The quiz as released; with a `student`, their id written into the first cell."""
    notebook = nbformat.read(root / "quizzes" / quiz_id / f"{quiz_id}-quiz.ipynb", as_version=4)
    if student:
        for cell in notebook.cells:
            if cell.cell_type == "code" and STUDENT_CELL.search(cell.source):
                cell.source = STUDENT_CELL.sub(f'quiz.start("\\1", "{student}")', cell.source)
    return notebook


def filled(quiz_id: str, overrides: dict[str, str] | None = None, *, root: Path,
           student: str = "s000") -> nbformat.NotebookNode:
    """`student`'s quiz with every answer cell right for their variant; `overrides` replaces chosen cells."""
    notebook = blank(quiz_id, root, student)
    sources = {**answers(quiz_id, root, student), **(overrides or {})}
    for cell in notebook.cells:
        if _grade_id(cell) in sources:
            cell.source = sources[_grade_id(cell)]
    return notebook


def without(notebook: nbformat.NotebookNode, *grade_ids: str) -> nbformat.NotebookNode:
    edited = copy.deepcopy(notebook)
    edited.cells = [c for c in edited.cells if _grade_id(c) not in grade_ids]
    return edited


def edited(notebook: nbformat.NotebookNode, grade_id: str, source: str) -> nbformat.NotebookNode:
    changed = copy.deepcopy(notebook)
    for cell in changed.cells:
        if _grade_id(cell) == grade_id:
            cell.source = source
    return changed


def wrong_choice(quiz_id: str, root: Path, student: str = "s000") -> dict[str, str]:
    """Overrides that answer every one-letter question of `student`'s variant with a wrong letter."""
    overrides = {}
    for checks in hidden_checks(quiz_id, root).values():
        for check in checks:
            if check.kind == "expect_choice":
                variable, options = check.arguments[1], check.arguments[3]
                right = check.expected(student)
                wrong = next(letter for letter in "ABCDEFGH"[:len(options)] if letter != right)
                overrides[variable] = f'{variable} = "{wrong}"\n'
    return overrides


def copied(quiz_id: str, root: Path, student: str, neighbour: str) -> nbformat.NotebookNode:
    """`student`'s quiz holding the answers that were right for `neighbour` (a copied neighbour)."""
    return filled(quiz_id, answers(quiz_id, root, neighbour), root=root, student=student)


def export(folder: Path, submissions: dict[tuple[str, str], bytes | nbformat.NotebookNode]) -> Path:
    """Write an LMS-style export: `<student>_<file name>` for each (student, file name)."""
    folder.mkdir(parents=True, exist_ok=True)
    for (student, name), content in submissions.items():
        data = nbformat.writes(content).encode() if isinstance(content, dict) else content
        (folder / f"{student}_{name}").write_bytes(data)
    return folder


def zipped(members: dict[str, bytes | nbformat.NotebookNode]) -> bytes:
    import io

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in members.items():
            archive.writestr(name, nbformat.writes(content) if isinstance(content, dict) else content)
    return buffer.getvalue()


def generated_class(folder: Path, students: int = 30, seed: int = 0, *, root: Path,
                    quizzes: list[str] | None = None) -> Path:
    """A class where each student answers every quiz, some right, some wrong, some blank."""
    rng = random.Random(seed)
    kinds: list[Callable[[str, str], nbformat.NotebookNode]] = [
        lambda q, s: filled(q, root=root, student=s),
        lambda q, s: filled(q, wrong_choice(q, root, s), root=root, student=s),
        lambda q, s: blank(q, root, s),
    ]
    submissions = {}
    for number in range(1, students + 1):
        student = f"s{number:03d}"
        for quiz_id in quizzes or quiz_ids(root):
            make = rng.choices(kinds, weights=[6, 3, 1])[0]
            submissions[(student, f"{quiz_id}-quiz.ipynb")] = make(quiz_id, student)
    return export(folder, submissions)
