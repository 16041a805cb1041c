"""Cheap facts about this machine for targets' ``available()`` and ``fingerprint()``: CPU, GPUs, packages.

Read from /proc and package metadata only; nothing here imports a runtime.
"""

from __future__ import annotations

import functools
import importlib.metadata as md
import importlib.util
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

# ISA extensions that change what compiled code may use; a fingerprint names the ones present.
ISA_FLAGS = (
    "sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512_vnni",
    "avx512_bf16", "amx_tile", "asimd", "asimddp", "sve", "sve2", "i8mm", "bf16",
)  # fmt: skip

NVIDIA_PROC = Path("/proc/driver/nvidia")


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask, not the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


@functools.lru_cache(maxsize=1)
def _cpuinfo() -> dict[str, str]:
    fields: dict[str, str] = {}
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return fields
    for line in text.splitlines():
        if not line.strip():
            break  # the first processor block describes them all
        key, _, value = line.partition(":")
        fields.setdefault(key.strip().lower(), value.strip())
    return fields


@functools.lru_cache(maxsize=1)
def cpu_info() -> dict[str, Any]:
    """CPU model, vendor/family/model ids and ISA extensions (hypervisors often hide the model name)."""
    import platform

    fields = _cpuinfo()
    flags = cpu_flags()
    ident = "/".join(
        fields[k]
        for k in ("vendor_id", "cpu family", "model", "stepping", "cpu implementer", "cpu part")
        if k in fields
    )
    return {
        "cpu": fields.get("model name")
        or fields.get("hardware")
        or platform.processor()
        or platform.machine(),
        "cpu_id": ident,
        "arch": platform.machine(),
        "isa": [f for f in ISA_FLAGS if f in flags],
    }


def cpu_flags() -> frozenset[str]:
    """Every feature flag of this CPU (``/proc/cpuinfo`` flags, or features on Arm), e.g. ``avx512_bf16``."""
    fields = _cpuinfo()
    return frozenset((fields.get("flags") or fields.get("features") or "").split())


def cpu_fingerprint(threads: int | None) -> dict[str, Any]:
    """What a CPU measurement depends on besides the runtime: the CPU, usable cores, pinned threads.

    Threads not pinned by the spec are the protocol's and are keyed with it.
    """
    return {**cpu_info(), "cores": usable_cores(), "threads": threads}


@functools.lru_cache(maxsize=1)
def nvidia_gpus() -> tuple[str, ...]:
    """Names of the NVIDIA GPUs the driver lists (empty when there is no driver)."""
    names = []
    for info in sorted((NVIDIA_PROC / "gpus").glob("*/information")):
        for line in info.read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "Model":
                names.append(value.strip())
    return tuple(names)


def has_nvidia_gpu() -> bool:
    """Is an NVIDIA driver loaded here (the CUDA variants of targets need one)?"""
    return NVIDIA_PROC.exists() or shutil.which("nvidia-smi") is not None


@functools.lru_cache(maxsize=1)
def nvidia_driver() -> str | None:
    try:
        first = (NVIDIA_PROC / "version").read_text().splitlines()[0]
    except (OSError, IndexError):
        return None
    parts = [p for p in first.split() if p[:1].isdigit() and "." in p]
    return parts[0] if parts else first.strip()


def gpu_fingerprint(device: int = 0) -> dict[str, Any]:
    gpus = nvidia_gpus()
    return {"gpu": gpus[device] if device < len(gpus) else "nvidia", "driver": nvidia_driver()}


@functools.cache
def cuda_compute_capability(device: int = 0) -> str | None:
    """``"9.0"`` for an H100, from ``nvidia-smi`` (only called when compiling for CUDA)."""
    if not shutil.which("nvidia-smi"):
        return None
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=compute_cap", "--format=csv,noheader", f"--id={device}"],
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return out or None


@functools.cache
def package_version(distribution: str) -> str | None:
    """Installed version of a distribution, from its metadata (no import)."""
    try:
        return md.version(distribution)
    except md.PackageNotFoundError:
        return None


@functools.cache
def module_available(name: str) -> bool:
    """Can ``name`` be imported? Checked without importing it."""
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False
