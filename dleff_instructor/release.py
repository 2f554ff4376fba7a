"""`make release`: the public question banks and the student quizzes, built from solutions/.

Run as `python -m dleff_instructor.release [QUIZ ...]`. The student quizzes are made by nbgrader
(`generate_assignment`), which strips solutions and hidden tests and locks the test cells.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from dleff import quiz
from dleff.paths import course_root

# nbgrader reads `nbgrader_config.py` from the course root; the settings themselves ship with
# this package (dleff_instructor.config), so every course root is graded the same way.
CONFIG_STUB = (
    '"""nbgrader reads this file from the course root; the configuration itself lives in dleff_instructor."""\n\n'
    "import os\n\n"
    "from dleff_instructor.config import configure\n\n"
    "configure(get_config(), os.environ.get(\"DLEFF_COURSE_ROOT\", os.path.dirname(os.path.abspath(__file__))))"
    "  # noqa: F821\n"
)


def quiz_ids(root: Path) -> list[str]:
    """Every graded quiz: the solutions/NN-name folders."""
    return sorted(p.name for p in (root / "solutions").glob("[0-9][0-9]-*") if p.is_dir())


def nbgrader(*args: str, root: Path, check: bool = True) -> subprocess.CompletedProcess:
    """Run one nbgrader command on the course at `root` with the project's configuration."""
    config = root / "nbgrader_config.py"
    if not config.exists():  # nbgrader reads its configuration from the working folder only
        config.write_text(CONFIG_STUB)
    env = dict(os.environ, DLEFF_COURSE_ROOT=str(root))
    # nbgrader finds alembic and jupyter on PATH; use the ones next to this interpreter.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    command = [sys.executable, "-m", "nbgrader", *args]
    result = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True)
    if check and result.returncode != 0:
        raise RuntimeError(f"`nbgrader {' '.join(args)}` failed:\n{result.stdout}\n{result.stderr}")
    return result


def release(root: Path, ids: list[str] | None = None) -> list[Path]:
    """Rebuild the banks, then each quiz's student version under root/quizzes/."""
    quiz.build_banks(root / "solutions" / "banks", root / "quizzes" / "banks")
    ids = ids or quiz_ids(root)
    unknown = sorted(set(ids) - set(quiz_ids(root)))
    if unknown:
        raise SystemExit(f"no quiz named {unknown} under solutions/; quizzes: {', '.join(quiz_ids(root))}")
    for quiz_id in ids:
        nbgrader("generate_assignment", quiz_id, "--force", root=root)
    return [root / "quizzes" / quiz_id for quiz_id in ids]


if __name__ == "__main__":
    root = course_root()
    for folder in release(root, sys.argv[1:] or None):
        print(f"released {folder.relative_to(root)}")
