"""The course's `bench::mark`: time expressions side by side and compare them.

Timing is done by `torch.utils.benchmark`, which warms up, picks the number
of repeats, pins the thread count and synchronises CUDA. Its Measurements are
kept (`measurements(table)`, `compare(table)` for torch's own Compare table),
and so is what they say about noise: the interquartile range (q1_s, q3_s,
iqr_s), the number of timed blocks (runs) and torch's `has_warnings` (IQR over
10 % of the median). We add what the original R chapter's (mlr3torch) tables
show: min, median, iterations per second, memory allocated, and each row's
time relative to the fastest.

`make bench` writes every figure to `build/bench.json` under the course root:
value, unit and spread (an interval in the figure's unit), plus a `machine`
block, so two runs or two machines can be compared (`compare_files`).
"""

from __future__ import annotations

import json
import logging
import math
import os
import platform
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import torch

# torch.utils.benchmark imports the C++-extension builder, which warns that no CUDA
# toolkit is installed: true, and irrelevant to timing.
logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
import torch.utils.benchmark as torch_benchmark  # noqa: E402


def figures_file() -> Path:
    """`build/bench.json` under the course root (dleff.paths), wherever the run starts."""
    from dleff.paths import course_root

    return course_root() / "build" / "bench.json"


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
    label: str = "bench.mark",
    min_runs: int = 1,
    **expressions: Callable[[], object],
) -> pd.DataFrame:
    """Time each keyword's zero-argument callable and return one row per expression.

    num_threads: one count for every expression, or a dict name -> count
    (default: torch's current setting). check=True first verifies that all
    expressions return the same value, as bench::mark does. `label` titles
    torch's Compare table (`compare`). min_runs: time at least this many blocks
    (`make bench` asks for 5, so that its quartiles mean something).
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
    rows, measurements = [], {}
    for name, fn in expressions.items():
        threads = num_threads.get(name) if isinstance(num_threads, dict) else num_threads
        timer = torch_benchmark.Timer(
            stmt="fn()",
            globals={"fn": fn},
            num_threads=threads or torch.get_num_threads(),
            label=label,
            sub_label=name,
            description="time",
        )
        measurement = timer.blocked_autorange(min_run_time=min_run_time)
        if len(measurement.times) < min_runs:
            # A slow expression fills min_run_time with a block or two: too few for quartiles.
            extra = [timer.timeit(measurement.number_per_run) for _ in range(min_runs - len(measurement.times))]
            (measurement,) = torch_benchmark.Measurement.merge([measurement, *extra])
        measurements[name] = measurement
        times = measurement.times  # seconds per call, one entry per timed block
        q1, q3 = (float(q) for q in np.quantile(times, [0.25, 0.75]))  # as torch's Measurement computes them
        rows.append(
            {
                "expression": name,
                "threads": threads or torch.get_num_threads(),
                "min_s": min(times),
                "median_s": measurement.median,
                "q1_s": q1,
                "q3_s": q3,
                "iqr_s": measurement.iqr,
                "itr_per_s": 1.0 / measurement.median,
                "mem_alloc_bytes": _allocated_bytes(fn) if memory else math.nan,
                "runs": len(times),
                "calls": len(times) * measurement.number_per_run,
                "has_warnings": measurement.has_warnings,
            }
        )
    table = pd.DataFrame(rows).set_index("expression")
    table["relative"] = table["median_s"] / table["median_s"].min()
    table.attrs["measurements"] = measurements
    return table


def measurements(table: pd.DataFrame) -> dict[str, torch_benchmark.Measurement]:
    """torch's Measurement behind each row of a `mark` table, by expression."""
    try:
        return table.attrs["measurements"]
    except KeyError:
        raise ValueError("this table does not come from bench.mark (it has no measurements)") from None


def compare(*tables: pd.DataFrame) -> torch_benchmark.Compare:
    """torch's own comparison table of the measurements behind `mark` tables (print it)."""
    result = torch_benchmark.Compare([m for table in tables for m in measurements(table).values()])
    result.trim_significant_figures()
    result.colorize(rowwise=True)
    return result


def speedup_interval(table: pd.DataFrame, slow: str, fast: str) -> tuple[float, float]:
    """The spread of `speedup(table, slow, fast)`: from slow's q1 over fast's q3 to slow's q3 over fast's q1.

    The ratio of medians lies inside; an interval that contains 1 says the two are within noise.
    """
    return _interval(table.loc[slow], table.loc[fast])


def ratio_figure(table: pd.DataFrame, slow: str, fast: str) -> dict:
    """What `record` needs for speed-up `slow` / `fast` of a `mark` table: value, spread, runs, warnings."""
    return rows_ratio_figure(table.loc[slow], table.loc[fast])


def rows_ratio_figure(slow: pd.Series, fast: pd.Series) -> dict:
    """`ratio_figure` for two rows of `mark` tables (they may come from different tables)."""
    return {"value": float(slow["median_s"] / fast["median_s"]), "unit": "x", "spread": _interval(slow, fast),
            "runs": int(min(slow["runs"], fast["runs"])),
            "has_warnings": bool(slow["has_warnings"] or fast["has_warnings"])}


