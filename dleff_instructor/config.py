"""nbgrader set-up: graded-quiz sources live in solutions/, the student versions in quizzes/.

The instructor's course state (submitted/, autograded/, feedback/, gradebook.db) sits in
the standard nbgrader layout under the course root. `configure` is called by the
`nbgrader_config.py` that nbgrader finds in the course root.
"""

import os

from nbconvert.preprocessors import ClearMetadataPreprocessor
from nbgrader.preprocessors import (
    AssignLatePenalties,
    CheckCellMetadata,
    ClearOutput,
    DeduplicateIds,
    IgnorePattern,
    LimitOutput,
    OverwriteCells,
    OverwriteKernelspec,
    SaveAutoGrades,
)


def configure(c, root: str) -> None:
    from dleff_instructor.execute import SealedExecute
    from dleff_instructor.repair import RepairCells

    c.CourseDirectory.course_id = "dleff"
    c.CourseDirectory.root = root
    c.CourseDirectory.source_directory = "solutions"
    c.CourseDirectory.release_directory = "quizzes"
    # Quizzes are autograded in parallel: give each writer time to wait its turn.
    c.CourseDirectory.db_url = "sqlite:///{}?timeout=120".format(
        os.path.join(os.path.abspath(root), "gradebook.db"))
    c.CourseDirectory.ignore = [".ipynb_checkpoints", "*.pyc", "__pycache__", "feedback", "banks"]

    # A compiling or training cell needs time; a student's infinite loop must not stall the class.
    # DLEFF_CELL_TIMEOUT (seconds) lets the tests grade an endless loop quickly.
    c.Execute.timeout = int(os.environ.get("DLEFF_CELL_TIMEOUT", 60))
    c.ExecutePreprocessor.timeout = c.Execute.timeout
    c.Execute.interrupt_on_timeout = True

    # Every submission's kernel runs in a sandbox (dleff_instructor/sandbox.py); DLEFF_UNSAFE=1
    # (`make autograde UNSAFE=1`) is the explicit switch to grade without one.
    c.SealedExecute.sandboxed = os.environ.get("DLEFF_UNSAFE", "") in ("", "0")
    c.SealedExecute.memory_gib = int(os.environ.get("DLEFF_SANDBOX_MEMORY_GIB", 4))
    c.SealedExecute.notebook_timeout = int(os.environ.get("DLEFF_NOTEBOOK_TIMEOUT", 600))

    # Restore test cells a student deleted, not only those they edited.
    c.OverwriteCells.add_missing_cells = True

    # Copied, relabelled or reordered graded cells are repaired from the released quiz first (see repair.py).
    c.Autograde.sanitize_preprocessors = [
        RepairCells, ClearOutput, DeduplicateIds, OverwriteKernelspec, OverwriteCells, CheckCellMetadata,
    ]

    # Hidden checks are judged outside the student's kernel (see dleff_instructor/checks.py).
    c.Autograde.autograde_preprocessors = [
        SealedExecute, IgnorePattern, ClearMetadataPreprocessor, LimitOutput, SaveAutoGrades,
        AssignLatePenalties, CheckCellMetadata,
    ]
