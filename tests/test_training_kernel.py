"""The training kernel (fp8_gemm_fp32.cuh), compiled for sm_90a on this (CPU) machine: every config
the heuristics pick for the issue's shapes and every variant the GPU tests force compiles without
local-memory spills, and its main K loop keeps the forward kernel's properties (4 wgmma per K
block, one barrier wait, no S2R, no generic loads). Plus the heuristics' invariants."""

from __future__ import annotations

import pytest
from repo_scripts import load

from fp8gemm.codegen import fp32_kernel_name, fp32_kernel_source, fp32_tma_boxes
from fp8gemm.config import (
    FP32_BLOCK_N_CANDIDATES,
    SMEM_LIMIT,
    fp32_b_scale_bytes,
    fp32_max_stages,
    select_fp32_config,
    with_fp32_tiles,
)
from fp8gemm.jit.tools import find_tool

sass_report = load("tools/sass_report.py")

# The shapes: dense (m, n) of 4096x7168x16384 and the reference's other dense wgrad shapes;
# k-grouped (groups, m, n).
DENSE = [(4096, 7168), (7168, 2048), (2112, 7168), (4096, 4096), (129, 4), (64, 200)]
K_GROUPED = [(4, 4096, 7168), (4, 7168, 2048), (8, 4096, 7168), (8, 7168, 2048), (16, 4096, 7168),
             (16, 7168, 2048)]
PICKED = list(dict.fromkeys([select_fp32_config("dense", m, n) for m, n in DENSE]
                            + [select_fp32_config("k_grouped", m, n, g) for g, m, n in K_GROUPED]))
# (block_m, block_n, epilogue from registers, B scales by the producer warp): the GPU tests' variants
FORCED = [with_fp32_tiles(select_fp32_config("k_grouped", 200, 328, 3), bm, bn, direct_epilogue=direct,
                          warp_b_scales=warp)
          for bm, bn, direct, warp in [(64, 32, True, True), (64, 128, False, True), (128, 32, False, False),
                                       (128, 96, False, True), (128, 144, True, True), (128, 160, True, True),
                                       (128, 160, False, True), (64, 160, True, False)]]


@pytest.mark.skipif(find_tool("cuobjdump") is None, reason="cuobjdump (dev extra) not installed")
@pytest.mark.parametrize("config", PICKED + FORCED, ids=[fp32_kernel_name(c) for c in PICKED + FORCED])
def test_compiles_without_spills_and_keeps_the_main_loop_lean(config) -> None:
    from fp8gemm.jit import tools
    from fp8gemm.jit.compiler import compile_cuda

    kernel = compile_cuda(fp32_kernel_source(config), fp32_kernel_name(config))
    assert kernel.resources.spill_stores == 0 and kernel.resources.spill_loads == 0
    loops = sass_report.main_loops(sass_report.parse_sass(tools.sass(kernel.cubin)))
    assert loops, "no main K loop with QGMMA found"
    for stats in map(sass_report.loop_stats, loops):
        assert stats.chains == 1 and stats.mbarrier_waits == 1
        assert stats.s2r == 0 and stats.generic_ld_st == 0


def test_picked_configs_fit_and_follow_the_rules() -> None:
    for config in PICKED:
        assert config.smem_bytes <= SMEM_LIMIT and config.stages >= 3
        assert config.block_n in FP32_BLOCK_N_CANDIDATES
        # the epilogue from the registers for dense GEMMs, through TMA for k-grouped ones
        assert config.direct_epilogue == (config.layout == "dense")
        assert config.early_products == (config.block_n <= 128)
        assert fp32_tma_boxes(config)["d"].cols == 32
    assert select_fp32_config("dense", 4096, 7168).block_n == 160
    assert select_fp32_config("dense", 64, 7168).block_m == 64
    with pytest.raises(ValueError, match="layout"):
        select_fp32_config("masked", 64, 64)


def test_b_scale_layout_mirrors_the_kernel() -> None:
    # SbLayout: 4 runs of block_n / 4 floats, the stride padded to 4 (mod 8) floats
    assert fp32_b_scale_bytes(128, True) == 640   # stride 36: 576 B, rounded up to 128
    assert fp32_b_scale_bytes(160, True) == 768   # stride 44: 704 B
    assert fp32_b_scale_bytes(144, True) == 640   # stride 36
    assert fp32_b_scale_bytes(160, False) == 640
    # the TMA epilogue's staging costs stages
    assert fp32_max_stages(128, 160, direct_epilogue=False) == 3
    assert fp32_max_stages(128, 160, direct_epilogue=True) == 6
