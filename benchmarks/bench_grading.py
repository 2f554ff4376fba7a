"""Grading throughput: a generated class of 30 students over every released quiz, sandboxed and not.

The same class is graded twice in one run, in two fresh copies of the course: once with every
kernel in its sandbox (what `make autograde` does) and once without (`UNSAFE=1`), so the
sandbox's cost is a side-by-side figure. Both grade as `make autograde` does: a student's
quizzes one after another, each in a kernel forked from that student's warm server (`warm`).
Each notebook's time is split into kernel start (a fork, ready to run; a student's first
notebook also waits for their server to import torch and the quizzes' modules), the first
cell, all cells, and judging the hidden checks outside the kernel. `kernel_starts` compares,
alternating, a kernel started in a sandbox of its own, one without, and one forked.
"""

import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import pandas as pd

from dleff import bench
from dleff.paths import course_root
from dleff_instructor import classroom, grading
from dleff_instructor.release import nbgrader, quiz_ids

STUDENTS = int(os.environ.get("DLEFF_BENCH_STUDENTS", 30))  # fewer for a quick look; the figure is for 30
QUIZZES = os.environ.get("DLEFF_BENCH_QUIZZES", "").split(",") if os.environ.get("DLEFF_BENCH_QUIZZES") else None
PHASES = ["start", "first_cell", "cells", "judging", "total"]


def kernel_starts(repeats: int = 8) -> pd.DataFrame:
    """Seconds to get a kernel that has imported torch and dleff, and shut it down, three ways, alternating:
    started in a sandbox, started without one, and forked in a sandbox from a warm server (`warm`),
    whose own start (once per student) is timed apart."""
    import asyncio

    from jupyter_client.manager import AsyncKernelManager

    from dleff_instructor import sandbox, warm

    bwrap = sandbox.check_available()
    began = time.perf_counter()
    kernels = warm.WarmKernels(course_root(), "bench", warm.ALWAYS, sandbox.Limits(), bwrap)
    kernels.start()
    server_start = time.perf_counter() - began

    async def once(mode: str) -> dict:
        began = time.perf_counter()
        if mode == "sandboxed":
            manager = sandbox.SandboxedKernelManager(sandbox=sandbox.Sandbox(course_root(), sandbox.Limits(), bwrap))
        elif mode == "forked":
            manager = kernels.kernel_manager()
        else:
            manager = AsyncKernelManager(kernel_name="python3")
        await manager.start_kernel()
        client = manager.client()
        client.start_channels()
        await client.wait_for_ready(timeout=120)
        ready = time.perf_counter()
        await client.execute_interactive("import torch, dleff.quiz", timeout=120)
        imported = time.perf_counter()
        client.stop_channels()
        await manager.shutdown_kernel(now=True)
        return {"mode": mode, "start": ready - began, "imports": imported - ready,
                "shutdown": time.perf_counter() - imported, "total": time.perf_counter() - began}

    try:
        rows = [asyncio.run(once(mode)) for _ in range(repeats) for mode in ("sandboxed", "unsandboxed", "forked")]
    finally:
        kernels.close()
    rows.append({"mode": "warm server start", "start": server_start, "imports": 0.0, "shutdown": 0.0,
                 "total": server_start})
    return pd.DataFrame(rows)


def _course(scratch: Path, name: str) -> Path:
    root = scratch / name
    root.mkdir()
    for folder in ("solutions", "quizzes"):
        shutil.copytree(course_root() / folder, root / folder)
    for quiz_id in quiz_ids(root):  # registers each quiz in this course's gradebook
        nbgrader("generate_assignment", quiz_id, "--force", root=root)
    return root


def _grade(root: Path, export: Path, unsafe: bool, times: Path) -> float:
    grading.collect(export, root)
    start = time.perf_counter()
    grading.autograde(root, unsafe=unsafe, times=times)
    return time.perf_counter() - start


