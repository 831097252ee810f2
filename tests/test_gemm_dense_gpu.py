"""Dense GEMM on an H200: every shape of shapes.json and random shapes against the reference and the
unquantized product; NaN-poisoned outputs; bitwise-repeatable results; CUDA graphs; two streams."""

from __future__ import annotations

import random

import pytest
import torch

from benchmarks.testing import DenseInputs, calc_diff, make_dense_inputs, reference_dense, unquantized_product
from fp8gemm import gemm
from fp8gemm.device import is_sm90_available
from fp8gemm.shapes import load_shapes

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not is_sm90_available(), reason="needs an sm_90 (Hopper) GPU"),
]

# Against the reference only the tensor cores' rounding inside a 128-wide K block differs, so the BF16
# outputs agree to about one BF16 ulp; against the unquantized product, FP8 noise dominates.
DIFF_VS_REFERENCE = 1e-5
MAX_ERR_VS_REFERENCE = 1e-2  # times max |reference|: a few BF16 ulps of the largest output
DIFF_VS_UNQUANTIZED = 1e-3


def _random_shapes(count: int, seed: int = 1234) -> list[tuple[int, int, int]]:
    rng = random.Random(seed)
    shapes = []
    for _ in range(count):
        m = min(8192, max(1, round(2 ** rng.uniform(0, 13))))  # log-uniform: small M as often as large
        shapes.append((m, 64 * rng.randint(1, 128), 128 * rng.randint(1, 64)))
    return shapes


DENSE = [(s.m, s.n, s.k) for s in load_shapes().dense]
RANDOM = _random_shapes(56)


def _run(x: DenseInputs, out: torch.Tensor) -> torch.Tensor:
    out.fill_(float("nan"))  # poison: every element must be written
    gemm.gemm_fp8_fp8_bf16_nt((x.a, x.sa_tma), (x.b, x.sb), out)
    return out


def _check(out: torch.Tensor, x: DenseInputs, ref: torch.Tensor | None = None) -> None:
    torch.cuda.synchronize()
    assert not out.isnan().any(), f"{int(out.isnan().sum())} outputs not written (still NaN)"
    assert out.isfinite().all()
    ref = reference_dense(x.a, x.sa, x.b, x.sb) if ref is None else ref
    assert calc_diff(out, ref) < DIFF_VS_REFERENCE
    scale = ref.float().abs().max().clamp(min=1e-6)
    max_err = (out.float() - ref.float()).abs().max()
    assert max_err <= MAX_ERR_VS_REFERENCE * scale, (
        f"max abs error {float(max_err)} vs max |ref| {float(scale)}"
    )
    assert calc_diff(out, unquantized_product(x.a_bf16, x.b_bf16)) < DIFF_VS_UNQUANTIZED


def _same_bits(x: torch.Tensor, y: torch.Tensor) -> bool:
    return torch.equal(x.view(torch.int16), y.view(torch.int16))


@pytest.mark.parametrize(("m", "n", "k"), DENSE, ids=[f"{m}x{n}x{k}" for m, n, k in DENSE])
def test_benchmark_shapes(m: int, n: int, k: int) -> None:
    x = make_dense_inputs(m, n, k, seed=m + n + k)
    out = torch.empty((m, n), dtype=torch.bfloat16, device="cuda")
    _check(_run(x, out), x)


@pytest.mark.parametrize(("m", "n", "k"), RANDOM, ids=[f"{m}x{n}x{k}" for m, n, k in RANDOM])
def test_random_shapes(m: int, n: int, k: int) -> None:
    x = make_dense_inputs(m, n, k, seed=7 * m + n + k)
    out = torch.empty((m, n), dtype=torch.bfloat16, device="cuda")
    _check(_run(x, out), x)


