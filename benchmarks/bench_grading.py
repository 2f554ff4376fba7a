"""Grading throughput: a generated class of 30 students over every released quiz."""

import re
import shutil
import tempfile
import time
from pathlib import Path

import pandas as pd

from dleff import bench
from dleff.paths import course_root
from dleff_instructor import classroom, grading
from dleff_instructor.release import nbgrader, quiz_ids

STUDENTS = 30


def main(out_dir: Path) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch) / "course"
        root.mkdir()
        for folder in ("solutions", "quizzes"):
            shutil.copytree(course_root() / folder, root / folder)

        for quiz_id in quiz_ids(root):  # registers each quiz in this course's gradebook
            nbgrader("generate_assignment", quiz_id, "--force", root=root)
        export = classroom.generated_class(Path(scratch) / "export", students=STUDENTS, root=root)
        grading.collect(export, root)
        # As `make autograde` does it: every quiz at once, one nbgrader process per quiz, cores shared.
        start = time.perf_counter()
        log = grading.autograde(root)
        total = time.perf_counter() - start
        rows = [{"quiz": quiz_id, "seconds": float(seconds)}
                for quiz_id, seconds in (re.fullmatch(r"(\S+): autograded in (\d+) s", line).groups()
                                         for line in log if " autograded in " in line)]
        grading.grades(root)
        scores = pd.read_csv(root / "grades.csv")
    table = pd.DataFrame(rows)
    table["seconds_per_student"] = table["seconds"] / STUDENTS
    table.to_csv(out_dir / "grading.csv", index=False)
    (out_dir / "grading.md").write_text(table.round(2).to_markdown(index=False))
    per_minute = STUDENTS / (total / 60)
    once = "one class graded once (a run takes minutes)"
    bench.record("grading.students_per_minute", per_minute, "students/min", spread=None, note=once)
    bench.record("grading.class_of_30_seconds", total, "s", spread=None, note=once)
    print(table.round(2).to_string(index=False))
    print("seconds: each quiz's nbgrader run, while the others ran beside it")
    print(f"{STUDENTS} students x {len(rows)} quizzes in {total:.0f} s: {per_minute:.1f} students per minute; "
          f"mean score {scores['score'].mean():.2f}")
