"""Sections 08-09: pretrained vs from-scratch at equal epochs, cached features vs fine-tuning, and
which augmentations a digit task tolerates.

All on data and weights that install with the project (the MNIST subset,
EfficientNet-Lite0's ImageNet weights), so it runs offline.
Run alone with `python -m benchmarks.bench_08_09` (writes into build/bench/).
"""

from __future__ import annotations

import time
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.ticker import MaxNLocator

from benchmarks import save, write_table
from dleff import augment, bench, transfer
from dleff.settings import pick


def main(out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    # 64 px: the smallest side that leaves EfficientNet a 2x2 feature map, to keep CPU epochs short.
    train, valid = transfer.mnist_target(pick(500, 1000), pick(300, 500), size=64)

    pretraining = transfer.pretrained_vs_scratch(train, valid, epochs=pick(1, 2))
    write_table(pretraining, out_dir / "08_pretrained_vs_scratch", index=False, digits=4)
    final = pretraining.groupby("model").last()["valid_accuracy"]

    ways = transfer.frozen_vs_finetune(train, valid, epochs=1, head_epochs=pick(10, 20))
    write_table(ways, out_dir / "08_frozen_vs_finetune", digits=4)
    speedup = float(ways.loc["cached features", "speedup_per_epoch"])

    invariance = augment.invariance_experiment(pick(2000, 4000), pick(500, 1000), epochs=pick(2, 3))
    write_table(invariance, out_dir / "09_augmentation", digits=4)

    figures = {
        "transfer.pretrained_minus_scratch_accuracy": (final["pretrained"] - final["from scratch"], "accuracy"),
        "transfer.frozen_head_vs_finetune": (speedup, "x"),
        "augment.flip_minus_none_accuracy": (invariance.loc["flips", "minus_none"], "accuracy"),
        "augment.crop_minus_none_accuracy": (invariance.loc["mild crop", "minus_none"], "accuracy"),
    }
    notes = {"accuracy": "one training run per model (seeds fixed)",
             "x": "median seconds of the epochs of one run each"}
    for name, (value, unit) in figures.items():
        bench.record(name, float(value), unit, spread=None, note=notes[unit])
    summary = pd.DataFrame([{"figure": n, "value": v, "unit": u} for n, (v, u) in figures.items()])
    write_table(summary, out_dir / "08_09_summary", index=False, digits=4)

    save(plot(pretraining, ways, invariance), out_dir / "08_09.png")
    print(pretraining.round(3).to_string(index=False))
    print(ways.round(4).to_string())
    print(invariance.round(3).to_string())
    print(summary.round(3).to_string(index=False))
    print(f"sections 08-09 took {time.perf_counter() - start:.0f} s")


def plot(pretraining: pd.DataFrame, ways: pd.DataFrame, invariance: pd.DataFrame):
    fig, (left, middle, right) = plt.subplots(1, 3, figsize=(13, 3.6))
    for model, rows in pretraining.groupby("model", sort=False):
        left.plot(rows["epoch"], rows["valid_accuracy"], "o-", label=model)
    left.set_xlabel("epoch")
    left.xaxis.set_major_locator(MaxNLocator(integer=True))
    left.set_ylabel("validation accuracy")
    left.set_ylim(0, 1)
    left.set_title("EfficientNet-Lite0 on MNIST (64 px)")
    left.legend()

    seconds = ways["seconds_per_epoch"]
    bars = middle.barh(ways.index, seconds, color="tab:blue")
    for bar, ratio in zip(bars, ways["speedup_per_epoch"]):
        middle.annotate(f"{ratio:.0f}x", (bar.get_width(), bar.get_y() + bar.get_height() / 2),
                        xytext=(3, 0), textcoords="offset points", va="center")
    middle.set_xscale("log")
    middle.set_xlabel("seconds per training epoch (log)")
    middle.invert_yaxis()
    middle.margins(x=0.3)
    middle.set_title("cost of an epoch")

    colors = ["grey" if name == "none" else ("tab:red" if d < 0 else "tab:green")
              for name, d in invariance["minus_none"].items()]
    right.bar(invariance.index, invariance["valid_accuracy"], color=colors)
    low = max(0.0, float(invariance["valid_accuracy"].min()) - 0.1)
    right.set_ylim(low, 1)
    right.set_ylabel("validation accuracy")
    right.set_title("augmenting digits (CNN)")
    fig.tight_layout()
    return fig


if __name__ == "__main__":
    import matplotlib

    matplotlib.use("Agg")
    main(Path("build") / "bench")
