"""The JIT's environment variables, read in one place.

Each setting has an `FP8GEMM_` name and, where one exists, the established `DG_` name of the same
meaning; the `FP8GEMM_` name wins when both are set. Values are read at call time (not import time)
so that tests and long-running processes can change them.
"""

from __future__ import annotations

import os
from pathlib import Path

_FALSY = {"", "0", "false", "no", "off"}


def _get(name: str, dg_name: str | None = None) -> str | None:
    value = os.environ.get(name)
    if value is None and dg_name is not None:
        value = os.environ.get(dg_name)
    return value


def _flag(name: str, dg_name: str | None = None) -> bool:
    value = _get(name, dg_name)
    return value is not None and value.strip().lower() not in _FALSY


def cache_dir() -> Path:
    """FP8GEMM_CACHE_DIR / DG_JIT_CACHE_DIR, default ~/.cache/fp8gemm."""
    value = _get("FP8GEMM_CACHE_DIR", "DG_JIT_CACHE_DIR")
    return Path(value).expanduser() if value else Path.home() / ".cache" / "fp8gemm"


def compiler_kind() -> str:
    """FP8GEMM_COMPILER: 'nvrtc' (default) or 'nvcc'."""
    value = (_get("FP8GEMM_COMPILER") or "nvrtc").strip().lower()
    if value not in ("nvrtc", "nvcc"):
        raise ValueError(f"FP8GEMM_COMPILER must be 'nvrtc' or 'nvcc', got {value!r}")
    return value


def nvcc_override() -> str | None:
    """FP8GEMM_NVCC / DG_NVCC_COMPILER: explicit path to nvcc, if set."""
    return _get("FP8GEMM_NVCC", "DG_NVCC_COMPILER") or None


def jit_debug() -> bool:
    """FP8GEMM_JIT_DEBUG / DG_JIT_DEBUG: print commands, times and cache hits."""
    return _flag("FP8GEMM_JIT_DEBUG", "DG_JIT_DEBUG")


def ptxas_verbose() -> bool:
    """FP8GEMM_PTXAS_VERBOSE / DG_JIT_PTXAS_VERBOSE: print the ptxas resources of each kernel built."""
    return _flag("FP8GEMM_PTXAS_VERBOSE", "DG_JIT_PTXAS_VERBOSE")


def debug(message: str) -> None:
    """Print a JIT debug line to stderr when FP8GEMM_JIT_DEBUG is on."""
    if jit_debug():
        import sys

        print(f"[fp8gemm.jit] {message}", file=sys.stderr, flush=True)
