"""Innocent slips are graded, not zeroed: a submission's graded cells repaired from the released quiz.

Students copy cells (nbgrader metadata and all), edit a `grade_id` by accident, or drag a
test above its answer. Before nbgrader sanitises a submission, `RepairCells` matches each of
its cells to the released quiz (by cell id, then `grade_id`, then position), restores the
released nbgrader metadata, keeps one graded copy of each cell, puts graded cells back in
the released order (a student's own cells travel with the graded cell they follow), and
records what it did; `SealedExecute` turns that record into the student's grading note.
"""

from __future__ import annotations

import copy
import uuid
from pathlib import Path

import nbformat
from nbgrader.preprocessors import NbGraderPreprocessor

REPAIRS_KEY = "dleff_repairs"  # notebook metadata: what was repaired, read by SealedExecute


def _grading(cell) -> dict:
    return cell.metadata.get("nbgrader", {})


def _is_graded(cell) -> bool:
    meta = _grading(cell)
    return bool(meta.get("grade") or meta.get("solution") or meta.get("locked"))


def _blank(source: str) -> bool:
    return not source.strip() or "raise NotImplementedError()" in source or source.strip() == "YOUR ANSWER HERE"


def repair(notebook, released) -> list[str]:
    """Repair `notebook` in place against the `released` quiz; return what was done, in plain words."""
    reference = [c for c in released.cells if _is_graded(c)]
    by_id = {c.get("id"): c for c in reference}
    by_grade_id = {_grading(c)["grade_id"]: c for c in reference}
    order = {_grading(c)["grade_id"]: i for i, c in enumerate(reference)}
    notes: list[str] = []

    # which released cell each submitted cell is
    identity = {}
    for index, cell in enumerate(notebook.cells):
        grade_id = _grading(cell).get("grade_id")
        match = by_id.get(cell.get("id"))
        if match is None and grade_id in by_grade_id:
            match = by_grade_id[grade_id]
        if match is None and grade_id and _is_graded(cell) and index < len(released.cells):
            same_place = released.cells[index]
            if _is_graded(same_place) and same_place.cell_type == cell.cell_type:
                match = same_place
        if match is None:
            if _is_graded(cell):
                notes.append(f"A cell marked `{grade_id}` is not part of the quiz; it was run as your own code.")
                cell.metadata.pop("nbgrader", None)
            continue
        if match.cell_type != cell.cell_type:
            continue
        released_id = _grading(match)["grade_id"]
        if _grading(cell) != _grading(match):
            if grade_id != released_id:
                notes.append(f"The cell `{released_id}` had its grading label changed (to `{grade_id}`); "
                             "it was restored.")
            elif not _grading(cell):
                notes.append(f"The cell `{released_id}` had lost its grading label; it was restored.")
            cell.metadata["nbgrader"] = copy.deepcopy(_grading(match))
        identity[index] = released_id

    # one graded copy per released cell
    copies: dict[str, list[int]] = {}
    for index, released_id in identity.items():
        copies.setdefault(released_id, []).append(index)
    drop = set()
    for released_id, indices in copies.items():
        if len(indices) == 1:
            continue
        original = by_grade_id[released_id]
        if _grading(original).get("solution"):
            answered = [i for i in indices if not _blank(notebook.cells[i].source)] or indices
            keep = answered[-1]  # the last copy is what a top-to-bottom run leaves defined
            for i in indices:
                if i != keep:
                    notebook.cells[i].metadata.pop("nbgrader", None)  # still runs, as the student's own code
        else:
            keep = indices[0]
            drop.update(i for i in indices if i != keep)  # a copied test or read-only cell is not run twice
        notes.append(f"The cell `{released_id}` appeared {len(indices)} times (copied?); one copy was graded.")

    cells = [c for i, c in enumerate(notebook.cells) if i not in drop]
    kept = {id(notebook.cells[i]): released_id for i, released_id in identity.items()
            if i not in drop and "nbgrader" in notebook.cells[i].metadata}

    # graded cells back in the released order, each with the student's cells that follow it
    blocks, leading = [], []
    for cell in cells:
        if id(cell) in kept:
            blocks.append((order[kept[id(cell)]], [cell]))
        elif blocks:
            blocks[-1][1].append(cell)
        else:
            leading.append(cell)
    if [rank for rank, _ in blocks] != sorted(rank for rank, _ in blocks):
        blocks.sort(key=lambda block: block[0])
        notes.append("Some graded cells were moved out of the quiz's order; they were put back in order.")
    notebook.cells = leading + [cell for _, block in blocks for cell in block]

    seen = set()
    for cell in notebook.cells:  # cell ids must be unique for the notebook to be valid
        if cell.get("id") in seen or "id" not in cell:
            cell["id"] = uuid.uuid4().hex[:8]
        seen.add(cell["id"])
    return notes


class RepairCells(NbGraderPreprocessor):
    """The first sanitising step of autograde: `repair` against the released quiz, notes kept."""

    def preprocess(self, nb, resources):
        from dleff.paths import course_root

        info = resources.get("nbgrader", {})
        released_path = (Path(course_root()) / "quizzes" / info.get("assignment", "")
                         / f"{info.get('notebook', '')}.ipynb")
        if not released_path.is_file():
            return nb, resources
        notes = repair(nb, nbformat.read(released_path, as_version=4))
        if notes:
            nb.metadata[REPAIRS_KEY] = notes
            self.log.warning("Repaired %s: %s", info.get("student"), " ".join(notes))
        return nb, resources
