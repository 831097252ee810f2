"""Grouped GEMMs on an H200: every grouped shape of shapes.json and random group counts/sizes against the
reference; rows that must stay untouched stay NaN; masked_m clamping; one CUDA graph, many masked_m."""

from __future__ import annotations

import random

import pytest
import torch

from benchmarks.testing import (
    GroupedInputs,
    calc_diff,
    make_contiguous_inputs,
    make_masked_inputs,
    masked_counts,
)
from fp8gemm import gemm, reference
from fp8gemm.config import select_config
from fp8gemm.device import is_sm90_available
from fp8gemm.shapes import load_shapes

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not is_sm90_available(), reason="needs an sm_90 (Hopper) GPU"),
]

DIFF_VS_REFERENCE = 1e-5
MAX_ERR_VS_REFERENCE = 1e-2  # times max |reference|
DIFF_VS_UNQUANTIZED = 1e-3
NAN = float("nan")

SHAPES = load_shapes()
CONTIGUOUS = [(s.groups, s.m_per_group, s.n, s.k) for s in SHAPES.contiguous]
MASKED = [(s.groups, s.m_per_group, s.n, s.k) for s in SHAPES.masked]


def _random_cases(count: int, seed: int) -> list[tuple[list[int], int, int]]:
    """(rows per group, n, k): 1..64 groups of 0..2000 rows (some groups empty on purpose)."""
    rng = random.Random(seed)
    cases = []
    for _ in range(count):
        groups = rng.randint(1, 64)
        sizes = [0 if rng.random() < 0.1 else rng.randint(1, 2000) for _ in range(groups)]
        cases.append((sizes, 64 * rng.randint(1, 64), 128 * rng.randint(1, 32)))
    return cases


RANDOM_CONTIGUOUS = _random_cases(8, seed=21)
RANDOM_MASKED = _random_cases(8, seed=22)


def _ids(cases: list[tuple[list[int], int, int]]) -> list[str]:
    return [f"g{len(s)}-rows{sum(s)}-n{n}-k{k}" for s, n, k in cases]


def _check_groups(out: torch.Tensor, ref: torch.Tensor, x: GroupedInputs) -> None:
    """Valid rows match the reference (output of `fp8gemm.reference`) and the unquantized product."""
    groups = [g for g, (_, count) in enumerate(x.rows) if count]
    if not groups:
        return
    ours = torch.cat([x.valid_out(out, g) for g in groups])
    theirs = torch.cat([x.valid_out(ref, g) for g in groups])
    assert not ours.isnan().any(), f"{int(ours.isnan().sum())} valid outputs not written (still NaN)"
    assert calc_diff(ours, theirs) < DIFF_VS_REFERENCE
    scale = theirs.float().abs().max().clamp(min=1e-6)
    assert (ours.float() - theirs.float()).abs().max() <= MAX_ERR_VS_REFERENCE * scale
    for g in groups:
        exact = x.valid_a(g).float() @ x.b_bf16[g].float().t()
        assert calc_diff(x.valid_out(out, g), exact) < DIFF_VS_UNQUANTIZED, f"group {g}"


# ---- contiguous ---------------------------------------------------------------------------------


def _run_contiguous(x: GroupedInputs) -> torch.Tensor:
    out = torch.full((x.a.shape[0], x.b.shape[1]), NAN, dtype=torch.bfloat16, device="cuda")
    gemm.m_grouped_gemm_fp8_fp8_bf16_nt_contiguous((x.a, x.sa_tma), (x.b, x.sb), out, x.m_indices)
    torch.cuda.synchronize()
    return out


def _check_contiguous(x: GroupedInputs) -> None:
    out = _run_contiguous(x)
    padding = x.m_indices < 0
    assert out[padding].isnan().all(), "padding rows (m_indices == -1) were written"
    ref = reference.m_grouped_contiguous(x.a, x.sa, x.b, x.sb, x.m_indices)
    _check_groups(out, ref, x)


@pytest.mark.parametrize(("groups", "m_per_group", "n", "k"), CONTIGUOUS)
def test_contiguous_benchmark_shapes(groups: int, m_per_group: int, n: int, k: int) -> None:
    _check_contiguous(make_contiguous_inputs([m_per_group] * groups, n, k, seed=groups + n))


@pytest.mark.parametrize(("sizes", "n", "k"), RANDOM_CONTIGUOUS, ids=_ids(RANDOM_CONTIGUOUS))
def test_contiguous_random(sizes: list[int], n: int, k: int) -> None:
    _check_contiguous(make_contiguous_inputs(sizes, n, k, seed=len(sizes)))