def test_row_major_scales_give_the_same_result() -> None:
    x = make_dense_inputs(300, 1024, 2048, seed=3)
    fast = _run(x, torch.empty((300, 1024), dtype=torch.bfloat16, device="cuda")).clone()
    slow = torch.full_like(fast, float("nan"))
    gemm.gemm_fp8_fp8_bf16_nt((x.a, x.sa), (x.b, x.sb), slow)
    torch.cuda.synchronize()
    assert _same_bits(fast, slow)


@pytest.mark.parametrize(("m", "n", "k"), [(128, 32768, 512), (64, 32768, 640), (200, 24576, 384)])
def test_b_scales_at_any_address(m: int, n: int, k: int) -> None:
    """sb need only be contiguous: a view 4 bytes into a larger buffer gives the same bits as an
    aligned copy. These tiles fit their load ring, where the producer prefetches later tiles' B
    scales with a bulk prefetch that needs 16-byte aligned addresses (fp8_gemm.cuh, sb_aligned)."""
    x = make_dense_inputs(m, n, k, seed=5)
    aligned = _run(x, torch.empty((m, n), dtype=torch.bfloat16, device="cuda")).clone()
    _check(aligned, x)
    buffer = torch.empty(x.sb.numel() + 1, device="cuda")
    sb = buffer[1:].view_as(x.sb)
    sb.copy_(x.sb)
    assert sb.is_contiguous() and sb.data_ptr() % 16 == 4
    shifted = torch.full_like(aligned, float("nan"))
    gemm.gemm_fp8_fp8_bf16_nt((x.a, x.sa_tma), (x.b, sb), shifted)
    torch.cuda.synchronize()
    assert _same_bits(shifted, aligned)


@pytest.mark.parametrize(
    ("m", "n", "k"), [(1, 2112, 7168), (128, 7168, 2048), (4096, 4096, 7168), (777, 576, 1536)]
)
def test_repeated_runs_are_bitwise_identical(m: int, n: int, k: int) -> None:
    x = make_dense_inputs(m, n, k, seed=11)
    out = torch.empty((m, n), dtype=torch.bfloat16, device="cuda")
    first = _run(x, out).clone()
    _check(first, x)
    for _ in range(5):
        assert _same_bits(_run(x, out), first)


def test_cuda_graph_capture_and_replay() -> None:
    m, n, k = 256, 4096, 7168
    x = make_dense_inputs(m, n, k, seed=5)
    out = torch.empty((m, n), dtype=torch.bfloat16, device="cuda")
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):  # warm up (JIT compile, allocations) outside the capture
        gemm.gemm_fp8_fp8_bf16_nt((x.a, x.sa_tma), (x.b, x.sb), out)
    torch.cuda.current_stream().wait_stream(side)
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        gemm.gemm_fp8_fp8_bf16_nt((x.a, x.sa_tma), (x.b, x.sb), out)
    for seed in (5, 6, 7):
        # New values in the captured buffers: the replay must use them.
        y = make_dense_inputs(m, n, k, seed=seed)
        x.a.copy_(y.a)
        x.sa_tma.copy_(y.sa_tma)
        x.b.copy_(y.b)
        x.sb.copy_(y.sb)
        out.fill_(float("nan"))
        graph.replay()
        _check(out, y)


def test_two_streams_at_once() -> None:
    shapes = [(128, 4096, 7168), (4096, 2112, 7168)]
    inputs = [make_dense_inputs(m, n, k, seed=i) for i, (m, n, k) in enumerate(shapes)]
    outs = [torch.empty((m, n), dtype=torch.bfloat16, device="cuda") for m, n, _ in shapes]
    expected = [_run(x, out).clone() for x, out in zip(inputs, outs, strict=True)]
    for x, e in zip(inputs, expected, strict=True):
        _check(e, x)
    streams = [torch.cuda.Stream(), torch.cuda.Stream()]
    for out in outs:
        out.fill_(float("nan"))
    for s in streams:
        s.wait_stream(torch.cuda.current_stream())
    for _ in range(10):  # interleave launches so the kernels overlap on the GPU
        for s, x, out in zip(streams, inputs, outs, strict=True):
            with torch.cuda.stream(s):
                gemm.gemm_fp8_fp8_bf16_nt((x.a, x.sa_tma), (x.b, x.sb), out)
    for s in streams:
        torch.cuda.current_stream().wait_stream(s)
    torch.cuda.synchronize()
    for out, e in zip(outs, expected, strict=True):
        assert _same_bits(out, e)


