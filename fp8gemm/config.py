"""Kernel configuration heuristics: a pure function of the problem shape and the SM count.

Nothing here touches CUDA. `select_config` returns a frozen `GemmConfig`; the shared-memory
arithmetic mirrors `include/fp8gemm/smem_layout.cuh` (the kernel re-checks it at compile time).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from functools import lru_cache

from . import env
from .utils import BLOCK, round_up

CONTIGUOUS_ALIGNMENT = 128  # rows: each group of the contiguous layout starts on a multiple

BLOCK_K = BLOCK  # one scale block along K: the kernel's K step
SMEM_LIMIT = 232448  # opt-in shared memory per block on H100/H200 (227 KiB)
_ALIGN_SLACK = 1024
LAYOUTS = ("dense", "contiguous", "masked")

# NOTES: wgmma accepts any N that is a multiple of 8; we keep multiples of 16 (stmatrix pairs)
# and go past 128 so that the tile count can fit 132 SMs with a small tail. Registers bound N:
# a math thread holds (chains + 1) x N/2 FP32 accumulators (the FP32 sums of its chains and one
# partial sum), at most 232: N <= 192 with one 64-row chain per warpgroup (BLOCK_M 64 or 128),
# N <= 128 with two (BLOCK_M 256). 64x192 spills (48 B, one warpgroup at 240 registers).
MAX_BLOCK_N = {64: 160, 128: 192, 256: 128}
# NOTES: 256-row tiles narrower than 64 (two chains of m64n48 per warpgroup, twice the A bytes per
# output of 128x96) ran far below the model's rating. H200, CUPTI, same run, 2026-11-30, one wave each:
# 640x2112x7168 256x48 A 26.3 us, 128x96 19.6 (cuBLASLt 24.3); 1000x1536x7168 256x48 24.9, 128x96
# 19.6 (cuBLASLt 23.7). 256x64 ran where the model puts it (26.4 us on both).
MIN_BLOCK_N = {64: 16, 128: 16, 256: 64}
BLOCK_N_CANDIDATES = tuple(range(16, 193, 16))
BLOCK_M_CANDIDATES = (64, 128, 256)
# NOTES: small tiles (decode shapes) are bound by the latency of loads, so they get as many
# stages as shared memory holds: more bytes in flight per SM.
MAX_STAGES = 32
# NOTES: split-K slices are the CTAs of one cluster. Two at most: the GPCs do not hold 132 / 3 or
# 132 / 4 clusters of 3-4 CTAs at once, and a second wave of clusters doubles the time (H200, CUPTI,
# 64x2112x7168: 33 clusters of 4 x 64x64 17.1 us, 66 of 2 x 64x32 8.5 us; 64x4096x7168: 32 of 4
# x 64x128 23.1 us). Where 3-4 slices fit, they were no faster than 2 (tools/decode_sweep.py).
MAX_K_SPLITS = 2
# NOTES: past 128 rows, splitting was not measured; the model alone would split many mid-M shapes
# (M = 192-4096 with N <= 4096) into 3-stage 128x128-192 tiles, the kind it misjudged at M = 128.
MAX_SPLIT_K_ROWS = 128
RASTER_WIDTH = 16

# NOTES: a dense GEMM whose M fits in one tile (a decode batch) loads only A's rows inside M, rounded
# up (where M spans several tiles, the last one starts earlier: fp8_gemm.cuh, tile_first_row).
# TMA fills the rows of a box past the tensor's end with zeros, and on the H200 that fill is slow.
# Same kernel, A's box past M against inside a padded copy (CUPTI, L2 flushed, 2026-11-30):
# 1x4096x7168 at 64x32 16.7 / 10.7 us, 32x4096x7168 14.3 / 10.8, 65x4096x7168 at 128x32 24.0 / 13.0.
# A's rows round up to a whole 128-byte swizzle atom (8 rows) and, where they come one K block per
# stage, its scales' rows to a whole 128-byte line (32 rows): a few rows past M cost little (48 rows
# in a 64-row box paid 0-5%). The kernel expects the bytes of these boxes (fp8_gemm.cuh,
# stage_tx_bytes, from the same two constants) and codegen.tma_boxes encodes them.
SHORT_BOX_ROWS_A = 8
SHORT_BOX_ROWS_SA = 32


def overlaps_k_blocks(block_m: int, block_n: int) -> bool:
    """Whether the kernel's main loop for these tiles overlaps K blocks (GemmTraits::kOverlapDepth > 1
    in fp8_gemm.cuh): one 64-row chain per math warpgroup and a narrow tile (the decode tiles)."""
    return block_m <= 128 and block_n <= (128 if block_m == 64 else 96)


# NOTES: the overlapped (decode) loops get A's scales SA_CHUNK K blocks per TMA load (a chunk ring;
# smem_layout.cuh) instead of one small load per stage: H200, with the per-stage load skipped
# altogether (timing only), 64x4096x7168 11.8 -> 10.1 us, 64x2112x7168 8.6 -> 7.8, 128x4096x7168
# 13.4 -> 12.8; as built (perf_check, 6f89149) 64x4096x7168 11.7 -> 10.9, the other decode shapes
# within the 1-2% run-to-run spread. The other loops keep one per stage: the chunk bookkeeping cost
# them 7-13 instructions per chain (SASS), against 3% measured for no loads at all on 4096x32768x512.
SA_CHUNK = 8


def a_scale_chunk(block_m: int, block_n: int) -> int:
    """K blocks of A scales per TMA load (1: one per stage)."""
    return SA_CHUNK if overlaps_k_blocks(block_m, block_n) else 1


def smem_bytes(block_m: int, block_n: int, stages: int, k_splits: int = 1) -> int:
    """Dynamic shared memory of one CTA, exactly as smem_layout.cuh lays it out (split-K: the
    staging space holds FP32 sums, and two more barriers)."""
    store = round_up(block_m * block_n * (4 if k_splits > 1 else 2), 1024)
    chunk = a_scale_chunk(block_m, block_n)
    a_scale_buffers = stages if chunk == 1 else math.ceil(stages / chunk) + 1
    a_scales = a_scale_buffers * round_up(block_m * chunk * 4, 128)
    chunk_barriers = 0 if chunk == 1 else a_scale_buffers
    barriers = (2 * stages + chunk_barriers) * 8 + (2 * 8 if k_splits > 1 else 0)
    return store + stages * (block_m + block_n) * BLOCK_K + a_scales + barriers + _ALIGN_SLACK


def max_stages(block_m: int, block_n: int, limit: int = SMEM_LIMIT, k_splits: int = 1) -> int:
    stages = 0
    while stages < MAX_STAGES and smem_bytes(block_m, block_n, stages + 1, k_splits) <= limit:
        stages += 1
    return stages


def spans_at_most_two_scale_blocks(block_n: int) -> bool:
    """Whether every N tile of `block_n` columns lies within two 128-column scale blocks of B.

    Tiles start at multiples of block_n, hence at offsets that are multiples of
    gcd(block_n, 128) inside a scale block; the kernel handles one boundary per tile."""
    return BLOCK_K - math.gcd(block_n, BLOCK_K) + block_n <= 2 * BLOCK_K


class _Geometry:
    """What follows from a config's tiles, the same for both kernels (the launch and the grid)."""

    block_m: int
    block_n: int
    n: int

    @property
    def num_math_warpgroups(self) -> int:
        # 64-row tiles: one; 128 and 256 rows: two (each runs one or two 64-row chains)
        return 1 if self.block_m == 64 else 2

    @property
    def num_threads(self) -> int:
        return 128 * (self.num_math_warpgroups + 1)

    @property
    def num_n_blocks(self) -> int:
        return math.ceil(self.n / self.block_n)


