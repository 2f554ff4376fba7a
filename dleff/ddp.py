"""Launching data-parallel training with torchrun from a notebook or a test, safely.

DistributedDataParallel needs one operating-system process per replica, so it
cannot run inside a notebook kernel: the lesson writes a script
(`dleff/ddp_worker.py`, copied next to the lesson's outputs) and starts it with
torchrun as a subprocess. Every launch here

- uses `--standalone`: the rendezvous binds port 0, so the operating system
  hands it a free port and two launches never collide;
- has a timeout, after which torchrun is told to stop its workers and then
  killed, so a stuck collective cannot hang a lesson or a test;
- pins the number of torch threads per process (torchrun would otherwise set
  OMP_NUM_THREADS=1 behind your back).
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

WORKER = Path(__file__).with_name("ddp_worker.py")


class LaunchError(RuntimeError):
    """A torchrun launch failed or ran out of time; the message holds the end of its output."""


@dataclass(frozen=True)
class Launch:
    result: dict
    seconds: float
    command: list[str]


def write_script(folder: Path | str, name: str = "train_ddp.py") -> Path:
    """Write the data-parallel training script into `folder`; returns its path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(WORKER.read_text())
    return path


def torchrun_command(script: Path | str, nproc: int, *script_args: str) -> list[str]:
    """`torchrun --standalone --nproc_per_node=nproc script ...`, run by this Python interpreter.

    `python -m torch.distributed.run` is what the `torchrun` command runs; calling it
    through sys.executable makes sure the workers use this environment's torch.
    """
    if not isinstance(nproc, int) or nproc < 1:
        raise ValueError(f"nproc must be a positive integer, got {nproc!r}")
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
            str(script), *script_args]


def multinode_command(script: str, *script_args: str, nnodes: int, nproc: int, endpoint: str,
                      job_id: str = "dleff") -> str:
    """The command to type on each of `nnodes` machines for one job across all of them (not run here).

    Every machine runs the same line; they meet at `endpoint` (host:port of one
    of them, reachable from all), and torchrun numbers the processes 0..nnodes*nproc-1.
    """
    return shlex.join(["torchrun", f"--nnodes={nnodes}", f"--nproc_per_node={nproc}", "--rdzv-backend=c10d",
                       f"--rdzv-endpoint={endpoint}", f"--rdzv-id={job_id}", script, *script_args])


def launch(script: Path | str, nproc: int, *script_args: str, threads: int = 1, out: Path | str,
           timeout: float = 180.0) -> Launch:
    """Run `script` under torchrun with `nproc` processes of `threads` threads; returns rank 0's JSON.

    The script must accept `--out FILE --threads N` and write its result to FILE
    (as the lesson's script does). Raises LaunchError, with the end of the
    output, when the launch fails or takes longer than `timeout` seconds.
    """
    out = Path(out)
    out.unlink(missing_ok=True)
    command = torchrun_command(script, nproc, *script_args, "--out", str(out), "--threads", str(threads))
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONUNBUFFERED": "1"}
    start = time.perf_counter()
    # Output goes to a file, not a pipe: a worker that outlives torchrun cannot block our read.
    with tempfile.TemporaryFile("w+") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, text=True, env=env,
                                   start_new_session=True)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _stop(process)
            log.seek(0)
            raise LaunchError(f"torchrun did not finish within {timeout:.0f} s and was stopped; "
                              f"last output:\n{_tail(log.read())}") from None
        log.seek(0)
        output = log.read()
    seconds = time.perf_counter() - start
    if process.returncode != 0 or not out.exists():
        raise LaunchError(f"torchrun exited with code {process.returncode}; last output:\n{_tail(output)}")
    return Launch(json.loads(out.read_text()), seconds, command)


def _stop(process: subprocess.Popen, grace: float = 15.0) -> None:
    """Stop torchrun and its workers: SIGTERM first, then SIGKILL to the whole process group.

    torchrun starts each worker in a session of its own, so killing torchrun's
    group alone would leave the workers running; on SIGTERM torchrun stops
    them itself before it exits.
    """
    process.terminate()
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        pass
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass  # already gone
    process.wait()


def _tail(output: str, lines: int = 80) -> str:
    # enough lines to reach past torchrun's own report to the worker's error above it
    return "\n".join((output or "").strip().splitlines()[-lines:])
