"""`make student-edition`: the folder an instructor publishes as the students' repository.

It holds what students work with: the lessons, the `dleff` library they import, the released
quizzes, the self-check banks, and its own README, pyproject, Makefile and tests. It holds nothing
that grades: no `solutions/`, no `dleff_instructor`, no hidden test, no answer key, no gradebook,
and no nbgrader among its dependencies. Run as `python -m dleff_instructor.edition [TARGET]`.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import tomllib

from dleff.paths import course_root

DEFAULT_TARGET = Path("build") / "student-edition"
COPIED = ("dleff", "notebooks", "quizzes")
SKIPPED = shutil.ignore_patterns("__pycache__", "*.pyc", ".ipynb_checkpoints", "*.egg-info")

README = """# Deep-learning training efficiency, measured on your own machine

Lessons in PyTorch on how to make training fast: devices and threads, data loading, optimizers,
just-in-time compilation, mixed precision, validation, batch normalization and dropout, transfer
learning, augmentation. Every number a lesson shows is measured on the machine that runs it.

## Start here

```bash
make lab     # installs everything into .venv (first time only), then opens JupyterLab here
make run     # or: run every lesson top to bottom and write the rendered pages to build/
make test    # checks that your set-up works: the library, the self-checks, the quizzes open
```

In JupyterLab, `notebooks/` holds the lessons (`01-devices.ipynb`, ...) and `quizzes/` the graded
quizzes, one folder per lesson. Work through a lesson first: its self-check boxes tell you at once
whether you got a question right, as often as you like to try.

Each lesson has a fast setting for slow machines: `DLEFF_FAST=1 make run` (or set `DLEFF_FAST=1`
before `make lab`): it shrinks data sizes, epochs and repeats so a lesson is meant to finish in a
few minutes on two cores; without it, lessons use full-size settings and take longer. `make run`
ends with how long each lesson took on your machine.

## Graded quizzes: how to hand one in

1. Open `quizzes/NN-name/NN-name-quiz.ipynb` in JupyterLab.
2. In the first code cell, write your student id between the quotes, exactly as your instructor
   spells it, and run the cell (on JupyterHub, leave it empty: your login is used). The order of
   the options and some numbers are drawn for *your* id: a neighbour's letters are not yours.
3. Answer each question in its cell and run the cell below it: it only checks the *form* of your
   answer ("'B' is one of A-D; graded later"). Nothing in the quiz tells you whether an answer is
   right: it is graded after you hand it in, on the grading machine, with your id.
4. Some questions ask for a function that works on numbers the quiz measures: write it so it is
   right for any measurement, since it is graded on the measurements taken when it is graded.
5. Save the notebook and upload the file itself (`NN-name-quiz.ipynb`, not renamed, not zipped
   with other files) where your instructor collects quizzes.

## What is here

`notebooks/` the lessons · `quizzes/` the graded quizzes and the lessons' self-check banks ·
`dleff/` the small library the lessons and quizzes import (read it: every function is short) ·
`tests/` what `make test` runs.
"""

MAKEFILE = """# Every target sets up (or reuses) the course's own virtual environment first.

PYTHON ?= python3
VENV := .venv
BIN := $(abspath $(VENV))/bin
STAMP := $(VENV)/.installed

.PHONY: help setup lab run test

help:
\t@echo "make lab    open JupyterLab on the lessons (notebooks/) and the quizzes (quizzes/)"
\t@echo "make run    execute every lesson and write the rendered course to build/"
\t@echo "make test   check the set-up: the library, the self-checks, the quizzes"

setup: $(STAMP)

$(STAMP): pyproject.toml
\ttest -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
\t$(BIN)/python -m pip install --quiet --upgrade pip
\t$(BIN)/python -m pip install --quiet -e ".[test]"
\ttouch $(STAMP)

lab: $(STAMP)
\t$(BIN)/jupyter lab --notebook-dir=.