@dataclass(frozen=True)
class GemmConfig(_Geometry):
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
    k_splits: int = 1      # split-K slices (dense only): the CTAs of one cluster, summed inside it

    @property
    def cluster_size(self) -> int:
        if self.k_splits > 1:
            return self.k_splits
        return 1 if self.multicast == "none" else 2

    @property
    def smem_bytes(self) -> int:
        return smem_bytes(self.block_m, self.block_n, self.stages, self.k_splits)

    @property
    def a_scale_chunk(self) -> int:
        return a_scale_chunk(self.block_m, self.block_n)

    def __str__(self) -> str:
        return (f"{self.layout} n={self.n} k={self.k} g={self.num_groups}: "
                f"BM={self.block_m} BN={self.block_n} stages={self.stages} "
                f"multicast={self.multicast} k_splits={self.k_splits} "
                f"smem={self.smem_bytes}")


def with_tiles(config: GemmConfig, block_m: int, block_n: int, multicast: str, *, stages: int | None = None,
               raster_width: int | None = None, k_splits: int = 1) -> GemmConfig:
    """`config` with other tiles (for tools and tests that force a variant): the fields that follow
    from the tiles (stages: as many as fit, unless given; the store slab) are derived again."""
    return dataclasses.replace(config, block_m=block_m, block_n=block_n, multicast=multicast,
                               stages=stages or max_stages(block_m, block_n, k_splits=k_splits),
                               store_slab_cols=_store_slab_cols(block_n),
                               raster_width=raster_width or config.raster_width, k_splits=k_splits)


def _store_slab_cols(block_n: int) -> int:
    for cols in (64, 32, 16):
        if block_n % cols == 0:
            return cols
    raise AssertionError(block_n)


