"""Graded questions are kept apart from self-checks, and nothing a student receives confirms their answers."""

import ast
import hashlib
import itertools
import json
import math
import re
from pathlib import Path

import nbformat
import pytest

from dleff import quiz
from dleff_instructor import classroom
from dleff_instructor.checks import formula_value
from dleff_instructor.release import quiz_ids

ROOT = Path(__file__).resolve().parents[1]
QUIZZES = quiz_ids(ROOT)
BANKS = sorted((ROOT / "quizzes" / "banks").glob("*.json"))
LESSONS = sorted((ROOT / "notebooks").glob("*.ipynb"))
PUBLIC = sorted(p for p in (ROOT / "quizzes").rglob("*") if p.is_file()) + LESSONS


def graded(quiz_id: str) -> list:
    """The checks of graded questions (each has its own question cell; a code exercise's `expect_call` has none)."""
    return [check for checks in classroom.hidden_checks(quiz_id, ROOT).values() for check in checks
            if check.question and check.kind != "expect_call"]


def question_text(quiz_id: str, short_id: str) -> str:
    """The prompt of a graded question: its markdown cell, without the heading and the how-to-answer line."""
    notebook = nbformat.read(ROOT / "solutions" / quiz_id / f"{quiz_id}-quiz.ipynb", as_version=4)
    grade_id = short_id.replace("-", "_")
    cell = next(c for c in notebook.cells if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id)
    return cell.source.split("\n\n", 1)[1].rsplit("\n\n", 1)[0]


def all_checks():
    return [(quiz_id, check) for quiz_id in QUIZZES for check in graded(quiz_id)]


def options_of(check) -> list[str]:
    return check.arguments[3] if check.kind in ("expect_choice", "expect_choices") else []


def test_graded_ids_prompts_and_options_appear_in_no_lesson_or_self_check_bank():
    self_checks = {(json.loads(p.read_text())["section"], q["id"]) for p in BANKS
                   for q in json.loads(p.read_text())["questions"]}
    lesson_text = "\n".join(p.read_text() for p in LESSONS)
    bank_text = "\n".join(p.read_text() for p in BANKS + sorted((ROOT / "solutions" / "banks").glob("*.json")))
    for quiz_id, check in all_checks():
        section, short_id = check.question.split("/")
        assert (section, short_id) not in self_checks, f"{check.question} is also a self-check"
        assert check.question not in lesson_text and f'"{short_id}"' not in lesson_text
        prompt = question_text(quiz_id, short_id)
        for text in [prompt, *options_of(check)]:
            words = " ".join(text.split())
            assert json.dumps(words)[1:-1] not in bank_text and words not in lesson_text, (check.question, words)


def _digests(text: str) -> set[str]:
    data = text.encode()
    return {hashlib.sha256(data).hexdigest(), hashlib.md5(data).hexdigest(), hashlib.sha1(data).hexdigest()}


def candidate_answers(check) -> list[str]:
    """Every answer a script could try: each option, each letter, each value the number's formula can take."""
    if check.kind == "expect_number":
        formula, choices = check.arguments[2:4]
        values = {formula_value(formula, dict(zip(choices, combo))) for combo in itertools.product(*choices.values())}
        return sorted({quiz.normalize("number", v) for v in values} | {str(v) for v in values})
    if check.kind in ("expect_choice", "expect_choices"):
        options = check.arguments[3]
        return list(options) + list("ABCDEFGH"[:len(options)])
    return []


def test_no_public_file_lets_a_script_confirm_a_graded_answer():
    public_text = "\n".join(p.read_text(errors="replace") for p in PUBLIC)
    public_hashes = set(re.findall(r"[0-9a-f]{32,64}", public_text))
    salts = [json.loads(p.read_text())["salt"] for p in BANKS]
    tried = 0
    for _quiz_id, check in all_checks():
        short_id = check.question.split("/")[1]
        forms = {form for answer in candidate_answers(check)
                 for form in (answer, answer.lower(), answer.upper(), " ".join(answer.split()).lower())}
        for answer in forms:
            keys = [answer, f"{check.question}:{answer}", f"{short_id}:{answer}"]
            keys += [f"{salt}:{qid}:{answer}" for salt in salts for qid in (short_id, check.question)]
            for key in keys:
                tried += 1
                assert not (_digests(key) & public_hashes), f"a public file hashes {check.question}'s {answer!r}"
    assert tried > 1000