def _forced_tiles(monkeypatch: pytest.MonkeyPatch, block_m: int, block_n: int, multicast: str) -> None:
    """Make the launcher use these tiles (the heuristics pick them only for some problems)."""
    from fp8gemm import launch
    from fp8gemm.config import with_tiles

    def select(layout, m, n, k, groups=1, num_sms=132):
        return with_tiles(select_config(layout, m, n, k, groups, num_sms), block_m, block_n, multicast)

    monkeypatch.setattr(launch, "select_config", select)


# Tiles whose B scale block changes inside them, at every column the kernel is instantiated for:
# BLOCK_N = 144 on N = 2112 starts tiles at offsets 0, 16, ..., 112 of a scale block (8 variants);
# 192 meets the boundary at column 64; with B multicast, pairs of M blocks from different experts
# load B unshared.
STRADDLING_TILES = [(128, 144, "none"), (128, 192, "b"), (128, 160, "a")]


@pytest.mark.parametrize(("block_m", "block_n", "multicast"), STRADDLING_TILES)
def test_contiguous_tiles_over_two_b_scale_blocks(monkeypatch: pytest.MonkeyPatch, block_m: int, block_n: int,
                                                 multicast: str) -> None:
    _forced_tiles(monkeypatch, block_m, block_n, multicast)
    n = 2240 if multicast == "a" else 2112  # multicast of A needs an even N-block count (14 x 160)
    _check_contiguous(make_contiguous_inputs([300, 1000, 129, 0, 900, 1], n, 1024, seed=6))


# K not a multiple of 128 and N not a multiple of 64 (partial scale blocks, a partial last tile).
ODD_NK = [(136, 208), (520, 1040), (72, 7184), (2056, 2064)]


@pytest.mark.parametrize(("n", "k"), ODD_NK)
def test_contiguous_odd_k_and_n(n: int, k: int) -> None:
    assert k % 128 and n % 64
    _check_contiguous(make_contiguous_inputs([100, 0, 37, 256, 1], n, k, seed=n + k))


def test_contiguous_is_bitwise_repeatable() -> None:
    x = make_contiguous_inputs([100, 0, 1000, 7], 1024, 2048, seed=2)
    first = _run_contiguous(x)
    for _ in range(3):
        assert torch.equal(_run_contiguous(x).view(torch.int16), first.view(torch.int16))


# ---- masked -------------------------------------------------------------------------------------


def _run_masked(x: GroupedInputs, masked_m: torch.Tensor, expected_m: int, out: torch.Tensor | None = None):
    if out is None:
        out = torch.empty((x.a.shape[0], x.max_m, x.b.shape[1]), dtype=torch.bfloat16, device="cuda")
    out.fill_(NAN)
    gemm.m_grouped_gemm_fp8_fp8_bf16_nt_masked((x.a, x.sa_tma), (x.b, x.sb), out, masked_m, expected_m)
    torch.cuda.synchronize()
    return out


def _check_masked_out(out: torch.Tensor, x: GroupedInputs, counts: list[int]) -> None:
    """Rows past each group's (clamped) count are NaN; the valid rows match the reference."""
    x.rows = [(0, min(max(c, 0), x.max_m)) for c in counts]
    for g, (_, count) in enumerate(x.rows):
        assert out[g, count:].isnan().all(), f"group {g}: rows past masked_m={count} were written"
    masked_m = torch.tensor(counts, dtype=torch.int32, device="cuda")
    ref = reference.m_grouped_masked(x.a, x.sa, x.b, x.sb, masked_m)
    _check_groups(out, ref, x)


def _expected_m(counts: list[int]) -> int:
    return max(1, round(sum(counts) / len(counts)))


@pytest.mark.parametrize(("groups", "m_per_group", "n", "k"), MASKED)
def test_masked_benchmark_shapes(groups: int, m_per_group: int, n: int, k: int) -> None:
    counts, max_m = masked_counts(groups, m_per_group, 0.3, seed=groups)
    x = make_masked_inputs(counts, max_m, n, k, seed=groups + n)
    _check_masked_out(_run_masked(x, x.masked_m, m_per_group), x, counts)


