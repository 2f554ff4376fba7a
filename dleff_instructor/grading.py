"""The instructor's workflow on nbgrader: collect, autograde, feedback, grades.

Beyond stock nbgrader: quizzes run through `execute.SealedExecute` (hidden checks judged
outside the kernel, see `checks`), and every submission that cannot be graded normally
(unreadable JSON, missing or renamed file, dead kernel...) gets a note, kept in
`grading-notes.json` beside the gradebook, that reaches the run's log, the student's
feedback and the grades report. Nothing is dropped silently.
"""

from __future__ import annotations

import csv
import html
import json
import re
import shutil
import sys
import time
import zipfile
from pathlib import Path

import nbformat

from dleff.paths import course_root
from dleff_instructor.execute import NOTE_CELL_ID
from dleff_instructor.release import nbgrader, quiz_ids

NOTES_FILE = "grading-notes.json"


# ---------------------------------------------------------------- notes ledger


def load_notes(root: Path) -> dict[str, str]:
    path = Path(root) / NOTES_FILE
    return json.loads(path.read_text()) if path.exists() else {}


def save_notes(root: Path, notes: dict[str, str]) -> None:
    (Path(root) / NOTES_FILE).write_text(json.dumps(dict(sorted(notes.items())), indent=1) + "\n")


# ---------------------------------------------------------------- collect


def _quiz_cell_ids(root: Path) -> dict[str, set[str]]:
    ids = {}
    for quiz_id in quiz_ids(root):
        notebook = nbformat.read(root / "quizzes" / quiz_id / f"{quiz_id}-quiz.ipynb", as_version=4)
        ids[quiz_id] = {c.metadata.get("nbgrader", {}).get("grade_id") for c in notebook.cells} - {None}
    return ids


def _identify(name: str, text: str | None, hint: str | None, cell_ids: dict[str, set[str]]):
    """Which quiz a file is, from its name, its folder or its cells. Returns (quiz, renamed)."""
    for quiz_id in cell_ids:
        if Path(name).name == f"{quiz_id}-quiz.ipynb":
            return quiz_id, False
    if text is not None:
        try:
            cells = nbformat.reads(text, as_version=4).cells
            found = {c.metadata.get("nbgrader", {}).get("grade_id") for c in cells}
            best = max(cell_ids, key=lambda q: len(cell_ids[q] & found), default=None)
            if best and len(cell_ids[best] & found) >= len(cell_ids[best]) / 2:
                return best, True
        except Exception:  # unreadable: fall back to the name and folder
            pass
    for quiz_id in cell_ids:
        if quiz_id in name or quiz_id == hint:
            return quiz_id, True
    return None, True


def _submissions(folder: Path):
    """(student, file name, text or None, folder hint) for every notebook in the export."""
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        student, sep, original = path.name.partition("_")
        if not sep or path.suffix not in (".ipynb", ".zip"):
            print(f"skipped {path}: not `<student_id>_<file>.ipynb` or `.zip`", file=sys.stderr)
            continue
        hint = path.parent.name
        if path.suffix == ".ipynb":
            yield student, original, path.read_bytes(), hint
            continue
        try:
            with zipfile.ZipFile(path) as archive:
                inner = [n for n in archive.namelist()
                         if n.endswith(".ipynb") and "__MACOSX" not in n and ".ipynb_checkpoints" not in n]
                if not inner:
                    yield student, original, None, Path(original).stem
                for name in inner:
                    yield student, Path(name).name, archive.read(name), hint
        except zipfile.BadZipFile:
            yield student, original, None, Path(original).stem


