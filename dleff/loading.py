"""Measuring a data pipeline: the timings lesson 02 shows and `benchmarks/bench_02_data.py` records.

- `time_epochs`: one epoch through a DataLoader, timed for several datasets side by side;
- `compare_batches`: do the dataset variants give the very same batches?
- `CountingTensor`, `indexing_calls`: how many indexing calls a dataset makes per batch;
- `measure_bandwidth`, `bandwidth_by_batch_size`: batched fetching next to a plain memory copy
  of the same bytes;
- `cores_delivered`, `measure_workers`, `worker_overhead`: epoch time vs `num_workers`, and
  how many cores the machine really gives to parallel work right now;
- `measure_transfer`: batches moved to a CUDA GPU from pageable or pinned memory.

Every timing uses one intra-op thread: the per-item work of data loading is too
small to share between threads, worker processes get one thread each anyway,
and on a busy machine a second thread makes every small tensor operation wait.
"""

from __future__ import annotations

import copy
import functools
import multiprocessing
import time

import pandas as pd
import torch
from torch.utils.data import Dataset

from dleff import bench
from dleff.data.datasets import BatchedTensorImages, iterate, make_loader
from dleff.data.images import ImageFiles, image_folder, list_image_files
from dleff.devices import cpu_cores, threads

SEED_BATCH_SIZE = 16  # the original R chapter's (mlr3torch) dataloader(batch_size = 16)


# ---------------------------------------------------------------- image files


def image_files(source: str = "mnist", limit: int | None = None) -> ImageFiles:
    """The image files a lesson reads: an embedded source written once as PNG files, or Tiny-ImageNet.

    source: "mnist", "digits", "fashion-mnist" (see `dleff.data.images`), or
    "tiny-imagenet", the original R chapter's data set, which is downloaded (248 MB) the first
    time; `limit` then takes that many images spread over its 200 classes.
    """
    if source != "tiny-imagenet":
        return list_image_files(image_folder(source, limit=limit))
    from dleff.data.online import tiny_imagenet_files

    files = tiny_imagenet_files(download=True)
    return files if limit is None else spread(files, limit)


def spread(files: ImageFiles, count: int) -> ImageFiles:
    """`count` of the files, evenly spaced through the list (so every class folder keeps some)."""
    if count < 1:
        raise ValueError(f"count must be a positive number of files, got {count}")
    if count >= len(files):
        return files
    step = len(files) // count
    chosen = slice(0, step * count, step)
    return ImageFiles(files.root, files.paths[chosen], files.labels[chosen], files.classes)


# ---------------------------------------------------------------- epochs


def epoch(dataset: Dataset, batch_size: int = SEED_BATCH_SIZE, **options):
    """A zero-argument function that runs one epoch over `dataset` (options go to the DataLoader)."""
    return lambda: iterate(make_loader(dataset, batch_size, **options))


def time_epochs(datasets: dict[str, Dataset], *, batch_size: int = SEED_BATCH_SIZE, min_run_time: float = 0.2,
                memory: bool = True, **options) -> pd.DataFrame:
    """`bench.mark` of one epoch per dataset (one row each), with the items served per second."""
    table = bench.mark(min_run_time=min_run_time, num_threads=1, memory=memory,
                       **{name: epoch(dataset, batch_size, **options) for name, dataset in datasets.items()})
    table["items_per_s"] = [len(dataset) for dataset in datasets.values()] / table["median_s"]
    return table


def compare_batches(datasets: dict[str, Dataset], batch_size: int = SEED_BATCH_SIZE) -> pd.DataFrame:
    """Run every dataset through a DataLoader in the same order and compare each batch with the first's.

    One row per dataset: the batches seen, whether images and labels are equal
    to the first dataset's everywhere, and the largest pixel difference.
    """
    names = list(datasets)
    loaders = [make_loader(datasets[name], batch_size) for name in names]
    rows = {name: {"batches": 0, "same_images": True, "same_labels": True, "max_pixel_difference": 0.0}
            for name in names}
    for batches in zip(*loaders):
        reference_images, reference_labels = batches[0]
        for name, (images, labels) in zip(names, batches):
            row = rows[name]
            row["batches"] += 1
            same_shape = images.shape == reference_images.shape
            row["same_images"] &= same_shape and torch.equal(images, reference_images)
            row["same_labels"] &= torch.equal(labels, reference_labels)
            if same_shape:
                difference = (images - reference_images).abs().max().item()
                row["max_pixel_difference"] = max(row["max_pixel_difference"], difference)
    return pd.DataFrame.from_dict(rows, orient="index")


# ---------------------------------------------------------------- indexing calls


