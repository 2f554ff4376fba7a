"""Warm kernels: one sandbox per student, one fork server in it, one forked kernel per notebook.

Starting a kernel and importing torch costs ~2-3 s of CPU, more than most quizzes' cells. A
grader that starts a fresh sandboxed kernel per notebook spends most of a class's grading time
there. Here each student's quizzes are graded one after another in *one* sandbox (the same
bubblewrap box as `sandbox.Sandbox` builds, with the same limits), where `forkserver` has
imported what the quizzes import; every notebook gets its own kernel, forked from it: fresh
process, fresh namespace, modules already loaded.

What this keeps of the per-notebook sandbox: students never share a sandbox (their kernels
cannot see, signal or outlive into another student's), the course is as invisible as before,
the network as absent, the memory and process limits as tight. What differs, within one
student's sandbox only: their quizzes run one after another beside a server their code could
reach, and /tmp lives on between them. Nothing a student's kernel can do there reaches the
grade: answers are judged outside, against values the grader computes. After each notebook the
grader ends, from outside, every process the notebook started, and empties the scratch folder.
"""

from __future__ import annotations

import ast
import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path

import nbformat
from jupyter_client.kernelspec import KernelSpec
from jupyter_client.manager import AsyncKernelManager

from dleff.quiz import GRADED_STUDENT_ENV
from dleff_instructor import sandbox

SERVER = Path(__file__).with_name("forkserver.py")
INSIDE_SERVER = "/opt/dleff-grader/forkserver.py"
READY_TIMEOUT = 120.0  # seconds for the server to import torch and the quizzes' modules
ALWAYS = ["torch", "ipykernel.kernelapp", "dleff.quiz"]


def quiz_imports(root: Path, quiz_ids: list[str]) -> list[str]:
    """The modules the released quizzes import at top level (what the server imports once)."""
    modules = dict.fromkeys(ALWAYS)
    for quiz_id in quiz_ids:
        for path in sorted((root / "quizzes" / quiz_id).glob("*.ipynb")):
            for cell in nbformat.read(path, as_version=4).cells:
                if cell.cell_type != "code":
                    continue
                try:
                    tree = ast.parse(cell.source)
                except SyntaxError:
                    continue
                for node in tree.body:
                    if isinstance(node, ast.Import):
                        modules.update(dict.fromkeys(alias.name for alias in node.names))
                    elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                        modules[node.module] = None
                        # `from dleff import bench` imports the submodule dleff.bench
                        modules.update(dict.fromkeys(f"{node.module}.{alias.name}" for alias in node.names))
    return list(modules)


def _children(pid: int) -> list[int]:
    found = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as handle:
                found += [int(child) for child in handle.read().split()]
    except (FileNotFoundError, ProcessLookupError):
        pass
    return found


def _descendants(pid: int) -> list[int]:
    found, todo = [], _children(pid)
    while todo:
        child = todo.pop()
        found.append(child)
        todo += _children(child)
    return found


def _namespace_pid(pid: int) -> int | None:
    """`pid`'s number in its innermost PID namespace (the last field of NSpid)."""
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith("NSpid:"):
                    return int(line.split()[-1])
    except FileNotFoundError:
        return None
    return None


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks: with the pid, it names one process (pids are reused)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None if fields[0] in "ZX" else fields[19]


class ForkedKernel:
    """A forked kernel, seen from outside as jupyter_client sees a `subprocess.Popen`."""

    stdin = stdout = stderr = None

    def __init__(self, pid: int):
        self.pid = pid
        self._started = _start_time(pid)
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None and (self._started is None or _start_time(self.pid) != self._started):
            self.returncode = -signal.SIGKILL  # ended (reaped by the server, or a zombie): the code is its
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired("forked kernel", timeout)
            time.sleep(0.02)
        return self.returncode

    def send_signal(self, signum: int) -> None:
        if self.poll() is None:
            try:
                os.kill(self.pid, signum)
            except ProcessLookupError:
                pass

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)


