"""The instructor workflow on a class of good and bad submissions, through the make targets.

Each student stands for one way a submission goes wrong; the test checks every row of
grades.csv, the notes that explain the odd ones, and that a second run changes nothing.
"""

import copy
import csv
import html
import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from dleff_instructor import classroom

ROOT = Path(__file__).resolve().parents[1]
Q = "06-validation"
QUIZ = f"{Q}-quiz.ipynb"
FULL_AUTO = 4.0  # a number and a single-choice question (1 each) and the exercise (2)
MAX = 5.0  # plus an explanation graded by hand
ENDLESS = "while True:\n    pass\n"
DEAF_ENDLESS = "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    pass\n"

TAMPERING = """
import builtins
from dleff import quiz
quiz.expect_answer = lambda *args, **kwargs: None
quiz.expect_value = lambda *args, **kwargs: None
quiz.answers_match = lambda *args, **kwargs: True
builtins.AssertionError = type("Never", (Exception,), {})
get_ipython().set_custom_exc((Exception,), lambda *args, **kwargs: None)
class AlwaysEqual(str):
    def __eq__(self, other):
        return True
    __hash__ = str.__hash__
answer_stop_epoch = AlwaysEqual("A")
"""


def make(target, root, *args):
    env = dict(os.environ, DLEFF_COURSE_ROOT=str(root), DLEFF_CELL_TIMEOUT="5")
    result = subprocess.run(["make", "--no-print-directory", target, *args], cwd=ROOT, env=env,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout + result.stderr


def filled(student, overrides=None):
    """`student`'s quiz, right for their own variant (option order and numbers), with `overrides`."""
    return classroom.filled(Q, overrides, root=ROOT, student=student)


def right(student, variable):
    return classroom.key(Q, ROOT, student)[variable]


def _index(notebook, grade_id):
    return next(i for i, c in enumerate(notebook.cells) if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id)


def copied_answer_cell(student):
    """The answer cell copied with its metadata (nbgrader #1083); the answer written in the copy."""
    notebook = classroom.blank(Q, ROOT, student)
    answers = classroom.answers(Q, ROOT, student)
    for grade_id, source in answers.items():
        if grade_id != "answer_early_stopping":
            notebook.cells[_index(notebook, grade_id)].source = source
    at = _index(notebook, "answer_early_stopping")
    duplicate = copy.deepcopy(notebook.cells[at])
    duplicate.id = "pasted-copy"  # Jupyter gives a pasted cell an id of its own; the metadata comes along
    duplicate.source = answers["answer_early_stopping"]
    notebook.cells.insert(at + 1, duplicate)
    return notebook


def relabelled(student):
    notebook = filled(student)
    notebook.cells[_index(notebook, "answer_stop_epoch")].metadata.nbgrader["grade_id"] = "my_answer"
    return notebook


def moved_test_above_its_answer(student):
    notebook = filled(student)
    at = _index(notebook, "answer_nested_early_stopping")
    notebook.cells[at], notebook.cells[at + 1] = notebook.cells[at + 1], notebook.cells[at]
    return notebook


def class_export(folder):
    return classroom.export(folder, {
        ("alice", QUIZ): filled("alice"),
        ("bob", QUIZ): classroom.blank(Q, ROOT, "bob"),
        ("carol", QUIZ): filled("carol", {"answer_stop_epoch": 'answer_stop_epoch = "forty"\n'}),
        ("dave", QUIZ): b'{"cells": [ this is not json',
        ("erin", "my quiz final.ipynb"): filled("erin"),
        ("frank", f"{Q}.zip"): classroom.zipped({"notes.txt": b"forgot the notebook"}),
        ("gina", QUIZ): classroom.without(filled("gina"), "answer_stop_epoch"),
        ("hank", QUIZ): classroom.edited(classroom.without(filled("hank"), "test_early_stopping"),
                                         "test_nested_early_stopping", "pass\n"),
        ("ivan", QUIZ): filled("ivan", {"answer_early_stopping": DEAF_ENDLESS}),
        ("oscar", QUIZ): filled("oscar", {"answer_early_stopping": ENDLESS}),
        ("judy", QUIZ): filled("judy", {"answer_stop_epoch": "raise ValueError('oops')\n"}),
        ("ken", QUIZ): filled("ken", {"answer_nested_early_stopping": 'print("x" * 10_000_000)\nanswer_nested_'
                                      f'early_stopping = "{right("ken", "answer_nested_early_stopping")}"\n'}),
        ("leo", QUIZ): filled("leo", {"answer_nested_early_stopping": "import os\nos._exit(1)\n"}),
        ("mallory", QUIZ): filled("mallory", {
            "answer_stop_epoch": TAMPERING,
            **classroom.wrong_choice(Q, ROOT, "mallory"),
            "answer_early_stopping": "def early_stopping(losses, patience, eval_freq=1):\n    return losses\n"}),
        ("nina", "zipped.zip"): classroom.zipped({f"folder/{QUIZ}": filled("nina")}),
        ("pat", QUIZ): filled("pat", {"answer_stop_epoch": 'quiz.ask("06-validation", "patience-stop-epoch")\n'
                                      f'answer_stop_epoch = {right("pat", "answer_stop_epoch")}\n'}),
        ("quinn", QUIZ): copied_answer_cell("quinn"),
        ("rosa", QUIZ): relabelled("rosa"),
        ("sam", QUIZ): moved_test_above_its_answer("sam"),
    })


EXPECTED = {  # student: (autograded score, a phrase its note must contain or "")
    "alice": (FULL_AUTO, ""),
    "bob": (0.0, ""),
    "carol": (FULL_AUTO - 1, ""),
    "dave": (0.0, "not a readable notebook"),
    "erin": (FULL_AUTO, "was named 'my quiz final.ipynb'"),
    "frank": (0.0, "No quiz notebook was found"),
    "gina": (FULL_AUTO - 1, ""),
    "hank": (FULL_AUTO, ""),
    "ivan": (FULL_AUTO - 2, "ignored the interrupt"),
    "oscar": (FULL_AUTO - 2, "was interrupted"),
    "judy": (FULL_AUTO - 1, ""),
    "ken": (FULL_AUTO, ""),
    "leo": (1.0, "kernel died"),
    "mallory": (0.0, ""),
    "nina": (FULL_AUTO, ""),
    "pat": (FULL_AUTO, ""),
    # innocent slips: repaired from the released quiz, graded, and explained
    "quinn": (FULL_AUTO, "appeared 2 times"),
    "rosa": (FULL_AUTO, "grading label changed"),
    "sam": (FULL_AUTO, "put back in order"),  # a quiz widget in a graded notebook neither hangs nor breaks grading
}


def read_csv(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def graded_class(course_factory, tmp_path_factory):
    root = course_factory("class-course")
    export = class_export(tmp_path_factory.mktemp("lms-export"))
    make("collect", root, f"FROM={export}")
    first = make("autograde", root, f"QUIZ={Q}")
    make("feedback", root)
    make("grades", root)
    return root, first


def test_every_row_of_grades_csv_is_right(graded_class):
    root, _ = graded_class
    rows = {r["student_id"]: r for r in read_csv(root / "grades.csv") if r["quiz"] == Q}
    assert list(read_csv(root / "grades.csv")[0]) == ["student_id", "quiz", "score", "max_score"]
    assert set(rows) == set(EXPECTED)
    for student, (score, _) in EXPECTED.items():
        assert float(rows[student]["score"]) == score, student
        assert float(rows[student]["max_score"]) == MAX, student


def test_odd_submissions_carry_a_readable_note(graded_class):
    root, log = graded_class
    notes = {r["student_id"]: r["note"] for r in read_csv(root / "grades-notes.csv") if r["quiz"] == Q}
    for student, (_, phrase) in EXPECTED.items():
        if phrase:
            assert phrase in notes.get(student, ""), (student, notes.get(student))
            feedback = (root / "feedback" / student / Q / f"{Q}-quiz.html").read_text()
            assert "Grading note" in feedback, student
    assert "ignored the interrupt" in log and "kernel died" in log


def test_per_question_breakdown(graded_class):
    root, _ = graded_class
    rows = [r for r in read_csv(root / "grades-by-question.csv") if r["student_id"] == "carol"]
    scores = {r["question"]: float(r["score"]) for r in rows}
    assert scores["test_stop_epoch"] == 0.0
    assert scores["test_nested_early_stopping"] == 1.0
    assert scores["test_early_stopping"] == 2.0


def test_tampering_gains_nothing(graded_class):
    root, _ = graded_class
    rows = {r["question"]: float(r["score"]) for r in read_csv(root / "grades-by-question.csv")
            if r["student_id"] == "mallory"}
    assert rows["test_stop_epoch"] == rows["test_nested_early_stopping"] == 0.0
    assert rows["test_early_stopping"] == 0.0


def test_nothing_returned_to_students_shows_hidden_tests(graded_class):
    root, _ = graded_class
    returned = list((root / "autograded").rglob("*.ipynb")) + list((root / "feedback").rglob("*.html"))
    assert len(returned) > len(EXPECTED)
    for path in returned:
        text = path.read_text()
        if path.suffix == ".ipynb":
            text = "\n".join(c.source for c in nbformat.reads(text, as_version=4).cells)
        else:
            text = html.unescape(re.sub(r"<[^>]+>", "", text))
        for secret in ("HIDDEN TESTS", "MARK SCHEME"):
            assert secret not in text, f"{path.relative_to(root)} shows {secret!r}"
        # a hidden check is a call; mallory's own `quiz.expect_answer = ...` is her code, not ours
        assert not re.search(r"expect_(choices?|number|measured|call|value|student)\(", text), \
            f"{path.relative_to(root)} shows a hidden check"


def test_failed_hidden_checks_say_why_in_plain_words(graded_class):
    root, _ = graded_class
    notebook = nbformat.read(root / "autograded" / "carol" / Q / QUIZ, as_version=4)
    messages = [o.get("evalue", "") for c in notebook.cells if c.cell_type == "code" for o in c.outputs]
    assert any("must be a finite number" in m for m in messages), messages


def test_second_run_changes_no_score(graded_class):
    root, _ = graded_class
    before = (root / "grades.csv").read_text()
    make("autograde", root)
    make("grades", root)
    assert (root / "grades.csv").read_text() == before


def test_collect_needs_a_folder(released_course):
    env = dict(os.environ, DLEFF_COURSE_ROOT=str(released_course))
    result = subprocess.run([sys.executable, "-m", "dleff_instructor.grading", "collect", "/nonexistent/export"],
                            cwd=ROOT, env=env, capture_output=True, text=True)
    assert result.returncode != 0 and "FROM=" in result.stdout + result.stderr


def test_grader_state_is_backed_up_and_never_half_written(tmp_path, monkeypatch):
    import sqlite3

    from dleff_instructor import grading

    with sqlite3.connect(tmp_path / "gradebook.db") as db:
        db.execute("create table grade (student text, score real)")
        db.execute("insert into grade values ('alice', 4.0)")
    grading.save_notes(tmp_path, {"alice/01-devices": "a note"})
    copy = grading.backup(tmp_path)
    with sqlite3.connect(copy / "gradebook.db") as db:
        assert db.execute("select * from grade").fetchall() == [("alice", 4.0)]
    assert grading.load_notes(copy) == {"alice/01-devices": "a note"}

    def crash(*args):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError):
        grading.save_notes(tmp_path, {"bob/01-devices": "never written"})
    assert grading.load_notes(tmp_path) == {"alice/01-devices": "a note"}
    (tmp_path / grading.NOTES_FILE).write_text("")
    with pytest.raises(SystemExit, match="backups"):
        grading.load_notes(tmp_path)
