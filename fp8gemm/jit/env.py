"""The JIT's view of fp8gemm's environment variables: all of them are read in `fp8gemm.env`.

Kept as a module of its own so that the JIT's code (and its tests) say ``from . import env``.
"""

from __future__ import annotations

from fp8gemm.env import (  # noqa: F401  (re-exported)
    cache_dir,
    compiler_kind,
    cuda_home,
    debug,
    jit_debug,
    nvcc_override,
    parse_flag,
    ptxas_verbose,
)
