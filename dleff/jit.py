"""The original R chapter's JIT examples in PyTorch: TorchScript, tracing, and today's route, compile and export.

TorchScript (`torch.jit.script`, `torch.jit.trace`) is deprecated in recent
torch releases, which say so with a FutureWarning on every call. We still
teach it because the original R chapter (mlr3torch) does and because tracing's pitfall (Python control
flow is frozen into the graph) is the lesson; `script` and `trace` below
print that deprecation once, in plain words, and pass every other warning
(above all the TracerWarning that points at the pitfall) through unchanged.

Facts the tests pin for this torch:
- a traced function keeps the branch its example inputs took (`f_if`);
  `torch.where` keeps both branches in the graph (`f_where`);
- a traced module keeps the train/eval mode it was traced in (unlike R
  torch, whose `jit_trace` records both modes); a scripted module follows
  `.train()`/`.eval()`;
- `torch.compile` breaks the graph at `.item()`, runs the `if` in Python and
  compiles one graph per branch taken, so it answers 6 and 5;
- `torch.export` refuses the data-dependent `if` and exports the `where` version.
"""

from __future__ import annotations

import functools
import math
import time
import warnings
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass

import pandas as pd
import torch
from torch import Tensor, nn

from dleff import bench
from dleff.devices import threads

_DEPRECATIONS_SHOWN: set[str] = set()


@contextmanager
def torchscript_deprecation_noted():
    """Show TorchScript's deprecation FutureWarning once per message; re-raise every other warning.

    Silencing it would hide a fact students need; repeating it on every
    call would bury the TracerWarnings that matter in this lesson.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    for warning in caught:
        message = str(warning.message)
        if issubclass(warning.category, FutureWarning) and "torch.jit" in message and "deprecated" in message:
            if message not in _DEPRECATIONS_SHOWN:
                _DEPRECATIONS_SHOWN.add(message)
                print(f"Note: torch {torch.__version__} says {message!r} "
                      f"TorchScript still works; this lesson moves on to both replacements below.")
        else:
            warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)


def script(obj):
    """torch.jit.script(obj), with the deprecation notice shown once."""
    with torchscript_deprecation_noted():
        return torch.jit.script(obj)


def trace(obj, *example_inputs: object, **options):
    """torch.jit.trace(obj, example_inputs) with the inputs passed by position, as in R's jit_trace."""
    with torchscript_deprecation_noted():
        return torch.jit.trace(obj, example_inputs, **options)


# ---------------------------------------------------------------- the original R chapter's examples


def matmul_add(x: Tensor, w: Tensor, bias: Tensor) -> Tensor:
    return x @ w + bias


def sum_jit(xs: list[Tensor]) -> Tensor:
    """The original R chapter's TorchScript function: the sum of a list of tensors (any length, once scripted)."""
    output = torch.zeros_like(xs[0])
    for x in xs:
        output = output + x
    return output


@functools.cache
def scripted_sum_jit():
    return script(sum_jit)


def traced_matmul_add():
    """`matmul_add` traced with the original R chapter's example shapes (10x10 @ 10x100 + 100)."""
    return trace(matmul_add, torch.randn(10, 10), torch.randn(10, 100), torch.randn(100))


def chapter_net() -> nn.Sequential:
    return nn.Sequential(nn.Linear(10, 100), nn.ReLU(), nn.Linear(100, 10))


class SumThenLinear(nn.Module):
    """The R chapter's `net_both`: a Python module that calls a scripted function, so lists of any length work."""

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(1, 1)
        self.sum_jit = scripted_sum_jit()

    def forward(self, xs: list[Tensor]) -> Tensor:
        return self.linear(self.sum_jit(xs))


# ---------------------------------------------------------------- the quiz: control flow


def f_if(a: Tensor, b: Tensor, multiply: Tensor) -> Tensor:
    if multiply.item():
        return a * b
    return a + b


def f_where(a: Tensor, b: Tensor, multiply: Tensor) -> Tensor:
    return torch.where(multiply, a * b, a + b)


def quiz_example() -> tuple[Tensor, Tensor, Tensor]:
    """The example inputs the quiz traces with: a=1, b=2, multiply=True."""
    return torch.tensor([1.0]), torch.tensor([2.0]), torch.tensor([True])


def trace_with_quiz_example(fn: Callable[[Tensor, Tensor, Tensor], Tensor]):
    return trace(fn, *quiz_example())


class BranchInScript(nn.Module):
    """A module to trace whose branch lives in a scripted function: the `if` survives tracing."""

    def __init__(self):
        super().__init__()
        self.branch = script(f_if)

    def forward(self, a: Tensor, b: Tensor, multiply: Tensor) -> Tensor:
        return self.branch(a, b, multiply)


class FunctionModule(nn.Module):
    """Wraps a function as a module, because torch.export takes modules."""

    def __init__(self, fn: Callable[..., Tensor]):
        super().__init__()
        self.fn = fn

    def forward(self, *inputs: Tensor) -> Tensor:
        return self.fn(*inputs)


def export(fn: Callable[..., Tensor], *example_inputs: Tensor) -> torch.export.ExportedProgram:
    """torch.export.export of a function: one whole graph ahead of time, or an error that says why not."""
    return torch.export.export(FunctionModule(fn), example_inputs)