def collect(source: Path, root: Path) -> list[str]:
    """Import an LMS export (`<student_id>_<file>`, notebooks or zips) into submitted/."""
    source, root = Path(source), Path(root)
    if not source.is_dir():
        raise SystemExit(f"no folder {source}: pass FROM=<folder with the downloaded submissions>")
    cell_ids = _quiz_cell_ids(root)
    notes = load_notes(root)
    log = []
    for student, name, data, hint in _submissions(source):
        text = None
        if data is not None:
            text = data.decode("utf-8", errors="replace")
        quiz_id, renamed = _identify(name, text, hint, cell_ids)
        if quiz_id is None:
            log.append(f"{student}: cannot tell which quiz {name!r} is; rename it to <quiz>-quiz.ipynb")
            continue
        key = f"{student}/{quiz_id}"
        if data is None:
            notes[key] = (f"No quiz notebook was found in the submission {name!r}, so nothing could be "
                          f"graded. Submit {quiz_id}-quiz.ipynb.")
            log.append(f"{key}: {notes[key]}")
            continue
        try:
            nbformat.validate(nbformat.reads(text, as_version=4))
        except Exception as error:
            notes[key] = (f"The file {name!r} is not a readable notebook ({type(error).__name__}); it was "
                          "probably edited outside Jupyter or cut short. Nothing could be graded: open "
                          f"a fresh {quiz_id}-quiz.ipynb, copy your answers into it and resubmit.")
            log.append(f"{key}: {notes[key]}")
            continue
        notes.pop(key, None)
        if renamed:
            notes[key] = f"The file was named {name!r}; it was graded as {quiz_id}-quiz.ipynb."
            log.append(f"{key}: {notes[key]}")
        target = root / "submitted" / student / quiz_id / f"{quiz_id}-quiz.ipynb"
        if target.exists() and target.read_bytes() == data:
            continue
        action = "updated" if target.exists() else "collected"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        # a changed submission must be graded again; an unchanged one keeps its grade
        shutil.rmtree(root / "autograded" / student / quiz_id, ignore_errors=True)
        log.append(f"{key}: {action}")
    save_notes(root, notes)
    return log


# ---------------------------------------------------------------- autograde, feedback, grades


def _register_students(root: Path) -> None:
    """Add every student with a submission to the gradebook, once, before parallel grading."""
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gradebook:
        for folder in sorted((root / "submitted").glob("*")):
            if folder.is_dir():
                gradebook.update_or_create_student(folder.name)


def _grade_quiz(root: Path, quiz_id: str) -> tuple[str, float]:
    """nbgrader's output for one quiz, and the seconds it took."""
    start = time.perf_counter()
    result = nbgrader("autograde", quiz_id, root=root, check=False)
    return result.stdout + result.stderr, time.perf_counter() - start


def autograde(root: Path, only: list[str] | None = None, workers: int | None = None) -> list[str]:
    """Grade every new or changed submission; a failing student never stops the others.

    Quizzes are graded in parallel, one nbgrader process each: a notebook's kernel
    spends much of its time starting up and waiting, so two cores grade about twice
    as fast. Already graded, unchanged submissions are skipped (nbgrader's default).
    """
    from concurrent.futures import ThreadPoolExecutor

    from dleff.devices import cpu_cores

    root = Path(root)
    quizzes = [q for q in (only or quiz_ids(root)) if any((root / "submitted").glob(f"*/{q}"))]
    _register_students(root)
    with ThreadPoolExecutor(max_workers=workers or max(2, cpu_cores())) as pool:
        results = dict(zip(quizzes, pool.map(lambda quiz_id: _grade_quiz(root, quiz_id), quizzes)))
    notes = load_notes(root)
    log = []
    for quiz_id in quizzes:
        output, seconds = results[quiz_id]
        failed = re.findall(r"error processing assignment '[^']+' for student '([^']+)'", output)
        for student in sorted(set(failed)):
            notes[f"{student}/{quiz_id}"] = ("The notebook could not be run by the grader; ask your "
                                             "instructor to look at the grading log.")
            log.append(f"{student}/{quiz_id}: FAILED, see the nbgrader log")
        if failed:
            log.append(output)
        for notebook in sorted((root / "autograded").glob(f"*/{quiz_id}/{quiz_id}-quiz.ipynb")):
            cells = nbformat.read(notebook, as_version=4).cells
            note = next((c.source for c in cells if c.get("id") == NOTE_CELL_ID), "")
            key = f"{notebook.parts[-3]}/{quiz_id}"
            if note:
                notes[key] = note.removeprefix("**Grading note.** ")
                log.append(f"{key}: {notes[key]}")
        log.append(f"{quiz_id}: autograded in {seconds:.0f} s")
    save_notes(root, notes)
    return log


