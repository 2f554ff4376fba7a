"""Per-student variants: judged as the grader judges them, over a generated class of 30 (no kernel needed)."""

import ast
from collections.abc import Callable
from itertools import combinations
from pathlib import Path

import pytest

from dleff_instructor import classroom
from dleff_instructor.checks import PLAIN, HiddenCheck, Note, split_hidden
from dleff_instructor.release import quiz_ids

ROOT = Path(__file__).resolve().parents[1]
QUIZZES = quiz_ids(ROOT)
CLASS = [f"s{number:03d}" for number in range(1, 31)]


def kernel(namespace: dict):
    """A stand-in for the student's kernel: evaluates an expression and returns plain data, as the grader reads it."""
    def evaluate(expression):
        try:
            return True, ast.literal_eval(repr(eval(expression, dict(namespace))))
        except Exception as error:  # the grader reads an error as (False, "Name: message")
            return False, f"{type(error).__name__}: {error}"
    return evaluate


def keyed(student: str) -> dict[tuple[str, str], object]:
    return {(quiz_id, variable): answer for quiz_id in QUIZZES
            for variable, answer in classroom.key(quiz_id, ROOT, student).items()}


@pytest.fixture(scope="module")
def keys():
    return {student: keyed(student) for student in CLASS}


def failures(quiz_id: str, answers: dict, student: str) -> list[str]:
    """What the grader says about `answers` (variable -> value) handed in by `student` (keyed checks only)."""
    said = []
    for checks in classroom.hidden_checks(quiz_id, ROOT).values():
        for check in checks:
            if check.expected(student) is not None:
                reason = check.judge(kernel(answers), student)
                if reason:
                    said.append(reason)
    return said


def test_two_students_right_answers_differ_for_at_least_half_the_questions(keys):
    questions = list(keys[CLASS[0]])
    assert len(questions) >= 2 * len(QUIZZES)
    shares = [sum(keys[a][q] != keys[b][q] for q in questions) / len(questions) for a, b in combinations(CLASS, 2)]
    for quiz_id in QUIZZES:
        mine = [q for q in questions if q[0] == quiz_id]
        mean = sum(keys[a][q] != keys[b][q] for a, b in combinations(CLASS, 2) for q in mine) / (435 * len(mine))
        print(f"{quiz_id}: {len(mine)} questions with a per-student answer, differing for {mean:.0%} of pairs")
    print(f"course: every pair of 30 differs on at least {min(shares):.0%} of {len(questions)} questions")
    assert min(shares) >= 0.5


def test_every_students_own_variant_scores_full_marks_and_a_copied_neighbours_does_not(keys):
    for student, neighbour in zip(CLASS, CLASS[1:] + CLASS[:1]):
        copied_failures = 0
        for quiz_id in QUIZZES:
            own = {variable: answer for (q, variable), answer in keys[student].items() if q == quiz_id}
            theirs = {variable: answer for (q, variable), answer in keys[neighbour].items() if q == quiz_id}
            assert failures(quiz_id, own, student) == [], (student, quiz_id)
            copied_failures += len(failures(quiz_id, theirs, student))
        assert copied_failures > 0, f"{student} copying {neighbour} loses nothing"


def test_a_wrong_letter_a_missing_answer_and_a_non_letter_fail():
    check = HiddenCheck("expect_choice", ("99-test/q", "answer_q", "right", ["right", "wrong", "other"]))
    right = check.expected("s001")
    wrong = next(letter for letter in "ABC" if letter != right)
    assert check.judge(kernel({"answer_q": right.lower() + " "}), "s001") is None
    assert "not right" in check.judge(kernel({"answer_q": wrong}), "s001")
    assert "was its answer cell deleted" in check.judge(kernel({}), "s001")
    assert "not right" in check.judge(kernel({"answer_q": 1}), "s001")


def test_several_letters_are_a_set():
    check = HiddenCheck("expect_choices", ("99-test/q", "answer_q", ["a", "b"], ["a", "b", "c", "d"]))
    letters = check.expected("s002")
    assert check.judge(kernel({"answer_q": list(reversed(letters))}), "s002") is None
    assert check.judge(kernel({"answer_q": letters[:1]}), "s002")
    assert check.judge(kernel({"answer_q": "".join(letters)}), "s002")


def test_numbers_are_judged_on_the_folders_students_draw():
    check = HiddenCheck("expect_number", ("99-test/n", "answer_n", "2 * (hidden + 1)", {"hidden": list(range(1, 9))}))
    values = {student: check.expected(student) for student in CLASS}
    assert len(set(values.values())) > 3
    assert check.judge(kernel({"answer_n": values["s001"]}), "s001") is None
    other = next(v for v in values.values() if v != values["s001"])
    assert check.judge(kernel({"answer_n": other}), "s001")


MEASURED = HiddenCheck("expect_measured", ("99-test/m", "speedup_of", "timings", "m['slow'] / m['fast']"))


