"""`make student-edition`: what students get holds nothing that grades, and runs on its own, offline."""

import ast
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import nbformat
import pytest

from dleff_instructor import classroom
from dleff_instructor.checks import HIDDEN_BLOCK
from dleff_instructor.classroom import MARK_SCHEME
from dleff_instructor.edition import build
from dleff_instructor.release import quiz_ids

ROOT = Path(__file__).resolve().parents[1]
SOLUTION_BLOCK = r"### BEGIN SOLUTION[ \t]*\n(.*?)^[ \t]*### END SOLUTION"
LESSON = "06-validation"  # the edition's smoke run: a short lesson
QUIZ = "06-validation"


@pytest.fixture(scope="module")
def edition(tmp_path_factory):
    return build(ROOT, tmp_path_factory.mktemp("edition") / "student-edition")


def secrets() -> list[str]:
    """Every hidden check, solution block and mark scheme of every graded quiz, as text to look for."""
    import re

    found = []
    for quiz_id in quiz_ids(ROOT):
        for cell in nbformat.read(ROOT / "solutions" / quiz_id / f"{quiz_id}-quiz.ipynb", as_version=4).cells:
            for block in HIDDEN_BLOCK.findall(cell.source):
                found += [ast.unparse(statement) for statement in ast.parse(block).body]
            found += [b.strip() for b in re.findall(SOLUTION_BLOCK, cell.source, re.DOTALL | re.MULTILINE)]
            found += [m.split("===\n", 1)[1].rsplit("\n===", 1)[0].strip() for m in MARK_SCHEME.findall(cell.source)]
    return [s for s in found if len(s) > 12]


def test_the_edition_holds_nothing_that_grades(edition):
    names = {p.relative_to(edition).parts[0] for p in edition.rglob("*")}
    assert names == {".gitignore", "Makefile", "README.md", "environment.yml", "pyproject.toml",
                     "dleff", "notebooks", "quizzes", "tests"}
    assert not list(edition.rglob("gradebook.db")) and not list(edition.rglob("nbgrader_config.py"))
    assert "nbgrader" not in (edition / "pyproject.toml").read_text()
    assert "make lab" in (edition / "README.md").read_text() and "hand one in" in (edition / "README.md").read_text()


def test_no_file_of_the_edition_holds_a_hidden_test_an_answer_or_a_mark_scheme(edition):
    hidden = secrets()
    assert len(hidden) > 50
    markers = ("BEGIN HIDDEN TESTS", "BEGIN SOLUTION", "MARK SCHEME", "dleff_instructor", "quiz.letter_of(",
               "expect_choice", "expect_number", "expect_measured", "expect_call", "expect_value", "expect_student")
    for path in (p for p in edition.rglob("*") if p.is_file()):
        text = path.read_text(errors="replace")
        if path.suffix == ".ipynb":  # compare code as Python writes it, across the notebook's JSON escaping
            cells = nbformat.reads(text, as_version=4).cells
            text = "\n".join(cell.source for cell in cells)
        flat = " ".join(text.split())
        for marker in markers:
            assert marker not in text, f"{path.relative_to(edition)} holds {marker!r}"
        for secret in hidden:
            assert " ".join(secret.split()) not in flat, f"{path.relative_to(edition)} holds {secret[:80]!r}"


def fresh_environment(edition: Path, folder: Path) -> Path:
    """A new virtual environment that reuses the installed third-party packages (no download) and gets
    the edition's own dleff installed from its folder, not editable, without the index."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True)
    python = folder / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    # a plain path line: the shared packages become importable, their own .pth files (our editable dleff) do not run
    Path(site, "shared-packages.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    install = subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
                              "--no-build-isolation", str(edition)], capture_output=True, text=True, env=offline())
    assert install.returncode == 0, install.stdout + install.stderr
    return python


def offline() -> dict:
    """The environment of a machine without network: any download attempt fails at once."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "DLEFF_COURSE_ROOT")}
    dead = "http://127.0.0.1:9"
    return {**env, "HTTP_PROXY": dead, "HTTPS_PROXY": dead, "http_proxy": dead, "https_proxy": dead,
            "PIP_NO_INDEX": "1", "DLEFF_FAST": "1"}


RUN = """
import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient

path = Path(sys.argv[1])
notebook = nbformat.read(path, as_version=4)
notebook.cells.insert(0, nbformat.v4.new_code_cell("import dleff; print('DLEFF FROM', dleff.__file__)"))
client = NotebookClient(notebook, timeout=600, kernel_name="python3",
                        resources={"metadata": {"path": str(path.parent)}})
client.execute()
print("\\n".join(o.get("text", "") for c in notebook.cells if c.cell_type == "code" for o in c.outputs))
"""


def test_a_lesson_and_a_quiz_run_from_the_edition_in_a_fresh_environment_offline(edition, tmp_path):
    python = fresh_environment(edition, tmp_path / "venv")
    where = subprocess.run([str(python), "-c", "import dleff; print(dleff.__file__)"], cwd=tmp_path,
                           capture_output=True, text=True, env=offline())
    assert str(tmp_path / "venv") in where.stdout, where.stdout + where.stderr
    assert subprocess.run([str(python), "-c", "import dleff_instructor"], cwd=tmp_path, env=offline(),
                          capture_output=True).returncode != 0
    quiz = edition / "quizzes" / QUIZ / f"{QUIZ}-quiz.ipynb"
    nbformat.write(classroom.filled(QUIZ, root=ROOT, student="s001"), quiz)  # a student's answers, run by them
    for notebook in (edition / "notebooks" / f"{LESSON}.ipynb", quiz):
        run = subprocess.run([str(python), "-c", RUN, str(notebook)], cwd=edition, capture_output=True,
                             text=True, env=offline())
        assert run.returncode == 0, f"{notebook.name}: {run.stdout[-2000:]}{run.stderr[-3000:]}"
        assert f"DLEFF FROM {tmp_path / 'venv'}" in run.stdout, run.stdout[:500]
    assert "graded later" in run.stdout