def student_texts(quiz_id: str) -> list[str]:
    """Every string in a student's quiz: its markdown, and its code's string constants (as Python joins them)."""
    notebook = nbformat.read(ROOT / "quizzes" / quiz_id / f"{quiz_id}-quiz.ipynb", as_version=4)
    texts = [c.source for c in notebook.cells if c.cell_type == "markdown"]
    for cell in notebook.cells:
        if cell.cell_type == "code":
            texts += [node.value for node in ast.walk(ast.parse(cell.source))
                      if isinstance(node, ast.Constant) and isinstance(node.value, str)]
    return texts


@pytest.mark.parametrize("quiz_id", QUIZZES)
def test_released_quiz_shows_every_option_of_a_question_equally_often(quiz_id):
    """Nothing in the student's notebook singles out the right option (no marker, no extra mention)."""
    texts = student_texts(quiz_id)
    for check in graded(quiz_id):
        counts = {option: sum(text.count(option) for text in texts) for option in options_of(check)}
        assert len(set(counts.values())) <= 1 and min(counts.values(), default=1) == 1, (check.question, counts)


def fair_options_report(quiz_id: str) -> tuple[int, float, list[str]]:
    """(times the longest option is right, times expected by chance, options much longer than the rest)."""
    longest_right, chance, too_long = 0, 0.0, []
    for check in graded(quiz_id):
        if check.kind != "expect_choice":
            continue
        right, options = check.arguments[2], check.arguments[3]
        longest_right += max(options, key=len) == right
        chance += 1 / len(options)
        others = [len(o) for o in options if o != right]
        if len(right) > 1.25 * sum(others) / len(others):
            too_long.append(check.question)
    return longest_right, chance, too_long


def test_the_longest_option_is_right_no_more_often_than_chance():
    """Per quiz at most once where chance says under one; over the course no more than chance, and not never
    (a longest option that is never right is a rule a student could use too)."""
    total, expected = 0, 0.0
    for quiz_id in QUIZZES:
        longest_right, chance, too_long = fair_options_report(quiz_id)
        print(f"{quiz_id}: longest option right in {longest_right} question(s), chance {chance:.2f}")
        assert longest_right <= math.ceil(chance), f"{quiz_id}: the longest option is right {longest_right} times"
        assert not too_long, f"right answers much longer than their distractors: {too_long}"
        total, expected = total + longest_right, expected + chance
    print(f"course: longest option right in {total} question(s), chance {expected:.2f}")
    assert expected / 2 <= total <= expected


def test_option_letters_never_clash_with_names_in_the_options():
    for _quiz_id, check in all_checks():
        for option in options_of(check):
            plain = re.sub(r"`[^`]*`", "", option)
            assert not re.search(r"\b[B-H]\b|\bA[,:.)]", plain), (check.question, option)


@pytest.mark.parametrize("quiz_id", QUIZZES)
def test_one_heading_per_question(quiz_id):
    notebook = nbformat.read(ROOT / "quizzes" / quiz_id / f"{quiz_id}-quiz.ipynb", as_version=4)
    headings = [line for c in notebook.cells if c.cell_type == "markdown"
                for line in c.source.splitlines() if line.startswith("### Question")]
    for check in graded(quiz_id):  # each graded question's own cell opens with its one heading
        cell = question_text(quiz_id, check.question.split("/")[1])
        assert "### Question" not in cell and "Question (" not in cell, check.question
    assert len(headings) >= len({c.question for c in graded(quiz_id)})
    assert [int(h.split()[2]) for h in headings] == list(range(1, len(headings) + 1))
    assert "Question (" not in json.dumps([c.source for c in notebook.cells])


@pytest.mark.parametrize("quiz_id", QUIZZES)
def test_every_explain_cell_reaches_the_student_with_its_prompt(quiz_id):
    notebook = nbformat.read(ROOT / "quizzes" / quiz_id / f"{quiz_id}-quiz.ipynb", as_version=4)
    written = [c.source for c in notebook.cells
               if c.cell_type == "markdown" and c.metadata.get("nbgrader", {}).get("solution")]
    for source in written:
        prompt, _, rest = source.partition("YOUR ANSWER HERE")
        assert len(prompt.strip()) > 20 and rest.strip() == "", source
