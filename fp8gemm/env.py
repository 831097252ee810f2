"""Every environment variable fp8gemm reads, read here and nowhere else, with one parser.

Each setting has an ``FP8GEMM_`` name and, where the field has one, the established ``DG_`` name of
the same meaning; the ``FP8GEMM_`` name wins when both are set (also to switch a flag off). Values
are read at call time, not import time, so tests and long-running processes can change them; the one
exception is `check_inputs`, asked on every grouped GEMM call: it is read once and kept until
`refresh()`.

Flags accept ``1``/``true``/``yes``/``on`` and ``0``/``false``/``no``/``off``/empty (any case), and
integers (non-zero is on, as the field's tools read them); anything else is a ``ValueError`` naming
the variable, rather than a guess.

This module imports nothing but the standard library: the heuristics (`fp8gemm.config`) and the
JIT (`fp8gemm.jit`, through its ``env`` module) both use it.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

__all__ = [
    "cache_dir",
    "compiler_kind",
    "nvcc_override",
    "cuda_home",
    "jit_debug",
    "ptxas_verbose",
    "print_configs",
    "check_inputs",
    "refresh",
    "bench_commit",
    "debug",
    "parse_flag",
]

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"", "0", "false", "no", "off"}


def _get(name: str, dg_name: str | None = None) -> tuple[str, str] | None:
    """``(variable name, value)`` of the first of ``name``, ``dg_name`` that is set, else None."""
    for var in (name, dg_name):
        if var is not None and (value := os.environ.get(var)) is not None:
            return var, value
    return None


def parse_flag(name: str, value: str) -> bool:
    """The one parser of on/off settings. ``name`` is only for the error message."""
    text = value.strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    try:
        return int(text) != 0
    except ValueError:
        raise ValueError(
            f"{name}: expected 1/0, true/false, yes/no or on/off, got {value!r}"
        ) from None


def _flag(name: str, dg_name: str | None = None) -> bool:
    found = _get(name, dg_name)
    return found is not None and parse_flag(*found)


def cache_dir() -> Path:
    """FP8GEMM_CACHE_DIR / DG_JIT_CACHE_DIR, default ``~/.cache/fp8gemm``."""
    found = _get("FP8GEMM_CACHE_DIR", "DG_JIT_CACHE_DIR")
    return Path(found[1]).expanduser() if found and found[1] else Path.home() / ".cache" / "fp8gemm"


def compiler_kind() -> str:
    """FP8GEMM_COMPILER: 'nvrtc' (default) or 'nvcc'."""
    found = _get("FP8GEMM_COMPILER")
    value = (found[1] if found else "").strip().lower() or "nvrtc"
    if value not in ("nvrtc", "nvcc"):
        raise ValueError(f"FP8GEMM_COMPILER must be 'nvrtc' or 'nvcc', got {value!r}")
    return value


def nvcc_override() -> str | None:
    """FP8GEMM_NVCC / DG_NVCC_COMPILER: explicit path to nvcc, if set."""
    found = _get("FP8GEMM_NVCC", "DG_NVCC_COMPILER")
    return found[1] if found and found[1] else None


def cuda_home() -> Path | None:
    """CUDA_HOME, else CUDA_PATH (where to look for nvcc and the other toolkit binaries)."""
    for var in ("CUDA_HOME", "CUDA_PATH"):
        if value := os.environ.get(var):
            return Path(value)
    return None


def jit_debug() -> bool:
    """FP8GEMM_JIT_DEBUG / DG_JIT_DEBUG: print compiles, commands, times and cache hits."""
    return _flag("FP8GEMM_JIT_DEBUG", "DG_JIT_DEBUG")


def ptxas_verbose() -> bool:
    """FP8GEMM_PTXAS_VERBOSE / DG_JIT_PTXAS_VERBOSE: print the ptxas resources of each kernel built."""
    return _flag("FP8GEMM_PTXAS_VERBOSE", "DG_JIT_PTXAS_VERBOSE")


def print_configs() -> bool:
    """FP8GEMM_PRINT_CONFIGS / DG_PRINT_CONFIGS: print the kernel configuration chosen for each shape."""
    return _flag("FP8GEMM_PRINT_CONFIGS", "DG_PRINT_CONFIGS")


# NOTES: settings read on the GEMMs' hot path are kept after their first read: os.environ costs
# ~0.9 us per lookup (it encodes the name and decodes the value every time). The contiguous GEMM's
# hit path reads the kept value itself, ``env._kept_check_inputs is False`` (None: not read yet, the
# full path reads it): a repeat call 3.37 -> 3.28 us against calling check_inputs() (measured with
# tools/host_path_cpu.py on a CPU-only machine).
_kept_check_inputs: bool | None = None


def refresh() -> None:
    """Forget the settings kept after their first read (`check_inputs`): the next call reads the
    environment again. Call it after changing FP8GEMM_CHECK_INPUTS in a running process."""
    global _kept_check_inputs
    _kept_check_inputs = None


def check_inputs() -> bool:
    """FP8GEMM_CHECK_INPUTS: also check the *values* of index tensors on CUDA (``m_indices``), which
    reads them on the host and so synchronizes with the GPU. Off by default; for debugging.

    Read on the first call and kept (it is asked on every grouped GEMM call); `refresh()` re-reads it.
    """
    global _kept_check_inputs
    if _kept_check_inputs is None:
        _kept_check_inputs = _flag("FP8GEMM_CHECK_INPUTS")
    return _kept_check_inputs


def bench_commit() -> str | None:
    """FP8GEMM_BENCH_COMMIT: the commit a benchmark run records (default: ask git)."""
    found = _get("FP8GEMM_BENCH_COMMIT")
    return found[1] if found and found[1] else None


def debug(message: str) -> None:
    """Print a debug line to stderr when FP8GEMM_JIT_DEBUG is on."""
    if jit_debug():
        print(f"[fp8gemm.jit] {message}", file=sys.stderr, flush=True)
