"""Heuristics invariants (CPU): every config the heuristics can return is one the kernel accepts."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from fp8gemm import launch
from fp8gemm.codegen import kernel_name, kernel_source
from fp8gemm.config import (
    BLOCK_K,
    MAX_BLOCK_N,
    MAX_K_SPLITS,
    MAX_SPLIT_K_ROWS,
    MEASURED_DECODE_TILES,
    SMEM_LIMIT,
    GemmConfig,
    grid_size,
    k_split_sizes,
    max_stages,
    select_config,
    smem_bytes,
    spans_at_most_two_scale_blocks,
)

SHAPES = json.loads((Path(__file__).parents[1] / "fp8gemm" / "data" / "shapes.json").read_text())

DENSE = [tuple(s) for s in SHAPES["dense"]]
DENSE += [(1, 256, 128), (7, 4096, 512), (333, 1536, 7168), (8192, 576, 7168)]
GROUPED = [("contiguous", g["groups"] * g["m_per_group"], g["n"], g["k"], g["groups"])
           for g in SHAPES["grouped_contiguous"]]
GROUPED += [("masked", g["m_per_group"], g["n"], g["k"], g["groups"]) for g in SHAPES["grouped_masked"]]
# Each measured decode tile at both ends of its M range (config.MEASURED_DECODE_TILES).
DENSE += [(m, t.n, t.k) for t in MEASURED_DECODE_TILES for m in (t.min_m, t.max_m)]
CASES = [("dense", m, n, k, 1) for m, n, k in DENSE] + GROUPED


@pytest.mark.parametrize("layout,m,n,k,groups", CASES)
@pytest.mark.parametrize("num_sms", [132, 78, 8])
def test_config_is_valid_for_the_kernel(layout: str, m: int, n: int, k: int, groups: int,
                                        num_sms: int) -> None:
    c = select_config(layout, m, n, k, groups, num_sms)
    assert isinstance(c, GemmConfig)
    assert c.smem_bytes <= SMEM_LIMIT and c.stages >= 3
    assert c.stages == max_stages(c.block_m, c.block_n, k_splits=c.k_splits)
    assert c.block_m in (64, 128, 256) and c.block_n % 16 == 0 and c.block_n <= MAX_BLOCK_N[c.block_m]
    # Grouped tiles take their expert from their first row: no taller than the group alignment.
    assert layout == "dense" or c.block_m <= 128
    assert c.block_n % c.store_slab_cols == 0 and c.store_slab_cols in (16, 32, 64)
    assert spans_at_most_two_scale_blocks(c.block_n)
    assert c.num_threads == 128 * ((1 if c.block_m == 64 else 2) + 1)
    # Multicast of A pairs tiles along N: the N-block count must be even.
    if c.multicast == "a":
        assert c.num_n_blocks % 2 == 0
    # Split-K: dense decode only, no multicast, one wave of clusters (a cluster per tile, a CTA per
    # slice), every slice keeps >= 4 K blocks and none is empty.
    if c.k_splits > 1:
        assert layout == "dense" and c.multicast == "none" and m <= MAX_SPLIT_K_ROWS
        assert c.cluster_size == c.k_splits <= MAX_K_SPLITS
        assert math.ceil(m / c.block_m) * c.num_n_blocks * c.k_splits <= num_sms
        assert math.ceil(math.ceil(k / BLOCK_K) / c.k_splits) >= 4
        assert min(k_split_sizes(math.ceil(k / BLOCK_K), c.k_splits)) > 0
    grid = grid_size(c, m if layout != "masked" else m * groups, num_sms)
    assert 1 <= grid <= num_sms and grid % c.cluster_size == 0


def test_smem_arithmetic_matches_the_layout() -> None:
    # store tile + stages x (A + B + A scales) + barriers + alignment slack; the kernel static_asserts it.
    assert smem_bytes(128, 128, 5) == 128 * 128 * 2 + 5 * (128 * 128 + 128 * 128 + 512) + 80 + 1024
    # A decode tile: its A scales come in chunks of 8 K blocks, ceil(1 / 8) + 1 = 2 buffers of 64 x 8
    # FP32, each with a barrier.
    assert smem_bytes(64, 16, 1) == 2048 + (64 * 128 + 16 * 128) + 2 * 64 * 8 * 4 + (2 + 2) * 8 + 1024
    # Split-K: the staging space holds a slice's FP32 sums, and two more barriers.
    assert smem_bytes(64, 32, 2, k_splits=2) == (64 * 32 * 4 + 2 * (64 * 128 + 32 * 128) + 2 * 64 * 8 * 4
                                                 + (2 * 2 + 2) * 8 + 16 + 1024)
    assert smem_bytes(256, 128, 3) == 256 * 128 * 2 + 3 * (256 * 128 + 128 * 128 + 1024) + 3 * 2 * 8 + 1024


def test_scale_block_crossing() -> None:
    # Tiles start at multiples of BN: offsets inside a 128-column scale block are multiples of
    # gcd(BN, 128); a tile must end within the next block.
    assert spans_at_most_two_scale_blocks(128) and spans_at_most_two_scale_blocks(16)
    assert spans_at_most_two_scale_blocks(160)      # offsets 0, 32, 64, 96: 96 + 160 = 256
    assert spans_at_most_two_scale_blocks(144)      # offsets up to 112: 112 + 144 = 256
    assert spans_at_most_two_scale_blocks(192)      # offsets 0, 64
    assert not spans_at_most_two_scale_blocks(176)  # the tile at 352 spans blocks 2, 3 and 4
    assert not spans_at_most_two_scale_blocks(224)


def test_split_k_never_leaves_an_empty_slice() -> None:
    assert k_split_sizes(16, 5) == [4, 4, 4, 4, 0]  # the rule must reject this split
    assert k_split_sizes(56, 4) == [14, 14, 14, 14]
    for m, n, k in [(64, 7168, 2048), (64, 2112, 7168), (1, 4096, 2560), (32, 512, 2048)]:
        c = select_config("dense", m, n, k, 1, 132)
        assert min(k_split_sizes(math.ceil(k / BLOCK_K), c.k_splits)) > 0


def test_large_m_uses_big_tiles_and_small_m_splits_k() -> None:
    big = select_config("dense", 4096, 7168, 16384, 1, 132)
    assert (big.block_m, big.block_n, big.multicast, big.k_splits) == (256, 128, "a", 1)
    narrow = select_config("dense", 4096, 2112, 7168, 1, 132)
    assert (narrow.block_m, narrow.block_n) == (128, 192)
    decode = select_config("dense", 64, 2112, 7168, 1, 132)
    assert decode.block_m == 64 and decode.stages > 3


def test_decode_shapes_of_65_to_128_rows_share_b_across_two_64_row_blocks() -> None:
    def tiles(m: int, n: int, k: int, num_sms: int = 132) -> tuple:
        c = select_config("dense", m, n, k, 1, num_sms)
        return c.block_m, c.block_n, c.k_splits, c.multicast

    # H200 sweep (config._decode_shares_b): the pair of M blocks shares B where B dominates
    assert tiles(100, 4096, 7168) == (64, 64, 1, "b")
    assert tiles(128, 4096, 7168) == (64, 64, 1, "b")
    # ... and not where a 128-row tile was measured faster (a tile holding all of M loads only the
    # rows inside M: 100x7168x2048 at 128x64 8.1 us, the sweep's best, 2026-11-30), nor with one
    # 64-row block, nor past two, nor with an odd SM count (clusters of 2)
    assert tiles(100, 7168, 2048) == (128, 64, 1, "none")
    assert tiles(128, 7168, 2048) == (128, 64, 1, "none")
    assert tiles(128, 24576, 1536)[3] == "none"
    for m in (1, 64, 129, 256):
        assert tiles(m, 4096, 7168)[3] == "none", m
    assert tiles(100, 4096, 7168, num_sms=131)[3] == "none"


@pytest.fixture
def model_only(monkeypatch):
    """select_config with the measured decode tiles left out: the model's own picks."""
    from fp8gemm import config

    monkeypatch.setattr(config, "MEASURED_DECODE_TILES", ())
    select_config.cache_clear()
    yield
    select_config.cache_clear()


