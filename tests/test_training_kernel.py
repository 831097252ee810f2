"""The training kernel (fp8_gemm_fp32.cuh), compiled for sm_90a on this (CPU) machine: every config
the heuristics pick for the issue's shapes and every variant the GPU tests force compiles without
local-memory spills and with no static shared memory beyond sm_90's reserved 1 KB, and its main K
loop keeps the forward kernel's properties (4 wgmma and one barrier wait per K block, no S2R, no
generic loads). Plus the heuristics' invariants, among them that every config fits in shared memory with
that static 1 KB counted (the JIT runtime refuses a launch that does not)."""

from __future__ import annotations

import pytest
from repo_scripts import load

from fp8gemm.codegen import fp32_kernel_name, fp32_kernel_source, fp32_tma_boxes
from fp8gemm.config import MAX_STAGES, SMEM_LIMIT
from fp8gemm.config_fp32 import (
    FP32_BLOCK_N_CANDIDATES,
    FP32_LAYOUTS,
    FP32_STATIC_SMEM,
    fp32_max_stages,
    fp32_smem_bytes,
    select_fp32_config,
    with_fp32_tiles,
)
from fp8gemm.jit.artifacts import parse_res_usage
from fp8gemm.jit.tools import find_tool

sass_report = load("tools/sass_report.py")

# The shapes: dense (m, n) of 4096x7168x16384 and the reference's other dense wgrad shapes;
# k-grouped (groups, m, n).
DENSE = [(4096, 7168), (7168, 2048), (2112, 7168), (4096, 4096), (129, 4), (64, 200)]
K_GROUPED = [(4, 4096, 7168), (4, 7168, 2048), (8, 4096, 7168), (8, 7168, 2048), (16, 4096, 7168),
             (16, 7168, 2048)]
PICKED = list(dict.fromkeys([select_fp32_config("dense", m, n) for m, n in DENSE]
                            + [select_fp32_config("k_grouped", m, n, g) for g, m, n in K_GROUPED]))
# (block_m, block_n, epilogue from registers): the variants the GPU tests and tools/sanitize_check.py force
FORCED_TILES = [(64, 32, True), (64, 128, False), (128, 32, False), (128, 64, True), (128, 64, False),
                (128, 96, False), (128, 128, True), (128, 144, True), (128, 160, True), (128, 160, False),
                (64, 160, True)]
FORCED = [with_fp32_tiles(select_fp32_config("k_grouped", 200, 328, 3), bm, bn, direct_epilogue=direct)
          for bm, bn, direct in FORCED_TILES]
# Every tile a tool or test may force: 64 or 128 rows; 16-wide steps with the epilogue from the
# registers, whole 32-column slabs through TMA; at most 160 wide.
ALL_TILES = [(bm, bn, direct) for bm in (64, 128) for direct in (True, False)
             for bn in range(16 if direct else 32, 161, 16 if direct else 32)]


@pytest.mark.skipif(find_tool("cuobjdump") is None, reason="cuobjdump (dev extra) not installed")
@pytest.mark.parametrize("config", PICKED + FORCED, ids=[fp32_kernel_name(c) for c in PICKED + FORCED])
def test_compiles_without_spills_and_keeps_the_main_loop_lean(config) -> None:
    from fp8gemm.jit import tools
    from fp8gemm.jit.compiler import compile_cuda

    kernel = compile_cuda(fp32_kernel_source(config), fp32_kernel_name(config))
    assert kernel.resources.spill_stores == 0 and kernel.resources.spill_loads == 0
    # The static shared memory the runtime adds to the dynamic size (from ptxas, or cuobjdump's count,
    # which includes sm_90's reserved 1 KB): what config.py budgets for, no more.
    usage = parse_res_usage(tools.res_usage(kernel.cubin), fp32_kernel_name(config))
    assert usage is not None and usage.shared_bytes <= FP32_STATIC_SMEM
    assert kernel.resources.shared_bytes <= FP32_STATIC_SMEM
    assert config.smem_bytes + FP32_STATIC_SMEM <= SMEM_LIMIT
    loops = sass_report.main_loops(sass_report.parse_sass(tools.sass(kernel.cubin)))
    assert loops, "no main K loop with QGMMA found"
    for stats in map(sass_report.loop_stats, loops):
        # One K block per pass, or a whole round of the ring unrolled (one barrier wait per K block).
        assert stats.chains in (1, config.stages) and stats.mbarrier_waits == stats.chains
        assert stats.s2r == 0 and stats.generic_ld_st == 0