# NOTES: the share of the tensor cores' peak a tile shape can reach, rated from full-kernel
# measurements on the H200. Wider N reads less of shared memory per flop: 4096x2112x7168 128x144
# 110 us (4 waves) against 128x192 103 us (3 waves); contiguous 4 x ~8192 rows, unicast, 128x128 /
# 128x160 / 128x192: N 4096 K 7168 1614 / 1594 / 1519 us, N 7168 K 2048 - / 810 / 760 us. 256-row
# tiles read B once per 128 rows (4096x24576x1536: 256x128 240 us, 128x192 249 us). A 64-row
# tile has one math warpgroup and nothing to hide its promotion behind: 128x4096x7168 with 64x64
# tiles 15.5 us, with 128x32 tiles 13.5 us. N = 80-112 (several B-scale boundary variants, narrow
# wgmma): masked 4 x ~256 rows, N 7168 K 2048, 128x112 41 us against 128x128 33 us in equal waves.
_N_EFFICIENCY = {16: 0.6, 32: 0.65, 48: 0.7, 64: 0.75, 80: 0.72, 96: 0.75, 112: 0.75, 128: 0.94, 144: 0.92,
                 160: 0.96, 192: 1.03}
_M_EFFICIENCY = {64: 0.5, 128: 0.95, 256: 1.06}
# NOTES: 64-row decode tiles whose pair of M blocks shares B (multicast "b", M = 65-128: the only
# 64-row tiles with a partner block) are rated apart from the unshared ones, whose 0.5 the M <= 64
# picks were fitted with. 0.7 and B's bytes halved in the load time fit the H200 sweep of
# _decode_shares_b best (with _OOB_ROW_US).
_SHARED_B_64_EFFICIENCY = 0.7
# NOTES: a TMA box that reaches past the last row of A costs the hardware's zero fill, per row
# past M: H200, CUPTI, the same tile with A's box inside a padded copy against past M (65x4096x7168
# at 128x32: 13.0 / 24.0 us; 100x4096x7168 13.0 / 19.6; 100x7168x16384 at 128x64: 33.8 / 47.2),
# ~0.004 us per row and K block. The model, which ranks rather than predicts, fits the sweep best
# with 0.0015 (and _SHARED_B_64_EFFICIENCY 0.7; 0.002 / 0.65 and 0.001 / 0.75 pick the same tiles,
# every other pair of a grid over 0.0005-0.004 and 0.55-0.8 is no better): 65x4096x7168 25.0
# -> 17.3 us (128x80 in 2 K slices), 65x2112x7168 16.6 -> 14.3, 100x2112x7168 12.6 -> 11.6 (64x64
# in 2 slices). Since a tile that holds all of M loads only the rows inside it (SHORT_BOX_ROWS_A)
# and the last of several blocks starts earlier (fp8_gemm.cuh, tile_first_row), the charge is left
# with the <= 7 rows of a rounded-up box. Over the sweep of that kernel (M = 1-128, the six N x K of
# shapes.json, 2026-11-30) the picks are 0.8% slower than each shape's best tile on average and 6.9%
# at worst, with _split_k_overhead_us's charge for large tiles (1.6% and 9.4% without it; 0.6-0.75
# for _SHARED_B_64_EFFICIENCY pick the same).
_OOB_ROW_US = 0.0015
# FP8 dense throughput of one SM that the kernel can sustain (~1.5 PFLOPS over 132 SMs).
_SM_FLOPS_PER_US = 11.5e6


def _k_block_us(block_m: int, block_n: int, shared_b: bool = False, rows_past_m: int = 0, *,
                mid_m: bool = False) -> float:
    """Estimated time of one 128-deep K block of one tile on one SM, in microseconds.

    The larger of the tensor-core time (flops over the sustained per-SM rate times the shape's
    efficiency) and the load time. NOTES: small tiles are bound by the load pipeline, measured on
    the H200 (deep rings, one wave, K = 7168) at ~0.08 us per K block plus the bytes at ~150 GB/s
    per SM: 64x32 0.16 us, 64x64 0.19 us, 128x32 0.19 us. shared_b: B multicast over a 64-row pair
    (half of B's bytes come from L2 per CTA). rows_past_m: rows of A's box past M (_OOB_ROW_US).
    mid_m: past the decode rows, where most SMs load at once (_MID_M_SM_BYTES_PER_US).
    """
    m_efficiency = _SHARED_B_64_EFFICIENCY if shared_b and block_m == 64 else _M_EFFICIENCY[block_m]
    efficiency = _N_EFFICIENCY.get(block_n, 1.0) * m_efficiency
    compute = block_m * block_n * BLOCK_K * 2 / (_SM_FLOPS_PER_US * efficiency)
    b_rows = block_n / 2 if shared_b else block_n
    load = 0.08 + (block_m + b_rows) * BLOCK_K / 150e3 + _OOB_ROW_US * rows_past_m
    if mid_m:
        load = max(load, (block_m + b_rows) * BLOCK_K / _MID_M_SM_BYTES_PER_US)
    return max(compute, load)


