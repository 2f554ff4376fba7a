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
Q = "01-devices"
QUIZ = f"{Q}-quiz.ipynb"
FULL_AUTO = 4.0  # two single-choice questions (1 each) and the exercise (2)
MAX = 6.0  # plus two explanations graded by hand
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
answer_threads_beyond_cores = AlwaysEqual("A")
"""


def make(target, root, *args):
    env = dict(os.environ, DLEFF_COURSE_ROOT=str(root), DLEFF_CELL_TIMEOUT="5")
    result = subprocess.run(["make", "--no-print-directory", target, *args], cwd=ROOT, env=env,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout + result.stderr


def filled(overrides=None):
    return classroom.filled(Q, overrides, root=ROOT)


def _index(notebook, grade_id):
    return next(i for i, c in enumerate(notebook.cells) if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id)


def copied_answer_cell():
    """The answer cell copied with its metadata (nbgrader #1083); the answer written in the copy."""
    notebook = classroom.blank(Q, ROOT)
    for grade_id, source in classroom.answers(Q, ROOT).items():
        if grade_id != "answer_scaling":
            notebook.cells[_index(notebook, grade_id)].source = source
    at = _index(notebook, "answer_scaling")
    duplicate = copy.deepcopy(notebook.cells[at])
    duplicate.id = "pasted-copy"  # Jupyter gives a pasted cell an id of its own; the metadata comes along
    duplicate.source = classroom.answers(Q, ROOT)["answer_scaling"]
    notebook.cells.insert(at + 1, duplicate)
    return notebook


def relabelled():
    notebook = filled()
    notebook.cells[_index(notebook, "answer_threads_beyond_cores")].metadata.nbgrader["grade_id"] = "my_answer"
    return notebook


def moved_test_above_its_answer():
    notebook = filled()
    at = _index(notebook, "answer_more_threads_always_better")
    notebook.cells[at], notebook.cells[at + 1] = notebook.cells[at + 1], notebook.cells[at]
    return notebook


def class_export(folder):
    good = filled()
    return classroom.export(folder, {
        ("alice", QUIZ): good,
        ("bob", QUIZ): classroom.blank(Q, ROOT),
        ("carol", QUIZ): filled({"answer_threads_beyond_cores": "answer_threads_beyond_cores = 2\n"}),
        ("dave", QUIZ): b'{"cells": [ this is not json',
        ("erin", "my quiz final.ipynb"): good,
        ("frank", f"{Q}.zip"): classroom.zipped({"notes.txt": b"forgot the notebook"}),
        ("gina", QUIZ): classroom.without(good, "answer_threads_beyond_cores"),
        ("hank", QUIZ): classroom.edited(classroom.without(good, "test_scaling"),
                                         "test_more_threads_always_better", "pass\n"),
        ("ivan", QUIZ): filled({"answer_scaling": DEAF_ENDLESS}),
        ("oscar", QUIZ): filled({"answer_scaling": ENDLESS}),
        ("judy", QUIZ): filled({"answer_threads_beyond_cores": "raise ValueError('oops')\n"}),
        ("ken", QUIZ): filled({"answer_more_threads_always_better":
                                            'print("x" * 10_000_000)\nanswer_more_threads_always_better = "C"\n'}),
        ("leo", QUIZ): filled({"answer_more_threads_always_better": "import os\nos._exit(1)\n"}),
        ("mallory", QUIZ): filled({"answer_threads_beyond_cores": TAMPERING,
                                                "answer_more_threads_always_better":
                                                    'answer_more_threads_always_better = "A"\n',
                                                "answer_scaling": "def scaling(times):\n    return times\n"}),
        ("nina", "zipped.zip"): classroom.zipped({f"folder/{QUIZ}": good}),
        ("quinn", QUIZ): copied_answer_cell(),
        ("rosa", QUIZ): relabelled(),
        ("sam", QUIZ): moved_test_above_its_answer(),
        ("pat", QUIZ): filled({"answer_threads_beyond_cores":
                                            'quiz.ask("01-devices", "threads-beyond-cores")\n'
                                            'answer_threads_beyond_cores = "B"\n'}),
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
    assert scores["test_threads_beyond_cores"] == 0.0
    assert scores["test_more_threads_always_better"] == 1.0
    assert scores["test_scaling"] == 2.0


def test_tampering_gains_nothing(graded_class):
    root, _ = graded_class
    rows = {r["question"]: float(r["score"]) for r in read_csv(root / "grades-by-question.csv")
            if r["student_id"] == "mallory"}
    assert rows["test_threads_beyond_cores"] == rows["test_more_threads_always_better"] == 0.0
    assert rows["test_scaling"] == 0.0


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
        assert not re.search(r"expect_(answer|value)\(", text), f"{path.relative_to(root)} shows a hidden check"


def test_failed_hidden_checks_say_why_in_plain_words(graded_class):
    root, _ = graded_class
    notebook = nbformat.read(root / "autograded" / "carol" / Q / QUIZ, as_version=4)
    messages = [o.get("evalue", "") for c in notebook.cells if c.cell_type == "code" for o in c.outputs]
    assert any("answer must be" in m or "string" in m for m in messages), messages


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
