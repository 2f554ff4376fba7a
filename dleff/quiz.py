"""Question banks, the self-check widgets of the lessons, and the checks graded quizzes use.

A question lives once, in its section's bank (`quizzes/banks/<section>.json`).
The bank never holds a plain answer: it holds a salted hash of the answer and
the explanation encrypted with a key derived from the answer, so the widget
can confirm a right answer and only then reveal the explanation. Plain
answers exist only in the hidden tests under `solutions/`.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

from dleff.paths import course_root

KINDS = ("single", "multiple", "number", "text", "code")


# ---------------------------------------------------------------- answers


def normalize(kind: str, answer) -> str:
    """The canonical text of an answer, so equal answers hash equally.

    single: one choice key ("B"); multiple: a set of keys ("A,C");
    number: rounded to 3 significant digits; text: trimmed, lower case.
    """
    if kind == "single":
        if not isinstance(answer, str):
            raise TypeError(f"answer with one choice key as a string, e.g. 'A', not {answer!r}")
        return answer.strip().upper()
    if kind == "multiple":
        if isinstance(answer, str) or not all(isinstance(key, str) for key in answer):
            raise TypeError(f"answer with a list of choice keys, e.g. ['A', 'C'], not {answer!r}")
        return ",".join(sorted({key.strip().upper() for key in answer}))
    if kind == "number":
        if isinstance(answer, bool) or not isinstance(answer, (int, float)) or not math.isfinite(answer):
            raise TypeError(f"answer with a finite number, not {answer!r}")
        return f"{float(answer):.3g}"
    if kind == "text":
        if not isinstance(answer, str):
            raise TypeError(f"answer with a string, not {answer!r}")
        return " ".join(answer.split()).lower()
    raise ValueError(f"questions of kind {kind!r} have no single answer to normalise")


def answer_hash(salt: str, question_id: str, kind: str, answer) -> str:
    text = f"{salt}:{question_id}:{normalize(kind, answer)}"
    return hashlib.sha256(text.encode()).hexdigest()


def _keystream(salt: str, question_id: str, kind: str, answer, length: int) -> bytes:
    seed = f"{salt}:{question_id}:{normalize(kind, answer)}:explanation".encode()
    return hashlib.shake_256(seed).digest(length)


def seal(text: str, salt: str, question_id: str, kind: str, answer) -> str:
    """Encrypt an explanation so only the right answer unlocks it."""
    plain = text.encode()
    stream = _keystream(salt, question_id, kind, answer, len(plain))
    return base64.b64encode(bytes(a ^ b for a, b in zip(plain, stream))).decode()


def unseal(sealed: str, salt: str, question_id: str, kind: str, answer) -> str:
    cipher = base64.b64decode(sealed)
    stream = _keystream(salt, question_id, kind, answer, len(cipher))
    return bytes(a ^ b for a, b in zip(cipher, stream)).decode()


# ---------------------------------------------------------------- banks


@dataclass(frozen=True)
class Question:
    section: str
    id: str
    prompt: str
    kind: str
    points: int
    salt: str
    choices: dict[str, str] = field(default_factory=dict)
    answer_hash: str = ""
    sealed_explanation: str = ""
    hint: str = ""

    @property
    def qualified_id(self) -> str:
        return f"{self.section}/{self.id}"

    def is_correct(self, answer) -> bool:
        try:
            return answer_hash(self.salt, self.id, self.kind, answer) == self.answer_hash
        except (TypeError, ValueError):
            return False

    def explanation(self, answer) -> str:
        """The explanation, readable only with the right answer."""
        if not self.is_correct(answer):
            raise ValueError("the explanation opens only with the right answer")
        return unseal(self.sealed_explanation, self.salt, self.id, self.kind, answer)

    def check_form(self, answer) -> None:
        """Raise an error that says what shape of answer is expected (never whether it is right)."""
        if self.kind in ("single", "multiple"):
            keys = [answer] if self.kind == "single" and isinstance(answer, str) else answer
            normalize(self.kind, answer)  # raises a TypeError that names the expected type
            unknown = [key for key in keys if key.strip().upper() not in self.choices]
            if unknown:
                raise ValueError(
                    f"{self.qualified_id}: {unknown} not among the choices {sorted(self.choices)}"
                )
        elif self.kind in ("number", "text"):
            normalize(self.kind, answer)


    def as_html(self, note: str = "") -> str:
        """The question without its answer, for quizzes and pages rendered without a kernel."""
        items = "".join(f"<li><b>{html.escape(key)}.</b> {html.escape(text)}</li>"
                        for key, text in self.choices.items())
        choices = f"<ul>{items}</ul>" if items else ""
        footer = f"<p><i>{html.escape(note)}</i></p>" if note else ""
        return (f"<div class='dleff-quiz'><b>Question ({html.escape(self.qualified_id)})</b>"
                f"<p>{html.escape(self.prompt)}</p>{choices}{footer}</div>")

    def _repr_html_(self) -> str:
        return self.as_html()

    def __str__(self) -> str:
        lines = [self.prompt] + [f"  {key}. {text}" for key, text in self.choices.items()]
        return "\n".join(lines)

@dataclass(frozen=True)
class Bank:
    section: str
    salt: str
    questions: dict[str, Question]

    def __getitem__(self, question_id: str) -> Question:
        try:
            return self.questions[question_id]
        except KeyError:
            raise KeyError(
                f"no question {question_id!r} in the bank of {self.section}; "
                f"it has: {', '.join(self.questions)}"
            ) from None


def banks_folder() -> Path:
    """The public banks of the course the notebook runs in."""
    return course_root() / "quizzes" / "banks"


def load_bank(section: str, folder: Path | None = None) -> Bank:
    folder = Path(folder) if folder is not None else banks_folder()
    path = folder / f"{section}.json"
    if not path.exists():
        known = sorted(p.stem for p in Path(folder).glob("*.json"))
        raise FileNotFoundError(f"no question bank {path}; banks found: {', '.join(known) or 'none'}")
    data = json.loads(path.read_text())
    questions = {
        entry["id"]: Question(
            section=section,
            id=entry["id"],
            prompt=entry["prompt"],
            kind=entry["kind"],
            points=entry["points"],
            salt=data["salt"],
            choices=entry.get("choices", {}),
            answer_hash=entry.get("answer_hash", ""),
            sealed_explanation=entry.get("explanation", ""),
            hint=entry.get("hint", ""),
        )
        for entry in data["questions"]
    }
    return Bank(section=section, salt=data["salt"], questions=questions)


def find_question(qualified_id: str, folder: Path | None = None) -> Question:
    section, _, question_id = qualified_id.partition("/")
    return load_bank(section, folder)[question_id]


def build_bank(source: dict) -> dict:
    """Turn a bank source (plain answers and explanations) into the public bank."""
    salt = source["salt"]
    public = {"section": source["section"], "salt": salt, "questions": []}
    for entry in source["questions"]:
        kind = entry["kind"]
        if kind not in KINDS:
            raise ValueError(f"question {entry['id']!r}: kind must be one of {KINDS}, not {kind!r}")
        item = {key: entry[key] for key in ("id", "prompt", "kind", "points") if key in entry}
        for optional in ("choices", "hint"):
            if optional in entry:
                item[optional] = entry[optional]
        if kind == "code":
            item["explanation"] = entry.get("explanation", "")
        else:
            item["answer_hash"] = answer_hash(salt, entry["id"], kind, entry["answer"])
            item["explanation"] = seal(entry["explanation"], salt, entry["id"], kind, entry["answer"])
        public["questions"].append(item)
    return public


def build_banks(sources: Path, target: Path) -> list[Path]:
    target.mkdir(parents=True, exist_ok=True)
    written = []
    for source_path in sorted(Path(sources).glob("*.json")):
        public = build_bank(json.loads(source_path.read_text()))
        out = Path(target) / source_path.name
        out.write_text(json.dumps(public, indent=1, ensure_ascii=False) + "\n")
        written.append(out)
    return written


# ---------------------------------------------------------------- lesson widgets


class QuizWidget:
    """One question as an ipywidgets check: choose, press Check, read the feedback."""

    def __init__(self, question: Question):
        import ipywidgets as widgets

        self.question = question
        self.attempts = 0
        options = [(f"{key}. {text}", key) for key, text in question.choices.items()]
        if question.kind == "single":
            self.input = widgets.RadioButtons(options=options, value=None, layout={"width": "max-content"})
        elif question.kind == "multiple":
            self.input = widgets.SelectMultiple(options=options, rows=len(options), layout={"width": "auto"})
        elif question.kind == "number":
            self.input = widgets.FloatText(value=None, description="Answer:")
        elif question.kind == "text":
            self.input = widgets.Text(description="Answer:")
        else:
            raise ValueError(f"{question.qualified_id} is a code exercise: it lives in the graded quiz")
        self.button = widgets.Button(description="Check", button_style="primary")
        self.feedback_box = widgets.HTML()
        self.button.on_click(lambda _button: self.check())
        prompt = widgets.HTML(f"<b>Quiz ({html.escape(question.qualified_id)})</b><br>"
                              f"{html.escape(question.prompt)}")
        self.widget = widgets.VBox([prompt, self.input, self.button, self.feedback_box])

    @property
    def answer(self):
        value = self.input.value
        return list(value) if self.question.kind == "multiple" else value

    def select(self, value) -> None:
        """Set the answer as a student would (a key, a list of keys, a number or text)."""
        self.input.value = tuple(value) if self.question.kind == "multiple" else value

    def check(self) -> bool:
        self.attempts += 1
        answer = self.answer
        if answer is None or answer == []:
            self.feedback_box.value = "Choose an answer first."
            return False
        if self.question.is_correct(answer):
            explanation = html.escape(self.question.explanation(answer))
            self.feedback_box.value = f"<span style='color:green'>✔ Right.</span> {explanation}"
            return True
        hint = f" Hint: {html.escape(self.question.hint)}" if self.question.hint else ""
        self.feedback_box.value = f"<span style='color:#b00'>✘ Not quite, try again.</span>{hint}"
        return False

    @property
    def feedback(self) -> str:
        """The feedback as plain text (what the student reads under the button)."""
        import re

        return html.unescape(re.sub(r"<[^>]+>", "", self.feedback_box.value))

    def _repr_mimebundle_(self, **kwargs):
        bundle = self.widget._repr_mimebundle_(**kwargs) or {}
        bundle["text/html"] = self.question.as_html(note="Run the notebook to check your answer.")
        bundle["text/plain"] = f"Quiz {self.question.qualified_id}: {self.question.prompt}"
        return bundle


def show(qualified_id: str) -> Question:
    """Display a bank question (prompt and choices, never the answer) in a graded quiz."""
    return find_question(qualified_id)


def ask(section: str, question_id: str) -> QuizWidget:
    """The lesson's quiz box for one question of the section's bank."""
    return QuizWidget(load_bank(section)[question_id])


# ---------------------------------------------------------------- graded-quiz checks


def check_form(qualified_id: str, answer) -> None:
    """Visible test of a graded answer cell: right shape, without saying whether it is right."""
    find_question(qualified_id).check_form(answer)


def _caller_namespace() -> dict:
    """The names visible where the test was written (a notebook's globals, or a function's)."""
    frame = sys._getframe(2)
    return {**frame.f_globals, **frame.f_locals}


DEFAULT_TOLERANCE = 1e-6


def answers_match(question: Question, given, expected) -> bool:
    """A graded answer equals the expected one, after normalising both the bank's way."""
    try:
        return normalize(question.kind, given) == normalize(question.kind, expected)
    except (TypeError, ValueError):
        return False