def test_repeat_calls_skip_checks_but_not_changed_layouts() -> None:
    x = make_dense_inputs(64, 2112, 7168)
    out = torch.full((64, 2112), float("nan"), dtype=torch.bfloat16, device="cuda")
    _run(x, out)  # first call: full checks, signature remembered
    for _ in range(3):
        gemm.gemm_fp8_fp8_bf16_nt((x.a, x.sa_tma), (x.b, x.sb), out)
    _run(x, out)
    _check(out, x)
    # Same tensors but a row-major sa: a new signature, so the layout is checked and converted again.
    out2 = torch.full_like(out, float("nan"))
    gemm.gemm_fp8_fp8_bf16_nt((x.a, x.sa.contiguous()), (x.b, x.sb), out2)
    assert _same_bits(out, out2)
    # A bad out after good calls is still refused.
    with pytest.raises(ValueError, match="out"):
        gemm.gemm_fp8_fp8_bf16_nt((x.a, x.sa_tma), (x.b, x.sb), out[:, :2000])


# K not a multiple of 128 (a partial last scale block) and N not a multiple of 64 (a partial last
# tile and a partial B scale block); the API allows k % 16 == 0 and n % 8 == 0. Odd M too.
ODD = [(1, 136, 208), (7, 520, 1040), (33, 2056, 7184), (65, 72, 16), (100, 4104, 2064), (129, 1032, 7200)]


@pytest.mark.parametrize(("m", "n", "k"), ODD)
def test_odd_k_and_n(m: int, n: int, k: int) -> None:
    assert k % 128 and n % 64
    x = make_dense_inputs(m, n, k, seed=m + n + k)
    out = torch.empty((m, n), dtype=torch.bfloat16, device="cuda")
    _check(_run(x, out), x)


# Decode tiles (one 64-row chain per warpgroup, BLOCK_N <= 96, or <= 128 with one math warpgroup)
# issue the wgmma of 2 (BN > 32) or 4 (BN <= 32) K blocks before waiting for them: K block counts
# that leave a remainder (5, 9 with a partial last block, 3, 56, 17 with a partial one), odd M, and
# a split-K slice whose length is not a multiple of the depth. Their B scales are lane-held, 32 K
# blocks per register slot: 97 K blocks (4 slots, the last with one), 72 with two B scale rows (BN 96
# across a scale block), and 131 (more than 4 slots: loaded per K block instead). 128x64 tiles (picked
# since their producer has 56 registers) at a partial last K block and at two M blocks.
OVERLAPPED = [((64, 16), (1, 520, 640)), ((64, 32), (7, 1032, 1040)), ((64, 128), (33, 256, 384)),
              ((128, 32), (65, 2112, 7168)), ((128, 96), (100, 4104, 2064)), ((64, 64), (7, 520, 12416)),
              ((64, 96), (33, 4104, 9216)), ((64, 32), (1, 264, 16704)), ((128, 64), (100, 7168, 2064)),
              ((128, 64), (256, 1032, 7168))]


@pytest.mark.parametrize(("tiles", "shape"), OVERLAPPED, ids=[f"{t[0]}x{t[1]}" for t, _ in OVERLAPPED])
def test_overlapped_k_blocks(monkeypatch: pytest.MonkeyPatch, tiles: tuple[int, int],
                             shape: tuple[int, int, int]) -> None:
    _check_forced_tiles(monkeypatch, tiles, shape, seed=shape[0] + shape[1])


