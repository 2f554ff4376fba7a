"""Sections 10-11: what profiling-guided fixes, memory savers and data parallelism buy on this machine.

Run alone with `python -m benchmarks.bench_10_11` (writes into build/bench/).
Every time figure is a ratio measured side by side in rounds (or epochs, or
steps); its spread in bench.json is the lowest and highest ratio of those.
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import torch

from benchmarks import save, write_table
from dleff import bench, ddp, devices, profiling, train
from dleff.data.datasets import ArrayImages, BatchedTensorImages, make_loader
from dleff.data.images import mnist_subset
from dleff.models import CNN, MLP
from dleff.settings import pick

ROUNDS = pick(3, 7)
RUN_TIME = pick(0.1, 0.5)


def main(out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    with devices.threads(1):
        figures = {**loader_fix(), **memory_savers(out_dir), **small_switches()}
    figures.update(data_parallel(out_dir))
    summary = pd.DataFrame([{"figure": name, "value": value, "unit": unit, "spread": spread}
                            for name, (value, unit, spread) in figures.items()])
    write_table(summary, out_dir / "10_11_summary", index=False)
    for name, (value, unit, spread) in figures.items():
        record(name, value, unit, spread)
    print(summary.round(3).to_string(index=False))


def record(name: str, value: float, unit: str, spread: profiling.Ratio | tuple[float, float] | None) -> None:
    """bench.record with a ratio's range over its rounds as the spread; a byte count has none to speak of."""
    if spread is None:
        bench.record(name, value, unit, spread=(value, value), note="a ratio of byte counts: counted once, not timed")
    elif isinstance(spread, profiling.Ratio):
        bench.record(name, value, unit, spread=(spread.low, spread.high), runs=len(spread.values),
                     over=spread.over)
    else:
        bench.record(name, value, unit, spread=spread)


def _figure(ratio: profiling.Ratio) -> tuple[float, str, profiling.Ratio]:
    return ratio.median, "x", ratio


def loader_fix() -> dict:
    """The lesson's planted bottleneck: per-item NumPy items vs batched tensor fetching, an epoch of an MLP."""
    digits = mnist_subset(limit=1024)
    flat = digits.images.flatten(1)
    torch.manual_seed(0)
    model = MLP(784, 10, hidden=(256,))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    slow = make_loader(ArrayImages(flat.numpy(), digits.labels.numpy()), batch_size=64, shuffle=True)
    fast = make_loader(BatchedTensorImages(flat, digits.labels), batch_size=64, shuffle=True)
    ratio = profiling.time_ratio(lambda: train.fit(model, slow, epochs=1, optimizer=optimizer),
                                 lambda: train.fit(model, fast, epochs=1, optimizer=optimizer),
                                 rounds=ROUNDS, min_run_time=RUN_TIME)
    return {"profile.batched_loader_time_vs_per_item": _figure(ratio)}


def memory_savers(out_dir: Path) -> dict:
    """MLP 12 x 256, batch 2048: peak memory and time of accumulation (4) and checkpointing (4 segments)."""
    torch.manual_seed(0)
    deep = MLP(784, 10, hidden=(256,) * 12)
    X, y = torch.randn(2048, 784), torch.randint(0, 10, (2048,))
    optimizer = torch.optim.SGD(deep.parameters(), lr=0.01, momentum=0.9)
    variants = {"plain": profiling.make_step(deep, optimizer),
                "accumulate": profiling.make_step(deep, optimizer, micro_batches=4),
                "checkpoint": profiling.make_step(profiling.checkpointed(deep, 4), optimizer)}
    for step in variants.values():
        step(X, y)
    peaks = {name: profiling.peak_memory(lambda step=step: step(X, y)).peak_bytes for name, step in variants.items()}
    rows, figures = [], {}
    for name in ("accumulate", "checkpoint"):
        time = profiling.time_ratio(lambda: variants["plain"](X, y), lambda name=name: variants[name](X, y),
                                    rounds=ROUNDS, min_run_time=RUN_TIME)
        memory = peaks[name] / peaks["plain"]
        rows.append({"variant": name, "memory_vs_plain": memory, "time_vs_plain": time.median,
                     "time_low": time.low, "time_high": time.high})
        # Peak bytes are counted, not timed: the same step gives the same count, so no spread.
        figures[f"profile.{name}_memory_vs_plain"] = (memory, "x", None)
        figures[f"profile.{name}_time_vs_plain"] = _figure(time)
    table = pd.DataFrame(rows).set_index("variant")
    write_table(table, out_dir / "10_memory_savers")
    fig, ax = plt.subplots(figsize=(6, 2.8))
    positions = range(len(table))
    ax.barh([p - 0.2 for p in positions], table["memory_vs_plain"], height=0.4, color="tab:orange",
            label="peak memory")
    ax.barh([p + 0.2 for p in positions], table["time_vs_plain"], height=0.4, color="tab:blue", label="time",
            xerr=[table["time_vs_plain"] - table["time_low"], table["time_high"] - table["time_vs_plain"]])
    ax.axvline(1.0, color="grey", linestyle="--")
    ax.set_yticks(list(positions), table.index)
    ax.set_xlabel("relative to the plain step")
    ax.set_title("MLP 12 x 256, batch 2048: memory saved vs time paid")
    ax.legend(loc="lower right")
    save(fig, out_dir / "10_memory_savers.png")
    print(table.round(3).to_string())
    return figures