def values_match(given, expected, tolerance: float = DEFAULT_TOLERANCE) -> bool:
    """Plain data equal, numbers within `tolerance` (tuples and lists alike)."""
    return _plain_equal(to_plain(given), to_plain(expected), tolerance)


def expect_answer(qualified_id: str, variable: str, expected) -> None:
    """Hidden test: the student's `variable` is the right answer to a bank question.

    When a quiz is autograded, `dleff_instructor.grading` judges this call outside the
    student's kernel; running it in the kernel is for checking solutions.
    """
    question = find_question(qualified_id)
    namespace = _caller_namespace()
    if variable not in namespace:
        raise AssertionError(f"{qualified_id}: no variable `{variable}`; was its answer cell deleted?")
    if not answers_match(question, namespace[variable], expected):
        raise AssertionError(f"{qualified_id}: the answer in `{variable}` is not right.")


def expect_value(expression: str, expected, tolerance: float = DEFAULT_TOLERANCE) -> None:
    """Hidden test of a code exercise: `expression`, evaluated in the notebook, gives `expected`."""
    namespace = _caller_namespace()
    try:
        given = eval(expression, namespace)  # noqa: S307 - the instructor's own test expression
    except Exception as error:  # the student's code failed: say so in plain words
        raise AssertionError(f"`{expression}` raised {type(error).__name__}: {error}") from None
    if not values_match(given, expected, tolerance):
        raise AssertionError(f"`{expression}` does not give the expected result.")


def to_plain(value):
    """Tensors, arrays and containers as plain Python data."""
    if hasattr(value, "detach"):
        value = value.detach().cpu()
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, (list, tuple)):
        return [to_plain(item) for item in value]
    if isinstance(value, dict):
        return {key: to_plain(item) for key, item in value.items()}
    return value


def _plain_equal(a, b, tolerance: float) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return math.isclose(a, b, rel_tol=tolerance, abs_tol=tolerance)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_plain_equal(x, y, tolerance) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_plain_equal(a[k], b[k], tolerance) for k in a)
    return type(a) is type(b) and a == b


def _well_formed(kind: str, answer) -> bool:
    try:
        normalize(kind, answer)
    except (TypeError, ValueError):
        return False
    return True
