import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Lessons and quizzes read their fast settings from here, whoever starts pytest.
os.environ.setdefault("DLEFF_FAST", "1")
# The course under test is this checkout, wherever pytest is started from.
os.environ.setdefault("DLEFF_COURSE_ROOT", str(ROOT))


def new_course(root: Path) -> Path:
    """A course root of its own: the solutions copied in and released by nbgrader, as `make release` does."""
    from dleff_instructor.release import release

    shutil.copytree(ROOT / "solutions", root / "solutions")
    release(root)
    return root


@pytest.fixture(scope="session")
def course_factory(tmp_path_factory):
    """Makes course roots that no other test writes into."""
    return lambda name="course": new_course(tmp_path_factory.mktemp(name))


@pytest.fixture(scope="session")
def released_course(course_factory) -> Path:
    return course_factory()