def test_picked_configs_fit_and_follow_the_rules() -> None:
    for config in PICKED:
        assert config.smem_bytes + FP32_STATIC_SMEM <= SMEM_LIMIT and config.stages >= 3
        assert config.block_n in FP32_BLOCK_N_CANDIDATES
        # through TMA for k-grouped GEMMs and dense 128x128 tiles, from the registers for other dense tiles
        dense_tma = config.layout == "dense" and (config.block_m, config.block_n) == (128, 128)
        assert config.direct_epilogue == (config.layout == "dense" and not dense_tma)
        assert config.early_products == (config.block_n <= 128)
        assert fp32_tma_boxes(config)["d"].cols == 32
    # the dense shapes (measured on the H200: docs/TRAINING.md)
    for m, n, block_n, direct in ((4096, 7168, 128, False), (7168, 2048, 128, False),
                                  (4096, 4096, 128, False), (2112, 7168, 160, True)):
        config = select_fp32_config("dense", m, n)
        assert (config.block_n, config.direct_epilogue) == (block_n, direct), (m, n)
    assert select_fp32_config("k_grouped", 4096, 7168, 16).block_n == 160
    assert select_fp32_config("dense", 64, 7168).block_m == 64
    with pytest.raises(ValueError, match="layout"):
        select_fp32_config("masked", 64, 64)


def test_stage_counts() -> None:
    # the TMA epilogue's staging costs stages
    assert fp32_max_stages(128, 160, direct_epilogue=False) == 3
    assert fp32_max_stages(128, 160, direct_epilogue=True) == 6
    assert fp32_max_stages(64, 32, direct_epilogue=True) == 18
    assert fp32_smem_bytes(64, 32, 18) == 229408


@pytest.mark.parametrize(("block_m", "block_n", "direct"), ALL_TILES)
def test_stages_leave_room_for_static_smem_at_any_limit(block_m: int, block_n: int, direct: bool) -> None:
    """The stage count leaves room for the kernel's static shared memory, whatever the device's limit
    (the H200 refused a config whose dynamic bytes alone fit its 232448 B), and is the most that does."""
    for limit in range(150_000, SMEM_LIMIT + 1, 256):
        stages = fp32_max_stages(block_m, block_n, direct, limit=limit)
        assert fp32_smem_bytes(block_m, block_n, stages, direct) + FP32_STATIC_SMEM <= limit
        assert (stages == MAX_STAGES
                or fp32_smem_bytes(block_m, block_n, stages + 1, direct) + FP32_STATIC_SMEM > limit)


def test_every_pick_and_forced_tile_fits_the_device() -> None:
    """Over many shapes, the heuristics' pick and every tile forced onto it (stages derived) fit in
    232448 B with the static 1 KB; stages that do not fit are refused when given explicitly."""
    for layout in FP32_LAYOUTS:
        for m in (1, 64, 65, 129, 200, 1000, 4096, 7168):
            for n in (4, 32, 200, 328, 1000, 2048, 7168):
                for groups in ((1,) if layout == "dense" else (1, 3, 16)):
                    config = select_fp32_config(layout, m, n, groups)
                    assert config.stages >= 3
                    assert config.smem_bytes + FP32_STATIC_SMEM <= SMEM_LIMIT, config
    base = select_fp32_config("dense", 200, 328)
    for block_m, block_n, direct in ALL_TILES:
        forced = with_fp32_tiles(base, block_m, block_n, direct_epilogue=direct)
        assert forced.stages >= 1 and forced.smem_bytes + FP32_STATIC_SMEM <= SMEM_LIMIT, forced
        assert with_fp32_tiles(base, block_m, block_n, stages=forced.stages, direct_epilogue=direct) == forced
        if forced.stages < MAX_STAGES:
            with pytest.raises(ValueError, match="stages"):
                with_fp32_tiles(base, block_m, block_n, stages=forced.stages + 1, direct_epilogue=direct)
