# Every target sets up (or reuses) the project's own virtual environment first:
# on a fresh machine `make run` or `make test` is all it takes.

PYTHON ?= python3
VENV := .venv
BIN := $(abspath $(VENV))/bin
# nbgrader calls alembic (and jupyter) from PATH: the venv's bin must come first.
export PATH := $(BIN):$(PATH)
STAMP := $(VENV)/.installed
QUIZZES := $(notdir $(wildcard solutions/[0-9][0-9]-*))

.PHONY: help setup run test lint lab release bench clean

help:
	@echo "make run      execute every lesson (full settings) and write the rendered course to build/"
	@echo "make test     install, lint, and run the test suite (lessons in fast mode, grading, release)"
	@echo "make lab      open JupyterLab on the lessons"
	@echo "make release  build the question banks and the student quizzes from solutions/"
	@echo "make bench    measure every figure of the course into build/bench.json"

setup: $(STAMP)

# Reinstall only when the dependency list changes.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/python -m dleff.course run

test: $(STAMP) lint
	DLEFF_FAST=1 $(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check dleff tests benchmarks tools notebooks solutions

lab: $(STAMP)
	$(BIN)/jupyter lab notebooks

release: $(STAMP)
	$(BIN)/python -m dleff.release

bench: $(STAMP)
	$(BIN)/python -m benchmarks

clean:
	rm -rf build
