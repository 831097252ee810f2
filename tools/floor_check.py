"""What the M=64 bandwidth floor is up against: the time of an empty kernel, measured exactly as the
bench measures a GEMM (CUDA graph replay, L2 flushed before every run, median), next to the time each
M=64 shape may take in all to reach 2 TB/s of compulsory traffic.

    python tools/floor_check.py
"""

from __future__ import annotations

import ctypes

from benchmarks.bench import compulsory_bytes
from benchmarks.timing import time_kernel
from fp8gemm import jit

EMPTY = 'extern "C" __global__ void fp8gemm_floor_empty(int x) { if (x == 12345) __trap(); }'
M64_SHAPES = [(64, 2112, 7168), (64, 24576, 1536), (64, 32768, 512), (64, 7168, 16384), (64, 4096, 7168),
              (64, 7168, 2048)]


def main() -> None:
    kernel = jit.build(EMPTY, "fp8gemm_floor_empty")
    for grid in (1, 132):
        us = time_kernel(lambda g=grid: kernel.launch(g, 384, 0, [ctypes.c_int(0)]), iters=100)
        print(f"empty kernel, {grid} CTAs x 384 threads: {us:.2f} us")
    print(f"{'shape':>18} {'MB':>6} {'2 TB/s needs us':>16}")
    for m, n, k in M64_SHAPES:
        nbytes = compulsory_bytes(m, n, k)
        print(f"{m}x{n}x{k:<8} {nbytes / 1e6:6.1f} {nbytes / 2e6:16.2f}")


if __name__ == "__main__":
    main()