def main(out_dir: Path) -> None:
    starts = kernel_starts()
    starts.to_csv(out_dir / "grading-kernel-starts.csv", index=False)
    start_quartiles = starts.groupby("mode")[["start", "imports", "shutdown", "total"]].quantile(
        [0.25, 0.5, 0.75]).unstack()
    print(start_quartiles.round(3).to_string())
    box, bare = starts.loc[starts["mode"] == "sandboxed", "total"], starts.loc[starts["mode"] == "unsandboxed", "total"]
    forked = starts.loc[starts["mode"] == "forked", "total"]
    bench.record("grading.forked_kernel_s", forked.median(), "s", spread=(forked.quantile(0.25), forked.quantile(0.75)),
                 note=f"a kernel forked from a warm sandboxed server, ready with torch and dleff imported, then shut "
                      f"down: median of {len(forked)}, quartiles; the server's own start (once per student) took "
                      f"{starts.loc[starts['mode'] == 'warm server start', 'total'].iloc[0]:.1f} s")
    bench.record("grading.cold_kernel_s", box.median(), "s", spread=(box.quantile(0.25), box.quantile(0.75)),
                 note=f"the same, started in a sandbox of its own (as before warm kernels): median of {len(box)}")
    overhead = box.median() - bare.median()
    bench.record("grading.sandbox_overhead_per_kernel_s", overhead, "s",
            spread=(min(overhead, box.quantile(0.25) - bare.quantile(0.75)),
                    max(overhead, box.quantile(0.75) - bare.quantile(0.25))),
            note=f"start + import torch and dleff + shutdown, median of {len(box)} sandboxed minus "
                 f"{len(bare)} unsandboxed runs, alternating; spread from the quartiles")
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        sandboxed_root, unsafe_root = _course(scratch, "sandboxed"), _course(scratch, "unsafe")
        export = classroom.generated_class(scratch / "export", students=STUDENTS, root=sandboxed_root,
                                           quizzes=QUIZZES)
        quizzes = len(QUIZZES or quiz_ids(sandboxed_root))
        totals = {}
        for mode, root in (("sandboxed", sandboxed_root), ("unsandboxed", unsafe_root)):
            totals[mode] = _grade(root, export, mode == "unsandboxed", scratch / "times.jsonl")
        grading.grades(sandboxed_root)
        grading.grades(unsafe_root)
        same = pd.read_csv(sandboxed_root / "grades.csv").equals(pd.read_csv(unsafe_root / "grades.csv"))
        times = pd.DataFrame([json.loads(line) for line in (scratch / "times.jsonl").read_text().splitlines()])
    times["mode"] = times["sandboxed"].map({True: "sandboxed", False: "unsandboxed"})
    split = times.groupby(["mode", "quiz"])[PHASES].median().round(2)
    split.to_csv(out_dir / "grading.csv")
    quartiles = times.groupby("mode")[PHASES].quantile([0.25, 0.5, 0.75]).unstack()
    (out_dir / "grading.md").write_text(split.to_markdown() + "\n\nPer notebook, quartiles (s):\n\n"
                                        + quartiles.round(2).to_markdown() + "\n")
    for mode, seconds in totals.items():
        per_minute = STUDENTS / (seconds / 60)
        suffix = "" if mode == "sandboxed" else "_unsandboxed"
        note = f"one class of {STUDENTS} x {quizzes} quizzes graded once; no repeat, so no spread"
        bench.record(f"grading.students_per_minute{suffix}", per_minute, "students/min", spread=None, note=note)
        bench.record(f"grading.class_of_{STUDENTS}_seconds{suffix}", seconds, "s", spread=None, note=note)
    for phase in ("start", "total"):
        box = times.loc[times["mode"] == "sandboxed", phase]
        bare = times.loc[times["mode"] == "unsandboxed", phase]
        overhead = box.median() - bare.median()
        low = box.quantile(0.25) - bare.quantile(0.75)
        high = box.quantile(0.75) - bare.quantile(0.25)
        bench.record(f"grading.sandbox_overhead_{phase}_s", overhead, "s",
                     spread=(min(low, overhead), max(high, overhead)),
                     note="median sandboxed minus median unsandboxed per notebook; spread from the quartiles")
    print(quartiles.round(2).to_string())
    for mode, seconds in totals.items():
        print(f"{mode}: {STUDENTS} students x {quizzes} quizzes in {seconds:.0f} s: "
              f"{STUDENTS / (seconds / 60):.1f} students per minute")
    print("same grades sandboxed and not:", same)