def _interval(slow: pd.Series, fast: pd.Series) -> tuple[float, float]:
    return float(slow["q1_s"] / fast["q3_s"]), float(slow["q3_s"] / fast["q1_s"])


def time_figure(table: pd.DataFrame, name: str) -> dict:
    """What `record` needs for the median time of one row of a `mark` table."""
    row = table.loc[name]
    return {"value": float(row["median_s"]), "unit": "s", "spread": (float(row["q1_s"]), float(row["q3_s"])),
            "runs": int(row["runs"]), "has_warnings": bool(row["has_warnings"])}


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


def machine() -> dict:
    """The machine block of bench.json: CPU model, cores, threads used, torch version, device."""
    from dleff.devices import describe_machine

    info = describe_machine()
    return {"cpu": cpu_model(), "cores": info["cores"], "threads": info["threads"], "torch": info["torch"],
            "device": info["device"], "python": info["python"], "platform": info["platform"]}


def cpu_model() -> str:
    """The CPU's model name (Linux: /proc/cpuinfo), else what `platform` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def record(name: str, value: float, unit: str, *, spread: tuple[float, float] | None, note: str = "",
           path: Path | str | None = None, **details) -> None:
    """Add one figure to `bench.json` (default: `figures_file()`), with the machine it was measured on.

    spread: (low, high) around `value` in its unit: a time's quartiles, a
    ratio's `speedup_interval`, or (value, value) for a count that does not
    vary. None only with a `note` that says why there is none (e.g. a single
    cold compile). `details` (runs, has_warnings, threads) are stored beside.
    """
    if name == "machine":
        raise ValueError("'machine' is the file's machine block, not a figure name")
    if not math.isfinite(value):
        raise ValueError(f"figure {name!r} is not a finite number: {value!r}")
    if spread is None:
        if not note:
            raise ValueError(f"figure {name!r} has no spread: pass spread=(low, high), or a note saying why none")
    else:
        low, high = (float(v) for v in spread)
        if not low <= value <= high:
            raise ValueError(f"figure {name!r}: value {value} lies outside its spread ({low}, {high})")
        spread = [low, high]
    path = Path(path) if path is not None else figures_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    figures = json.loads(path.read_text()) if path.exists() else {}
    figures["machine"] = machine()
    figures[name] = {"value": float(value), "unit": unit, "spread": spread, **({"note": note} if note else {}),
                     **details}
    path.write_text(json.dumps(figures, indent=2, sort_keys=True) + "\n")


def record_figure(name: str, figure: dict, **kwargs) -> None:
    """`record` a figure made by `ratio_figure` or `time_figure`."""
    figure = dict(figure)
    record(name, figure.pop("value"), figure.pop("unit"), spread=figure.pop("spread"), **figure, **kwargs)


def compare_files(this: Path | str, other: Path | str) -> pd.DataFrame:
    """Two bench.json files side by side: one row per figure in either, with both values and spreads,
    their ratio, and whether the spreads overlap (overlapping figures differ within noise)."""
    a, b = (json.loads(Path(p).read_text()) for p in (this, other))
    rows = []
    for name in sorted((set(a) | set(b)) - {"machine"}):
        fa, fb = a.get(name, {}), b.get(name, {})
        row = {"figure": name, "unit": fa.get("unit", fb.get("unit")), "this": fa.get("value", math.nan),
               "this_spread": fa.get("spread"), "other": fb.get("value", math.nan), "other_spread": fb.get("spread")}
        row["this/other"] = row["this"] / row["other"] if row["other"] else math.nan
        sa, sb = row["this_spread"], row["other_spread"]
        row["overlap"] = (sa[0] <= sb[1] and sb[0] <= sa[1]) if sa and sb else None
        rows.append(row)
    table = pd.DataFrame(rows).set_index("figure") if rows else pd.DataFrame()
    table.attrs["machines"] = {"this": a.get("machine"), "other": b.get("machine")}
    return table


def thread_scaling(fn: Callable[[], object], counts=None, min_run_time: float = 0.2,
                   min_runs: int = 1) -> pd.DataFrame:
    """Median time of `fn` for each intra-op thread count, with speed-up and efficiency.

    Speed-up is time(1 thread) / time(n threads); efficiency is speed-up / n, the
    share of each added thread's work that turned into speed (1.0 = perfect scaling).
    """
    from dleff.devices import cpu_cores

    counts = list(counts or range(1, cpu_cores() + 1))
    if 1 not in counts:
        counts.insert(0, 1)
    table = mark(min_run_time=min_run_time, memory=False, label="thread scaling", min_runs=min_runs,
                 num_threads={f"{n} threads": n for n in counts},
                 **{f"{n} threads": fn for n in counts})
    scaling = table[["threads", "median_s", "q1_s", "q3_s", "has_warnings"]].reset_index(drop=True)
    scaling["speedup"] = scaling.loc[scaling["threads"] == 1, "median_s"].iloc[0] / scaling["median_s"]
    scaling["efficiency"] = scaling["speedup"] / scaling["threads"]
    scaling.attrs["marks"] = table  # the mark table, for `ratio_figure(..., "1 threads", "n threads")`
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
