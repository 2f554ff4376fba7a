"""The PyTorch analogue of the original R chapter's (mlr3torch) "ignite" optimizers: one AdamW, three implementations.

R torch's `optim_adamw` runs its update in R, one parameter at a time;
`optim_ignite_adamw` runs it in C++. PyTorch's `torch.optim.AdamW` always
runs in C++ kernels, but still offers three ways to apply one step:

- "forloop": one small kernel per operation and per parameter tensor
  (the default on CPU),
- "foreach": each operation on all parameter tensors at once (`_foreach_*`
  ops; the default on CUDA),
- "fused": the whole update for all tensors in one kernel per device.

They compute the same update; only the number of kernel launches and passes
over memory differs, so the gain grows with the number of parameter tensors
and with the per-launch cost of the device.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch
from torch import nn
from torch.optim.optimizer import _get_fused_kernels_supported_devices

from dleff.data.sonar import load_sonar
from dleff.devices import threads
from dleff.models import MLP
from dleff.train import fit

IMPLEMENTATIONS = ("forloop", "foreach", "fused")


def make_adamw(params: Iterable, implementation: str = "fused", lr: float = 1e-3,
               **options) -> torch.optim.AdamW:
    """AdamW with its step implemented as "forloop", "foreach" or "fused"; `options` go to AdamW."""
    if implementation not in IMPLEMENTATIONS:
        raise ValueError(f"implementation must be one of {', '.join(IMPLEMENTATIONS)}, "
                         f"got {implementation!r}")
    params = list(params)
    if implementation == "fused":
        _check_fused_support(params)
    switches = {
        "forloop": {"foreach": False, "fused": False},
        "foreach": {"foreach": True, "fused": False},
        "fused": {"foreach": False, "fused": True},
    }[implementation]
    return torch.optim.AdamW(params, lr=lr, **switches, **options)


def _check_fused_support(params: list) -> None:
    supported = _get_fused_kernels_supported_devices()
    tensors = [p for group in params for p in (group["params"] if isinstance(group, dict) else [group])]
    for tensor in tensors:
        if tensor.device.type not in supported or not torch.is_floating_point(tensor):
            raise ValueError(
                f"fused AdamW needs floating-point parameters on one of {', '.join(supported)}; found a "
                f"{tensor.dtype} parameter on {tensor.device}. Use implementation='foreach' there, or move "
                f"the model to a supported device before creating the optimizer."
            )


def train_mlp_sonar(implementation: str = "fused", *, epochs: int = 10, batch_size: int = 32,
                    hidden: Sequence[int] = (100, 100), lr: float = 1e-3, seed: int = 0,
                    device: str | torch.device = "cpu", num_threads: int | None = 1) -> list[float]:
    """The original R chapter's set-up: an MLP (100, 100) on sonar, batch 32, 10 epochs, AdamW; per-epoch losses.

    The same seed gives the same initial weights and batch order whatever the
    implementation, so the three runs differ only in how AdamW steps.
    num_threads=1, the value mlr3torch's learners start with: on tensors this small, more
    threads cost more in synchronisation than they give (None keeps torch's setting).
    """
    sonar = load_sonar()
    X, y = sonar.X.to(device), sonar.y.to(device)
    torch.manual_seed(seed)
    model = MLP(X.shape[1], len(sonar.classes), hidden=hidden).to(device)
    optimizer = make_adamw(model.parameters(), implementation, lr=lr)
    with threads(num_threads or torch.get_num_threads()):
        history = fit(model, (X, y), optimizer=optimizer, epochs=epochs, batch_size=batch_size, seed=seed)
    return history["train_loss"].tolist()


# ---------------------------------------------------------------- why the implementations differ


def count_ops(fn) -> dict[str, int]:
    """How many torch operators one call of `fn()` runs.

    "calls": operators called from Python (each one a trip through the
    dispatcher); "all": every operator, including those the first ones run
    inside (on the CPU, a `_foreach_*` op runs one ordinary op per tensor).
    """
    from dleff.bench import _native_stderr_silenced

    with _native_stderr_silenced(), torch.profiler.profile(
            activities=[torch.profiler.ProfilerActivity.CPU]) as profile:
        fn()
    ops = [event for event in profile.events() if event.name.startswith("aten::")]
    calls = [event for event in ops
             if event.cpu_parent is None or not event.cpu_parent.name.startswith("aten::")]
    return {"calls": len(calls), "all": len(ops)}


def split_parameters(total: int, pieces: int, device: str | torch.device = "cpu") -> list[nn.Parameter]:
    """`total` numbers split into `pieces` equal parameter tensors, each with a random gradient."""
    if pieces < 1 or total < pieces:
        raise ValueError(f"cannot split {total} numbers into {pieces} tensors")
    generator = torch.Generator().manual_seed(0)
    params = []
    for _ in range(pieces):
        param = nn.Parameter(torch.zeros(total // pieces, device=device))
        param.grad = torch.randn(total // pieces, generator=generator).to(device)
        params.append(param)
    return params


def step_seconds_by_tensor_count(counts: Iterable[int], total: int = 2**16,
                                 implementations: Sequence[str] = IMPLEMENTATIONS, *,
                                 device: str | torch.device = "cpu", min_run_time: float = 0.2,
                                 num_threads: int | None = 1):
    """Median seconds of one AdamW step over `total` numbers held in n tensors, for each n in `counts`.

    The work (numbers updated) is the same in every row; only how finely it
    is cut into tensors changes. Rows: tensor counts; columns: implementations.
    """
    import pandas as pd

    from dleff import bench

    rows = {}
    for count in counts:
        steps = {}
        for implementation in implementations:
            optimizer = make_adamw(split_parameters(total, count, device), implementation)
            optimizer.step()  # allocates the moment buffers
            steps[implementation] = optimizer.step
        table = bench.mark(min_run_time=min_run_time, num_threads=num_threads, memory=False, **steps)
        rows[count] = table["median_s"]
    result = pd.DataFrame(rows).T
    result.index.name = "tensors"
    result.columns.name = "implementation"
    return result