def test_split_k_charges_the_handoff_of_larger_tiles(model_only) -> None:
    from fp8gemm.config import _split_k_overhead_us

    assert _split_k_overhead_us(1, 128, 128) == 0.0
    assert _split_k_overhead_us(2, 64, 32) == _split_k_overhead_us(2, 64, 64) == 3.0
    assert _split_k_overhead_us(2, 128, 128) > _split_k_overhead_us(2, 64, 128) > 3.0
    # H200 sweeps, 2026-11-30: 128x7168x16384 at 128x64 unsplit 34.3 us, 128x128 in 2 slices 37.0;
    # the small split tiles keep their slices (128x2112x7168: 128x32 in 2, 10.4 us)
    c = select_config("dense", 128, 7168, 16384, 1, 132)
    assert (c.block_m, c.block_n, c.k_splits) == (128, 64, 1)
    c = select_config("dense", 128, 2112, 7168, 1, 132)
    assert (c.block_m, c.block_n, c.k_splits) == (128, 32, 2)
    # 64x7168x16384: unsplit 64x64 32.7 us, 64x128 in 2 slices 34.0
    c = select_config("dense", 64, 7168, 16384, 1, 132)
    assert (c.block_m, c.block_n, c.k_splits) == (64, 64, 1)


@pytest.mark.parametrize("tile", MEASURED_DECODE_TILES, ids=lambda t: f"{t.n}x{t.k}")
def test_measured_decode_tiles_replace_the_model_only_on_their_shapes(tile, monkeypatch) -> None:
    from fp8gemm import config

    def tiles(m: int, n: int = tile.n, k: int = tile.k, num_sms: int = 132) -> tuple:
        select_config.cache_clear()
        c = select_config("dense", m, n, k, 1, num_sms)
        assert c.stages == max_stages(c.block_m, c.block_n, k_splits=c.k_splits)
        return c.block_m, c.block_n, c.multicast, c.k_splits

    measured = (tile.block_m, tile.block_n, tile.multicast, tile.k_splits)
    for m in (tile.min_m, (tile.min_m + tile.max_m) // 2, tile.max_m):
        assert tiles(m) == measured, m
    # past the M range, at another N or K, or on another SM count: the model's pick
    outside = [(tile.min_m - 1, tile.n, tile.k, 132), (tile.max_m + 1, tile.n, tile.k, 132),
               (tile.min_m, tile.n + 64, tile.k, 132), (tile.min_m, tile.n, tile.k + 128, 132),
               (tile.min_m, tile.n, tile.k, 114)]
    with_table = [tiles(*case) for case in outside]
    monkeypatch.setattr(config, "MEASURED_DECODE_TILES", ())
    assert [tiles(*case) for case in outside] == with_table
    select_config.cache_clear()


def test_measured_decode_tiles_are_faster_than_the_model_where_measured(model_only) -> None:
    # The entries' point: each replaces a different pick (an entry equal to the model's pick would
    # be dead weight). H200 figures in config.py's NOTES.
    for tile in MEASURED_DECODE_TILES:
        for m in (tile.min_m, tile.max_m):
            c = select_config("dense", m, tile.n, tile.k, 1, tile.num_sms)
            assert (c.block_m, c.block_n, c.k_splits) != (tile.block_m, tile.block_n, tile.k_splits)


def test_rows_of_the_a_box_past_m_cost_the_decode_tiles() -> None:
    from fp8gemm.config import _k_block_us

    assert _k_block_us(128, 32, rows_past_m=63) > _k_block_us(128, 32)
    # 65x4096x7168 ran 128x32 in 25.0 us when its box reached 63 rows past M (H200, 2026-11-30).
    # Boxes now stop at M rounded up to 8 rows (one tile) or start earlier (the last of several):
    # 64-row tiles sharing B 13.1 us, the sweep's best.
    c = select_config("dense", 65, 4096, 7168, 1, 132)
    assert (c.block_m, c.block_n, c.multicast) == (64, 64, "b")
    # below 65 rows every candidate is one 64-row block: those picks are unchanged
    assert select_config("dense", 1, 4096, 7168, 1, 132).block_n == 32


def test_masked_tiles_wider_than_128_only_for_groups_of_an_even_block_count() -> None:
    from fp8gemm.config import _even_masked_blocks

    # 192 rows give or take 30% (134-250) always fill 2 blocks of 128; 256 rows fill 2 or 3.
    assert _even_masked_blocks(192, 128) and not _even_masked_blocks(256, 128)
    assert not _even_masked_blocks(20, 64) and not _even_masked_blocks(100, 128)
    wide = select_config("masked", 192, 6144, 7168, 32, 132)
    assert (wide.block_m, wide.block_n, wide.multicast) == (128, 192, "b")
    for m, n, k, g in [(256, 4096, 7168, 4), (512, 7168, 2048, 2), (1024, 4096, 7168, 1),
                       (150, 7168, 2048, 8)]:
        c = select_config("masked", m, n, k, g, 132)
        assert c.block_n <= 128 and c.multicast == "a", (m, n, k, g, str(c))


def test_masked_128_row_tiles_share_b_only_where_odd_groups_run_in_pairs() -> None:
    # With an odd N-block count the scheduler pads a group's odd last block with an empty partner
    # (no pairs along N), so 128-row tiles share nothing there unless every group's count is even.
    from fp8gemm.config import _even_masked_blocks

    c = select_config("masked", 512, 2112, 7168, 4, 132)
    assert (c.block_m, c.block_n, c.multicast) == (128, 64, "none")
    for g in (1, 2, 4, 8, 32, 128):
        for m in (96, 128, 192, 256, 384, 512, 1024):
            for n, k in [(2112, 7168), (4096, 7168), (3072, 7168), (7168, 2048)]:
                c = select_config("masked", m, n, k, g, 132)
                if c.block_m == 128 and c.multicast == "b":
                    pairs_along_n = math.ceil(n / c.block_n) % 2 == 0
                    assert pairs_along_n or _even_masked_blocks(m, 128), (g, m, n, k, str(c))
    # 64-row tiles keep sharing B (bound by B's bytes, which the pair halves)
    assert select_config("masked", 64, 2112, 7168, 64, 132).multicast == "b"


@pytest.mark.parametrize("n,k", [(7168, 2048), (4096, 7168), (2112, 7168), (24576, 1536), (18432, 7168),
                                 (32768, 512), (8192, 8192)])
def test_dense_b_multicast_never_pads_an_odd_block_count_into_another_wave(n: int, k: int) -> None:
    # Sharing B pairs M blocks: an odd count runs an empty partner block (a whole row of tiles).
    for m in range(512, 8193, 64):
        c = select_config("dense", m, n, k, 1, 132)
        if c.multicast != "b":
            continue
        m_blocks, n_blocks = math.ceil(m / c.block_m), c.num_n_blocks
        padded = m_blocks + m_blocks % 2
        assert math.ceil(padded * n_blocks / 132) == math.ceil(m_blocks * n_blocks / 132), (m, str(c))


def test_dense_odd_block_counts_share_a_or_nothing_where_b_would_cost_a_wave() -> None:
    # H200, 2026-11-30: 640x7168x9216 at 128x144 108.1 us sharing B, 71.0 sharing A; 640x7168x2048
    # 30.9 sharing B, 22.8-22.9 sharing A or nothing (too few K blocks per CTA to share: nothing);
    # 1600x4096x7168 105.8 against 86.2 unshared (29 N blocks: A cannot pair them); 128x192 sharing
    # A spills.
    assert select_config("dense", 640, 7168, 9216, 1, 132).multicast == "a"
    assert select_config("dense", 640, 7168, 2048, 1, 132).multicast != "b"
    assert select_config("dense", 1600, 4096, 7168, 1, 132).multicast == "none"
    wide = select_config("dense", 640, 18432, 7168, 1, 132)
    assert (wide.block_n, wide.multicast) == (192, "none")
    # an even block count keeps sharing B (4096 rows: the benchmark shape)
    assert select_config("dense", 4096, 2112, 7168, 1, 132).multicast == "b"


def test_256_row_tiles_are_at_least_64_wide() -> None:
    # 640x2112x7168 ran 256x48 tiles in 26.3 us and 128x96 in 19.6 (H200, 2026-11-30).
    for m, n, k in [(640, 2112, 7168), (1000, 1536, 7168)]:
        c = select_config("dense", m, n, k, 1, 132)
        assert (c.block_m, c.block_n) == (128, 96), str(c)
    for n, k in [(2112, 7168), (1536, 7168), (576, 7168), (3072, 1536), (512, 4096)]:
        for m in range(256, 8193, 32):
            c = select_config("dense", m, n, k, 1, 132)
            assert c.block_m < 256 or c.block_n >= 64, (m, n, k, str(c))


def test_contiguous_tiles_share_b_only_when_long_in_k() -> None:
    from fp8gemm.config import CONTIGUOUS_MULTICAST_K_BLOCKS

    for g, k in [(4, 7168), (8, 7168), (4, 2048), (8, 2048)]:
        c = select_config("contiguous", 32768, 4096 if k == 7168 else 7168, k, g, 132)
        long_k = math.ceil(k / BLOCK_K) >= CONTIGUOUS_MULTICAST_K_BLOCKS
        assert (c.block_m, c.block_n) == (128, 192) and c.multicast == ("b" if long_k else "none"), str(c)
    assert select_config("contiguous", 32768, 4096, 7168, 4, 132).multicast == "b"
    assert select_config("contiguous", 32768, 7168, 2048, 4, 132).multicast == "b"   # 16 K blocks
    assert select_config("contiguous", 32768, 7168, 1536, 4, 132).multicast == "none"   # 12: not measured


def test_config_rejects_unknown_layout() -> None:
    with pytest.raises(ValueError, match="layout must be one of"):
        select_config("diagonal", 1, 128, 128)


@pytest.mark.parametrize("n,k,match", [(100, 128, "multiple of 8"), (128, 100, "multiple of 16"),
                                       (0, 128, "positive"), (128, 0, "positive")])
def test_plan_rejects_shapes_the_kernel_cannot_run(n: int, k: int, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        launch.plan("dense", 64, n, k)


def test_each_config_gets_its_own_kernel_name_and_constants() -> None:
    a = select_config("dense", 4096, 7168, 16384, 1, 132)
    b = select_config("dense", 64, 7168, 16384, 1, 132)
    assert a != b and kernel_name(a) != kernel_name(b)
    src = kernel_source(a)
    assert f"kShapeN = {a.n};" in src and f"kBlockN = {a.block_n};" in src
    assert f"kSmemBytes = {a.smem_bytes};" in src and f"m64n{a.block_n}k32" in src
    assert f'extern "C" __global__ void __launch_bounds__({a.num_threads}, 1)\n{kernel_name(a)}(' in src


@pytest.mark.parametrize("layout,m,n,k,groups", CASES)
def test_tma_boxes_match_the_tiles_the_kernel_loads(layout: str, m: int, n: int, k: int, groups: int) -> None:
    from fp8gemm.codegen import tma_boxes

    c = select_config(layout, m, n, k, groups, 132)
    box = tma_boxes(c)
    assert (box["a"].cols, box["a"].rows) == (BLOCK_K, c.block_m // (2 if c.multicast == "a" else 1))
    assert (box["b"].cols, box["b"].rows) == (BLOCK_K, c.block_n // (2 if c.multicast == "b" else 1))
    assert box["a"].swizzle == box["b"].swizzle == 128  # what the wgmma descriptors assume
    # the overlapped (decode) loops take A's scales 8 K blocks per load, the others one per stage
    assert (box["sa"].cols, box["sa"].rows, box["sa"].swizzle) == (c.block_m, c.a_scale_chunk, 0)
    assert c.a_scale_chunk == (8 if c.block_m <= 128 and c.block_n <= (128 if c.block_m == 64 else 96) else 1)
    assert (box["d"].cols, box["d"].rows, box["d"].swizzle) == (c.store_slab_cols, 64, 2 * c.store_slab_cols)
    # The generated source carries them for the kernel's static_asserts.
    src = kernel_source(c)
    assert f"kBoxRowsA = {box['a'].rows};" in src and f"kBoxRowsB = {box['b'].rows};" in src
    assert f"kBoxColsD = {box['d'].cols};" in src


@pytest.mark.parametrize("m", [1, 7, 8, 9, 33, 48, 63, 64, 65, 100, 127, 128, 129, 4096])
@pytest.mark.parametrize("block_m,block_n,multicast,k_splits", [
    (64, 32, "none", 1), (64, 128, "none", 2), (64, 64, "b", 1), (128, 32, "none", 1), (128, 128, "none", 2),
    (128, 192, "none", 1), (256, 128, "a", 1), (128, 128, "a", 1)])
def test_a_dense_gemm_inside_one_tile_loads_only_the_rows_inside_m(m: int, block_m: int, block_n: int,
                                                                  multicast: str, k_splits: int) -> None:
    from fp8gemm.codegen import loads_short_a_box, tma_boxes
    from fp8gemm.config import SHORT_BOX_ROWS_A, SHORT_BOX_ROWS_SA, with_tiles

    base = select_config("dense", 64, 7168, 7168, 1, 132)
    c = with_tiles(base, block_m, block_n, multicast, k_splits=k_splits)
    box, whole = tma_boxes(c, m), tma_boxes(c)
    short = m < block_m and multicast != "a"
    assert loads_short_a_box(c, m) == short
    assert box["b"] == whole["b"] and box["d"] == whole["d"]
    if not short:
        assert box == whole
        return
    # A: M's rows rounded up to a swizzle atom, never more than the tile, never past the next atom
    assert box["a"].rows % SHORT_BOX_ROWS_A == 0 and m <= box["a"].rows < m + SHORT_BOX_ROWS_A
    assert box["a"].rows <= block_m and (box["a"].cols, box["a"].swizzle) == (whole["a"].cols, 128)
    if c.a_scale_chunk == 1:   # per-stage scales: 128-byte lines of rows, at most the tile's
        assert box["sa"].cols == min(block_m, -(-m // SHORT_BOX_ROWS_SA) * SHORT_BOX_ROWS_SA)
        assert box["sa"].cols * 4 % 128 == 0 or box["sa"].cols == block_m
    else:                      # chunked scales are read at the tile's pitch: the whole box
        assert box["sa"] == whole["sa"]


@pytest.mark.parametrize("layout,groups", [("contiguous", 4), ("masked", 4)])
def test_grouped_layouts_load_whole_a_boxes(layout: str, groups: int) -> None:
    from fp8gemm.codegen import tma_boxes

    c = select_config(layout, 64, 4096, 7168, groups, 132)
    assert tma_boxes(c, 1) == tma_boxes(c)


def test_the_kernel_source_carries_the_short_box_granules() -> None:
    from fp8gemm.config import SHORT_BOX_ROWS_A, SHORT_BOX_ROWS_SA

    src = kernel_source(select_config("dense", 7, 4096, 7168, 1, 132))
    assert f"kShortBoxRowsA = {SHORT_BOX_ROWS_A};" in src and f"kShortBoxRowsSA = {SHORT_BOX_ROWS_SA};" in src


def test_with_tiles_derives_what_follows_from_the_tiles() -> None:
    from fp8gemm.config import with_tiles

    base = select_config("dense", 4096, 7168, 16384, 1, 132)
    v = with_tiles(base, 128, 192, "b")
    assert (v.block_m, v.block_n, v.multicast, v.k_splits) == (128, 192, "b", 1)
    assert v.stages == max_stages(128, 192) and v.store_slab_cols == 64 and v.smem_bytes <= SMEM_LIMIT
    assert (v.n, v.k, v.layout, v.raster_width) == (base.n, base.k, base.layout, base.raster_width)
    w = with_tiles(base, 64, 48, "none", stages=5, raster_width=8, k_splits=2)
    assert (w.stages, w.store_slab_cols, w.raster_width, w.k_splits) == (5, 16, 8, 2)


def test_the_kernel_refuses_contiguous_tiles_taller_than_the_groups_alignment() -> None:
    # A 256-row contiguous tile could span two experts (groups are aligned to 128 rows) and would
    # compute its second half with the first expert's weights: it must not compile.
    from fp8gemm.config import with_tiles
    from fp8gemm.jit.compiler import CompileError, compile_cuda

    cfg = with_tiles(select_config("contiguous", 4096, 1024, 1024, 4, 132), 256, 128, "a")
    with pytest.raises(CompileError, match="at most 128 rows"):
        compile_cuda(kernel_source(cfg), kernel_name(cfg), use_cache=False)


def test_dense_tiles_share_only_where_each_cta_runs_many_k_blocks() -> None:
    from fp8gemm.config import DENSE_MULTICAST_MIN_K_BLOCKS

    # H200 sweeps (config._multicast): mid-size M with few K blocks per CTA run faster unshared ...
    for m, n, k in [(512, 2112, 7168), (768, 32768, 512), (1024, 7168, 2048), (512, 24576, 1536)]:
        assert select_config("dense", m, n, k, 1, 132).multicast == "none", (m, n, k)
    # ... long runs keep sharing (640-1024 x 7168 x 16384: 2-4% faster shared), and so does every
    # M = 4096 shape of shapes.json
    prefill = [tuple(s) for s in SHAPES["dense"] if s[0] == 4096]
    for m, n, k in [(640, 7168, 16384), (1024, 7168, 16384), *prefill]:
        c = select_config("dense", m, n, k, 1, 132)
        waves = math.ceil(math.ceil(m / c.block_m) * c.num_n_blocks / 132)
        assert waves * math.ceil(k / BLOCK_K) >= DENSE_MULTICAST_MIN_K_BLOCKS
        assert c.multicast != "none", (m, n, k)


def test_two_chain_tiles_pay_per_tile_past_the_decode_rows() -> None:
    from fp8gemm.config import _tile_overhead_us

    # only 256-row tiles, only past the decode rows (the decode picks were fitted without it)
    assert _tile_overhead_us(640, 256) > 0
    assert _tile_overhead_us(640, 128) == _tile_overhead_us(640, 64) == _tile_overhead_us(128, 256) == 0.0
    # H200, CUPTI, same run, inputs redrawn (BENCHMARKS.md, thirteenth session): where tiles are short
    # in K, 128x192 beats 256x128 (4096x24576x1536 238.3 -> 230.2 us, 768x32768x512 26.4 -> 25.3,
    # 1536x7168x4096 74.9 -> 73.5); long K keeps 256x128 (4096x7168x16384: 128x192 B 6% slower in the sweep)
    for m, n, k in [(4096, 24576, 1536), (768, 32768, 512), (1536, 7168, 4096)]:
        c = select_config("dense", m, n, k, 1, 132)
        assert (c.block_m, c.block_n) == (128, 192), (m, n, k)
    for m, n, k in [(4096, 7168, 16384), (4096, 4096, 7168), (4096, 7168, 2048)]:
        assert select_config("dense", m, n, k, 1, 132).block_m == 256, (m, n, k)


def test_mid_m_loads_are_bounded_by_the_l2_share_of_each_sm() -> None:
    from fp8gemm.config import _k_block_us

    # with most SMs loading at once each gets ~82 GB/s: 128x48 (22 KB per K block) ran 0.27 us per K
    # block on 320x1536x7168, 64x64 (16 KB) 0.20; the decode estimate rated 128x48 faster
    assert _k_block_us(128, 48, mid_m=True) > _k_block_us(64, 64, mid_m=True)
    assert _k_block_us(128, 48) < _k_block_us(64, 64)          # the decode rows keep their fit
    # H200, same run: 320x1536x7168 128x48 15.0 us -> 64x64 11.4, 832x576x7168 128x32 12.6 -> 64x64 11.2
    for m, n, k in [(320, 1536, 7168), (832, 576, 7168)]:
        c = select_config("dense", m, n, k, 1, 132)
        assert (c.block_m, c.block_n) == (64, 64), (m, n, k)
    # grouped layouts were fitted apart and keep their picks
    c = select_config("masked", 512, 2112, 7168, 4, 132)
    assert (c.block_m, c.block_n) == (128, 64)


def test_select_config_minimises_the_tile_cost() -> None:
    from fp8gemm.config import tile_cost_us

    # The pick's model cost is the least of the unsplit, unshared candidates the pick was chosen from
    # (mid-size dense M: no split-K, no shared 64-row B), and the pruned sweeps rank by the same cost.
    for m, n, k in [(320, 1536, 7168), (1024, 32768, 512), (4096, 7168, 16384), (768, 4096, 7168)]:
        pick = select_config("dense", m, n, k, 1, 132)
        pick_cost = tile_cost_us("dense", m, n, k, pick.block_m, pick.block_n)
        for bm, bn in [(64, 64), (128, 48), (128, 128), (128, 160), (128, 192), (256, 128)]:
            assert pick_cost <= tile_cost_us("dense", m, n, k, bm, bn), (m, n, k, bm, bn)
