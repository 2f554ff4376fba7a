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

from dleff_instructor.release import quiz_ids

MARKERS = re.compile(r"^[ \t]*### (BEGIN|END) SOLUTION[ \t]*\n?", re.MULTILINE)
MARK_SCHEME = re.compile(r"=== BEGIN MARK SCHEME ===.*?=== END MARK SCHEME ===\n?", re.DOTALL)


def _grade_id(cell) -> str | None:
    return cell.metadata.get("nbgrader", {}).get("grade_id")


def answers(quiz_id: str, root: Path) -> dict[str, str]:
    """The solution's answer cells, as a student who got everything right would write them."""
    source = nbformat.read(root / "solutions" / quiz_id / f"{quiz_id}-quiz.ipynb", as_version=4)
    return {_grade_id(c): MARK_SCHEME.sub("My explanation.", MARKERS.sub("", c.source)) for c in source.cells
            if c.metadata.get("nbgrader", {}).get("solution")}


def blank(quiz_id: str, root: Path) -> nbformat.NotebookNode:
    return nbformat.read(root / "quizzes" / quiz_id / f"{quiz_id}-quiz.ipynb", as_version=4)


def filled(quiz_id: str, overrides: dict[str, str] | None = None, *, root: Path) -> nbformat.NotebookNode:
    """The student quiz with every answer cell filled in; `overrides` replaces chosen cells."""
    notebook = blank(quiz_id, root)
    sources = {**answers(quiz_id, root), **(overrides or {})}
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


def wrong_choice(quiz_id: str, root: Path) -> dict[str, str]:
    """Overrides that answer every single-choice question with a wrong key."""
    from dleff.quiz import load_bank

    bank = load_bank(quiz_id, root / "quizzes" / "banks")
    overrides = {}
    for grade_id, source in answers(quiz_id, root).items():
        match = re.fullmatch(r"\s*(answer_\w+) = \"(\w)\"\s*", source)
        if not match:
            continue
        variable, right = match.groups()
        question = next((q for q in bank.questions.values() if q.kind == "single" and right in q.choices
                         and q.is_correct(right)), None)
        if question:
            wrong = next(key for key in question.choices if key != right)
            overrides[grade_id] = f'{variable} = "{wrong}"\n'
    return overrides


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
    kinds: list[Callable[[str], nbformat.NotebookNode]] = [
        lambda q: filled(q, root=root),
        lambda q: filled(q, wrong_choice(q, root), root=root),
        lambda q: blank(q, root),
    ]
    submissions = {}
    for number in range(1, students + 1):
        for quiz_id in quizzes or quiz_ids(root):
            make = rng.choices(kinds, weights=[6, 3, 1])[0]
            submissions[(f"s{number:03d}", f"{quiz_id}-quiz.ipynb")] = make(quiz_id)
    return export(folder, submissions)
