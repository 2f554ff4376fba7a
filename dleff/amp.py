"""Mixed precision training: the same step in float32 and under `torch.autocast`.

Autocast runs the ops that tolerate it (matrix multiplies, convolutions) in a
16-bit type and keeps the sensitive ones (losses, reductions, softmax) in
float32; the weights and the optimizer stay float32. Which 16-bit type:

- CPU: bfloat16. It has float32's exponent range, so gradients do not
  underflow and no loss scaling is needed.
- CUDA: float16, the type every NVIDIA GPU with tensor cores speeds up. Its
  narrow range lets small gradients underflow to zero, so `GradScaler`
  multiplies the loss before backward and divides the gradients after
  (skipping a step whose gradients overflowed).

What it buys: fewer bytes per activation kept for backward (memory) and,
where the hardware has fast 16-bit units, faster steps. On a CPU without
them bf16 can be slower than float32.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import pandas as pd
import torch
from torch import Tensor, nn

from dleff import bench
from dleff.devices import resolve_device

# The course decides the autocast type in one place (dleff.train); these names are that decision.
from dleff.train import AUTOCAST_DTYPES as AUTOCAST_DTYPES
from dleff.train import Precision, accuracy, amp_dtype, fit, train_step

PRECISIONS = ("fp32", "amp")


def autocast_dtype(device_type: str) -> torch.dtype:
    """The 16-bit type autocast uses on this kind of device in this course (`dleff.train.AUTOCAST_DTYPES`)."""
    return amp_dtype(device_type)


def step_precision(device_type: str, precision: str = "amp", dtype: torch.dtype | None = None) -> Precision:
    """The `dleff.train.Precision` of a step in "fp32" or "amp" (autocast to `dtype`, by default the device's).

    precision="fp32" runs the very same step with autocast and the scaler
    switched off, so the two differ only in precision.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "fp32":
        return Precision(device_type)
    return Precision(device_type, dtype or autocast_dtype(device_type))


def saved_for_backward_bytes(forward: Callable[[], Tensor], already_held: Iterable[Tensor] = ()) -> int:
    """Bytes autograd keeps alive for backward during `forward()`, beyond the `already_held` tensors.

    Pass the model's parameters and the input batch as `already_held`: they
    are in memory anyway, so only what the forward pass adds is counted
    (activations, and under autocast the 16-bit copies of inputs and
    weights). Each block of memory counts once, however many views of it are saved.
    This is the memory mixed precision shrinks, measured the same way on any
    device (on CUDA, `torch.cuda.max_memory_allocated` gives the whole peak).
    """
    held = {tensor.untyped_storage().data_ptr() for tensor in already_held}
    added: dict[int, int] = {}

    def pack(tensor: Tensor) -> Tensor:
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in held:
            added[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        forward()
    return sum(added.values())


@dataclass
class PrecisionRun:
    precision: str
    dtype: torch.dtype
    losses: list[float] = field(default_factory=list)
    accuracy: float = float("nan")


def train(make_model: Callable[[], nn.Module], X: Tensor, y: Tensor, *, precision: str = "amp",
          device: str | torch.device = "auto", epochs: int = 10, batch_size: int = 32, lr: float = 1e-3,
          seed: int = 0, X_eval: Tensor | None = None, y_eval: Tensor | None = None,
          dtype: torch.dtype | None = None) -> PrecisionRun:
    """Train a fresh `make_model()` with AdamW; per-epoch mean loss and final accuracy on (X_eval, y_eval).

    Without evaluation data the accuracy is on the training data. Accuracy is
    measured in float32 in both cases, so it compares the trained weights.
    """
    device = resolve_device(device)
    torch.manual_seed(seed)
    model = make_model().to(device)
    run_precision = step_precision(device.type, precision, dtype)
    history = fit(model, (X.to(device), y.to(device)), optimizer=torch.optim.AdamW(model.parameters(), lr=lr),
                  epochs=epochs, batch_size=batch_size, amp=run_precision, seed=seed)
    run = PrecisionRun(precision, run_precision.dtype or torch.float32, history["train_loss"].tolist())
    if X_eval is None:
        X_eval, y_eval = X, y
    run.accuracy = accuracy(model, X_eval.to(device), y_eval.to(device))
    return run


def compare_precisions(make_model: Callable[[], nn.Module], X: Tensor, y: Tensor, *,
                       device: str | torch.device = "auto", batch_size: int = 64, epochs: int = 3,
                       lr: float = 1e-3, seed: int = 0, X_eval: Tensor | None = None,
                       y_eval: Tensor | None = None, min_run_time: float = 0.5) -> pd.DataFrame:
    """fp32 vs amp on the same model and data: time per step, memory, final accuracy.

    One row per precision. Columns: dtype, step_s (median time of one
    training step on a batch of `batch_size`; its quartiles step_q1_s and
    step_q3_s, step_runs timed blocks, torch's step_has_warnings), saved_bytes (kept for backward
    in one step, beyond weights and inputs), peak_bytes (CUDA's peak allocated in one step; NaN
    elsewhere), accuracy (after `epochs` epochs), final_loss, and step_speedup
    over fp32.
    """
    device = resolve_device(device)
    # A copy, not a view: the batch must not keep the whole data set's memory alive in the counts.
    batch_X, batch_y = X[:batch_size].to(device, copy=True), y[:batch_size].to(device, copy=True)
    rows = []
    for precision in PRECISIONS:
        run = train(make_model, X, y, precision=precision, device=device, epochs=epochs,
                    batch_size=batch_size, lr=lr, seed=seed, X_eval=X_eval, y_eval=y_eval)
        torch.manual_seed(seed)
        costs = _step_costs(make_model().to(device), batch_X, batch_y, precision, run.dtype, lr, min_run_time)
        rows.append({"precision": precision, "dtype": str(run.dtype).removeprefix("torch."), **costs,
                     "accuracy": run.accuracy, "final_loss": run.losses[-1]})
    table = pd.DataFrame(rows).set_index("precision")
    table["step_speedup"] = table.loc["fp32", "step_s"] / table["step_s"]
    return table


def saved_bytes_by_batch_size(model: nn.Module, X: Tensor, y: Tensor, batch_sizes: Iterable[int], *,
                              device_type: str = "cpu", dtype: torch.dtype | None = None) -> pd.DataFrame:
    """Memory kept for backward in fp32 and under autocast, for each batch size (one forward each).

    Activations grow with the batch, the 16-bit weight copies do not: small
    batches can need more memory under autocast, large ones need less.
    """
    dtype = dtype or autocast_dtype(device_type)
    rows = []
    for batch_size in batch_sizes:
        batch_X, batch_y = X[:batch_size].clone(), y[:batch_size].clone()
        row = {"batch_size": batch_size}
        for precision in PRECISIONS:
            with torch.autocast(device_type, dtype=dtype, enabled=precision == "amp"):
                row[f"{precision}_bytes"] = saved_for_backward_bytes(
                    lambda: nn.functional.cross_entropy(model(batch_X), batch_y),  # noqa: B023 (called at once)
                    already_held=[*model.parameters(), batch_X])
        rows.append(row)
    table = pd.DataFrame(rows)
    table["amp_vs_fp32"] = table["amp_bytes"] / table["fp32_bytes"]
    return table


def _step_costs(model: nn.Module, X: Tensor, y: Tensor, precision: str, dtype: torch.dtype, lr: float,
                min_run_time: float) -> dict[str, float]:
    """Median step time, bytes saved for backward, and CUDA's peak allocation, for one batch."""
    device = X.device
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    run_precision = step_precision(device.type, precision, dtype if precision == "amp" else None)

    def step():
        return train_step(model, optimizer, X, y, precision=run_precision)

    step()  # warm-up: allocates the optimizer state
    timing = bench.mark(min_run_time=min_run_time, min_runs=5, memory=False, **{precision: step})
    with torch.autocast(device.type, dtype=dtype, enabled=precision == "amp"):
        saved = saved_for_backward_bytes(lambda: nn.functional.cross_entropy(model(X), y),
                                         already_held=[*model.parameters(), X])
    timed = timing.loc[precision]
    return {"step_s": timed["median_s"], "step_q1_s": timed["q1_s"], "step_q3_s": timed["q3_s"],
            "step_runs": timed["runs"], "step_has_warnings": timed["has_warnings"], "saved_bytes": saved,
            "peak_bytes": _cuda_peak_bytes(step, device)}


def _cuda_peak_bytes(step: Callable, device: torch.device) -> float:
    if device.type != "cuda":
        return float("nan")
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    step()
    torch.cuda.synchronize(device)
    return float(torch.cuda.max_memory_allocated(device))