def _decode_shares_b(layout: str, m: int, block_m: int, block_n: int, k_splits: int, num_sms: int) -> bool:
    """Whether a dense decode shape may run 64-row tiles whose two M blocks share B (multicast "b").

    NOTES: H200, tools/decode_sweep.py (CUPTI, L2 flushed, 2026-11-30; every tile for M = 65, 100,
    120, 128 and the six N x K of shapes.json), the former picks (128-row tiles) against these:
    100x4096x7168 19.4 -> 14.2 us (64x64 B), 120x4096x7168 13.8 -> 12.5, 128x4096x7168 13.0 ->
    12.4, 65x7168x2048 9.2 -> 8.8 (64x128 B), 100x7168x2048 8.5 -> 8.4. Not below 64 columns: 64x32
    B was 5-7% slower than unshared on 128x2112x7168 (11.2-11.4 / 10.7 us). With this and
    _OOB_ROW_US, the picks over those 24 shapes and the six at M = 64 are 2.6% slower than each
    shape's best tile on average (7.1% before), at most 13% (61% before), and none is slower than
    the former pick. With the boxes inside M (_OOB_ROW_US), 7168x16384 at 65-128 rows runs 64x128 B
    in 33.9-34.9 us and its pick (unsplit 128x64, _split_k_overhead_us) in 34.1-36.9."""
    return (layout == "dense" and 64 < m <= 128 and block_m == 64 and block_n >= 64 and k_splits == 1
            and num_sms % 2 == 0)


def _split_k_overhead_us(k_splits: int, block_m: int, block_n: int) -> float:
    """What splitting K into a cluster's CTAs costs beyond its K blocks: the other slices' FP32
    sums handed to rank 0 through shared memory (one barrier round trip per tile), and the stages
    that the FP32 staging space takes from the load ring.

    NOTES: fitted on the H200 (tools/decode_sweep.py: 148 tile/split candidates over the 12 dense
    M = 64 / 128 shapes of shapes.json, CUPTI): with 3 us the model picks each shape's fastest
    candidate or one within 1% of it (2.5 us: 3% off on average, 4 us: 4%). Splitting pays where
    one slice of tiles would re-read A across many narrow N tiles: 64x2112x7168 11.2 -> 8.5 us
    (64x16 -> 64x32 in 2 slices), 128x7168x16384 52.0 -> 37.5 us (128x128). Tiles larger than 64x64
    hand over more sums: 4 us more per 4096 of their outputs past 4096. Fitted on the sweeps of
    2026-11-30 (every candidate at M = 1-128 on the six N x K of shapes.json, with the boxes inside
    M), it moves 7168x16384 off its large split tiles and no other swept pick: at 1-64 rows from
    64x128 in 2 slices to unsplit 64x64 (64 rows 34.0 -> 32.7 us, 1 row 33.0 -> 31.7, 32 rows 33.6
    -> 31.7), at 65-128 rows from 128x128 in 2 slices to unsplit 128x64 (128 rows 37.0 -> 34.3, 120
    rows 36.5 -> 34.1, 65 rows 36.3 -> 34.9, 100 rows 36.5 -> 36.9). Mean loss against each shape's
    best 1.6% -> 0.8%, worst 9.4% -> 6.9%. Of 360 decode shapes (M = 1-128, N = 1536-32768, K =
    512-16384) two more move, not measured: 100 and 128 x 3072 x 7168, 128x48 in 2 slices -> 64x64 B
    (the measured best at 100-128 x 4096 x 7168). A larger base (3.5 us) moved 128x2112x7168 off
    128x32 in 2 slices (10.4 -> 10.7 us, against the reference's 10.2)."""
    if k_splits == 1:
        return 0.0
    return 3.0 + 4.0 * max(0, block_m * block_n - 4096) / 4096


@dataclass(frozen=True)
class MeasuredDecodeTile:
    """A dense decode tile measured faster than the model's pick, for one N x K over a range of M."""

    n: int
    k: int
    min_m: int
    max_m: int
    block_m: int
    block_n: int
    multicast: str
    k_splits: int
    num_sms: int = 132   # the GPU it was measured on (H200); other SM counts keep the model's pick