class WarmKernels:
    """One student's sandbox with a fork server; `kernel_manager()` gives each notebook its kernel."""

    _counter = itertools.count()

    def __init__(self, course: Path, student: str, modules: list[str], limits: sandbox.Limits,
                 bwrap: str | None):
        self.student, self.modules, self.bwrap = student, modules, bwrap
        self.box = sandbox.Sandbox(course, limits, bwrap or "")
        self.control = self.box.runtime / "forkserver.sock"
        self.process: subprocess.Popen | None = None
        self.server_pid: int | None = None
        self.starts = 0
        self._oom_seen = 0

    # ------------------------------------------------------------------ the server
    def _command(self) -> list[str]:
        server = [sandbox.interpreter(), INSIDE_SERVER if self.bwrap else str(SERVER), str(self.control),
                  *self.modules]
        if not self.bwrap:
            return server
        # the server is the sandbox's init: a kernel cannot kill its parent (and so every kernel after it)
        return self.box.command(server, binds=[(SERVER, INSIDE_SERVER)], as_pid_1=True)

    def start(self) -> None:
        """Start the server and wait until it has imported the quizzes' modules."""
        self.starts += 1
        env = None
        if not self.bwrap:  # unsandboxed (UNSAFE=1): the grader's environment, as a cold kernel gets it
            env = dict(os.environ, **{GRADED_STUDENT_ENV: self.student})
        log = (self.box.scratch / "server.log").open("ab")
        self.process = subprocess.Popen(self._command(), stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                        env=env, cwd=self.box.quiz, start_new_session=True)
        log.close()
        deadline = time.monotonic() + READY_TIMEOUT
        while not self.control.exists():
            if self.process.poll() is not None or time.monotonic() > deadline:
                tail = (self.box.scratch / "server.log").read_text(errors="replace")[-2000:]
                self.close()
                raise RuntimeError(f"the grading fork server did not start: {tail}")
            time.sleep(0.02)
        self.server_pid = self._find_server()
        self._raise_memory_limit()

    def _find_server(self) -> int:
        """The server's pid as the grader sees it (inside bwrap it is a grandchild of `process`)."""
        if not self.bwrap:
            return self.process.pid
        for pid in _descendants(self.process.pid):
            try:
                if Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[1:2] == [INSIDE_SERVER.encode()]:
                    return pid
            except (FileNotFoundError, IndexError):
                continue
        raise RuntimeError("the grading fork server started but cannot be found among its sandbox's processes")

    def _raise_memory_limit(self) -> None:
        """The memory group counts the server's imports too: each kernel keeps its whole budget."""
        for group in self.box.cgroups:
            usage, limit = group / "memory.usage_in_bytes", group / "memory.limit_in_bytes"
            if usage.exists():
                limit.write_text(str(int(usage.read_text()) + self.box.limits.memory))

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None and self.control.exists() and (
            self.server_pid is not None and _start_time(self.server_pid) is not None)

    def close(self) -> None:
        """End the sandbox and everything in it; remove its folders and groups."""
        if self.process is not None:
            for pid in [*_descendants(self.process.pid), self.process.pid]:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            self.process.wait()
            self.process = None
        self.box.cleanup()

    # ------------------------------------------------------------------ one notebook
    def prepare(self, folder: Path | None, name: str, text: str) -> None:
        """An empty scratch folder with this notebook's copy and its quiz's public files."""
        for item in self.box.quiz.iterdir():
            if item.is_dir() and not item.is_symlink():
                shutil.rmtree(item, ignore_errors=True)
            else:
                item.unlink(missing_ok=True)
        self.box.add_files(folder, name, text)

    def fork(self, connection_file: str, log: Path, arguments: list[str] = ()) -> ForkedKernel:
        """A new kernel on `connection_file`; `arguments`: more of ipykernel's command-line options."""
        cwd = sandbox.INSIDE_QUIZ if self.bwrap else str(self.box.quiz)
        request = {"connection_file": connection_file, "cwd": cwd, "log": str(log), "arguments": list(arguments)}
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
            client.settimeout(30)
            client.connect(str(self.control))
            client.sendall((json.dumps(request) + "\n").encode())
            reply = json.loads(client.makefile().readline())
        self._oom_seen = self.box.oom_kills()
        inner = int(reply["pid"])
        if not self.bwrap:
            return ForkedKernel(inner)
        for _ in range(100):  # the child is the server's until it is reaped
            for pid in _children(self.server_pid):
                if _namespace_pid(pid) == inner:
                    return ForkedKernel(pid)
            time.sleep(0.01)
        raise RuntimeError("the forked kernel ended before it could be seen")

    def end_notebook(self) -> None:
        """Kill everything the notebook started (detached or not); the server stays."""
        if self.server_pid is None:
            return
        for _ in range(20):  # a process that forks while being killed leaves children: go again
            left = _descendants(self.server_pid)
            if not left:
                return
            for pid in left:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.01)

    def out_of_memory(self) -> bool:
        """Did this notebook's kernel run out of the sandbox's memory since it was forked?"""
        return self.box.oom_kills() > self._oom_seen

    def kernel_manager(self, **kwargs) -> WarmKernelManager:
        if not self.alive():  # first notebook, or a notebook killed the server: a fresh sandbox
            if self.process is not None:
                self.close()
                self.box = sandbox.Sandbox(self.box.course, self.box.limits, self.bwrap or "")
                self.control = self.box.runtime / "forkserver.sock"
            self.start()
        return WarmKernelManager(warm=self, number=next(self._counter), **kwargs)


