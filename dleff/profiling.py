"""Where the time and the memory of a training step go, and the standard ways to spend less.

- Time: `torch.profiler` around a few steps of a training loop, with a
  schedule (skip some steps, warm up, record a few), a table of the top
  operators, and a Chrome/Perfetto trace file (open it at https://ui.perfetto.dev
  or chrome://tracing).
- Memory: the peak bytes of live tensors during one step, above what was
  alive before it. On CUDA from the caching allocator's own counters; on the
  CPU from the profiler's memory timeline (`profile_memory=True`), because
  the CPU allocator keeps no peak counter and the process's peak RSS only
  ever grows, so it cannot compare two variants run in one process.
- Two ways to need less memory: gradient accumulation (k micro-batches, the
  same gradients as one big batch) and activation checkpointing (keep fewer
  activations, recompute them during backward).
- Timing comparisons come as times measured in rounds, side by side, so each
  carries its spread; `dleff.verdicts` words the conclusion (faster, slower or
  within the noise).

The step and the loop are the course's own (`dleff.train.train_step` and
`train.fit`, which steps a profiler); this module adds only the variants the
section measures (accumulation, zeros instead of None).
"""

from __future__ import annotations

import json
import os
import tempfile
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn
from torch.profiler import ProfilerActivity, profile, schedule
from torch.utils.checkpoint import checkpoint_sequential

from dleff import bench, train, verdicts

LOADER_EVENT = "enumerate(DataLoader)"  # the profiler's name for fetching a batch from a DataLoader


# ---------------------------------------------------------------- one step, one loop


def make_step(model: nn.Module, optimizer: torch.optim.Optimizer, *, set_to_none: bool = True,
              micro_batches: int = 1) -> Callable[[Tensor, Tensor], Tensor]:
    """The course's one training step, `train.train_step`, of cross-entropy on (X, y), as a function of the
    batch; returns the detached loss.

    The two switches this section measures change one thing each:
    micro_batches=k splits the batch into k parts and accumulates their
    gradients before the one optimizer step (see `train.accumulate_gradients`), and
    set_to_none=False clears the old gradients by writing zeros instead of dropping them.
    """
    if micro_batches < 1:
        raise ValueError(f"micro_batches must be 1 or more, got {micro_batches!r}")
    return lambda X, y: train.train_step(model, optimizer, X, y, micro_batches=micro_batches,
                                         set_to_none=set_to_none)[0]


# ---------------------------------------------------------------- time: the profiler


def silence_native_logs() -> None:
    """Send this process's C++-level stderr (file descriptor 2) to /dev/null from now on.

    The profiler's C++ side writes start/stop lines there at every use, and a
    graded cell with any stderr output counts as failed under nbgrader. Python's
    own errors and warnings in a notebook travel through the kernel, not through
    descriptor 2, so they still show.
    """
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    os.close(devnull)



def activities() -> list[ProfilerActivity]:
    """CPU always; CUDA kernels too where a GPU is present."""
    return [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if torch.cuda.is_available() else [])


def profile_training(model: nn.Module, optimizer: torch.optim.Optimizer, loader: Iterable, *, wait: int = 1,
                     warmup: int = 1, active: int = 3, trace_file: Path | str | None = None) -> profile:
    """Profile one epoch of the course's training loop with a schedule: skip `wait` steps, warm up `warmup`,
    record `active`.

    The loop (`train.fit`) calls `prof.step()` after every training step.
    Returns the finished profiler (its `key_averages()` cover the active
    steps). With `trace_file`, also writes the recorded steps as a
    Chrome/Perfetto trace (a .json file).
    """
    steps = wait + warmup + active
    if len(loader) < steps:
        raise ValueError(f"the loader has {len(loader)} batches, fewer than the {steps} steps the schedule needs")
    trace_file = Path(trace_file) if trace_file is not None else None

    def write_trace(prof: profile) -> None:
        trace_file.parent.mkdir(parents=True, exist_ok=True)
        prof.export_chrome_trace(str(trace_file))

    with bench._native_stderr_silenced(), profile(
        activities=activities(),
        schedule=schedule(wait=wait, warmup=warmup, active=active, repeat=1),
        on_trace_ready=write_trace if trace_file is not None else None,
    ) as prof:
        train.fit(model, loader, epochs=1, optimizer=optimizer, profiler=prof)
    return prof


def top_operators(prof: profile, n: int = 10, sort_by: str = "cpu_time_total") -> pd.DataFrame:
    """The profiler's `key_averages()` as a table: the n events with the most `sort_by` time (ms)."""
    rows = [{"name": event.key, "calls": event.count,
             "self_cpu_ms": event.self_cpu_time_total / 1e3, "cpu_total_ms": event.cpu_time_total / 1e3}
            for event in prof.key_averages()]
    column = {"cpu_time_total": "cpu_total_ms", "self_cpu_time_total": "self_cpu_ms"}[sort_by]
    return pd.DataFrame(rows).sort_values(column, ascending=False).head(n).set_index("name")


def time_shares(prof: profile) -> dict[str, float]:
    """Of the recorded steps' time: the share spent fetching batches and the share in the model's work.

    Steps are the profiler's `ProfilerStep*` events; batch fetching is every
    `enumerate(DataLoader)...` event inside them.
    """
    events = prof.events()
    steps = sum(e.cpu_time_total for e in events if e.name.startswith("ProfilerStep"))
    loading = sum(e.cpu_time_total for e in events if e.name.startswith(LOADER_EVENT))
    if steps <= 0:
        raise ValueError("the profile holds no recorded steps: is active >= 1 and the loader long enough?")
    return {"loading": loading / steps, "rest": 1 - loading / steps, "step_ms": steps / 1e3}