def _check_forced_tiles(monkeypatch: pytest.MonkeyPatch, tiles: tuple[int, int], shape: tuple[int, int, int],
                        seed: int, multicast: str = "none") -> None:
    _force_tiles(monkeypatch, *tiles, multicast=multicast)
    m, n, k = shape
    x = make_dense_inputs(m, n, k, seed=seed)
    out = torch.empty((m, n), dtype=torch.bfloat16, device="cuda")
    _check(_run(x, out), x)


# Two-warpgroup tiles (one and two 64-row chains per warpgroup) hold their B scales across the lanes
# too: 33 K blocks (the second slot holds one), 97 (4 slots), tiles across two B scale blocks (BN 192
# and 160), and 129 K blocks (more than 4 slots: loaded per K block instead).
TWO_WARPGROUPS = [((128, 128), (129, 1024, 4224)), ((256, 128), (300, 512, 12416)),
                  ((128, 192), (200, 2112, 4224)), ((128, 160), (129, 1000, 2064)),
                  ((256, 128), (257, 384, 16512)), ((128, 192), (65, 576, 16512))]


@pytest.mark.parametrize(("tiles", "shape"), TWO_WARPGROUPS,
                         ids=[f"{t[0]}x{t[1]}-k{s[2]}" for t, s in TWO_WARPGROUPS])
def test_two_warpgroup_tiles_lane_held_scales(monkeypatch: pytest.MonkeyPatch, tiles: tuple[int, int],
                                              shape: tuple[int, int, int]) -> None:
    _check_forced_tiles(monkeypatch, tiles, shape, seed=shape[0] + shape[2])


# Tiles that may start at more than two offsets inside a B scale block take the boundary at run
# time (fp8_gemm.cuh, kRuntimeScaleBoundary): N spans every offset the width can start at (8 tiles
# of 80-160, 4 of 96 at 128 rows), mostly with a partial last tile; one- and two-warpgroup tiles,
# A shared, the overlapped decode loop.
RUNTIME_BOUNDARY = [((128, 144, "none"), (300, 8 * 144 + 40, 1024)),
                    ((128, 112, "none"), (129, 8 * 112 + 8, 640)),
                    ((128, 160, "a"), (256, 8 * 160, 2048)),
                    ((128, 80, "none"), (200, 8 * 80 + 16, 1152)),
                    ((64, 96, "none"), (33, 8 * 96 + 24, 4224)),
                    ((128, 96, "none"), (100, 4 * 96, 768))]


@pytest.mark.parametrize(("tiles", "shape"), RUNTIME_BOUNDARY,
                         ids=[f"{t[0]}x{t[1]}{t[2]}-n{s[1]}" for t, s in RUNTIME_BOUNDARY])
def test_scale_boundary_at_run_time(monkeypatch: pytest.MonkeyPatch, tiles: tuple[int, int, str],
                                    shape: tuple[int, int, int]) -> None:
    _check_forced_tiles(monkeypatch, tiles[:2], shape, seed=shape[1] + shape[2], multicast=tiles[2])


# 256-row tiles without ring rounds start their sums with the tile's first K block (no zeroing):
# tiles of one K block (the first is also the last, which stages chain 0 early), of two (one
# partial), and longer ones, several tiles per CTA, with A shared, B shared and neither.
FIRST_K_BLOCK = [((256, 128, "a"), (300, 1024, 128)), ((256, 128, "none"), (513, 264, 64)),
                 ((256, 128, "b"), (1000, 520, 208)), ((256, 64, "a"), (4100, 1024, 384)),
                 ((256, 128, "a"), (2048, 8192, 1024))]


@pytest.mark.parametrize(("tiles", "shape"), FIRST_K_BLOCK,
                         ids=[f"{t[0]}x{t[1]}{t[2]}-k{s[2]}" for t, s in FIRST_K_BLOCK])
def test_first_k_block_starts_the_sums(monkeypatch: pytest.MonkeyPatch, tiles: tuple[int, int, str],
                                       shape: tuple[int, int, int]) -> None:
    _check_forced_tiles(monkeypatch, tiles[:2], shape, seed=shape[0] + shape[2], multicast=tiles[2])