class WarmKernelManager(AsyncKernelManager):
    """A kernel forked by the student's fork server, reached over `ipc` sockets in its runtime folder."""

    def __init__(self, *args, warm: WarmKernels, number: int, **kwargs):
        super().__init__(*args, **kwargs)
        self.warm = warm
        self.sandbox = warm  # SealedExecute asks it `out_of_memory()`
        self.transport = "ipc"
        self.ip = str(warm.box.runtime / f"k{number}")
        self.connection_file = str(warm.box.runtime / f"k{number}.json")
        self._log = warm.box.runtime / f"k{number}.log"
        self._kernel_spec = KernelSpec(argv=[sandbox.interpreter(), "-m", "ipykernel_launcher", "-f",
                                             "{connection_file}"],
                                       display_name="Python 3 (sandboxed, forked)", language="python",
                                       interrupt_mode="message")

    @property
    def kernel_spec(self):
        return self._kernel_spec

    async def _async_launch_kernel(self, kernel_cmd, **kw):
        # what a started kernel would get after its connection file (nbgrader: an in-memory history)
        arguments = kernel_cmd[kernel_cmd.index("-f") + 2:] if "-f" in kernel_cmd else []
        process = self.warm.fork(self.connection_file, self._log, arguments)
        provisioner = self.provisioner
        provisioner.process, provisioner.pid, provisioner.pgid = process, process.pid, None
        self._reconcile_connection_info(provisioner.connection_info)

    async def _async_cleanup_resources(self, restart: bool = False) -> None:
        try:
            await super()._async_cleanup_resources(restart=restart)
        finally:
            self.warm.end_notebook()

    cleanup_resources = _async_cleanup_resources


_GRADING: dict[str, tuple[list[str], WarmKernels | None]] = {}  # student -> (their quizzes, their kernels)


@contextmanager
def one_student(student: str, quiz_ids: list[str]):
    """Within it, `kernels_for(student, ...)` grades this student's quizzes with warm kernels."""
    _GRADING[student] = (quiz_ids, None)
    try:
        yield
    finally:
        _, kernels = _GRADING.pop(student)
        if kernels is not None:
            kernels.close()


def kernels_for(student: str, course: Path, limits: sandbox.Limits, bwrap: str | None) -> WarmKernels | None:
    """The warm kernels of `student`, started on first use, if their quizzes are graded in `one_student`."""
    if student not in _GRADING:
        return None
    quiz_ids, kernels = _GRADING[student]
    if kernels is None:
        kernels = WarmKernels(course, student, quiz_imports(course, quiz_ids), limits, bwrap)
        _GRADING[student] = (quiz_ids, kernels)
    return kernels