# NOTES: where the model ranks tiles that are within a few percent of each other wrongly and no
# setting of its constants fixes it without losing elsewhere (a grid over the 64-row efficiencies,
# the rows-past-M charge and the split-K overhead, scored on the nineteenth session's sweep: mean
# loss 1.1-1.2%, worst 6.5% in every setting), the picks for DeepSeek-V3's decode shapes come from
# measurements. H200, CUPTI, L2 flushed: tools/ab_kernel.py with the inputs redrawn every round
# (medians of 5, twenty-first session), and tools/decode_sweep.py at M = 65, 100, 120, 128
# (nineteenth session) and 72, 96, 112 (twenty-first, another host):
# - 2112 x 7168, 65-128 rows: 64x64 in 2 K slices, the fastest tile at every M swept (0.7-6.5%
#   ahead of the model's pick), against the model's 64x32 / 128x32 in 2 slices in the A/B: 65 rows
#   11.1 -> 10.4 us, 80 10.2 -> 10.0, 96 10.0 -> 10.0, 112 10.3 -> 10.1, 128 10.2 -> 10.1.
# - 24576 x 1536, 72-128 rows: 128x96 (256 tiles: every SM busy) against the model's 128x192 (128
#   tiles, one wave, 4 SMs idle): 80 rows 13.6 -> 13.2 us, 96 13.8 -> 13.2, 104 14.1 -> 13.5, 112
#   13.9 -> 13.4, 120 14.1 -> 13.6, 128 14.1 -> 13.4; the sweeps 1.6-4.1% at 72, 96, 112, 120, 128.
#   Level at 65 rows in the A/B (13.9 / 13.8), where the first sweep had 128x192 5% ahead; that
#   sweep also had it 3% ahead at 100 rows, the only M where the runs disagree.
# Not taken: 7168 x 16384 at 65-128 rows, 64x128 / 64x112 with B shared, 1-6% ahead in the sweeps
# and level (+-1%) in the redrawn A/B.
MEASURED_DECODE_TILES = (
    MeasuredDecodeTile(n=2112, k=7168, min_m=65, max_m=128, block_m=64, block_n=64, multicast="none",
                       k_splits=2),
    MeasuredDecodeTile(n=24576, k=1536, min_m=72, max_m=128, block_m=128, block_n=96, multicast="none",
                       k_splits=1),
)


def _measured_decode_tile(layout: str, m: int, n: int, k: int, num_sms: int) -> MeasuredDecodeTile | None:
    if layout != "dense":
        return None
    return next((t for t in MEASURED_DECODE_TILES
                 if (t.n, t.k, t.num_sms) == (n, k, num_sms) and t.min_m <= m <= t.max_m), None)


# NOTES: what a mid-M tile (M > MAX_SPLIT_K_ROWS) costs beyond _k_block_us's estimate, fitted on the
# twenty-third session's sweep (H200, CUPTI, L2 flushed; M = 256-3072 twice, 4096 / 6144 once, over
# eight DeepSeek-V3 N x K; every tile the model rated within 30% of its best plus the 80-160-wide
# 128-row tiles, 999 timed; docs/bench/session23_2026-11-30.json, BENCHMARKS.md thirteenth session):
# - A 256-row tile pays _TWO_CHAIN_TILE_US per tile (its epilogue stages 64 KB while the tensor cores
#   idle): where tiles are short in K, 128x192 wins (1024x32768x512: 256x128 35.1 us, 128x192 33.2;
#   4096x24576x1536: 238.0 / 232.2).
# - Loads are bounded by _MID_M_SM_BYTES_PER_US per SM as well: with most SMs loading at once the L2
#   hands each ~82 GB/s (320x1536x7168: 128x48 15.0 us, 0.27 us per K block of 22 KB; 64x64 11.3 us,
#   0.20 per 16 KB), where the decode estimate (0.08 us + bytes at 150 GB/s) rated 128x48 faster.
# - 128x192 reads the least per flop of the 128-row tiles: _N_EFFICIENCY[192] 1.03 (for every layout:
#   it also moves contiguous 2 x 1024 rows, N 7168, from 128x128 B to 128x192 B, 2.4-4.1% faster).
# - The former per-tile charge of 80-, 112- and 144-wide tiles (0.5 us: their kernels held 8 copies of
#   the main loop until kRuntimeScaleBoundary) fits no better than 0 now and is gone.
# Over the swept M = 256-3072 shapes the picks went from 1.34% slower than each shape's best tile on
# average (32.6% at worst: 320x1536x7168) to 0.46% (4.8%). 25 moved dense picks timed against the old
# ones (same run, inputs redrawn, medians of 5): 21 faster, up to 24%, 4 up to 1% slower. Of
# shapes.json, 4096x24576x1536 moves to 128x192 B (238.3 -> 230.2 us) and 4096x32768x512 too (126.9
# -> 127.9: a near tie, 0.7% in the sweep too).
_TWO_CHAIN_TILE_US = 0.7
_MID_M_SM_BYTES_PER_US = 82e3


def _tile_overhead_us(m: int, block_m: int) -> float:
    """A per-tile cost beyond the K blocks: 256-row tiles past the decode rows (see _TWO_CHAIN_TILE_US).
    The decode picks (M <= MAX_SPLIT_K_ROWS, none of them a 256-row tile) were fitted without it."""
    return _TWO_CHAIN_TILE_US if block_m == 256 and m > MAX_SPLIT_K_ROWS else 0.0


def _num_tiles(layout: str, m: int, n_blocks: int, block_m: int, num_groups: int) -> int:
    if layout == "masked":  # m is the expected rows per group
        return num_groups * math.ceil(max(m, 1) / block_m) * n_blocks
    return math.ceil(m / block_m) * n_blocks


# Contiguous tiles at least this many K blocks long share B across a pair of M blocks (_multicast).
CONTIGUOUS_MULTICAST_K_BLOCKS = 16
# Dense tiles share A or B only where each CTA runs at least this many K blocks (_multicast).
DENSE_MULTICAST_MIN_K_BLOCKS = 100

