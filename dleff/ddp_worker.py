"""Data-parallel training with DistributedDataParallel: the script every process runs.

Start it with torchrun, never directly (and never inside a notebook kernel):

    torchrun --standalone --nproc_per_node=2 train_ddp.py --out result.json

torchrun starts N copies of this script and gives each its RANK (0..N-1),
WORLD_SIZE (N) and LOCAL_RANK (its number on this machine) as environment
variables. Each copy builds the same model from the same seed, reads its own
shard of the data (DistributedSampler), and DDP averages the gradients across
all copies during backward (an all-reduce), so every copy takes the same
optimizer step and the weights stay identical. Rank 0 writes the measurements
to --out as JSON.

Tasks (--tasks, comma-separated):
  train      a few epochs per model; epoch times, each rank's shard, weights compared across ranks
             (with --reference-threads, all of it again with that many threads per process)
  allreduce  the time of one all-reduce for each gradient size in --sizes
  nosync     gradient accumulation over --accumulate micro-batches, with and without no_sync()
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from contextlib import nullcontext

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DistributedSampler

from dleff.data.datasets import BatchedTensorImages, make_loader
from dleff.data.images import mnist_subset
from dleff.models import CNN, MLP
from dleff.train import train_step

MODELS = {
    "cnn": lambda: CNN(1, 10, 28),
    "mlp": lambda: MLP(784, 10, hidden=(512, 512)),
}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, help="JSON file rank 0 writes its measurements to")
    parser.add_argument("--tasks", default="train", help="comma-separated: train, allreduce, nosync")
    parser.add_argument("--models", default="cnn,mlp", help=f"comma-separated, from {', '.join(MODELS)}")
    parser.add_argument("--samples", type=int, default=2048, help="training images (shared by all ranks)")
    parser.add_argument("--batch-size", type=int, default=64, help="global batch: split across the ranks")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch threads in each process")
    parser.add_argument("--reference-threads", type=int, default=0,
                        help="train again with this many threads, for reference (0: don't)")
    parser.add_argument("--sizes", default="1000,10000,100000,1000000", help="all-reduce sizes (floats)")
    parser.add_argument("--accumulate", type=int, default=4, help="micro-batches per optimizer step (nosync)")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    # NCCL needs one GPU per process; with fewer GPUs than processes, gloo runs on the CPU.
    use_cuda = torch.cuda.is_available() and torch.cuda.device_count() >= int(os.environ["LOCAL_WORLD_SIZE"])
    dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    device = torch.device(f"cuda:{os.environ['LOCAL_RANK']}" if use_cuda else "cpu")
    if use_cuda:
        torch.cuda.set_device(device)
    result = {"world_size": world, "threads": args.threads, "backend": dist.get_backend(), "device": device.type}
    tasks = args.tasks.split(",")
    if "train" in tasks:
        result["train"] = {name: train(name, args, device) for name in args.models.split(",")}
        if args.reference_threads:
            torch.set_num_threads(args.reference_threads)
            result["reference_threads"] = args.reference_threads
            result["train_reference"] = {name: train(name, args, device) for name in args.models.split(",")}
            torch.set_num_threads(args.threads)
    if "allreduce" in tasks:
        result["allreduce"] = allreduce_times([int(size) for size in args.sizes.split(",")], device)
    if "nosync" in tasks:
        result["nosync"] = accumulation(args, device)
    if rank == 0:
        with open(args.out, "w") as file:
            json.dump(result, file, indent=1)
    # Tear down together: a rank whose gloo threads are still talking while its peer destroys the group,
    # or are destroyed during interpreter shutdown, can abort the process ("terminate called without an
    # active exception", seen once here after the result was written). So wait for every rank, destroy
    # the group, and leave without Python's shutdown: the result is on disk and nothing else is pending.
    dist.barrier()
    dist.destroy_process_group()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def train(name: str, args: argparse.Namespace, device: torch.device) -> dict:
    rank, world = dist.get_rank(), dist.get_world_size()
    if args.batch_size % world:
        raise SystemExit(f"--batch-size {args.batch_size} does not split evenly over {world} processes")
    digits = mnist_subset(limit=args.samples)
    images = digits.images.flatten(1) if name == "mlp" else digits.images
    dataset = BatchedTensorImages(images, digits.labels)
    # Each rank gets every world-th index of one shuffled order: its own shard, same size on every rank.
    sampler = DistributedSampler(dataset, num_replicas=world, rank=rank, shuffle=True, seed=0)
    loader = make_loader(dataset, batch_size=args.batch_size // world, sampler=sampler)
    torch.manual_seed(0)  # the same initial weights on every rank (DDP also broadcasts rank 0's)
    model = DistributedDataParallel(MODELS[name]().to(device))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    epoch_seconds, losses = [], []
    for epoch in range(args.epochs):
        sampler.set_epoch(epoch)  # a new shuffle each epoch, the same on every rank
        dist.barrier()
        start = time.perf_counter()
        total = torch.zeros((), device=device)
        for X, y in loader:
            # the course's one training step; inside backward, DDP all-reduces (averages) the gradients
            loss, _ = train_step(model, optimizer, X.to(device), y.to(device))
            total += loss
        dist.barrier()
        epoch_seconds.append(time.perf_counter() - start)
        losses.append(total.item() / len(loader))
    return {
        "parameters": sum(p.numel() for p in model.parameters()),
        "epoch_s": epoch_seconds,
        "final_loss": losses[-1],
        "batch_per_rank": args.batch_size // world,
        "shards": shard_report(list(sampler), len(dataset)),
        "max_weight_difference": weight_difference(model),
    }


def shard_report(my_indices: list[int], dataset_size: int) -> dict:
    """Gather every rank's sample indices of one epoch: are the shards disjoint and do they cover the data?"""
    shards: list[list[int]] = [None] * dist.get_world_size()
    dist.all_gather_object(shards, my_indices)
    seen = [index for shard in shards for index in shard]
    return {"sizes": [len(shard) for shard in shards], "first_indices": [shard[:5] for shard in shards],
            "overlap": len(seen) - len(set(seen)), "covered": len(set(seen)), "dataset_size": dataset_size}