run: $(STAMP)
\t$(BIN)/python -m dleff.course run

test: $(STAMP)
\tDLEFF_FAST=1 $(BIN)/python -m pytest -q tests
"""

ENVIRONMENT = """# Conda users: conda env create -f environment.yml && conda activate dleff
name: dleff
channels:
  - conda-forge
dependencies:
  - python=3.11
  - pip
  - cxx-compiler   # torch.compile generates and compiles C++ on the CPU
  - pip:
      - -e .[test]
"""

STUDENT_TESTS = r'''"""What a student can check: the library imports, the self-checks answer, the quizzes open."""

import json
import re
from pathlib import Path

import pytest

from dleff import quiz
from dleff.devices import machine_summary

ROOT = Path(__file__).resolve().parents[1]
LESSONS = sorted((ROOT / "notebooks").glob("[0-9][0-9]-*.ipynb"))
QUIZZES = sorted((ROOT / "quizzes").glob("[0-9][0-9]-*/*-quiz.ipynb"))


def code_of(notebook: Path) -> str:
    cells = json.loads(notebook.read_text())["cells"]
    return "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")


def test_the_library_describes_this_machine():
    assert "torch" in machine_summary()


@pytest.mark.parametrize("lesson", LESSONS, ids=lambda p: p.stem)
def test_every_self_check_of_a_lesson_is_in_its_bank(lesson):
    for section, question_id in re.findall(r'quiz\.ask\("([^"]+)", "([^"]+)"\)', code_of(lesson)):
        assert quiz.load_bank(section)[question_id].prompt


@pytest.mark.parametrize("notebook", QUIZZES, ids=lambda p: p.parent.name)
def test_every_quiz_opens_with_the_student_id_cell(notebook):
    assert code_of(notebook).lstrip().startswith("from dleff import quiz") and "quiz.start(" in code_of(notebook)


def test_a_quiz_shows_options_in_your_own_order():
    quiz.start("00-example", "you")
    shown = quiz.options("example", ["one option", "another option", "a third option"])
    assert shown.count("**") == 6
'''


def student_pyproject(root: Path) -> str:
    """The instructor's pyproject without the instructor's tooling: dleff and what it needs, plus pytest."""
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    dependencies = "".join(f'    "{d}",\n' for d in project["dependencies"])
    return f'''[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "dleff"
version = "{project["version"]}"
description = "{project["description"]}"
readme = "README.md"
requires-python = "{project["requires-python"]}"
license = "{project["license"]}"
dependencies = [
{dependencies}]

[project.optional-dependencies]
test = ["pytest>=8"]

[tool.setuptools.packages.find]
include = ["dleff*"]

[tool.setuptools.package-data]
dleff = ["data/*.csv", "data/*.md"]
'''


def build(root: Path, target: Path) -> Path:
    """Write the student edition of the course at `root` into `target` (replaced if it exists)."""
    root, target = Path(root), Path(target)
    if not (root / "quizzes").is_dir():
        raise SystemExit(f"{root} has no quizzes/: run `make release` first")
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    for name in COPIED:
        shutil.copytree(root / name, target / name, ignore=SKIPPED)
    (target / "README.md").write_text(README)
    (target / "Makefile").write_text(MAKEFILE)
    (target / "environment.yml").write_text(ENVIRONMENT)
    (target / "pyproject.toml").write_text(student_pyproject(root))
    (target / ".gitignore").write_text(".venv/\nbuild/\n__pycache__/\n.ipynb_checkpoints/\n*.egg-info/\n")
    (target / "tests").mkdir()
    (target / "tests" / "test_setup.py").write_text(STUDENT_TESTS)
    return target


if __name__ == "__main__":
    course = course_root()
    written = build(course, Path(sys.argv[1]) if len(sys.argv) > 1 else course / DEFAULT_TARGET)
    print(f"wrote the student edition to {written}")