def feedback(root: Path) -> list[str]:
    """HTML feedback per student and quiz; submissions that could not be run get their note."""
    root = Path(root)
    for quiz_id in quiz_ids(root):
        if any((root / "autograded").glob(f"*/{quiz_id}")):
            nbgrader("generate_feedback", quiz_id, "--force", root=root, check=False)
    written = []
    for key, note in load_notes(root).items():
        student, quiz_id = key.split("/")
        page = root / "feedback" / student / quiz_id / f"{quiz_id}-quiz.html"
        if page.exists():
            text = page.read_text()
            if NOTE_CELL_ID not in text and "Grading note" not in text:
                banner = f"<div id='{NOTE_CELL_ID}' style='border:2px solid #b00;padding:1em'>" \
                         f"<b>Grading note.</b> {html.escape(note)}</div>"
                page.write_text(text.replace("<body>", "<body>" + banner, 1))
        else:
            page.parent.mkdir(parents=True, exist_ok=True)
            page.write_text(f"<!doctype html><meta charset='utf-8'><title>{quiz_id}: feedback</title>"
                            f"<h1>{html.escape(quiz_id)}: feedback for {html.escape(student)}</h1>"
                            f"<p id='{NOTE_CELL_ID}'><b>Grading note.</b> {html.escape(note)}</p>"
                            f"<p>Score: 0</p>")
        written.append(str(page.relative_to(root)))
    return written


def grades(root: Path) -> tuple[Path, Path]:
    """grades.csv (one row per student and quiz) and grades-by-question.csv, with notes beside."""
    from nbgrader.api import Gradebook, MissingEntry

    root = Path(root)
    notes = load_notes(root)
    quizzes = quiz_ids(root)
    rows, detail = [], []
    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gradebook:
        students = sorted({s.id for s in gradebook.students} | {key.split("/")[0] for key in notes})
        for student in students:
            for quiz_id in quizzes:
                max_score = gradebook.find_assignment(quiz_id).max_score
                note = notes.get(f"{student}/{quiz_id}", "")
                try:
                    submission = gradebook.find_submission(quiz_id, student)
                except MissingEntry:
                    rows.append([student, quiz_id, 0.0, max_score, note or "no submission"])
                    continue
                graded = (root / "autograded" / student / quiz_id).exists()
                score = submission.score if graded else 0.0
                rows.append([student, quiz_id, score, max_score, note])
                for notebook in submission.notebooks:
                    for grade in notebook.grades:
                        detail.append([student, quiz_id, grade.name, grade.score if graded else 0.0,
                                       grade.max_score, grade.needs_manual_grade])
    summary = root / "grades.csv"
    with summary.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["student_id", "quiz", "score", "max_score"])
        writer.writerows(row[:4] for row in rows)
    with (root / "grades-notes.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["student_id", "quiz", "note"])
        writer.writerows([row[0], row[1], row[4]] for row in rows if row[4])
    by_question = root / "grades-by-question.csv"
    with by_question.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["student_id", "quiz", "question", "score", "max_score", "needs_manual_grade"])
        writer.writerows(detail)
    return summary, by_question


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("collect", "autograde", "feedback", "grades"):
        print("usage: python -m dleff_instructor.grading collect FOLDER | autograde [QUIZ ...] | feedback | grades")
        return 2
    command, args = argv[0], argv[1:]
    if command == "collect":
        if not args:
            print("make collect FROM=<folder with the downloaded submissions>")
            return 2
        lines = collect(Path(args[0]), course_root())
    elif command == "autograde":
        lines = autograde(course_root(), only=args or None)
    elif command == "feedback":
        lines = [f"wrote {page}" for page in feedback(course_root())]
    else:
        lines = [f"wrote {path}" for path in grades(course_root())]
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
