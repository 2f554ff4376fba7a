"""Sections 03-05 side by side: AdamW for-loop vs foreach vs fused, compiled vs eager, bf16 vs fp32.

Run alone with `python -m benchmarks.bench_03_05` (writes into build/bench/).
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import torch

from benchmarks import save, write_table
from dleff import amp, bench, jit
from dleff.data.images import mnist_subset
from dleff.data.sonar import load_sonar
from dleff.models import CNN, MLP
from dleff.optim import IMPLEMENTATIONS, train_mlp_sonar
from dleff.settings import pick

CHAPTER_EPOCHS, CHAPTER_BATCH = 10, 32


def main(out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    figures = {**optimizers(out_dir), **compiled_vs_eager(out_dir), **mixed_precision(out_dir)}
    summary = pd.DataFrame([{"figure": name, "value": figure["value"], "unit": figure["unit"],
                             "spread": figure["spread"]} for name, figure in figures.items()])
    write_table(summary, out_dir / "03_05_summary", index=False)
    for name, figure in figures.items():
        bench.record_figure(name, figure)
    print(summary.round(3).to_string(index=False))


def optimizers(out_dir: Path) -> dict[str, dict]:
    """The original R chapter's benchmark: MLP 100-100 on sonar, batch 32, 10 epochs, AdamW three ways (1 thread)."""
    table = bench.mark(min_run_time=pick(0.5, 3.0), min_runs=5,
                       **{name: lambda name=name: train_mlp_sonar(name) for name in IMPLEMENTATIONS})
    table.to_csv(out_dir / "03_optimizers.csv")
    (out_dir / "03_optimizers.md").write_text(bench.pretty(table).to_markdown() + "\n")
    ax = bench.plot(table, title="AdamW, MLP 100-100 on sonar, 10 epochs")
    save(ax.figure, out_dir / "03_optimizers.png")
    print(bench.pretty(table))
    return {"optim.fused_vs_forloop": bench.ratio_figure(table, "forloop", "fused"),
            "optim.foreach_vs_forloop": bench.ratio_figure(table, "forloop", "foreach")}


def compiled_vs_eager(out_dir: Path) -> dict[str, dict]:
    """The original R chapter's MLP, one batch of 32 sonar rows per step, 1 thread; compile time measured apart.

    The compile is cold (inductor's disk cache off): what a student's first
    run pays. A warm cache (TORCHINDUCTOR_CACHE_DIR kept) makes it about 1 s.
    """
    sonar = load_sonar()
    X, y = sonar.X[:CHAPTER_BATCH], sonar.y[:CHAPTER_BATCH]

    def chapter_mlp():
        torch.manual_seed(0)
        return MLP(60, 2)

    report = jit.compare_compiled_training(chapter_mlp, X, y, min_run_time=pick(0.5, 2.0), num_threads=1,
                                           cold=True)
    chapter_steps = CHAPTER_EPOCHS * math.ceil(len(sonar) / CHAPTER_BATCH)
    table = report.steps[["median_s", "itr_per_s", "relative"]].copy()
    table["compile_s"] = [0.0, report.compile_seconds]
    table[f"total_{chapter_steps}_steps_s"] = pd.Series(report.total_seconds(chapter_steps))
    write_table(table, out_dir / "04_compile")

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.4))
    bench.plot(report.steps, title="one training step (compile time left out)", ax=left)
    jit.plot_compile_payoff(report, mark_steps=chapter_steps, ax=right, title="compile time included (cold compile)")
    fig.tight_layout()
    save(fig, out_dir / "04_compile.png")
    print(table.round(4).to_string())
    payoff = (f"pays off after {report.break_even_steps:.0f} steps" if math.isfinite(report.break_even_steps)
              else "never pays off here: a compiled step is not faster")
    print(f"cold compile: {report.compile_seconds:.1f} s; {payoff}")
    totals = report.total_seconds(chapter_steps)
    once = "one cold compile (each costs seconds)"
    return {"jit.compiled_vs_eager": bench.ratio_figure(report.steps, "eager", "compiled"),
            "jit.compile_seconds": {"value": report.compile_seconds, "unit": "s", "spread": None, "note": once},
            "jit.compiled_vs_eager_chapter_training": {"value": totals["eager"] / totals["compiled"], "unit": "x",
                                                    "spread": None, "note": f"steps timed, plus {once}"}}