def small_switches() -> dict:
    """channels_last on the course CNN (batch 64) and zero_grad(set_to_none=True) on an MLP 784-256-10."""
    digits = mnist_subset(limit=64)
    images, labels = digits.images.clone(), digits.labels.clone()
    torch.manual_seed(0)
    cnn = CNN(1, 10, 28)
    cnn_last = CNN(1, 10, 28).to(memory_format=torch.channels_last)
    cnn_last.load_state_dict(cnn.state_dict())
    default_step = profiling.make_step(cnn, torch.optim.SGD(cnn.parameters(), lr=0.01))
    last_step = profiling.make_step(cnn_last, torch.optim.SGD(cnn_last.parameters(), lr=0.01))
    images_last = images.contiguous(memory_format=torch.channels_last)
    layout = profiling.time_ratio(lambda: default_step(images, labels), lambda: last_step(images_last, labels),
                                  rounds=ROUNDS, min_run_time=RUN_TIME)
    mlp = MLP(784, 10, hidden=(256,))
    optimizer = torch.optim.SGD(mlp.parameters(), lr=0.05)
    flat = images.flatten(1)
    zeros = profiling.make_step(mlp, optimizer, set_to_none=False)
    none = profiling.make_step(mlp, optimizer, set_to_none=True)
    zero_grad = profiling.time_ratio(lambda: zeros(flat, labels), lambda: none(flat, labels), rounds=ROUNDS,
                                     min_run_time=RUN_TIME)
    print(layout.verdict("channels_last", "the default layout"))
    print(zero_grad.verdict("set_to_none=True", "set_to_none=False"))
    return {"profile.channels_last_time_vs_default": _figure(layout),
            "profile.set_to_none_time_vs_zeros": _figure(zero_grad)}


def data_parallel(out_dir: Path) -> dict:
    """Alternating launches: 1 process x 2 threads (then x 1), 2 processes x 1 thread; all-reduce, no_sync."""
    folder = out_dir / "ddp"
    script = ddp.write_script(folder)
    common = ["--samples", str(pick(512, 2048)), "--epochs", str(pick(2, 3))]
    # Epoch times per model and set-up, epoch by epoch over all launches: the same data and global batch.
    epoch_s: dict[str, dict[str, list[float]]] = {model: {"1x2": [], "1x1": [], "2x1": []} for model in ("cnn", "mlp")}
    last_two = None
    for _ in range(pick(1, 3)):
        one = ddp.launch(script, 1, "--tasks", "train", "--reference-threads", "1", *common, threads=2,
                         out=folder / "one.json").result
        two = ddp.launch(script, 2, "--tasks", "train,allreduce,nosync", *common, threads=1,
                         out=folder / "two.json").result
        for model, times in epoch_s.items():
            times["1x2"] += one["train"][model]["epoch_s"]
            times["1x1"] += one["train_reference"][model]["epoch_s"]
            times["2x1"] += two["train"][model]["epoch_s"]
        last_two = two
    (folder / "result_2x1.json").write_text(json.dumps(last_two, indent=1))
    allreduce = pd.DataFrame(last_two["allreduce"])
    write_table(allreduce, out_dir / "11_allreduce", index=False)
    nosync = last_two["nosync"]
    nosync_ratio = profiling.Ratio(tuple(nosync["sync_every_micro_batch"]), tuple(nosync["no_sync"]), over="steps")
    fig, ax = plt.subplots(figsize=(5, 3))
    ax.loglog(allreduce["bytes"], allreduce["median_s"] * 1e3, "o-")
    ax.set(xlabel="gradient size (bytes)", ylabel="all-reduce, ms (median)",
           title=f"all-reduce over 2 processes ({last_two['backend']})")
    save(fig, out_dir / "11_allreduce.png")
    largest = allreduce.iloc[-1]
    figures = {}
    versus = {model: {other: profiling.Ratio(tuple(times[other]), tuple(times["2x1"]), "epochs")
                      for other in ("1x2", "1x1")} for model, times in epoch_s.items()}
    for model, ratios in versus.items():
        figures[f"ddp.{model}_2x1_vs_1x2_time"] = _figure(ratios["1x2"])
        figures[f"ddp.{model}_2x1_vs_1x1_time"] = _figure(ratios["1x1"])
    figures["ddp.allreduce_largest_ms"] = (float(largest["median_s"] * 1e3), "ms",
                                           (float(largest["min_s"] * 1e3), float(largest["max_s"] * 1e3)))
    figures["ddp.allreduce_largest_bytes"] = (float(largest["bytes"]), "B", None)
    figures["ddp.no_sync_time_vs_sync"] = _figure(nosync_ratio)
    print(allreduce.to_string(index=False))
    for model, ratios in versus.items():
        print(f"{model}: epoch time 2 x 1 / 1 x 2 = {ratios['1x2']}, 2 x 1 / 1 x 1 = {ratios['1x1']}")
    return figures


if __name__ == "__main__":
    import matplotlib

    matplotlib.use("Agg")
    main(Path("build") / "bench")