# ---------------------------------------------------------------- memory


@dataclass(frozen=True)
class PeakMemory:
    """The most bytes of live tensors at any moment of a call (weights, gradients, optimizer state,
    data and activations together), and which counter measured it."""

    peak_bytes: float
    source: str


def peak_memory(fn: Callable[[], object], device: str | torch.device = "cpu") -> PeakMemory:
    """The peak of live tensor memory while `fn()` runs on `device` (cpu or cuda)."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        fn()
        torch.cuda.synchronize(device)
        return PeakMemory(float(torch.cuda.max_memory_allocated(device)), "torch.cuda.max_memory_allocated")
    if device.type != "cpu":
        raise ValueError(f"peak memory is measured on cpu or cuda, not {device.type!r}")
    with bench._native_stderr_silenced(), profile(activities=[ProfilerActivity.CPU], profile_memory=True,
                                                  record_shapes=True, with_stack=True) as prof:
        fn()
    with tempfile.TemporaryDirectory() as folder, warnings.catch_warnings():
        # PyTorch points CUDA users to memory snapshots instead; the CPU has no such tool.
        warnings.simplefilter("ignore", FutureWarning)
        path = Path(folder) / "memory.json"
        prof.export_memory_timeline(str(path), device="cpu")
        _, sizes = json.loads(path.read_text())
    # One row per moment something was allocated or freed, one column per kind of tensor.
    peak = float(np.asarray(sizes, dtype=float).sum(axis=1).max())
    return PeakMemory(peak, "profiler memory timeline (profile_memory=True)")


# ---------------------------------------------------------------- activation checkpointing


class CheckpointedSequential(nn.Sequential):
    """An nn.Sequential that, while training, keeps only each segment's input for backward.

    Backward recomputes the activations inside each segment: less memory, one
    more forward pass of work. In eval mode or without gradients it runs as a
    plain Sequential.
    """

    def __init__(self, *layers: nn.Module, segments: int = 2):
        super().__init__(*layers)
        if not 1 <= segments <= len(layers):
            raise ValueError(f"segments must be between 1 and the number of layers ({len(layers)}), "
                             f"got {segments}")
        self.segments = segments

    def forward(self, x: Tensor) -> Tensor:
        if self.training and torch.is_grad_enabled():
            return checkpoint_sequential(self, self.segments, x, use_reentrant=False)
        return super().forward(x)


def flat_layers(model: nn.Module) -> list[nn.Module]:
    """A model's leaf-level layers in order, for models built from nn.Sequential parts (the course's)."""
    if isinstance(model, nn.Sequential):
        return [leaf for child in model for leaf in flat_layers(child)]
    children = list(model.children())
    if not children:
        return [model]
    return [leaf for child in children for leaf in flat_layers(child)]


def checkpointed(model: nn.Module, segments: int) -> CheckpointedSequential:
    """The same layers (shared, not copied) as a CheckpointedSequential of `segments` segments."""
    return CheckpointedSequential(*flat_layers(model), segments=segments)


# ---------------------------------------------------------------- ratios with spread


@dataclass(frozen=True)
class Ratio:
    """A variant's times against a baseline's, measured side by side (one pair per round, epoch or step).

    `values` are the pairs' ratios, variant / baseline (above 1: the variant is
    slower), summarised by their median and range. The conclusion, faster,
    slower or within the noise, is `dleff.verdicts.paired_timing`'s, from the same pairs.
    `over` names what each pair came from (rounds of timing, epochs, steps).
    """

    baseline_s: tuple[float, ...]
    variant_s: tuple[float, ...]
    over: str = "rounds"

    def __post_init__(self):
        verdicts.paired_ratios(self.variant_s, self.baseline_s)  # refuses unpaired or unmeasured times

    @property
    def values(self) -> tuple[float, ...]:
        return tuple(verdicts.paired_ratios(self.variant_s, self.baseline_s))

    @property
    def median(self) -> float:
        return float(np.median(self.values))

    @property
    def low(self) -> float:
        return float(min(self.values))

    @property
    def high(self) -> float:
        return float(max(self.values))

    def outcome(self) -> str:
        """verdicts.FASTER, SLOWER or NOISE: the variant against the baseline."""
        return verdicts.paired_timing_outcome(self.variant_s, self.baseline_s)

    def verdict(self, variant: str, baseline: str) -> str:
        """The variant against the baseline, in verdicts' words, with the median times and the ratios' range."""
        return verdicts.paired_timing(variant, self.variant_s, baseline, self.baseline_s, over=self.over)

    def __str__(self) -> str:
        return f"{self.median:.2f}x (range {self.low:.2f}-{self.high:.2f} over {len(self.values)} {self.over})"


def time_ratio(baseline: Callable[[], object], variant: Callable[[], object], *, rounds: int = 3,
               min_run_time: float = 0.2) -> Ratio:
    """Times of `variant` and of `baseline` (medians of `bench.mark`) in `rounds` rounds of both, side by side.

    Each round times both (in alternating order, so a slow spell hurts both
    alike); the rounds give the spread.
    """
    baseline_s, variant_s = [], []
    for round_index in range(rounds):
        order = {"baseline": baseline, "variant": variant}
        if round_index % 2:
            order = dict(reversed(order.items()))
        table = bench.mark(min_run_time=min_run_time, memory=False, **order)
        baseline_s.append(float(table.loc["baseline", "median_s"]))
        variant_s.append(float(table.loc["variant", "median_s"]))
    return Ratio(tuple(baseline_s), tuple(variant_s))