def test_overlapped_k_blocks_with_split_k(monkeypatch: pytest.MonkeyPatch) -> None:
    _force_tiles(monkeypatch, 64, 32, k_splits=3)   # 57 K blocks: slices of 19, 19, 19
    x = make_dense_inputs(33, 2056, 7184, seed=5)
    out = torch.empty((33, 2056), dtype=torch.bfloat16, device="cuda")
    _check(_run(x, out), x)


# Split-K inside a cluster (rank 0 sums the other slices' FP32 sums out of their shared memory): odd M
# (1, 7, 33, 65, 100), slices of unequal length (the last one shorter), partial K and N blocks, 2-4
# slices, one- and two-warpgroup tiles, overlapped and plain main loops.
SPLIT = [((64, 32, 2), (1, 2112, 7168)), ((64, 64, 2), (7, 520, 1424)), ((64, 16, 4), (33, 264, 3008)),
         ((128, 32, 2), (65, 2112, 7168)), ((128, 128, 2), (100, 384, 1040)),
         ((128, 48, 3), (100, 200, 3008))]


@pytest.mark.parametrize(("tiles", "shape"), SPLIT, ids=[f"{t[0]}x{t[1]}x{t[2]}" for t, _ in SPLIT])
def test_split_k_in_a_cluster(monkeypatch: pytest.MonkeyPatch, tiles: tuple[int, int, int],
                              shape: tuple[int, int, int]) -> None:
    _force_tiles(monkeypatch, *tiles)
    m, n, k = shape
    x = make_dense_inputs(m, n, k, seed=m + k)
    out = torch.empty((m, n), dtype=torch.bfloat16, device="cuda")
    first = _run(x, out).clone()
    _check(first, x)
    assert torch.equal(_run(x, out), first), "the slices are summed in a fixed order: same bits every run"


def test_split_k_clusters_take_several_tiles_each(monkeypatch: pytest.MonkeyPatch) -> None:
    """With 8 SMs, 4 clusters of 2 walk 18 tiles: the sums' handoff repeats, phase after phase."""
    import fp8gemm

    _force_tiles(monkeypatch, 64, 32, k_splits=2)
    monkeypatch.setattr(fp8gemm.device, "_num_sms_override", 8)
    x = make_dense_inputs(130, 200, 1424, seed=11)
    out = torch.empty((130, 200), dtype=torch.bfloat16, device="cuda")
    _check(_run(x, out), x)


# 64-row decode tiles whose two M blocks share B (multicast "b"; the heuristics' pick for some
# M = 65-128): a second block of 1, 36 and 64 rows, B-scale boundaries inside the tile (80, 112).
SHARED_B = [((64, 64), (65, 4096, 7168)), ((64, 128), (100, 7168, 2048)), ((64, 112), (128, 1000, 1152)),
            ((64, 80), (97, 2112, 4224))]


@pytest.mark.parametrize(("tiles", "shape"), SHARED_B, ids=[f"{t[0]}x{t[1]}-m{s[0]}" for t, s in SHARED_B])
def test_decode_tiles_sharing_b(monkeypatch: pytest.MonkeyPatch, tiles: tuple[int, int],
                                shape: tuple[int, int, int]) -> None:
    _force_tiles(monkeypatch, *tiles, multicast="b")
    m, n, k = shape
    x = make_dense_inputs(m, n, k, seed=m + n)
    out = torch.empty((m, n), dtype=torch.bfloat16, device="cuda")
    _check(_run(x, out), x)


