"""What this CPU can do fast, read once: the flags that decide bf16 and int8 paths.

Machines here differ: some have AVX-512 with BF16, VNNI and AMX, some only AVX2. Training and
inference pick bfloat16 only where the CPU computes it natively, and reports print these flags
beside every speed figure.
"""
from __future__ import annotations

import functools
import platform
from pathlib import Path

REPORTED_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16", "amx_int8")


@functools.lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags from /proc/cpuinfo (empty where there is none, e.g. macOS)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def has_native_bf16() -> bool:
    """True when the CPU has bf16 matrix instructions (AVX-512 BF16 or AMX), so bf16 is faster
    than float32 rather than emulated."""
    return bool({"avx512_bf16", "amx_bf16"} & cpu_flags())


def has_vnni() -> bool:
    """True when the CPU has int8 dot-product instructions (AVX-512 VNNI or AVX-VNNI)."""
    return bool({"avx512_vnni", "avx_vnni"} & cpu_flags())


def describe_cpu() -> str:
    """One line for reports: model name, cores, and which of ``REPORTED_FLAGS`` are present."""
    name = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import os
    present = [f for f in REPORTED_FLAGS if f in cpu_flags()]
    return f"{name}, {os.cpu_count()} cores, flags: {' '.join(present) or 'none of ' + ','.join(REPORTED_FLAGS)}"


def resolve_precision(precision: str) -> str:
    """"auto" -> "bf16" where the CPU has native bf16, else "fp32"; "bf16"/"fp32" pass through."""
    if precision not in ("auto", "bf16", "fp32"):
        raise ValueError(f"precision must be auto, bf16 or fp32, not {precision!r}")
    if precision == "auto":
        return "bf16" if has_native_bf16() else "fp32"
    return precision
