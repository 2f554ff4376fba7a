"""The course's `bench::mark`: time expressions side by side and compare them.

Timing is done by `torch.utils.benchmark`, which warms up, picks the number
of repeats, pins the thread count and synchronises CUDA. We add what the seed's
tables show: min, median, iterations per second, memory allocated, and each
row's time relative to the fastest.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import torch

# torch.utils.benchmark imports the C++-extension builder, which warns that no CUDA
# toolkit is installed: true, and irrelevant to timing.
logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
import torch.utils.benchmark as torch_benchmark  # noqa: E402

FIGURES_FILE = Path("build") / "bench.json"


@contextmanager
def _native_stderr_silenced():
    """The profiler's C++ side logs start/stop lines straight to file descriptor 2."""
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(devnull)
        os.close(saved)


def _allocated_bytes(fn: Callable[[], object]) -> int:
    """Bytes allocated by tensors during one call (CPU and accelerator), frees ignored."""
    activities = [torch.profiler.ProfilerActivity.CPU]
    if torch.cuda.is_available():
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    with _native_stderr_silenced(), torch.profiler.profile(activities=activities, profile_memory=True) as prof:
        fn()
    # An op's "self" memory is what it allocated itself, net of what it freed.
    return sum(
        max(event.self_cpu_memory_usage, 0) + max(event.self_device_memory_usage, 0)
        for event in prof.events()
    )


def _same_result(a, b) -> bool:
    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        return a.shape == b.shape and torch.allclose(a.cpu().float(), b.cpu().float(), atol=1e-4, rtol=1e-3)
    return a == b


def mark(
    *,
    min_run_time: float = 0.2,
    num_threads: int | dict[str, int] | None = None,
    memory: bool = True,
    check: bool = False,
    **expressions: Callable[[], object],
) -> pd.DataFrame:
    """Time each keyword's zero-argument callable and return one row per expression.

    num_threads: one count for every expression, or a dict name -> count
    (default: torch's current setting). check=True first verifies that all
    expressions return the same value, as bench::mark does.
    """
    if not expressions:
        raise ValueError("pass the expressions to time as keywords, e.g. mark(cpu=lambda: x @ x)")
    for name, fn in expressions.items():
        if not callable(fn):
            raise TypeError(f"{name!r} must be a function without arguments (wrap it in a lambda)")
    if check:
        results = {name: fn() for name, fn in expressions.items()}
        first_name, first = next(iter(results.items()))
        for name, value in results.items():
            if not _same_result(first, value):
                raise AssertionError(f"{name!r} returns a different result from {first_name!r}")
    rows = []
    for name, fn in expressions.items():
        threads = num_threads.get(name) if isinstance(num_threads, dict) else num_threads
        timer = torch_benchmark.Timer(
            stmt="fn()",
            globals={"fn": fn},
            num_threads=threads or torch.get_num_threads(),
            label=name,
        )
        measurement = timer.blocked_autorange(min_run_time=min_run_time)
        times = measurement.times
        rows.append(
            {
                "expression": name,
                "threads": threads or torch.get_num_threads(),
                "min_s": min(times),
                "median_s": measurement.median,
                "itr_per_s": 1.0 / measurement.median,
                "mem_alloc_bytes": _allocated_bytes(fn) if memory else math.nan,
                "runs": len(times) * measurement.number_per_run,
            }
        )
    table = pd.DataFrame(rows).set_index("expression")
    table["relative"] = table["median_s"] / table["median_s"].min()
    return table


def speedup(table: pd.DataFrame, slow: str, fast: str) -> float:
    """How many times faster `fast` ran than `slow` (ratio of medians)."""
    return float(table.loc[slow, "median_s"] / table.loc[fast, "median_s"])


def pretty(table: pd.DataFrame) -> pd.DataFrame:
    """The table with readable units, for display."""
    shown = pd.DataFrame(index=table.index)
    shown["min"] = table["min_s"].map(format_seconds)
    shown["median"] = table["median_s"].map(format_seconds)
    shown["itr/sec"] = table["itr_per_s"].round(1)
    shown["mem_alloc"] = table["mem_alloc_bytes"].map(format_bytes)
    shown["relative"] = table["relative"].round(2)
    return shown


def format_seconds(seconds: float) -> str:
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g}{unit}"
    return f"{seconds / 1e-9:.3g}ns"


def format_bytes(count: float) -> str:
    if math.isnan(count):
        return "-"
    for unit in ("B", "KB", "MB", "GB"):
        if count < 1024 or unit == "GB":
            return f"{count:.4g}{unit}"
        count /= 1024
    raise AssertionError("unreachable")


def plot(table: pd.DataFrame, title: str = "", ax=None):
    """Bar chart of median time per expression, annotated with the ratio to the fastest."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(6, 0.5 + 0.45 * len(table)))
    medians_ms = table["median_s"] * 1e3
    bars = ax.barh(table.index.astype(str), medians_ms, color="tab:blue")
    for bar, ratio in zip(bars, table["relative"]):
        ax.annotate(f"{ratio:.2f}x", (bar.get_width(), bar.get_y() + bar.get_height() / 2),
                    xytext=(3, 0), textcoords="offset points", va="center")
    ax.set_xlabel("median time per call (ms)")
    ax.invert_yaxis()
    ax.margins(x=0.15)
    if title:
        ax.set_title(title)
    return ax


def record(name: str, value: float, unit: str, path: Path | str = FIGURES_FILE) -> None:
    """Add one figure to the flat `bench.json` that `make bench` collects."""
    if not math.isfinite(value):
        raise ValueError(f"figure {name!r} is not a finite number: {value!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figures = json.loads(path.read_text()) if path.exists() else {}
    figures[name] = {"value": float(value), "unit": unit}
    path.write_text(json.dumps(figures, indent=2, sort_keys=True) + "\n")


def thread_scaling(fn: Callable[[], object], counts=None, min_run_time: float = 0.2) -> pd.DataFrame:
    """Median time of `fn` for each intra-op thread count, with speed-up and efficiency.

    Speed-up is time(1 thread) / time(n threads); efficiency is speed-up / n, the
    share of each added thread's work that turned into speed (1.0 = perfect scaling).
    """
    from dleff.devices import cpu_cores

    counts = list(counts or range(1, cpu_cores() + 1))
    if 1 not in counts:
        counts.insert(0, 1)
    table = mark(min_run_time=min_run_time, memory=False,
                 num_threads={f"{n} threads": n for n in counts},
                 **{f"{n} threads": fn for n in counts})
    scaling = table[["threads", "median_s"]].reset_index(drop=True)
    scaling["speedup"] = scaling.loc[scaling["threads"] == 1, "median_s"].iloc[0] / scaling["median_s"]
    scaling["efficiency"] = scaling["speedup"] / scaling["threads"]
    return scaling


def plot_scaling(scaling: pd.DataFrame, title: str = "Thread scaling"):
    """Speed-up against thread count, with the ideal (linear) line for reference."""
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.2))
    left.plot(scaling["threads"], scaling["speedup"], "o-", label="measured")
    left.plot(scaling["threads"], scaling["threads"], "--", color="grey", label="ideal")
    left.set_xlabel("threads")
    left.set_ylabel("speed-up over 1 thread")
    left.legend()
    right.bar(scaling["threads"].astype(str), scaling["efficiency"], color="tab:orange")
    right.axhline(1.0, color="grey", linestyle="--")
    right.set_xlabel("threads")
    right.set_ylabel("efficiency (speed-up / threads)")
    fig.suptitle(title)
    fig.tight_layout()
    return fig
