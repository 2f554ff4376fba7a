"""Section 02, data loading: how fast can each dataset design feed batches?

Measured side by side in one run, on the MNIST subset that ships with the
project (written once as PNG files under the cache):
1. the original R chapter's quiz questions: disk vs RAM (array), array vs tensor, per-item vs
   batched fetching (batch 16, as in the original R chapter);
2. batched fetching as a fraction of this machine's memory-copy bandwidth
   (the same digits at 64x64 RGB, Tiny-ImageNet's shape, 245 MB in RAM);
3. epoch time vs num_workers, for cheap (tensor) and expensive (decode +
   augmentation) items, next to how many cores the machine really gives to
   parallel work (workers cannot beat that).

All timings use one intra-op thread: the per-item work of data loading is too
small to share, worker processes get one thread each anyway, and on a busy
machine a second thread makes every small tensor operation wait for it.
The measuring functions live in `dleff.loading`, which lesson 02 uses too.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

from benchmarks import save
from dleff import bench, loading
from dleff.data.datasets import AugmentedDiskImages, dataset_variants, default_augmentation
from dleff.data.images import image_folder, list_image_files, mnist_subset, read_images
from dleff.devices import cpu_cores, machine_summary, threads
from dleff.settings import pick

CHAPTER_BATCH_SIZE = loading.SEED_BATCH_SIZE  # the original R chapter's batch size
BANDWIDTH_BATCH_SIZE = 256
IMAGE_LIMIT = pick(1000, None)  # None: all 5,000 digits
EXPENSIVE_ITEMS = pick(200, 800)
MIN_RUN_TIME = pick(0.2, 1.0)


def measure_variants(files, data) -> pd.DataFrame:
    table = loading.time_epochs(dataset_variants(files, data), batch_size=CHAPTER_BATCH_SIZE,
                                min_run_time=MIN_RUN_TIME)
    table["part"] = "variants"
    table["batch_size"] = CHAPTER_BATCH_SIZE
    return table


def measure_bandwidth() -> tuple[pd.DataFrame, float]:
    """Batched fetching vs a plain memory copy of the same bytes; returns the table and the fraction."""
    big = mnist_subset(channels=3, size=64, limit=IMAGE_LIMIT)
    table, fraction = loading.measure_bandwidth(big.images, big.labels, batch_size=BANDWIDTH_BATCH_SIZE,
                                                min_run_time=MIN_RUN_TIME)
    table["part"] = "bandwidth"
    print(f"  {tuple(big.images.shape)} float32 = {big.images.nbytes / 1e6:.0f} MB in RAM")
    return table, fraction


def measure_workers(files, data) -> pd.DataFrame:
    cheap = dataset_variants(files, data)["tensor"]
    side = data.images.shape[-1]
    expensive = AugmentedDiskImages(loading.spread(files, EXPENSIVE_ITEMS), default_augmentation(side))
    workers = loading.measure_workers({"cheap": cheap, "expensive": expensive}, range(cpu_cores() + 1),
                                      batch_size=CHAPTER_BATCH_SIZE, min_run_time=MIN_RUN_TIME)
    workers["part"] = "workers"
    workers["batch_size"] = CHAPTER_BATCH_SIZE
    return workers


def plot(table: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, middle, right) = plt.subplots(1, 3, figsize=(15, 4))
    variants = table[table["part"] == "variants"]
    bench.plot(variants, title=f"one epoch, batch {CHAPTER_BATCH_SIZE}", ax=left)
    left.set_xscale("log")
    left.set_xlabel("median epoch time (ms, log scale)")

    rates = table[table["part"] == "bandwidth"]["gb_per_s"]
    middle.bar(rates.index, rates.values, color=["tab:gray", "tab:blue"])
    for x, value in enumerate(rates.values):
        middle.annotate(f"{value:.2f} GB/s", (x, value), ha="center", va="bottom")
    middle.set_ylabel("bytes read + written per second (GB/s)")
    middle.set_title(f"fetching batches of {BANDWIDTH_BATCH_SIZE} vs copying")
    middle.margins(y=0.15)

    workers = table[table["part"] == "workers"]
    for label, rows in workers.groupby("dataset"):
        right.plot(rows["num_workers"], rows["relative"], marker="o", label=f"{label} items")
    right.axhline(1, color="gray", linewidth=0.8)
    right.set_xticks(sorted(workers["num_workers"].unique()))
    right.set_xlabel("num_workers")
    right.set_ylabel("epoch time / epoch time with 0 workers")
    right.set_title("epoch time vs num_workers")
    right.legend()
    fig.tight_layout()
    save(fig, path)


def markdown(table: pd.DataFrame, figures: dict[str, float]) -> str:
    shown = table[["part", "median_s", "items_per_s", "gb_per_s", "batch_size", "num_workers",
                   "mem_alloc_bytes", "relative"]].copy()
    shown["median"] = shown.pop("median_s").map(bench.format_seconds)
    shown["mem_alloc"] = shown.pop("mem_alloc_bytes").map(bench.format_bytes)
    shown = shown[["part", "median", "items_per_s", "gb_per_s", "batch_size", "num_workers", "mem_alloc",
                   "relative"]]
    lines = ["# Data loading (section 02)", "", machine_summary(), "",
             shown.to_markdown(floatfmt=".3g"), "",
             "relative: median time over the fastest row of its part (workers: over 0 workers).", "",
             "| figure | value |", "|---|---|"]
    lines += [f"| {name} | {value:.3g} |" for name, value in figures.items()]
    return "\n".join(lines) + "\n"


def main(out_dir: Path, figures_file: Path | None = None) -> pd.DataFrame:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    print(machine_summary())
    root = image_folder("mnist", limit=IMAGE_LIMIT)
    files = list_image_files(root)
    data = read_images(files)
    print(f"images: {len(files)} PNG files in {root}, {tuple(data.images.shape[1:])} each")

    with threads(1):
        print("1/3 the four dataset variants")
        variants = measure_variants(files, data)
        print("2/3 batched fetching vs memory copy")
        bandwidth, fraction = measure_bandwidth()
        print("3/3 num_workers on cheap and expensive items")
        workers = measure_workers(files, data)
    delivered = loading.cores_delivered()
    print(f"  cores delivered to parallel work right now: {delivered:.2f} of {cpu_cores()}")
    table = pd.concat([variants, bandwidth, workers])

    def workers_speedup(label):
        rows = workers[workers["dataset"] == label]
        fastest = rows.iloc[1:]["median_s"].idxmin()
        return bench.rows_ratio_figure(rows.iloc[0], rows.loc[fastest])

    copy = bandwidth.loc["memory_copy"]
    rate = float(copy["gb_per_s"])  # bytes / median: the quartiles of the time bound the rate
    detailed = {
        "data.ram_vs_disk": bench.ratio_figure(variants, "disk", "array"),
        "data.tensor_vs_array": bench.ratio_figure(variants, "array", "tensor"),
        "data.batched_vs_item": bench.ratio_figure(variants, "tensor", "tensor_batched"),
        # fetch rate / copy rate over the same bytes = copy time / fetch time
        "data.batched_bandwidth_fraction": {**bench.ratio_figure(bandwidth, "memory_copy", "batched_fetch"),
                                            "unit": "fraction"},
        "data.memory_copy_gb_per_s": {"value": rate, "unit": "GB/s", "runs": int(copy["runs"]),
                                      "spread": (rate * copy["median_s"] / copy["q3_s"],
                                                 rate * copy["median_s"] / copy["q1_s"]),
                                      "has_warnings": bool(copy["has_warnings"])},
        "data.workers_speedup_cheap": workers_speedup("cheap"),
        "data.workers_speedup_expensive": workers_speedup("expensive"),
    }
    for name, figure in detailed.items():
        bench.record_figure(name, figure, path=figures_file)
    bench.record("data.cores_delivered", delivered, "cores", spread=None, path=figures_file,
                 note="one estimate from a short parallel run")
    figures = {name: figure["value"] for name, figure in detailed.items()} | {"data.cores_delivered": delivered}

    table.to_csv(out_dir / "data_loading.csv")
    (out_dir / "data_loading.md").write_text(markdown(table, figures))
    plot(table, out_dir / "data_loading.png")
    print(markdown(table, figures))
    return table


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("build"))
