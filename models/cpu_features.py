"""What this CPU can do fast, read once: the flags that decide bf16 and int8 paths.

Machines here differ: some have AVX-512 with BF16, VNNI and AMX, some only AVX2. Training and
inference pick bfloat16 only where the CPU computes it natively, and reports print these flags
beside every speed figure.

``ARTICLE_QA_CPU=avx2`` makes a machine act as an AVX2-only CPU, so benchmarks and tests can take
that path anywhere: the flags read here lose everything past AVX2 (so ``auto`` choices follow),
and torch's kernels are held to AVX2 as well (``ONEDNN_MAX_CPU_ISA`` and ``ATEN_CPU_CAPABILITY``,
set by ``apply_cpu_override`` when ``models`` is first imported, where not already set). ONNX
Runtime has no such switch: it always uses the CPU's own instructions.
"""
from __future__ import annotations

import functools
import os
import platform
from pathlib import Path

REPORTED_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16", "amx_int8")
CPU_VARIABLE = "ARTICLE_QA_CPU"
# what an AVX2-only CPU is told apart by: everything in REPORTED_FLAGS past AVX2 goes
BEYOND_AVX2 = ("avx512", "avx_vnni", "amx_")
# the variables that hold torch's own kernels to AVX2 (oneDNN matmuls, ATen's vectorised ops)
AVX2_TORCH_ENV = {"ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"}


def cpu_override() -> str:
    """"avx2" when ``ARTICLE_QA_CPU`` asks this machine to act as an AVX2-only CPU, else
    "native" (unset, empty or "native"). Raises ValueError on any other value."""
    value = os.environ.get(CPU_VARIABLE, "").strip().lower() or "native"
    if value not in ("native", "avx2"):
        raise ValueError(f"{CPU_VARIABLE} must be 'avx2' or 'native', not {value!r}")
    return value


def apply_cpu_override() -> None:
    """With ``ARTICLE_QA_CPU=avx2``, hold torch's kernels to AVX2 too (``AVX2_TORCH_ENV``; a
    value the user set is kept). Takes effect when set before torch runs its first operation."""
    if cpu_override() == "avx2":
        for name, value in AVX2_TORCH_ENV.items():
            os.environ.setdefault(name, value)


@functools.lru_cache(maxsize=1)
def native_cpu_flags() -> frozenset[str]:
    """The CPU's feature flags from /proc/cpuinfo (empty where there is none, e.g. macOS)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def cpu_flags() -> frozenset[str]:
    """The flags this process acts on: the CPU's own, or with ``ARTICLE_QA_CPU=avx2`` those of
    an AVX2-only CPU (nothing past AVX2)."""
    flags = native_cpu_flags()
    if cpu_override() == "avx2":
        return frozenset(f for f in flags if not f.startswith(BEYOND_AVX2))
    return flags


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
    present = [f for f in REPORTED_FLAGS if f in native_cpu_flags()]
    line = f"{name}, {os.cpu_count()} cores, flags: {' '.join(present) or 'none of ' + ','.join(REPORTED_FLAGS)}"
    if cpu_override() == "avx2":
        line += f"; acting as an AVX2-only CPU ({CPU_VARIABLE}=avx2)"
    try:
        import torch
        line += f"; torch kernels: {torch.backends.cpu.get_cpu_capability()}"
    except ImportError:
        pass
    return line


def resolve_precision(precision: str) -> str:
    """"auto" -> "bf16" where the CPU has native bf16, else "fp32"; "bf16"/"fp32" pass through."""
    if precision not in ("auto", "bf16", "fp32"):
        raise ValueError(f"precision must be auto, bf16 or fp32, not {precision!r}")
    if precision == "auto":
        return "bf16" if has_native_bf16() else "fp32"
    return precision