class CountingTensor:
    """A tensor that counts how often it is indexed.

    `t[index]` and `t.index_select(dim, index)` each count as one call in
    `calls`; `len(t)` and every other attribute (shape, dtype, ...) are the
    wrapped tensor's and are not counted. Put it where a dataset keeps its data
    to see how many indexing calls one batch costs.
    """

    def __init__(self, tensor):
        self.tensor = torch.as_tensor(tensor)
        self.calls = 0

    def __getitem__(self, index):
        self.calls += 1
        return self.tensor[index]

    def index_select(self, dim, index):
        self.calls += 1
        return self.tensor.index_select(dim, index)

    def __len__(self):
        return len(self.tensor)

    def __getattr__(self, name):
        if name == "tensor":  # not set yet (e.g. while unpickling): no wrapped tensor to ask
            raise AttributeError(name)
        return getattr(self.tensor, name)

    def __repr__(self):
        return f"CountingTensor(shape={tuple(self.tensor.shape)}, calls={self.calls})"


def indexing_calls(dataset: Dataset, batch_size: int = SEED_BATCH_SIZE) -> int:
    """How many times the DataLoader's first batch indexes the dataset's `images` tensor.

    Works on a shallow copy of the dataset, whose `images` is wrapped in a
    `CountingTensor`; the dataset itself is left as it was.
    """
    counted = copy.copy(dataset)
    counted.images = CountingTensor(dataset.images)
    next(iter(make_loader(counted, batch_size)))
    return counted.images.calls


# ---------------------------------------------------------------- memory bandwidth


def bytes_moved(*tensors: torch.Tensor) -> int:
    """Bytes a copy of the tensors reads plus writes: what the memory has to move.

    A batched fetch moves the images and the labels, a plain copy only the images.
    """
    return 2 * sum(tensor.nbytes for tensor in tensors)


def measure_bandwidth(images: torch.Tensor, labels: torch.Tensor, *, batch_size: int = 256,
                      min_run_time: float = 0.2) -> tuple[pd.DataFrame, float]:
    """Batched fetching (shuffled, one epoch) vs a plain memory copy of the same images.

    Returns the table (with GB/s: bytes read plus bytes written per second) and
    the fetch's rate as a fraction of the copy's: how close the data loader
    comes to the most this machine's memory can move.
    """
    dataset = BatchedTensorImages(images, labels)
    copy_target = torch.empty_like(images)
    table = bench.mark(
        min_run_time=min_run_time, num_threads=1, memory=False,
        memory_copy=lambda: copy_target.copy_(images),
        batched_fetch=epoch(dataset, batch_size, shuffle=True),
    )
    copied, fetched = bytes_moved(images), bytes_moved(images, labels)
    table["batch_size"] = [float("nan"), batch_size]
    table["items_per_s"] = len(images) / table["median_s"]
    table["gb_per_s"] = [copied / table.loc["memory_copy", "median_s"] / 1e9,
                         fetched / table.loc["batched_fetch", "median_s"] / 1e9]
    fraction = table.loc["batched_fetch", "gb_per_s"] / table.loc["memory_copy", "gb_per_s"]
    return table, float(fraction)


def _interleaved_medians(functions: dict, min_run_time: float, min_rounds: int = 5) -> dict[str, float]:
    """Median seconds per call, timing the functions in turns (one call each per round).

    On a shared machine the load changes from second to second; taking turns
    exposes every function to the same load, so their ratio stays fair.
    """
    for function in functions.values():
        function()  # warm-up: first allocations, lazy imports
    times = {name: [] for name in functions}
    start, rounds = time.perf_counter(), 0
    while rounds < min_rounds or time.perf_counter() - start < min_run_time:
        for name, function in functions.items():
            began = time.perf_counter()
            function()
            times[name].append(time.perf_counter() - began)
        rounds += 1
    return {name: float(pd.Series(values).median()) for name, values in times.items()}


def bandwidth_by_batch_size(images: torch.Tensor, labels: torch.Tensor, batch_sizes=(16, 64, 256), *,
                            min_run_time: float = 0.2) -> pd.DataFrame:
    """Batched fetching at several batch sizes as a fraction of a plain memory copy of the same images.

    The copy and the fetches are timed in turns, one intra-op thread, so that a
    change in the machine's load hits all of them alike. One row per batch size:
    GB/s (bytes read plus bytes written) of the fetch and of the copy, and their ratio.
    """
    dataset = BatchedTensorImages(images, labels)
    copy_target = torch.empty_like(images)
    functions = {"copy": lambda: copy_target.copy_(images)}
    functions.update({size: epoch(dataset, size, shuffle=True) for size in batch_sizes})
    with threads(1):
        medians = _interleaved_medians(functions, min_run_time * (len(batch_sizes) + 1))
    copy_rate = bytes_moved(images) / medians["copy"] / 1e9
    fetched = bytes_moved(images, labels)
    table = pd.DataFrame({"batch_size": list(batch_sizes),
                          "fetch_gb_per_s": [fetched / medians[size] / 1e9 for size in batch_sizes]})
    table["copy_gb_per_s"] = copy_rate
    table["fraction_of_copy"] = table["fetch_gb_per_s"] / copy_rate
    return table.set_index("batch_size")


