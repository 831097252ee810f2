"""Heuristics of the training kernel (include/fp8gemm/fp8_gemm_fp32.cuh): a pure function of the
problem shape and the SM count, like `config` for the forward kernel, whose tile geometry and
shared-memory limit it shares. Nothing here touches CUDA.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from functools import lru_cache

from . import env
from .config import _ALIGN_SLACK, BLOCK_K, MAX_STAGES, RASTER_WIDTH, SMEM_LIMIT, _Geometry
from .utils import round_up

# The kernel of include/fp8gemm/fp8_gemm_fp32.cuh: 1x128 scales on both operands, FP32 output,
# dense or k-grouped. Its own config: M is a run-time value, N and the group count compile-time,
# K (tokens) run-time as well (dense: a kernel argument; k-grouped: read from ks_tensor on the GPU).

FP32_LAYOUTS = ("dense", "k_grouped")
FP32_SLAB_COLS = 32  # FP32 output columns per staging slab / TMA store box (128 bytes)
# NOTES: a math thread holds its FP32 sums, the partial sum and either the per-element scale
# products (formed while the wgmma run: 3 x BLOCK_N / 2 registers, hence BLOCK_N <= 128 of the 232
# a math thread gets) or, wider, only its B scales (BLOCK_N / 4), the products formed after the
# wgmma wait: BLOCK_N <= 160.
FP32_BLOCK_N_CANDIDATES = (32, 64, 96, 128, 160)
FP32_MAX_EARLY_PRODUCTS_N = 128
# NOTES: the share of the tensor cores' rate a tile width reaches (wider wgmma read less shared
# memory per flop), rated like _N_EFFICIENCY of the forward kernel; only the ranking matters.
# Measured on the H200, dense 4096x7168x16384 from the registers: 128x160 85 us per wave of tiles,
# 128x128 71 us (4% more per column); k-grouped (8, 7168, 2048, ~4096) through TMA: 128x160 1047 us,
# 128x128 1195 us (fewer, larger tiles: less per-tile cost).
_FP32_N_EFFICIENCY = {32: 0.6, 64: 0.75, 96: 0.8, 128: 0.94, 160: 0.98}
# NOTES: dense 128x128 tiles through TMA (`_fp32_direct_epilogue`) rate higher. H200, 2026-11-30, d is
# c, same run (medians of 3; every accumulating tile's D prefetched into L2): 128x128 through TMA
# against the 128x160 registers epilogue: 4096x7168x16384 927.4 / 926.8 us (a tie: 14 waves of 128
# against 11 of 160), 4096x7168x4096 249.3 / 262.1, 2048x7168x4096 130.5 / 142.8, but 2112x7168x8192
# 275.2 / 266.0 (8 waves against 6). 1.0 against 0.98 picks the first three 128 wide, the last 160.
_FP32_DENSE_TMA_128_EFFICIENCY = 1.0


def _fp32_direct_epilogue(layout: str, block_m: int, block_n: int) -> bool:
    """Whether the FP32 kernel writes from the registers (else through shared memory and TMA).

    NOTES: measured on the H200 (d is c, same run, medians of 3; 2026-11-30): dense 128x128 tiles
    (early products, 4 stages through TMA against 6 from the registers): 7168x2048x8192 240.7 us
    against 249.0, 4096x4096x7168 243.0 / 254.0, 7168x4096x2048 141.1 / 165.6 (c=None: 237.4 / 243.2,
    238.6 / 245.7, 136.5 / 151.6): the bulk reductions beat per-element RED. 128x160 tiles keep the
    registers (6 stages; through TMA 3): 4096x7168x16384 926.8 against 982.7, 2112x7168x8192 266.0 /
    284.7. K-grouped GEMMs through TMA at every width: (8, 7168, 2048, ~4096) 128x160 1047 us against
    1367 from the registers. 64-row tiles keep the registers (not measured through TMA)."""
    if layout != "dense":
        return False
    return not (block_m == 128 and block_n == 128)


def _fp32_efficiency(layout: str, block_m: int, block_n: int) -> float:
    """The rating of a tile width in `select_fp32_config`'s cost (dense 128x128 through TMA apart)."""
    if layout == "dense" and not _fp32_direct_epilogue(layout, block_m, block_n):
        return _FP32_DENSE_TMA_128_EFFICIENCY
    return _FP32_N_EFFICIENCY[block_n]


# NOTES: the FP32 kernel's budget of dynamic shared memory. On sm_90 a kernel that uses shared memory
# carries 1 KB of static shared memory besides its own (the block's reserved area: cuobjdump
# -res-usage shows SHARED:1024 for this kernel, which declares none, and for an empty kernel with
# only an extern array; the ptxas of some CUDA versions prints it as "1024 bytes smem"). The JIT
# runtime adds the static size to the dynamic one and refuses a launch past the device's opt-in
# maximum (jit/runtime.py, _raise_smem_limit), as it did on the H200 for a 231712-B variant.
# The stages get what is left; tests/test_training_kernel.py checks the compiled kernels' static size.
FP32_STATIC_SMEM = 1024


