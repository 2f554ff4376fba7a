"""Two kinds of question, kept apart: the lessons' self-checks and the graded quizzes' questions.

Self-checks live in their section's bank (`quizzes/banks/<section>.json`) with a salted hash
of the answer and the explanation encrypted with a key derived from it, so the lesson's widget
can confirm a right answer, reveal the explanation and allow retries.

Graded questions are never in a bank. Their prompts and options are in the quiz notebook,
their answers only in the hidden tests under `solutions/`, judged by the grader outside the
student's kernel. The helpers at the end of this module show a student *their* variant
(options in their own order, numbers drawn for them, see `dleff.variants`) and check only the
*form* of an answer: nothing here can tell whether a graded answer is right.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import math
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from dleff import variants
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


def ask(section: str, question_id: str) -> QuizWidget:
    """The lesson's quiz box for one question of the section's bank."""
    return QuizWidget(load_bank(section)[question_id])



# ---------------------------------------------------------------- graded quizzes: the student's variant


class QuizError(Exception):
    """A mistake in how a quiz cell was used: shown as one line, without a traceback."""

    def _render_traceback_(self) -> list[str]:  # IPython shows these lines instead of a traceback
        return [f"\N{HEAVY BALLOT X} {self}"]


STUDENT_ENV = "JUPYTERHUB_USER"
GRADED_STUDENT_ENV = "DLEFF_GRADED_STUDENT"  # set by the grader: the submission folder's student
_student: dict[str, str] = {}


def start(quiz_id: str, student_id: str = "") -> None:
    """First cell of a graded quiz: whose variant (option order, numbers) this notebook shows.

    The id written in the cell wins; left empty, the grader's submission folder (when grading) or
    the JupyterHub login (when working) names the student.
    """
    fallback = os.environ.get(GRADED_STUDENT_ENV) or os.environ.get(STUDENT_ENV, "")
    chosen = variants.normalize_student(student_id or fallback)
    if not chosen:
        _student.clear()
        raise QuizError("write your student id between the quotes (as your instructor spells it) and run "
                        "this cell again: your options and numbers are drawn for it")
    _student.update(quiz=quiz_id, student=chosen)
    print(f"Quiz {quiz_id} for student {chosen!r}: your options and numbers are drawn for this id. "
          "Hand the quiz in under the same id.")


def student_id() -> str:
    """The id this notebook was started with ('' before `start`)."""
    return _student.get("student", "")


def _variant_of(question_id: str) -> tuple[str, str, str]:
    if not _student:
        raise QuizError("no student id yet: run the first code cell of the quiz with your id, then this one")
    return _student["quiz"], question_id, _student["student"]


class Shown(str):
    """Text shown as Markdown in a notebook (code in backticks renders as code) and plain elsewhere."""

    def _repr_markdown_(self) -> str:
        return str(self)


def options(question_id: str, choices: list[str]) -> Shown:
    """This student's options of a graded question, lettered in their own order."""
    shown = variants.order(choices, *_variant_of(question_id))
    return Shown("\n".join(f"- **{letter}.** {text}" for letter, text in zip(variants.LETTERS, shown)))


def letter_of(question_id: str, choices: list[str], option: str) -> str:
    """The letter under which this notebook's student sees `option` (for worked solutions)."""
    return variants.letter_of(option, choices, *_variant_of(question_id))


class Numbers(dict):
    """This student's numbers of a graded question, shown as one line."""

    def _repr_markdown_(self) -> str:
        return "Your numbers: " + ", ".join(f"`{name}` = {value}" for name, value in self.items())


def numbers(question_id: str, **choices: list) -> Numbers:
    """Draw this student's numbers, one per name from its list of possible values."""
    return Numbers(variants.draw(choices, *_variant_of(question_id)))


# ---------------------------------------------------------------- graded quizzes: form checks


def _given(variable: str):
    """The value of `variable` where the check was called (a notebook's globals), or a one-line error."""
    frame = sys._getframe(2)
    namespace = {**frame.f_globals, **frame.f_locals}
    if variable not in namespace:
        raise QuizError(f"`{variable}` is not set yet: write your answer in the cell above, run it, then run "
                        "this cell")
    return namespace[variable]


def _confirmed(message: str) -> None:
    print(f"\N{HEAVY CHECK MARK} {message}; graded later.")


def check_choice(variable: str, letters: str) -> None:
    """Visible test of a one-letter answer: a string that is one of `letters` (never whether it is right)."""
    given = _given(variable)
    span = f"{letters[0]}-{letters[-1]}"
    if not isinstance(given, str) or given.strip().upper() not in letters:
        raise QuizError(f"`{variable}` must be one of the letters {span} as a string, e.g. \"{letters[0]}\", "
                        f"not {given!r}")
    _confirmed(f"{given.strip().upper()!r} is one of {span}")


def check_choices(variable: str, letters: str) -> None:
    """Visible test of a several-letter answer: a list of distinct letters among `letters`."""
    given = _given(variable)
    span = f"{letters[0]}-{letters[-1]}"
    if isinstance(given, str) or not isinstance(given, (list, tuple, set)) or not all(
            isinstance(key, str) and key.strip().upper() in letters for key in given):
        raise QuizError(f"`{variable}` must be a list of letters among {span}, e.g. [\"{letters[0]}\"], "
                        f"not {given!r}")
    chosen = sorted({key.strip().upper() for key in given})
    _confirmed(f"{chosen} are among {span}")


def check_number(variable: str) -> None:
    """Visible test of a numeric answer: a finite number."""
    given = _given(variable)
    if isinstance(given, bool) or not isinstance(given, (int, float)) or not math.isfinite(given):
        raise QuizError(f"`{variable}` must be a finite number, e.g. 42 or 0.5, not {given!r}")
    _confirmed(f"{given!r} is a number")


def check_function(name: str) -> None:
    """Visible test of an answer written as a function: it exists and can be called."""
    given = _given(name)
    if not callable(given):
        raise QuizError(f"`{name}` must be a function (def {name}(...): ...), not {given!r}")
    _confirmed(f"`{name}` is a function")


def to_plain(value):
    """Tensors, arrays and containers as plain Python data (what the grader reads from a kernel)."""
    if hasattr(value, "detach"):
        value = value.detach().cpu()
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, (list, tuple)):
        return [to_plain(item) for item in value]
    if isinstance(value, dict):
        return {key.item() if hasattr(key, "item") else key: to_plain(item) for key, item in value.items()}
    return value