def weight_difference(model: nn.Module) -> float:
    """Largest absolute difference between this rank's weights and rank 0's, over all ranks."""
    mine = torch.cat([p.detach().flatten() for p in model.parameters()])
    reference = mine.clone()
    dist.broadcast(reference, src=0)
    difference = (mine - reference).abs().max()
    dist.all_reduce(difference, op=dist.ReduceOp.MAX)
    return difference.item()


def allreduce_times(sizes: list[int], device: torch.device, repeats: int = 10) -> list[dict]:
    rows = []
    for size in sizes:
        tensor = torch.ones(size, device=device)
        times = []
        for attempt in range(repeats + 2):  # the first two warm up the connection and buffers
            dist.barrier()
            start = time.perf_counter()
            dist.all_reduce(tensor)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            if attempt >= 2:
                times.append(time.perf_counter() - start)
        rows.append({"numel": size, "bytes": size * tensor.element_size(), "median_s": statistics.median(times),
                     "min_s": min(times), "max_s": max(times)})
    return rows


def accumulation(args: argparse.Namespace, device: torch.device) -> dict:
    """`accumulate` micro-batches per step: all-reduce after each one, or only after the last (no_sync)."""
    rank, world = dist.get_rank(), dist.get_world_size()
    digits = mnist_subset(limit=args.samples)
    X_all, y_all = digits.images.flatten(1).to(device), digits.labels.to(device)
    micro = args.batch_size // world
    torch.manual_seed(0)
    model = DistributedDataParallel(MODELS["mlp"]().to(device))
    steps = max(2, len(X_all) // (micro * args.accumulate * world))
    report = {"accumulate": args.accumulate, "steps": steps}
    gradients = {}
    for mode in ("sync_every_micro_batch", "no_sync", "sync_every_micro_batch", "no_sync"):
        times = []
        for step in range(steps):
            model.zero_grad()
            dist.barrier()
            start = time.perf_counter()
            for part in range(args.accumulate):
                # this rank's rows of micro-batch `part` of step `step`
                first = ((step * args.accumulate + part) * world + rank) * micro
                X, y = X_all[first:first + micro], y_all[first:first + micro]
                last = part == args.accumulate - 1
                with model.no_sync() if mode == "no_sync" and not last else nullcontext():
                    (nn.functional.cross_entropy(model(X), y) / args.accumulate).backward()
            dist.barrier()
            times.append(time.perf_counter() - start)
        # the same data both ways: the accumulated gradients of the last step must agree
        gradients[mode] = torch.cat([p.grad.flatten() for p in model.parameters()]).clone()
        report.setdefault(mode, []).extend(times)
    report["max_gradient_difference"] = (gradients["no_sync"] - gradients["sync_every_micro_batch"]).abs().max().item()
    return report


if __name__ == "__main__":
    main()
