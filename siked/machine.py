"""What a number was measured on: the CPU, the instruction sets that change its speed and
rounding, cores, memory, and the versions of the libraries that compute it.

One description for the run manifest (:mod:`siked.manifest`) and every benchmark's JSON
(``benchmarks/``). Standard library only: nothing here imports torch.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
from pathlib import Path
from typing import Any

#: Libraries whose versions are recorded: siked, the training stack and every engine's package.
TRACKED_PACKAGES = (
    "siked",
    "torch",
    "transformers",
    "trl",
    "peft",
    "accelerate",
    "datasets",
    "openai",
    "vllm",
    "openvino",
    "openvino-genai",
    "math-verify",
)

#: CPU flags (as /proc/cpuinfo names them) that change a CPU's numbers: AVX2 / AVX-512 pick
#: the matmul kernels, AVX512-VNNI and AVX512-BF16 / AMX the native int8 and bf16 paths.
ISA_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8")

#: the flags of a CPU that computes bf16 natively: where ``dtype: auto`` and ``train.bf16: null``
#: compute in bf16 (elsewhere in float32)
NATIVE_BF16 = ("avx512_bf16", "amx_bf16")


def native_bf16(isa: list[str]) -> bool:
    """Whether a CPU with these instruction sets (:data:`ISA_FLAGS`) computes bf16 natively.

    >>> native_bf16(["avx2", "avx512f", "avx512_bf16"]), native_bf16(["avx2"])
    (True, False)
    """
    return any(flag in isa for flag in NATIVE_BF16)


def library_versions() -> dict[str, str | None]:
    """Python's version and each of :data:`TRACKED_PACKAGES`' (None: not installed)."""
    out: dict[str, str | None] = {"python": platform.python_version()}
    for pkg in TRACKED_PACKAGES:
        try:
            out[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            out[pkg] = None
    return out


def parse_cpuinfo(text: str) -> tuple[str | None, list[str]]:
    """(model name, the :data:`ISA_FLAGS` present) of a ``/proc/cpuinfo`` text."""
    model = None
    flags: set[str] = set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and model is None:
            model = value.strip()
        elif key == "flags" and not flags:
            flags = set(value.split())
    return model, [f for f in ISA_FLAGS if f in flags]


def memory_gb(meminfo: str) -> float | None:
    """Total memory in GB (10^9 bytes) of a ``/proc/meminfo`` text."""
    for line in meminfo.splitlines():
        if line.startswith("MemTotal:"):
            return round(int(line.split()[1]) * 1024 / 1e9, 1)
    return None


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def machine_info() -> dict[str, Any]:
    """The machine and library versions, for a manifest or a benchmark's JSON."""
    model, isa = parse_cpuinfo(_read("/proc/cpuinfo"))
    affinity = getattr(os, "sched_getaffinity", None)
    return {
        "cpu": model or platform.processor() or platform.machine(),
        "arch": platform.machine(),
        "isa": isa,
        "cpus": os.cpu_count(),
        "cpus_usable": len(affinity(0)) if affinity else os.cpu_count(),
        "memory_gb": memory_gb(_read("/proc/meminfo")),
        "os": platform.platform(),
        "versions": library_versions(),
    }