def compile_recording(fn: Callable, backend: str = "inductor", **options) -> tuple[Callable, list]:
    """torch.compile(fn) that also keeps each FX graph it compiles, so a lesson can print them.

    backend="eager" skips code generation: the graphs, guards and graph breaks
    are the same, and it compiles in well under a second.
    """
    graphs: list[torch.fx.GraphModule] = []
    if backend == "eager":
        def compile_graph(graph, example_inputs):
            return graph.forward
    else:
        from torch._dynamo.backends.registry import lookup_backend

        compile_graph = lookup_backend(backend)

    def recording_backend(graph, example_inputs):
        graphs.append(graph)
        return compile_graph(graph, example_inputs)

    return torch.compile(fn, backend=recording_backend, **options), graphs


# ---------------------------------------------------------------- what compiling buys in training


def seconds_of_first_call(fn: Callable, *args) -> float:
    """Wall time of one call; the first call of a compiled model is where it compiles."""
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


@dataclass
class CompileComparison:
    """Eager vs compiled training steps on the same model, data and optimizer."""

    steps: pd.DataFrame  # bench.mark table: rows "eager" and "compiled", time per training step
    compile_seconds: float  # first compiled step minus one eager step: what compiling cost

    @property
    def speedup(self) -> float:
        """Steps per second compiled / eager, compile time left out."""
        return bench.speedup(self.steps, "eager", "compiled")

    def total_seconds(self, n_steps: int) -> dict[str, float]:
        """Time for n_steps training steps, compile time included."""
        return {"eager": n_steps * self.steps.loc["eager", "median_s"],
                "compiled": self.compile_seconds + n_steps * self.steps.loc["compiled", "median_s"]}

    @property
    def break_even_steps(self) -> float:
        """After how many steps compiling has paid for itself (inf if a compiled step is not faster)."""
        saved = self.steps.loc["eager", "median_s"] - self.steps.loc["compiled", "median_s"]
        return self.compile_seconds / saved if saved > 0 else float("inf")


def compare_compiled_training(make_model: Callable[[], nn.Module], X: Tensor, y: Tensor, *,
                              min_run_time: float = 1.0, num_threads: int | None = None,
                              cold: bool = False, **compile_options) -> CompileComparison:
    """Time training steps of `make_model()` eager and `torch.compile`d (forward and backward).

    `make_model` is called twice so both runs start from their own fresh
    model; seed inside it for identical weights. The optimizer is AdamW
    (foreach) in both; only the model is compiled. cold=True compiles with
    inductor's on-disk caches switched off: the cost of a first run on a
    fresh machine, instead of whatever earlier runs left in the cache.
    """
    import torch._inductor.config as inductor_config

    # imported here: the graded quiz imports this module, and train pulls in skorch
    from dleff.train import train_step

    eager_model, compiled_model = make_model(), make_model()
    eager_optimizer = torch.optim.AdamW(eager_model.parameters(), foreach=True)
    compiled_forward = torch.compile(compiled_model, **compile_options)
    compiled_optimizer = torch.optim.AdamW(compiled_model.parameters(), foreach=True)

    def eager(X, y):
        return train_step(eager_model, eager_optimizer, X, y)[0]

    def compiled(X, y):
        return train_step(compiled_forward, compiled_optimizer, X, y)[0]

    torch._dynamo.reset()  # forget graphs compiled earlier in this process
    with threads(num_threads or torch.get_num_threads()):
        eager(X, y)  # warm-up: the eager side's first call is not free either
        eager_once = seconds_of_first_call(eager, X, y)
        with inductor_config.patch(force_disable_caches=cold):
            first_compiled = seconds_of_first_call(compiled, X, y)
    steps = bench.mark(min_run_time=min_run_time, num_threads=num_threads, memory=False,
                       eager=lambda: eager(X, y), compiled=lambda: compiled(X, y))
    return CompileComparison(steps=steps, compile_seconds=max(first_compiled - eager_once, 0.0))



def plot_compile_payoff(report: CompileComparison, mark_steps: int | None = None, ax=None,
                        title: str = "compile time included"):
    """Total seconds against training steps, eager vs compiled (compile time included).

    The x-axis reaches past the break-even point, or, where there is none,
    as far as twice the compile time would buy in eager steps; `mark_steps`
    draws a dotted line at a run length of interest (e.g. one whole training).
    """
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.5))
    eager_s = report.steps.loc["eager", "median_s"]
    compiled_s = report.steps.loc["compiled", "median_s"]
    horizon = (1.5 * report.break_even_steps if math.isfinite(report.break_even_steps)
               else 2 * report.compile_seconds / eager_s)
    horizon = min(max(horizon, 10 * (mark_steps or 0), 10.0), 1e7)
    steps = torch.linspace(0, horizon, 200)
    ax.plot(steps, steps * eager_s, label="eager")
    ax.plot(steps, report.compile_seconds + steps * compiled_s, label="compiled (compile included)")
    if mark_steps:
        ax.axvline(mark_steps, color="grey", linestyle=":", label=f"{mark_steps} steps")
    ax.set_xlabel("training steps")
    ax.set_ylabel("total seconds")
    ax.set_title(title)
    ax.legend()
    return ax
