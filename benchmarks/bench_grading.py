"""Grading throughput: a generated class of 30 students over every released quiz."""

import shutil
import tempfile
import time
from pathlib import Path

import pandas as pd

from dleff import bench, classroom, grading
from dleff.release import ROOT, quiz_ids

STUDENTS = 30


def main(out_dir: Path) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch) / "course"
        root.mkdir()
        for folder in ("solutions", "quizzes"):
            shutil.copytree(ROOT / folder, root / folder)
        shutil.copy(ROOT / "nbgrader_config.py", root)
        from dleff.release import nbgrader

        for quiz_id in quiz_ids(root):  # registers each quiz in this course's gradebook
            nbgrader("generate_assignment", quiz_id, "--force", root=root)
        export = classroom.generated_class(Path(scratch) / "export", students=STUDENTS, root=root)
        grading.collect(export, root)
        rows = []
        start = time.perf_counter()
        for quiz_id in quiz_ids(root):
            quiz_start = time.perf_counter()
            grading.autograde(root, only=[quiz_id])
            rows.append({"quiz": quiz_id, "seconds": time.perf_counter() - quiz_start})
        total = time.perf_counter() - start
        grading.grades(root)
        scores = pd.read_csv(root / "grades.csv")
    table = pd.DataFrame(rows)
    table["seconds_per_student"] = table["seconds"] / STUDENTS
    table.to_csv(out_dir / "grading.csv", index=False)
    (out_dir / "grading.md").write_text(table.round(2).to_markdown(index=False))
    per_minute = STUDENTS / (total / 60)
    bench.record("grading.students_per_minute", per_minute, "students/min")
    bench.record("grading.class_of_30_seconds", total, "s")
    print(table.round(2).to_string(index=False))
    print(f"{STUDENTS} students x {len(rows)} quizzes in {total:.0f} s: {per_minute:.1f} students per minute; "
          f"mean score {scores['score'].mean():.2f}")