def fp32_smem_bytes(block_m: int, block_n: int, stages: int, direct_epilogue: bool = True) -> int:
    """Dynamic shared memory of the FP32-output kernel, as fp8_gemm_fp32.cuh (Smem) lays it out (its
    1024-B alignment slack included; the static FP32_STATIC_SMEM not)."""
    store = 0 if direct_epilogue else block_m * block_n * 4
    per_stage = ((block_m + block_n) * BLOCK_K + round_up(block_m * 4, 128) + round_up(block_n * 4, 128))
    return store + stages * per_stage + 2 * stages * 8 + _ALIGN_SLACK


def fp32_max_stages(block_m: int, block_n: int, direct_epilogue: bool = True, limit: int = SMEM_LIMIT) -> int:
    """As many stages as fit in `limit`, a device's shared memory per block (static included)."""
    stages = 0
    while (stages < MAX_STAGES
           and fp32_smem_bytes(block_m, block_n, stages + 1, direct_epilogue) + FP32_STATIC_SMEM <= limit):
        stages += 1
    return stages


@dataclass(frozen=True)
class Fp32GemmConfig(_Geometry):
    """One compiled variant of the FP32-output (training) kernel."""

    layout: str            # "dense" | "k_grouped"
    n: int
    num_groups: int
    block_m: int           # 64 (one math warpgroup) or 128 (two)
    block_n: int           # a multiple of 32 (16 with the direct epilogue), at most 160
    stages: int
    raster_width: int
    direct_epilogue: bool = True   # FP32 out straight from registers (else through smem and TMA)

    @property
    def early_products(self) -> bool:
        """Whether the per-element scale products fit in registers next to the sums (see above)."""
        return self.block_n <= FP32_MAX_EARLY_PRODUCTS_N

    @property
    def cluster_size(self) -> int:
        return 1

    @property
    def smem_bytes(self) -> int:
        return fp32_smem_bytes(self.block_m, self.block_n, self.stages, self.direct_epilogue)

    def __str__(self) -> str:
        return (f"fp32 {self.layout} n={self.n} g={self.num_groups}: BM={self.block_m} BN={self.block_n} "
                f"stages={self.stages} epilogue={'direct' if self.direct_epilogue else 'tma'} "
                f"smem={self.smem_bytes}")


def with_fp32_tiles(config: Fp32GemmConfig, block_m: int, block_n: int, *, stages: int | None = None,
                    direct_epilogue: bool | None = None) -> Fp32GemmConfig:
    """`config` with other tiles or variants (tools and tests that force one); stages: as many as fit.

    Raises ValueError when the stages given do not fit in shared memory (static included)."""
    direct = config.direct_epilogue if direct_epilogue is None else direct_epilogue
    most = fp32_max_stages(block_m, block_n, direct)
    if stages and not 1 <= stages <= most:
        raise ValueError(f"stages: {block_m}x{block_n} tiles fit 1 to {most} stages in shared memory, "
                         f"got {stages}")
    return dataclasses.replace(config, block_m=block_m, block_n=block_n, direct_epilogue=direct,
                               stages=stages or most)


@lru_cache(maxsize=1024)
def select_fp32_config(layout: str, m: int, n: int, num_groups: int = 1,
                       num_sms: int = 132) -> Fp32GemmConfig:
    """Tiles for the FP32-output kernel: `m` rows of each output (group), `n` columns.

    64-row tiles for m <= 64, else 128 (two math warpgroups); the tile width that minimises waves x
    per-tile cost (all groups are assumed to have tokens). The epilogue (`_fp32_direct_epilogue`):
    through TMA for k-grouped GEMMs and dense 128x128 tiles, from the registers for the other dense
    tiles. NOTES: measured on the H200 (d is c, 128x160, B scales by TMA): dense 4096x7168x16384 938
    us from the registers against 1042 us through TMA (3 stages); k-grouped (groups, m, n, ~tokens)
    (8, 7168, 2048, 4096) 1367 us against 1047 us, (4, 4096, 7168, 8192) 1998 against 1944: the
    per-element L2 reductions (RED.64) fall behind when K per tile is short, the bulk TMA reductions
    do not."""
    if layout not in FP32_LAYOUTS:
        raise ValueError(f"layout must be one of {FP32_LAYOUTS}, got {layout!r}")
    block_m = 64 if m <= 64 else 128
    best = None
    for block_n in FP32_BLOCK_N_CANDIDATES:
        if block_n > round_up(n, FP32_SLAB_COLS):
            continue
        tiles = num_groups * math.ceil(m / block_m) * math.ceil(n / block_n)
        cost = math.ceil(tiles / num_sms) * block_n / _fp32_efficiency(layout, block_m, block_n)
        key = (cost, -block_n)
        if best is None or key < best[0]:
            best = (key, block_n)
    block_n = best[1]
    direct = _fp32_direct_epilogue(layout, block_m, block_n)
    config = Fp32GemmConfig(layout=layout, n=n, num_groups=num_groups, block_m=block_m, block_n=block_n,
                            stages=fp32_max_stages(block_m, block_n, direct), raster_width=RASTER_WIDTH,
                            direct_epilogue=direct)
    if env.print_configs():
        print(f"fp8gemm config m={m}: {config}", flush=True)
    return config


def fp32_grid_size(config: Fp32GemmConfig, m: int, num_sms: int) -> int:
    """Persistent grid: one CTA per SM, no more CTAs than tiles (all groups counted as non-empty)."""
    tiles = config.num_groups * math.ceil(m / config.block_m) * config.num_n_blocks
    return max(1, min(num_sms, tiles))
