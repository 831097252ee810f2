"""Kernel configuration heuristics: a pure function of the problem shape and the SM count.

Nothing here touches CUDA. `select_config` returns a frozen `GemmConfig`; the shared-memory
arithmetic mirrors `include/fp8gemm/smem_layout.cuh` (the kernel re-checks it at compile time).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from functools import lru_cache

from .utils import round_up

BLOCK_K = 128
SMEM_LIMIT = 232448  # opt-in shared memory per block on H100/H200 (227 KiB)
_ALIGN_SLACK = 1024
LAYOUTS = ("dense", "contiguous", "masked")

# NOTES: wgmma accepts any N that is a multiple of 8; we keep multiples of 16 (stmatrix pairs)
# and go past 128 so that the tile count can fit 132 SMs with a small tail.
BLOCK_N_CANDIDATES = tuple(range(16, 193, 16))
# NOTES: BLOCK_N = 192 spills (ptxas, 232-240 registers for 96 + 96 accumulators plus addressing).
MAX_BLOCK_N = {64: 176, 128: 176}
BLOCK_M_CANDIDATES = (64, 128)
# NOTES: small tiles (decode shapes) are bound by the latency of loads, so they get as many
# stages as shared memory holds: more bytes in flight per SM.
MAX_STAGES = 32
# NOTES: large-M problems (compute-bound 128-row tiles) run faster with 4 stages than with the 5
# that fit: measured on the H200, 4096x7168x16384 128x160 859 vs 879 us, 128x128 869 vs 884 us,
# 4096x4096x7168 128x128 213 vs 220 us; 3 stages is 0-17% slower than 5. Decode shapes (few rows,
# bound by load latency) keep every stage that fits.
LARGE_M_STAGES = 4
LARGE_M_ROWS = 1024
MAX_K_SPLITS = 8
# NOTES: two partial sums in flight (promotion overlapped with the next block's wgmma) need
# 3 * BLOCK_N / 2 accumulator registers: up to 128 without spills (ptxas, every layout and
# multicast), except masked BM=64 BN=128, which spills 4 bytes (the masked scheduler's state).
MAX_DOUBLE_BUFFERED_BLOCK_N = 128


def _mma_buffers(layout: str, block_m: int, block_n: int) -> int:
    if block_n > MAX_DOUBLE_BUFFERED_BLOCK_N or (layout == "masked" and block_m == 64 and block_n == 128):
        return 1
    return 2
RASTER_WIDTH = 16


def smem_bytes(block_m: int, block_n: int, stages: int) -> int:
    """Dynamic shared memory of one CTA, exactly as smem_layout.cuh lays it out."""
    store = round_up(block_m * block_n * 2, 1024)
    per_stage = block_m * BLOCK_K + block_n * BLOCK_K + round_up(block_m * 4, 128)
    barriers = 2 * stages * 8
    return store + stages * per_stage + barriers + _ALIGN_SLACK


def max_stages(block_m: int, block_n: int, limit: int = SMEM_LIMIT) -> int:
    stages = 0
    while stages < MAX_STAGES and smem_bytes(block_m, block_n, stages + 1) <= limit:
        stages += 1
    return stages


MAX_SCALE_BLOCKS_PER_TILE = 3  # the kernel's promotion handles tiles over up to three B scale blocks


def scale_blocks_spanned(n: int, block_n: int) -> int:
    """The most 128-column scale blocks of B that one N tile of `block_n` columns spans."""
    return max(-(-((start % BLOCK_K) + min(block_n, n - start)) // BLOCK_K) for start in range(0, n, block_n))


@dataclass(frozen=True)
class GemmConfig:
    """One compiled kernel variant. Everything but M is a compile-time constant."""

    layout: str            # "dense" | "contiguous" | "masked"
    n: int
    k: int
    num_groups: int
    block_m: int
    block_n: int
    stages: int
    multicast: str         # "none" | "a" (tile pairs share rows) | "b" (tile pairs share columns)
    raster_width: int
    store_slab_cols: int   # columns per TMA store box (64, 32 or 16 -> 128/64/32-byte swizzle)
    mma_buffers: int = 1   # partial sums in flight per math warpgroup (2 hides the promotion)
    k_splits: int = 1      # split-K slices (dense only; a second kernel sums them)

    @property
    def cluster_size(self) -> int:
        return 1 if self.multicast == "none" else 2

    @property
    def num_math_warpgroups(self) -> int:
        return self.block_m // 64

    @property
    def num_threads(self) -> int:
        return 128 * (self.num_math_warpgroups + 1)

    @property
    def smem_bytes(self) -> int:
        return smem_bytes(self.block_m, self.block_n, self.stages)

    @property
    def num_n_blocks(self) -> int:
        return math.ceil(self.n / self.block_n)

    def __str__(self) -> str:
        return (f"{self.layout} n={self.n} k={self.k} g={self.num_groups}: "
                f"BM={self.block_m} BN={self.block_n} stages={self.stages} "
                f"multicast={self.multicast} buffers={self.mma_buffers} k_splits={self.k_splits} "
                f"smem={self.smem_bytes}")


def _store_slab_cols(block_n: int) -> int:
    for cols in (64, 32, 16):
        if block_n % cols == 0:
            return cols
    raise AssertionError(block_n)


# NOTES: measured on the H200 (4096x7168x16384, no loads, no promotion): wgmma with two math
# warpgroups runs fastest at N = 128..176; N = 96 or 112 loses 15-20%, one warpgroup ~30%.
# 176 is rated 0.94 from the full kernel: 128x176 943 us (10 waves) against 128x160 883 us (11).
_WGMMA_EFFICIENCY = {64: 0.75, 80: 0.78, 96: 0.8, 112: 0.85, 128: 1.0, 144: 0.9, 160: 1.0, 176: 0.94}


def _k_block_us(block_m: int, block_n: int) -> float:
    """Estimated time of one 128-deep K block of one tile on one SM, in microseconds.

    NOTES: calibrated on the H200. Large tiles are bound by the tensor cores: 128x128 takes
    ~0.5 us per K block, 128x160 ~0.62 us. Small tiles are bound by the load pipeline, which
    costs ~0.25 us per K block plus the bytes (~200 GB/s per SM): 64x16 ~0.30 us, 64x64 ~0.35 us.
    """
    efficiency = _WGMMA_EFFICIENCY.get(block_n, 0.7) * (1.0 if block_m == 128 else 0.7)
    compute = block_m * block_n / (33000.0 * efficiency)
    load = 0.25 + (block_m + block_n) * BLOCK_K / 200e3
    return max(compute, load)


def _split_k_overhead_us(m: int, n: int, k_splits: int) -> float:
    """The second kernel of split-K: its launch, plus writing and summing the FP32 slices."""
    if k_splits == 1:
        return 0.0
    return 3.0 + m * n * (8 * k_splits + 2) / 3e6


def _num_tiles(layout: str, m: int, n_blocks: int, block_m: int, num_groups: int) -> int:
    if layout == "masked":  # m is the expected rows per group
        return num_groups * math.ceil(max(m, 1) / block_m) * n_blocks
    return math.ceil(m / block_m) * n_blocks


@lru_cache(maxsize=4096)
def select_config(layout: str, m: int, n: int, k: int, num_groups: int = 1, num_sms: int = 132) -> GemmConfig:
    """Pick block sizes, stages and multicast for a problem.

    `m` is the number of rows (dense), the total rows (contiguous), or the expected rows per
    group (masked). The choice minimises an estimate of waves x tile cost, so that the tile
    count fills the SMs with a small last wave.
    """
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    num_k_blocks = math.ceil(k / BLOCK_K)
    # NOTES: split-K only for dense GEMMs, where few output tiles would leave SMs idle; every
    # slice keeps at least 4 K blocks so that its pipeline fills.
    split_options = [1]
    if layout == "dense":
        split_options += [s for s in range(2, MAX_K_SPLITS + 1) if math.ceil(num_k_blocks / s) >= 4]
    best = None
    for block_m in BLOCK_M_CANDIDATES:
        if block_m == 128 and m <= 64:
            continue
        for block_n in BLOCK_N_CANDIDATES:
            if block_n > MAX_BLOCK_N[block_m] or scale_blocks_spanned(n, block_n) > MAX_SCALE_BLOCKS_PER_TILE:
                continue
            if max_stages(block_m, block_n) < 3:
                continue
            n_blocks = math.ceil(n / block_n)
            tiles = _num_tiles(layout, m, n_blocks, block_m, num_groups)
            for k_splits in split_options:
                waves = math.ceil(tiles * k_splits / num_sms)
                cost = (waves * math.ceil(num_k_blocks / k_splits) * _k_block_us(block_m, block_n)
                        + _split_k_overhead_us(m, n, k_splits))
                key = (cost, k_splits, -block_m, -block_n)
                if best is None or key < best[0]:
                    best = (key, block_m, block_n, tiles, k_splits)
    assert best is not None
    _, block_m, block_n, tiles, k_splits = best

    multicast = "none"
    n_blocks = math.ceil(n / block_n)
    rows = m * num_groups if layout == "masked" else m
    # NOTES: a 2-CTA cluster shares one operand through TMA multicast; it pays when there are
    # enough tiles to keep every SM busy in pairs and the same rows/columns are re-read a lot.
    if k_splits == 1 and rows >= 512 and tiles >= num_sms and num_sms % 2 == 0:
        if n_blocks % 2 == 0:
            multicast = "a"
        elif layout == "dense" and math.ceil(m / block_m) % 2 == 0:
            multicast = "b"

    stages = max_stages(block_m, block_n)
    if block_m == 128 and k_splits == 1 and rows >= LARGE_M_ROWS:
        stages = min(stages, LARGE_M_STAGES)
    config = GemmConfig(layout=layout, n=n, k=k, num_groups=num_groups, block_m=block_m, block_n=block_n,
                        stages=stages, multicast=multicast, raster_width=RASTER_WIDTH,
                        store_slab_cols=_store_slab_cols(block_n),
                        mma_buffers=_mma_buffers(layout, block_m, block_n), k_splits=k_splits)
    if os.environ.get("FP8GEMM_PRINT_CONFIGS", os.environ.get("DG_PRINT_CONFIGS", "0")) not in ("", "0"):
        print(f"fp8gemm config m={m}: {config}", flush=True)
    return config


def grid_size(config: GemmConfig, m: int, num_sms: int) -> int:
    """Persistent grid: at most one CTA per SM, and no more CTAs than tiles (masked: unknown)."""
    if config.layout == "masked":
        tiles = num_sms
    else:
        tiles = math.ceil(m / config.block_m) * config.num_n_blocks * config.k_splits
    grid = max(1, min(num_sms, tiles))
    cluster = config.cluster_size
    return max(cluster, grid // cluster * cluster)