# NOTES: routing spreads a masked group's rows around expected_m; the benchmarks (and the reference
# run) draw expected_m * U(0.7, 1.3).
MASKED_ROWS_SPREAD = (0.7, 1.3)


def _even_masked_blocks(expected_m: int, block_m: int) -> bool:
    """Whether a masked group of expected_m rows, give or take MASKED_ROWS_SPREAD, fills the same
    even number of block_m-row blocks (so that B multicast pairs them with no empty partner)."""
    lo, hi = (math.ceil(max(1, round(expected_m * f)) / block_m) for f in MASKED_ROWS_SPREAD)
    return lo == hi and lo % 2 == 0


def k_split_sizes(num_k_blocks: int, k_splits: int) -> list[int]:
    """K blocks in each split-K slice, as the kernel's scheduler cuts them."""
    per_split = math.ceil(num_k_blocks / k_splits)
    return [max(0, min(per_split, num_k_blocks - i * per_split)) for i in range(k_splits)]


def _multicast(layout: str, block_m: int, block_n: int, n_blocks: int, rows: int, tiles: int, k_splits: int,
               num_k_blocks: int, num_sms: int, *, expected_m: int) -> str:
    """Which operand a 2-CTA cluster shares through TMA multicast ("a", "b" or "none").

    NOTES: it pays when there are enough tiles to keep every SM busy in pairs and the same
    rows/columns are re-read a lot. The larger of the two blocks is the one shared (it saves more
    L2 traffic). Sharing A pairs N blocks (their count must be even); sharing B pairs M blocks (an
    odd dense count gets an empty partner, a masked group's odd last block runs unshared where the
    N-block count is even; grouped pairs of two experts load B unshared). `rows`: all rows (masked:
    the expected rows of every group); `expected_m`: a masked group's expected rows."""
    if k_splits > 1 or rows < 512 or tiles < num_sms or num_sms % 2 != 0:
        return "none"
    # NOTES: contiguous 128x192 tiles share B (pairs of M blocks of one expert) where tiles are
    # long in K. H200, CUPTI, same run, two runs (2026-11-29, at 5a7583c): N 4096 K 7168, 4 x ~8192
    # rows unicast 1224 / 1196 us, B multicast 1198 / 1170; 8 x ~4096 1455 / 1410, B 1408 / 1374.
    # N 7168 K 2048: 4 x ~8192 624 / 607, B 631 / 621; 8 x ~4096 732 / 725, B 740 / 726. The
    # kernel has changed since: at d68a993 (same run, medians of 5, the reference run's rows) N 7168
    # K 2048 ran unicast / B 728.7 / 724.0 us (4 x ~8192) and 702.4 / 698.5 (8 x ~4096), B faster
    # in every round, so tiles of 16 K blocks and more share B. Shorter ones are not measured.
    if layout == "contiguous":
        return "b" if num_k_blocks >= CONTIGUOUS_MULTICAST_K_BLOCKS else "none"
    # NOTES: a pair pays its fixed costs (the cluster's start and end, each stage waiting for both
    # CTAs' consumers) once per CTA, and saves L2 traffic per K block: a CTA that runs few K blocks
    # in all loses. H200, tools/decode_sweep.py (the same tiles with and without sharing, twenty-first
    # session), shared / unshared, by K blocks per SM (waves x K blocks): 512x2112x7168 128x64 B
    # (56) 16.5-16.9 / 15.6-15.9 us, 768x2112x7168 128x96 A (56) 20.5 / 19.2, 768x4096x7168 128x192 B
    # (56) 34.2 / 33.5, 512x32768x512 256x128 A (16) 19.9-20.1 / 19.1-19.3, 768x32768x512 (24) 27.6 /
    # 26.4, 1024x32768x512 (32) 34.7 / 33.8, 512x24576x1536 256x128 A (36) 32.8-33.0 / 32.0-32.2,
    # 768x7168x2048 128x192 B (32) 21.8 / 21.1, 1024x7168x2048 256x128 A (32) 27.7 / 27.2; level at
    # 70 (768 / 1024 x 24576 x 1536: -1.6% / +1.0%); sharing wins from ~220 (640-1024 x 7168 x 16384:
    # 2-4%). The M = 4096 shapes of shapes.json run 112-280 and keep their sharing. Checked with
    # tools/ab_kernel.py (inputs redrawn, medians of 5) on the 11 shapes this moves, unshared /
    # shared: 512x2112x7168 15.6 / 16.5 us, 768x32768x512 26.5 / 27.5, 896x7168x2048 21.8 / 22.4,
    # 1536x32768x512 48.2 / 49.9, 1536x2112x7168 33.4 / 34.0, 1536x1536x7168 30.5 / 31.0,
    # 1024x7168x2048 27.0 / 27.4, 1536x7168x2048 38.6 / 39.1, 768x4096x7168 33.2 / 33.6; level at
    # 2048 and 3072 x 32768 x 512 (63.4 / 63.3, 100.0 / 100.0).
    if layout == "dense" and math.ceil(tiles / num_sms) * num_k_blocks < DENSE_MULTICAST_MIN_K_BLOCKS:
        return "none"
    a_ok = n_blocks % 2 == 0
    # NOTES: masked groups pair M blocks badly when their block count is odd (the extra block gets
    # an empty partner under B multicast, a whole extra pair): 4 x ~256 rows, N 7168 K 2048 (2-3
    # blocks per group): 128x128 A multicast 33 us, B multicast 43 us. Wider-than-128 masked tiles
    # are picked only where every group fills an even block count (see _even_masked_blocks), and
    # those share B.
    if layout == "masked" and block_n > 128:
        return "b"
    if (block_m >= block_n or layout == "masked") and a_ok:
        return "a"
    # NOTES: here a masked tile has an odd N-block count, so B multicast cannot run a group's odd
    # last block in pairs along N (scheduler.cuh, kOddRowAlongN): it pads it with an empty partner
    # block, a whole row of tiles per odd group that the tile model does not count. 128-row tiles
    # then share nothing. H200, CUPTI, same run, means over 3 draws of the rows, B shared / none:
    # 1 x ~512 N 2112 at 128x64 29.2 / 19.8 us, 2 x ~384 N 4096 at 128x96 58.7 / 44.3, 4 x ~512 N
    # 2112 72.0 / 63.9, 8 x ~256 91.3 / 82.7, 16 x ~256 at 128x128 145.6 / 141.0, 8 x ~1024 208.1 /
    # 205.4 (worst draw 0.96x). 64-row tiles keep B shared: their shapes are bound by B's bytes,
    # which the pair halves even beside an empty partner (64 x ~64 N 2112 at 64x128 277.8 / 313.0;
    # but 32 x ~32, one block per group, 147.1 / 133.1).
    if layout == "masked" and block_m == 128 and not _even_masked_blocks(expected_m, block_m):
        return "none"
    # NOTES: sharing B pairs M blocks: a dense M of an odd block count gets an empty partner block,
    # a whole row of tiles that the model does not count. Where that row adds a wave, A is shared
    # instead (128x192 tiles sharing A spill 104 B: nothing). H200, CUPTI, same run, 2026-11-30, the
    # same tiles with B shared / without: 640x7168x2048 128x144 30.9 -> 22.9 us (A), 640x7168x9216
    # 108.1 -> 71.0 (A), 3648x2112x7168 256x128 126.0 -> 84.0, 1600x4096x7168 128x144 105.8 -> 86.2,
    # 1856x8192x8192 128x192 207.3 -> 186.2; 15 shapes 1.00-1.52x, none slower (3648x7168x16384
    # 661.3 / 662.7).
    m_blocks = math.ceil(rows / block_m)
    padding_adds_a_wave = math.ceil((m_blocks + 1) * n_blocks / num_sms) > math.ceil(tiles / num_sms)
    if layout == "dense" and m_blocks % 2 and padding_adds_a_wave:
        return "a" if a_ok and block_n <= 160 else "none"
    return "b"