# ---------------------------------------------------------------- worker processes


def _spin(_=None) -> float:
    start = time.perf_counter()
    total = 0
    for i in range(3_000_000):
        total += i
    return time.perf_counter() - start


def cores_delivered() -> float:
    """How many cores this machine gives us right now: one busy loop alone vs one per core at once.

    Worker processes can only help as far as other programs leave cores free;
    on a shared machine this is often far below the core count.
    """
    alone = min(_spin() for _ in range(2))
    with multiprocessing.Pool(cpu_cores()) as pool:
        start = time.perf_counter()
        pool.map(_spin, range(cpu_cores()))
        together = time.perf_counter() - start
    return cpu_cores() * alone / together


def measure_workers(datasets: dict[str, Dataset], counts=None, *, batch_size: int = SEED_BATCH_SIZE,
                    min_run_time: float = 0.2) -> pd.DataFrame:
    """Epoch time for each dataset and each `num_workers` in `counts` (default 0..cores).

    Workers are started afresh every epoch (the DataLoader's default). One row
    per dataset and count; `relative` is the epoch time over that dataset's
    time with 0 workers (below 1: the workers helped).
    """
    counts = list(counts if counts is not None else range(cpu_cores() + 1))
    if counts[0] != 0:
        raise ValueError(f"counts must start with 0 workers, the baseline; got {counts}")
    tables = []
    for label, dataset in datasets.items():
        runs = {f"{label}_workers_{n}": epoch(dataset, batch_size, num_workers=n) for n in counts}
        table = bench.mark(min_run_time=min_run_time, num_threads=1, memory=False, **runs)
        table["num_workers"] = counts
        table["dataset"] = label
        table["relative"] = table["median_s"] / table["median_s"].iloc[0]
        table["items_per_s"] = len(dataset) / table["median_s"]
        tables.append(table)
    return pd.concat(tables)


def worker_overhead(dataset: Dataset, *, batch_size: int = SEED_BATCH_SIZE, min_run_time: float = 0.2
                    ) -> pd.DataFrame:
    """Where one worker's cost goes: starting it every epoch vs sending the batches back.

    Rows: 0 workers; 1 worker started for each epoch; 1 persistent worker
    (`persistent_workers=True`, started once before the timing, so an epoch
    pays only for moving batches between processes).
    """
    # Started once here, stopped when this function returns and the loader is gone.
    persistent = make_loader(dataset, batch_size, num_workers=1, persistent_workers=True)
    table = bench.mark(
        min_run_time=min_run_time, num_threads=1, memory=False,
        **{"0 workers": epoch(dataset, batch_size),
           "1 worker, started per epoch": epoch(dataset, batch_size, num_workers=1),
           "1 worker, persistent": functools.partial(iterate, persistent)},
    )
    table["items_per_s"] = len(dataset) / table["median_s"]
    return table


# ---------------------------------------------------------------- moving batches to the GPU


def _epoch_to_device(dataset: Dataset, device: torch.device, batch_size: int, pin_memory: bool,
                     non_blocking: bool):
    def run():
        for images, labels in make_loader(dataset, batch_size, pin_memory=pin_memory):
            images.to(device, non_blocking=non_blocking)
            labels.to(device, non_blocking=non_blocking)
        if device.type == "cuda":
            torch.cuda.synchronize(device)  # time the copies, not just their launch
    return run


def measure_transfer(dataset: Dataset, device: torch.device | str, *, batch_size: int = 256,
                     min_run_time: float = 0.2) -> pd.DataFrame:
    """One epoch of batches moved to a CUDA device: from pageable memory, pinned, pinned + non_blocking.

    `pin_memory=True` makes the DataLoader copy each batch into page-locked
    memory, which the GPU can read directly; `non_blocking=True` then lets the
    copy run while Python goes on. Needs CUDA: pinning means nothing elsewhere.
    """
    device = torch.device(device)
    if device.type != "cuda":
        raise ValueError(f"pinned memory speeds up copies to a CUDA GPU; {device} is not one")
    table = bench.mark(
        min_run_time=min_run_time, num_threads=1, memory=False,
        pageable=_epoch_to_device(dataset, device, batch_size, pin_memory=False, non_blocking=False),
        pinned=_epoch_to_device(dataset, device, batch_size, pin_memory=True, non_blocking=False),
        pinned_non_blocking=_epoch_to_device(dataset, device, batch_size, pin_memory=True, non_blocking=True),
    )
    first_images, first_labels = dataset[0]
    nbytes = len(dataset) * (first_images.nbytes + first_labels.nbytes)
    table["gb_per_s"] = nbytes / table["median_s"] / 1e9
    return table
