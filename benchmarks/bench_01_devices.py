"""Section 01: matmul on CPU vs accelerator, and thread scaling over 1..cores."""

from pathlib import Path

import torch

from dleff import bench, devices


def main(out_dir: Path) -> None:
    x = torch.randn(2048, 2048)
    cores = devices.cpu_cores()
    scaling = bench.thread_scaling(lambda: x @ x, counts=range(1, cores + 1), min_run_time=1.0,
                                   min_runs=5)
    scaling.to_csv(out_dir / "01_thread_scaling.csv", index=False)
    (out_dir / "01_thread_scaling.md").write_text(scaling.round(4).to_markdown(index=False))
    bench.plot_scaling(scaling, title=f"2048x2048 matmul, {cores} cores").savefig(out_dir / "01_thread_scaling.png")
    bench.record_figure("devices.threads_speedup", bench.ratio_figure(scaling.attrs["marks"], "1 threads",
                                                                     f"{cores} threads"), threads=cores)
    print(scaling.round(3).to_string(index=False))

    accelerator = devices.resolve_device("auto")
    if accelerator.type != "cpu":
        x_acc = x.to(accelerator)
        table = bench.mark(min_run_time=1.0, min_runs=5, cpu=lambda: x @ x, accelerator=lambda: x_acc @ x_acc)
        bench.record_figure("devices.accelerator_vs_cpu", bench.ratio_figure(table, "cpu", "accelerator"))
        print(bench.pretty(table))