def mixed_precision(out_dir: Path) -> dict[str, dict]:
    """bf16 autocast vs fp32 on CPU: an MLP 512-512 on the 5,000 MNIST digits, batch 256."""
    digits = mnist_subset()
    X, y = digits.images.flatten(1), digits.labels
    train, held_out = slice(0, 4000), slice(4000, None)
    table = amp.compare_precisions(lambda: MLP(784, 10, hidden=(512, 512)), X[train], y[train],
                                   X_eval=X[held_out], y_eval=y[held_out], device="cpu",
                                   epochs=pick(1, 2), batch_size=256, min_run_time=pick(0.3, 1.0))
    write_table(table, out_dir / "05_mixed_precision")

    # Memory needs only one forward pass per batch size: cheap enough to add the course's CNN,
    # whose activations (not weights) dominate, unlike the MLP's.
    batch_sizes = [16, 64, 256, 1024]
    by_batch = pd.concat([
        amp.saved_bytes_by_batch_size(MLP(784, 10, hidden=(512, 512)), X, y, batch_sizes).assign(model="MLP"),
        amp.saved_bytes_by_batch_size(CNN(1, 10, 28), digits.images, y, batch_sizes).assign(model="CNN"),
    ])
    write_table(by_batch, out_dir / "05_memory_by_batch_size", index=False)

    fig, (left, middle, right) = plt.subplots(1, 3, figsize=(13, 3.2))
    labels = [f"{p} ({d})" for p, d in zip(table.index, table["dtype"])]
    left.barh(labels, table["step_s"] * 1e3, color="tab:blue")
    left.set_xlabel("ms per training step (batch 256)")
    left.invert_yaxis()
    middle.barh(labels, table["saved_bytes"] / 2**20, color="tab:orange")
    middle.set_xlabel("MiB kept for backward (batch 256)")
    middle.invert_yaxis()
    for (name, rows), color in zip(by_batch.groupby("model", sort=False), ("tab:blue", "tab:green")):
        right.plot(rows["batch_size"], rows["amp_vs_fp32"], "o-", color=color, label=name)
    right.axhline(1.0, color="grey", linestyle="--")
    right.set_xscale("log", base=2)
    right.set_xlabel("batch size")
    right.set_ylabel("memory for backward, bf16 / fp32")
    right.legend()
    fig.suptitle(f"CPU autocast, MLP 512-512 on MNIST; held-out accuracy "
                 f"{table.loc['fp32', 'accuracy']:.3f} (fp32) vs {table.loc['amp', 'accuracy']:.3f} (bf16)")
    fig.tight_layout()
    save(fig, out_dir / "05_mixed_precision.png")
    print(table.round(4).to_string())
    print(by_batch.round(3).to_string(index=False))
    memory_ratio = table.loc["amp", "saved_bytes"] / table.loc["fp32", "saved_bytes"]
    cnn_at_256 = by_batch.query("model == 'CNN' and batch_size == 256")["amp_vs_fp32"].item()
    steps = table[["step_s", "step_q1_s", "step_q3_s", "step_runs", "step_has_warnings"]]
    steps.columns = ["median_s", "q1_s", "q3_s", "runs", "has_warnings"]
    # Bytes saved for backward are counted, not timed: the same on every run.
    return {"amp.autocast_vs_fp32": bench.ratio_figure(steps, "fp32", "amp"),
            "amp.backward_memory_vs_fp32": {"value": float(memory_ratio), "unit": "x",
                                            "spread": (float(memory_ratio),) * 2},
            "amp.cnn_backward_memory_vs_fp32": {"value": float(cnn_at_256), "unit": "x",
                                                "spread": (float(cnn_at_256),) * 2}}


if __name__ == "__main__":
    import matplotlib

    matplotlib.use("Agg")
    main(Path("build") / "bench")