def tile_cost_us(layout: str, m: int, n: int, k: int, block_m: int, block_n: int, num_groups: int = 1,
                 num_sms: int = 132, *, k_splits: int = 1, shared_b: bool = False) -> float:
    """The model's estimate of a candidate's time (waves x tile time, plus split-K's handoff), in
    microseconds: what select_config minimises. It ranks candidates; it does not predict times."""
    n_blocks = math.ceil(n / block_n)
    tiles = _num_tiles(layout, m, n_blocks, block_m, num_groups)
    # Clusters of k_splits CTAs run side by side, num_sms // k_splits at a time.
    waves = math.ceil(tiles / (num_sms // k_splits))
    # Decode shapes of 65-128 rows pay for the rows of A's last box past M: a tile that holds all of M
    # loads only the rows inside it, rounded up (codegen.tma_boxes), and a last block that would reach
    # past M starts earlier (fp8_gemm.cuh, tile_first_row), so only the rounding is left. (Below 65 rows
    # every candidate is one 64-row block, and the picks there were fitted without it.)
    rows_past_m = 0
    if layout == "dense" and 64 < m < block_m:
        rows_past_m = -m % SHORT_BOX_ROWS_A
    mid_m = layout == "dense" and m > MAX_SPLIT_K_ROWS   # _MID_M_SM_BYTES_PER_US
    k_block_us = _k_block_us(block_m, block_n, shared_b, rows_past_m, mid_m=mid_m)
    tile_us = math.ceil(math.ceil(k / BLOCK_K) / k_splits) * k_block_us + _tile_overhead_us(m, block_m)
    return waves * tile_us + _split_k_overhead_us(k_splits, block_m, block_n)


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
    # NOTES: split-K only for dense decode GEMMs (M <= MAX_SPLIT_K_ROWS, where it was measured),
    # where few output tiles would leave SMs idle; every slice keeps at least 4 K blocks so that
    # its pipeline fills, and no slice is empty (a slice with no K block would wait for a stage
    # that is never loaded).
    split_options = [1]
    if layout == "dense" and m <= MAX_SPLIT_K_ROWS:
        split_options += [s for s in range(2, MAX_K_SPLITS + 1)
                          if math.ceil(num_k_blocks / s) >= 4 and k_split_sizes(num_k_blocks, s)[-1] > 0]
    best = None
    for block_m in BLOCK_M_CANDIDATES:
        if block_m > 64 and m <= 64:
            continue
        # A contiguous tile takes its expert from its first row: it must not be taller than the
        # layout's group alignment (128 rows). NOTES: masked groups hold about expected_m rows
        # each, rarely a multiple of 256: 256-row tiles waste rows (measured on the H200,
        # 4 x 256 rows: 128x128 52 us, 256x128 57 us; N 7168 K 2048: 45 against 86 us).
        if layout != "dense" and block_m > CONTIGUOUS_ALIGNMENT:
            continue
        for block_n in BLOCK_N_CANDIDATES:
            if not MIN_BLOCK_N[block_m] <= block_n <= MAX_BLOCK_N[block_m]:
                continue
            if not spans_at_most_two_scale_blocks(block_n):
                continue
            # NOTES: masked tiles wider than 128 share B across a group's M blocks in pairs, so
            # they need groups that fill an even number of blocks. Measured on the H200 (counts
            # m * U(0.7, 1.3), the reference run's valid rows, CUPTI): 32 x ~192 rows (2 blocks
            # each), N 6144 K 7168: 128x192 B 570 us (541 in a later run), 128x160 B 584,
            # 128x144 B 596, 128x128 A 624, 128x128 B 618. Elsewhere 128x128 A was the fastest or
            # within 3% on 5 of the other 7 masked shapes; 2 x ~512 rows N 4096 (5 blocks per
            # group in that draw) ran
            # 128x160 A in 59 us against 76, a wave-count accident of the draw (4 blocks: 2 waves
            # either way), which expected_m cannot predict. Masked 128x192 B (spill-free since its
            # kernel computes the epilogue's addresses per tile and splits the registers 56 / 224,
            # GemmTraits::kWideMasked), same run, 2026-11-30: 32 x ~192 529.7 us against 128x160 B
            # 536.2 (4 x ~256 N 4096, whose blocks are not even: 65.2 against 128x128 A 47.9).
            wide_masked = layout == "masked" and block_n > 128
            if wide_masked and not _even_masked_blocks(m, block_m):
                continue
            n_blocks = math.ceil(n / block_n)
            tiles = _num_tiles(layout, m, n_blocks, block_m, num_groups)
            for k_splits, shared_b in [(s, b) for s in split_options for b in (False, True)]:
                if shared_b and not _decode_shares_b(layout, m, block_m, block_n, k_splits, num_sms):
                    continue
                # Split-K only where the slices of every tile run in one wave: past that it
                # trades a wave's tail for the sums' handoff and fewer stages, unmeasured.
                if k_splits > 1 and tiles * k_splits > num_sms:
                    continue
                # NOTES: 128x64 tiles (a candidate since their producer stopped spilling, see
                # fp8_gemm.cuh kRoomyProducer) were not in the sweep that fitted the split-K
                # overhead, and the model rates their slices too well on bandwidth-bound shapes:
                # H200, same run: 128x4096x7168 in 2 slices 13.4 us, unsplit 13.3, 128x32 13.0.
                if k_splits > 1 and (block_m, block_n) == (128, 64):
                    continue
                if max_stages(block_m, block_n, k_splits=k_splits) < 3:
                    continue
                cost = tile_cost_us(layout, m, n, k, block_m, block_n, num_groups, num_sms,
                                    k_splits=k_splits, shared_b=shared_b)
                key = (cost, k_splits, -block_m, -block_n, shared_b)
                if best is None or key < best[0]:
                    best = (key, block_m, block_n, tiles, k_splits, shared_b)
    assert best is not None
    _, block_m, block_n, tiles, k_splits, shared_b = best

    measured = _measured_decode_tile(layout, m, n, k, num_sms)
    if measured is not None:
        block_m, block_n = measured.block_m, measured.block_n
        multicast, k_splits = measured.multicast, measured.k_splits
    else:
        rows = m * num_groups if layout == "masked" else m
        multicast = "b" if shared_b else _multicast(layout, block_m, block_n, math.ceil(n / block_n), rows,
                                                    tiles, k_splits, num_k_blocks, num_sms, expected_m=m)
    config = GemmConfig(layout=layout, n=n, k=k, num_groups=num_groups, block_m=block_m, block_n=block_n,
                        stages=max_stages(block_m, block_n, k_splits=k_splits), multicast=multicast,
                        raster_width=RASTER_WIDTH,
                        store_slab_cols=_store_slab_cols(block_n), k_splits=k_splits)
    if env.print_configs():
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
