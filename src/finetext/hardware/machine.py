"""The machine a measurement belongs to: what makes a timing valid elsewhere or not."""

from __future__ import annotations

import hashlib
import os
import platform
from dataclasses import asdict, dataclass
from functools import cache

import torch

# The CPU features that decide which matmul kernels run (bf16/int8 paths, vector width).
KERNEL_FLAGS = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_tile", "amx_int8",
                "avx_vnni", "asimd", "sve", "bf16", "i8mm")
# Environment variables that change which kernels PyTorch and oneDNN run (and so every timing).
KERNEL_ENV = ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY", "OMP_NUM_THREADS")


@dataclass(frozen=True)
class Machine:
    """A device as timings see it: the same Machine means the same kernels at the same speed."""

    device: str
    """'cpu' or 'cuda'."""
    name: str
    """The CPU model (from /proc/cpuinfo) or the GPU's name."""
    flags: tuple[str, ...]
    """The CPU's kernel-relevant flags (KERNEL_FLAGS it has)."""
    cores: int
    """Logical CPUs this process may use."""
    threads: int
    """torch's intra-op threads."""
    torch_version: str
    kernel_env: tuple[str, ...]
    """KERNEL_ENV variables that are set, as NAME=value."""

    def key(self) -> str:
        """A short stable id: cache entries measured on another machine (or torch) never match."""
        return hashlib.sha256(repr(sorted(asdict(self).items())).encode()).hexdigest()[:16]

    def describe(self) -> str:
        """One line for logs and bench output."""
        where = f"{self.name}, {self.cores} CPUs, {self.threads} threads" if self.device == "cpu" else self.name
        flags = f"; flags {' '.join(self.flags) or 'none known'}" if self.device == "cpu" else ""
        env = f"; {' '.join(self.kernel_env)}" if self.kernel_env else ""
        return f"{where}{flags}; torch {self.torch_version}{env}"


def current_machine() -> Machine:
    """This process's device: the first CUDA GPU if there is one, else the CPU."""
    env = tuple(f"{name}={os.environ[name]}" for name in KERNEL_ENV if os.environ.get(name))
    if torch.cuda.is_available():
        return Machine("cuda", torch.cuda.get_device_name(0), (), os.cpu_count() or 1, torch.get_num_threads(),
                       torch.__version__, env)
    name, flags = _cpu_info()
    return Machine("cpu", name, flags, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                   else os.cpu_count() or 1, torch.get_num_threads(), torch.__version__, env)


@cache
def _cpu_info() -> tuple[str, tuple[str, ...]]:
    name, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                key, _, value = line.partition(":")
                key = key.strip()
                if key in ("model name", "Hardware") and name in ("", platform.machine(), platform.processor()):
                    name = value.strip()
                elif key in ("flags", "Features") and not flags:
                    flags = set(value.split())
    except OSError:  # not Linux: the platform's own name, no flags
        pass
    return name, tuple(f for f in KERNEL_FLAGS if f in flags)