def test_an_own_run_question_is_judged_on_the_runs_own_measurement():
    timings = {"slow": 0.3, "fast": 0.1}
    right = {"timings": timings, "speedup_of": lambda t: t["slow"] / t["fast"]}
    assert MEASURED.judge(kernel(right), "s001") is None
    rounded = {**right, "speedup_of": lambda t: round(t["slow"] / t["fast"], 4)}
    assert MEASURED.judge(kernel(rounded), "s001") is None
    inverted = {**right, "speedup_of": lambda t: t["fast"] / t["slow"]}
    assert "does not give the right result" in MEASURED.judge(kernel(inverted), "s001")
    # a neighbour's number, or a constant with a faked measurement, is not the formula applied to this run
    copied = {**right, "speedup_of": lambda t: 2.5}
    assert MEASURED.judge(kernel(copied), "s001")
    faked = {"timings": {"slow": 1.0, "fast": 1.0}, "speedup_of": lambda t: 2.5}
    assert MEASURED.judge(kernel(faked), "s001")
    assert "could not be read" in MEASURED.judge(kernel({"speedup_of": len}), "s001")
    assert "raised" in MEASURED.judge(kernel({"timings": timings, "speedup_of": lambda t: 1 / 0}), "s001")


def test_a_notebook_started_under_another_id_gets_a_note_not_a_penalty():
    check = HiddenCheck("expect_student", ("99-test",))
    from dleff import quiz

    quiz.start("99-test", "S001")
    try:
        namespace = {"__import__": __import__}
        assert check.judge(kernel(namespace), "s001") is None
        note = check.judge(kernel(namespace), "s002")
        assert isinstance(note, Note) and "'s001'" in note
        assert "graded against the options and numbers of 's002'" in note
    finally:
        quiz._student.clear()


@pytest.mark.parametrize("quiz_id", QUIZZES)
def test_every_quiz_notes_a_mismatched_id_and_keys_each_choice_by_its_shown_options(quiz_id):
    import nbformat

    notebook = nbformat.read(ROOT / "solutions" / quiz_id / f"{quiz_id}-quiz.ipynb", as_version=4)
    checks = [check for c in notebook.cells if c.cell_type == "code" for check in split_hidden(c.source)[1]]
    assert sum(check.kind == "expect_student" for check in checks) == 1
    for check in checks:
        if check.kind in ("expect_choice", "expect_choices"):
            options = check.arguments[3]
            shown = _literal_assigned(notebook, f'{check.question.split("/")[1].replace("-", "_")}_options')
            # the grader judges against exactly the options the student was shown
            assert shown == options, check.question
            assert options == sorted(options), f"{check.question}: options are written in sorted order"


def _literal_assigned(notebook, name):
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        for node in ast.walk(ast.parse(cell.source)):
            if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == name:
                return ast.literal_eval(node.value)
    return None


def calls_of(quiz_id: str) -> list[HiddenCheck]:
    return [check for checks in classroom.hidden_checks(quiz_id, ROOT).values() for check in checks
            if check.kind == "expect_call"]


def hard_coded(results: dict[str, object], fallback=None) -> Callable:
    """A kernel holding a function fitted to someone's results: a known call gets its known result,
    any other call `fallback` (what a copied table of outputs gives in the place of this check)."""
    def evaluate(expression):
        return True, results.get(expression, fallback)
    return evaluate


@pytest.mark.parametrize("quiz_id", QUIZZES)
def test_code_exercises_run_on_each_students_own_inputs_and_a_neighbours_fitted_function_fails(quiz_id):
    calls = calls_of(quiz_id)
    assert len(calls) >= 2, f"{quiz_id}: its code exercises should run on each student's own inputs"
    pairs = list(combinations(CLASS, 2))
    differing = sum(any(c.call(a) != c.call(b) for c in calls) for a, b in pairs) / len(pairs)
    passed_by_copy = 0
    for student, neighbour in zip(CLASS, CLASS[1:] + CLASS[:1]):
        # the student's own (right) results pass: every formula can be evaluated on every draw
        own = {PLAIN.format(c.call(student)): c.returns(student) for c in calls}
        assert all(c.judge(hard_coded(own), student) is None for c in calls), (quiz_id, student)
        theirs = {PLAIN.format(c.call(neighbour)): c.returns(neighbour) for c in calls}
        copied = [c.judge(hard_coded(theirs, c.returns(neighbour)), student) for c in calls]
        passed_by_copy += all(reason is None for reason in copied)
    print(f"{quiz_id}: {len(calls)} calls on drawn inputs; inputs differ for {differing:.0%} of pairs; "
          f"a neighbour's hard-coded results pass for {passed_by_copy} of {len(CLASS)}")
    assert differing >= 0.5
    assert passed_by_copy <= len(CLASS) // 10
