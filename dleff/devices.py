"""Which device to train on, how many CPU threads to use, and what machine this is."""

from __future__ import annotations

import os
import platform
from contextlib import contextmanager

import torch

KNOWN_DEVICES = ("auto", "cpu", "cuda", "mps")


def cuda_available() -> bool:
    return torch.cuda.is_available()


def mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend and backend.is_available())


def available_devices() -> list[str]:
    """The device names this machine can run on, fastest first."""
    names = []
    if cuda_available():
        names.append("cuda")
    if mps_available():
        names.append("mps")
    names.append("cpu")
    return names


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """Turn "auto", "cpu", "cuda" (or "cuda:1") or "mps" into a usable torch.device.

    "auto" prefers cuda, then mps, then cpu. Asking for a device this machine
    lacks raises a ValueError that lists what is available.
    """
    if isinstance(device, torch.device):
        device = str(device)
    if not isinstance(device, str):
        raise TypeError(f"device must be a string such as 'auto' or 'cpu', got {device!r}")
    name = device.strip().lower()
    kind = name.split(":", 1)[0]
    available = available_devices()
    if kind not in KNOWN_DEVICES:
        raise ValueError(
            f"Unknown device {device!r}. Pass one of {', '.join(KNOWN_DEVICES)}; "
            f"on this machine the available devices are: {', '.join(available)}."
        )
    if kind == "auto":
        return torch.device(available[0])
    if kind not in available:
        raise ValueError(
            f"Device {device!r} is not available on this machine "
            f"(available: {', '.join(available)}). Pass device='auto' to use the best "
            f"available one, or device='cpu'."
        )
    if kind == "cuda" and ":" in name:
        index = int(name.split(":", 1)[1])
        if index >= torch.cuda.device_count():
            raise ValueError(
                f"Device {device!r} does not exist: this machine has "
                f"{torch.cuda.device_count()} CUDA device(s), numbered from 0."
            )
    return torch.device(name)


def cpu_cores() -> int:
    """Cores this process may run on (respects CPU affinity and container limits)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS and Windows have no affinity call
        return os.cpu_count() or 1


def get_threads() -> int:
    return torch.get_num_threads()


def set_threads(count: int) -> int:
    """Set torch's intra-op thread count and return the previous value."""
    if not isinstance(count, int) or count < 1:
        raise ValueError(f"the number of threads must be a positive integer, got {count!r}")
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    return previous


@contextmanager
def threads(count: int):
    """Run a block with `count` intra-op threads, then restore the old setting."""
    previous = set_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def device_label(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    if device.type == "mps":
        return "mps (Apple GPU)"
    return f"cpu ({platform.processor() or platform.machine()})"


def describe_machine(device: str = "auto") -> dict:
    """The context every measured number in the course needs."""
    resolved = resolve_device(device)
    return {
        "cores": cpu_cores(),
        "threads": get_threads(),
        "device": device_label(resolved),
        "available_devices": available_devices(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": f"{platform.system()} {platform.machine()}",
    }


def machine_summary(device: str = "auto") -> str:
    info = describe_machine(device)
    return (
        f"This machine: {info['cores']} CPU cores ({info['threads']} torch threads), "
        f"device {info['device']}, torch {info['torch']}, Python {info['python']} "
        f"on {info['platform']}"
    )


@contextmanager
def seeded(seed: int):
    """Run a block with torch's global random generator seeded, then give back the old random state.

    Cells that want repeatable weights use this instead of a bare `torch.manual_seed`, so the
    seed does not leak into every later cell of the lesson.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


@contextmanager
def default_dtype(dtype: torch.dtype):
    """Run a block with another default floating-point type, then restore the old one."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


def cpu_flags() -> set[str]:
    """The CPU's feature flags as Linux reports them (empty where /proc/cpuinfo does not exist)."""
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith(("flags", "Features")):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def bfloat16_support(device: str | torch.device = "cpu") -> str:
    """Whether this processor computes bfloat16 natively, in one sentence.

    Without native units, bfloat16 autocast on the CPU converts every number to float32 and
    back around each operation, which can make it far slower than float32.
    """
    resolved = resolve_device(device)
    if resolved.type == "cuda":
        major, minor = torch.cuda.get_device_capability(resolved)
        name = torch.cuda.get_device_name(resolved)
        if major >= 8:
            return f"native: {name} (compute capability {major}.{minor}) has bfloat16 tensor cores"
        if major >= 7:
            return (f"not native for bfloat16: {name} (compute capability {major}.{minor}) has float16 "
                    f"tensor cores only")
        return f"not native: {name} (compute capability {major}.{minor}) has no tensor cores"
    if resolved.type == "mps":
        return "Apple GPU: bfloat16 support depends on the chip and macOS version"
    flags = cpu_flags()
    native = sorted(flags & {"avx512_bf16", "amx_bf16"})
    if native:
        return f"native: this CPU has {' and '.join(native)}"
    if platform.machine().lower() in ("arm64", "aarch64"):
        return ("this ARM CPU reports " + ("bf16 instructions" if "bf16" in flags else "no bf16 instructions")
                + " (native bfloat16 needs them)")
    if flags:
        widest = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "no AVX2"
        return f"not native: this CPU has {widest} but neither AVX-512-BF16 nor AMX, so bfloat16 is emulated"
    return "unknown: this system does not report CPU features"


def cxx_compiler() -> str | None:
    """The C++ compiler torch.compile's CPU backend would call, or None if there is none."""
    import shutil

    for name in (os.environ.get("CXX"), "c++", "g++", "clang++"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


def compiler_support() -> str:
    """One sentence on what torch.compile can do for the CPU here."""
    compiler = cxx_compiler()
    if compiler:
        return f"a C++ compiler is installed ({compiler}), so torch.compile can generate CPU code"
    return ("no C++ compiler found (install one: conda's `compilers`, or g++/clang from your system), "
            "so torch.compile cannot generate CPU code")
