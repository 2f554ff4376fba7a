"""Where the course lives: an explicit root, never where the package is installed.

The course root is the folder that holds `notebooks/` and `quizzes/` (and, in the
instructor's repository, `solutions/`). It is `DLEFF_COURSE_ROOT` when set, else the
nearest folder at or above the working directory that has a `quizzes/` folder, so a
lesson started in `notebooks/` finds its course whether dleff is installed editable,
from a wheel, or inside a grading sandbox.
"""

from __future__ import annotations

import os
from pathlib import Path

ENV = "DLEFF_COURSE_ROOT"


def course_root(explicit: str | os.PathLike | None = None) -> Path:
    """The course root: `explicit`, else $DLEFF_COURSE_ROOT, else found above the working folder."""
    if explicit is not None:
        return _checked(Path(explicit), "the root passed in")
    if os.environ.get(ENV):
        return _checked(Path(os.environ[ENV]), f"${ENV}")
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        if (folder / "quizzes").is_dir() or (folder / "notebooks").is_dir():
            return folder
    raise FileNotFoundError(
        f"no course found at or above {here}: run from inside the course folder (the one with notebooks/ "
        f"and quizzes/), or set {ENV}=/path/to/course")


def _checked(root: Path, where: str) -> Path:
    root = root.expanduser().resolve()
    if not root.is_dir():
        raise FileNotFoundError(f"{where} is {root}, which is not a folder: point it at the course folder "
                                "(the one with notebooks/ and quizzes/)")
    return root