# A dense GEMM inside one tile loads only A's rows inside M (codegen.tma_boxes): the stage's rows past
# them keep what the last kernel on that SM left there. Each case first runs the same kernel on a
# whole tile of NaN rows, so those stale rows are NaN, then M rows of finite data: no NaN may reach
# the rows inside M. Chunked A scales (overlapped loops) and per-stage ones (64x160, 128x128 and
# 128x192), split-K, rows of 1, 9, 33, 63, 65, 100 and 127.
SHORT_BOXES = [((64, 32, 1), 1), ((64, 160, 1), 9), ((64, 64, 2), 33), ((64, 144, 1), 63), ((128, 32, 1), 65),
               ((128, 128, 2), 100), ((128, 192, 1), 127), ((128, 96, 1), 9)]


@pytest.mark.parametrize(("tiles", "m"), SHORT_BOXES,
                         ids=[f"{bm}x{bn}x{ks}-m{m}" for (bm, bn, ks), m in SHORT_BOXES])
def test_short_a_boxes_ignore_stale_shared_memory(monkeypatch: pytest.MonkeyPatch,
                                                  tiles: tuple[int, int, int], m: int) -> None:
    block_m, block_n, k_splits = tiles
    _force_tiles(monkeypatch, block_m, block_n, k_splits=k_splits)
    n, k = block_n * 132, 2048   # a tile for every SM, in both runs
    stale = make_dense_inputs(block_m, n, k, seed=m)
    stale.a.view(torch.uint8).fill_(0x7F)   # e4m3 NaN in every row of every stage
    gemm.gemm_fp8_fp8_bf16_nt((stale.a, stale.sa_tma), (stale.b, stale.sb),
                              torch.empty((block_m, n), dtype=torch.bfloat16, device="cuda"))
    x = make_dense_inputs(m, n, k, seed=m + 1)
    _check(_run(x, torch.empty((m, n), dtype=torch.bfloat16, device="cuda")), x)


# The last of several M blocks, where it would reach past M, starts earlier (on the next multiple of
# 8 rows past M - BLOCK_M; fp8_gemm.cuh, tile_first_row): the rows it shares with the block before
# are computed and stored by both. Unshared, multicast A and B (the pair's second block shifted, or
# its first), split-K, M just past a block and 1-7 rows short of a multiple of 8.
LAST_BLOCKS = [((128, 64, "none", 1), 129), ((256, 128, "a", 1), 300), ((64, 64, "b", 1), 97),
               ((128, 32, "none", 2), 201), ((256, 128, "b", 1), 6055), ((128, 160, "b", 1), 390),
               ((128, 192, "b", 1), 390),   # (this one keeps its box past M: see tile_first_row)
               ((128, 144, "a", 1), 390), ((128, 160, "a", 1), 1097)]   # wide tiles sharing A: odd M blocks


@pytest.mark.parametrize(("tiles", "m"), LAST_BLOCKS,
                         ids=[f"{bm}x{bn}{mc}x{ks}-m{m}" for (bm, bn, mc, ks), m in LAST_BLOCKS])
def test_last_m_block_starts_inside_m(monkeypatch: pytest.MonkeyPatch, tiles: tuple[int, int, str, int],
                                      m: int) -> None:
    block_m, block_n, multicast, k_splits = tiles
    _force_tiles(monkeypatch, block_m, block_n, k_splits=k_splits, multicast=multicast)
    n, k = 8 * block_n, 1152
    x = make_dense_inputs(m, n, k, seed=m)
    out = torch.empty((m, n), dtype=torch.bfloat16, device="cuda")
    first = _run(x, out).clone()
    _check(first, x)
    assert _same_bits(_run(x, out), first), "rows stored by two tiles must get the same bits"


def _force_tiles(monkeypatch: pytest.MonkeyPatch, block_m: int, block_n: int, k_splits: int = 1,
                 multicast: str = "none") -> None:
    """Make the launcher use these tiles (the heuristics pick them only for some problems)."""
    from fp8gemm import launch
    from fp8gemm.config import select_config, with_tiles

    def select(layout, m, n, k, groups=1, num_sms=132):
        return with_tiles(select_config(layout, m, n, k, groups, num_sms), block_m, block_n, multicast,
                          k_splits=k_splits)

    monkeypatch.setattr(launch, "select_config", select)
