"""Section 11's launcher and training script: one real 2-process run, and launches that must not hang."""

import os
import signal

import pytest

from dleff import ddp


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory):
    """One launch of the lesson's script with 2 processes (gloo on the CPU), shared by the tests below."""
    folder = tmp_path_factory.mktemp("ddp")
    script = ddp.write_script(folder)
    return ddp.launch(script, 2, "--tasks", "train,allreduce,nosync", "--models", "mlp", "--samples", "256",
                      "--epochs", "1", "--batch-size", "32", "--sizes", "10,1000", "--accumulate", "2",
                      threads=1, out=folder / "result.json", timeout=240).result


def test_each_rank_trains_on_its_own_shard(two_processes):
    assert two_processes["world_size"] == 2
    mlp = two_processes["train"]["mlp"]
    shards = mlp["shards"]
    assert shards["sizes"] == [128, 128] and mlp["batch_per_rank"] == 16
    assert shards["overlap"] == 0 and shards["covered"] == shards["dataset_size"] == 256


def test_weights_are_identical_across_ranks_after_training(two_processes):
    assert two_processes["train"]["mlp"]["max_weight_difference"] == 0.0
    assert len(two_processes["train"]["mlp"]["epoch_s"]) == 1


def test_no_sync_accumulates_the_same_gradients(two_processes):
    nosync = two_processes["nosync"]
    assert nosync["max_gradient_difference"] < 1e-6
    assert len(nosync["no_sync"]) == len(nosync["sync_every_micro_batch"]) == 2 * nosync["steps"]


def test_allreduce_is_timed_for_each_size(two_processes):
    rows = two_processes["allreduce"]
    assert [row["numel"] for row in rows] == [10, 1000]
    assert all(0 < row["min_s"] <= row["median_s"] <= row["max_s"] for row in rows)


def test_a_hanging_launch_is_stopped_with_its_workers(tmp_path):
    script = tmp_path / "hang.py"
    pid_file = tmp_path / "worker.pid"
    script.write_text(f"import os, time\nopen({str(pid_file)!r}, 'w').write(str(os.getpid()))\ntime.sleep(600)\n")
    with pytest.raises(ddp.LaunchError, match="did not finish within 20 s"):
        ddp.launch(script, 1, threads=1, out=tmp_path / "never.json", timeout=20)
    worker = int(pid_file.read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(worker, signal.SIG_DFL)  # signal 0: only asks whether the process still exists


def test_a_failing_launch_says_why(tmp_path):
    script = tmp_path / "fail.py"
    script.write_text("raise SystemExit('no data here')\n")
    with pytest.raises(ddp.LaunchError, match="(?s)exited with code 1.*no data here"):
        ddp.launch(script, 1, out=tmp_path / "none.json", timeout=120)


def test_commands():
    command = ddp.torchrun_command("train.py", 2, "--epochs", "1")
    assert command[1:] == ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "train.py",
                           "--epochs", "1"]
    with pytest.raises(ValueError, match="positive integer"):
        ddp.torchrun_command("train.py", 0)
    multinode = ddp.multinode_command("train.py", nnodes=2, nproc=4, endpoint="10.0.0.1:29400")
    assert multinode.startswith("torchrun --nnodes=2 --nproc_per_node=4")
    assert "--rdzv-endpoint=10.0.0.1:29400" in multinode and "--standalone" not in multinode