@pytest.mark.parametrize(("sizes", "n", "k"), RANDOM_MASKED, ids=_ids(RANDOM_MASKED))
def test_masked_random(sizes: list[int], n: int, k: int) -> None:
    max_m = max(64, (max(sizes) + 63) // 64 * 64)
    x = make_masked_inputs(sizes, max_m, n, k, seed=len(sizes))
    _check_masked_out(_run_masked(x, x.masked_m, _expected_m(sizes)), x, sizes)


@pytest.mark.parametrize(("block_m", "block_n", "multicast"), STRADDLING_TILES + [(256, 128, "a")])
def test_masked_tiles_over_two_b_scale_blocks(monkeypatch: pytest.MonkeyPatch, block_m: int, block_n: int,
                                             multicast: str) -> None:
    # With a partial group, an empty one and groups with an odd number of M blocks (B multicast
    # gives them an empty partner).
    _forced_tiles(monkeypatch, block_m, block_n, multicast)
    n = 2240 if multicast == "a" else 2112
    counts = [1024, 700, 0, 129]
    x = make_masked_inputs(counts, 1024, n, 1024, seed=7)
    _check_masked_out(_run_masked(x, x.masked_m, 512), x, counts)


@pytest.mark.parametrize(("block_n", "n"), [(192, 4096), (128, 2048), (192, 2112)])
def test_masked_b_multicast_odd_block_counts(monkeypatch: pytest.MonkeyPatch, block_n: int, n: int) -> None:
    # B multicast with groups of 1, 3 and 5 M blocks (and an empty one): with an even N-block count
    # the odd last block runs unshared, its N blocks in pairs (scheduler kOddRowAlongN); with an odd
    # one (2112 / 192 = 11) it gets an empty partner.
    _forced_tiles(monkeypatch, 128, block_n, "b")
    counts = [300, 0, 100, 600, 257]
    x = make_masked_inputs(counts, 640, n, 1024, seed=block_n + n)
    _check_masked_out(_run_masked(x, x.masked_m, 256), x, counts)


@pytest.mark.parametrize(("n", "k"), ODD_NK)
def test_masked_odd_k_and_n(n: int, k: int) -> None:
    assert k % 128 and n % 64
    counts = [0, 5, 128, 33, 1]
    x = make_masked_inputs(counts, 128, n, k, seed=n + k)
    _check_masked_out(_run_masked(x, x.masked_m, 33), x, counts)


def test_masked_m_above_max_m_is_clamped() -> None:
    counts = [5000, 0, 256, 100000, 3]
    x = make_masked_inputs([256, 0, 256, 256, 3], 256, 1024, 2048, seed=9)
    masked_m = torch.tensor(counts, dtype=torch.int32, device="cuda")
    out = _run_masked(x, masked_m, 128)
    assert not out[0].isnan().any() and not out[3].isnan().any()  # clamped to max_m: every row computed
    _check_masked_out(out, x, counts)


def test_masked_cuda_graph_replays_with_new_masked_m() -> None:
    groups, max_m, n, k = 8, 256, 4096, 7168
    x = make_masked_inputs([max_m] * groups, max_m, n, k, seed=4)
    masked_m = torch.zeros(groups, dtype=torch.int32, device="cuda")
    out = torch.empty((groups, max_m, n), dtype=torch.bfloat16, device="cuda")
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):  # warm up (JIT compile) outside the capture
        gemm.m_grouped_gemm_fp8_fp8_bf16_nt_masked((x.a, x.sa_tma), (x.b, x.sb), out, masked_m, 64)
    torch.cuda.current_stream().wait_stream(side)
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        gemm.m_grouped_gemm_fp8_fp8_bf16_nt_masked((x.a, x.sa_tma), (x.b, x.sb), out, masked_m, 64)
    rng = random.Random(8)
    trials = [[rng.randint(0, max_m) for _ in range(groups)] for _ in range(3)]
    trials += [[0] * groups, [max_m] * groups, [1, max_m, 0, 17, 128, 129, 255, 300]]
    for counts in trials:
        masked_m.copy_(torch.tensor(counts, dtype=torch.int32))
        out.fill_(NAN)
        graph.replay()
        torch.cuda.synchronize()
        _check_masked_out(out, x, counts)


# Decode tiles issue the wgmma of 2-4 K blocks before waiting for them (see the dense test of the
# same name): groups of 0 rows, odd counts, K block counts that leave a remainder.
OVERLAPPED_MASKED_TILES = [(64, 32, "none"), (64, 128, "a"), (128, 64, "none")]


@pytest.mark.parametrize(("block_m", "block_n", "multicast"), OVERLAPPED_MASKED_TILES)
def test_masked_overlapped_k_blocks(monkeypatch: pytest.MonkeyPatch, block_m: int, block_n: int,
                                    multicast: str) -> None:
    _forced_tiles(monkeypatch, block_m, block_n, multicast)
    counts = [0, 7, 65, 0, 100, 1]
    x = make_masked_inputs(counts, 128, 512, 1168, seed=block_n)   # 10 K blocks, the last partial
    _check_masked_out(_run_masked(x, x.masked_m, 32), x, counts)


@pytest.mark.parametrize(("block_m", "block_n"), [(128, 32), (128, 96)])
def test_contiguous_overlapped_k_blocks(monkeypatch: pytest.MonkeyPatch, block_m: int, block_n: int) -> None:
    _forced_tiles(monkeypatch, block_m, block_n, "none")
    _check_contiguous(make_contiguous_inputs([33, 0, 1, 200, 7], 520, 1424, seed=block_n))  # 12 K blocks
