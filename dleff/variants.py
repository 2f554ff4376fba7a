"""Per-student variants of a graded quiz (in the manner of PrairieLearn).

A graded question's options appear in an order of the student's own, and its numbers are
drawn for the student: both come from a seed of (quiz, question, student id). The student's
kernel and the grader compute the same variant from the same three names, so the grader can
judge a letter or a number against the variant that student saw. Nothing here knows an
answer: the options and the ranges of numbers are public, which of them is right is not.
"""

from __future__ import annotations

import hashlib
import random
import string

LETTERS = string.ascii_uppercase


def normalize_student(student_id: str) -> str:
    """Student ids compare without case and surrounding blanks ("S001 " is "s001")."""
    return str(student_id).strip().lower()


def rng(quiz_id: str, question_id: str, student_id: str) -> random.Random:
    """The random stream of one student's variant of one question."""
    key = f"{quiz_id}|{question_id}|{normalize_student(student_id)}".encode()
    return random.Random(int.from_bytes(hashlib.sha256(key).digest()[:8], "big"))


def letters(count: int) -> str:
    if not 2 <= count <= len(LETTERS):
        raise ValueError(f"a question needs between 2 and {len(LETTERS)} options, not {count}")
    return LETTERS[:count]


def order(options: list[str], quiz_id: str, question_id: str, student_id: str) -> list[str]:
    """The options in the order this student sees them (lettered A, B, ... in that order)."""
    return rng(quiz_id, question_id, student_id).sample(list(options), len(options))


def letter_of(option: str, options: list[str], quiz_id: str, question_id: str, student_id: str) -> str:
    """The letter under which this student sees `option`."""
    shown = order(options, quiz_id, question_id, student_id)
    if option not in shown:
        raise ValueError(f"{option!r} is not one of the options of {quiz_id}/{question_id}")
    return LETTERS[shown.index(option)]


def draw(choices: dict[str, list], quiz_id: str, question_id: str, student_id: str) -> dict:
    """This student's numbers: one value per name, each from its list of possible values."""
    stream = rng(quiz_id, question_id, student_id)
    return {name: stream.choice(list(values)) for name, values in choices.items()}
