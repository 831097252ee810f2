"""Small GEMMs for compute-sanitizer (memcheck, racecheck, synccheck): every layout, a 2-CTA cluster
with TMA multicast, split-K, K % 128 != 0 and N % 64 != 0 for all three layouts, and forced tiles
the heuristics pick only for large problems (BLOCK_M 256 with two chains per warpgroup, BLOCK_N 192,
B multicast on the grouped layouts, with pairs of M blocks that belong to different experts; decode
tiles whose K blocks overlap, and 64-row ones whose two M blocks share B; split-K in a cluster,
several tiles per cluster). Also the training
kernel (fp8_gemm_fp32.cuh): dense and k-grouped (a 0-token group, odd counts), both epilogues, 64-
and 128-row tiles 32 to 160 wide, accumulating and not. Each case prints its diff against the
reference on its own line (flushed, so a log cut short still names the cases that ran); exits non-
zero if any result is wrong.

    compute-sanitizer --report-api-errors no --tool racecheck python tools/sanitize_check.py
    compute-sanitizer --tool memcheck python tools/sanitize_check.py --training   # the training kernel only
"""

from __future__ import annotations

import sys

import torch

import fp8gemm
from benchmarks.testing import calc_diff, make_contiguous_inputs, make_dense_inputs, make_masked_inputs
from fp8gemm import launch, reference
from fp8gemm.config import select_config, with_tiles
from fp8gemm.config_fp32 import with_fp32_tiles


def case(label: str, diff: float) -> float:
    """Print one case's diff on its own line, flushed (under a sanitizer a failing case is then
    named in the log even if the run ends early), and return it."""
    print(f"case {label}: diff {diff:.2e}", flush=True)
    return diff


def dense(m: int, n: int, k: int, tag: str = "") -> float:
    x = make_dense_inputs(m, n, k)
    out = torch.full((m, n), float("nan"), dtype=torch.bfloat16, device="cuda")
    fp8gemm.gemm_fp8_fp8_bf16_nt((x.a, x.sa_tma), (x.b, x.sb), out)
    return case(f"{tag}dense {m}x{n}x{k}", calc_diff(out, reference.gemm_nt(x.a, x.sa, x.b, x.sb)))


def contiguous(sizes: list[int], n: int, k: int, tag: str = "") -> float:
    """Diff of a contiguous-layout GEMM against the reference; padding rows must stay NaN."""
    x = make_contiguous_inputs(sizes, n, k)
    out = torch.full((x.a.shape[0], n), float("nan"), dtype=torch.bfloat16, device="cuda")
    fp8gemm.m_grouped_gemm_fp8_fp8_bf16_nt_contiguous((x.a, x.sa_tma), (x.b, x.sb), out, x.m_indices)
    ref = reference.m_grouped_contiguous(x.a, x.sa, x.b, x.sb, x.m_indices)
    valid = x.m_indices >= 0
    assert out[~valid].isnan().all(), "padding rows were written"
    return case(f"{tag}contiguous {sizes} n={n} k={k}", calc_diff(out[valid], ref[valid]))


def masked(counts: list[int], max_m: int, n: int, k: int, expected_m: int, tag: str = "") -> float:
    """Diff of a masked-layout GEMM against the reference; rows past masked_m must stay NaN."""
    y = make_masked_inputs(counts, max_m, n, k)
    out = torch.full((len(counts), max_m, n), float("nan"), dtype=torch.bfloat16, device="cuda")
    fp8gemm.m_grouped_gemm_fp8_fp8_bf16_nt_masked((y.a, y.sa_tma), (y.b, y.sb), out, y.masked_m, expected_m)
    ref = reference.m_grouped_masked(y.a, y.sa, y.b, y.sb, y.masked_m)
    rows = torch.arange(max_m, device="cuda")[None, :] < y.masked_m[:, None]
    assert out[~rows].isnan().all(), "rows past masked_m were written"
    return case(f"{tag}masked {counts} max_m={max_m} n={n} k={k} expected_m={expected_m}",
                calc_diff(out[rows], ref[rows]))


def forced(bm: int, bn: int, multicast: str):
    """A config selector that returns the heuristics' pick with these tiles (swapped into launch)."""
    def select(layout, m, n, k, groups=1, num_sms=132):
        return with_tiles(select_config(layout, m, n, k, groups, num_sms), bm, bn, multicast)
    return select


def forced_tiles() -> float:
    worst = 0.0
    original = launch.select_config
    try:
        # 256-row tiles stage their first chain during the last K block: 32 tiles on 8 "SMs" (4 per
        # CTA) reuse the staging slabs while the previous tile's TMA stores may still read them;
        # masked groups of 30 rows leave a warpgroup idle (it stages in the epilogue instead).
        # K = 4224 (33 K blocks, 3 stages, 2 tiles per CTA): the main loop's unrolled rounds of the
        # ring, with K blocks before and after them in the general loop. Without the rounds, a
        # tile's first K block starts its sums; K = 128: the first K block is also the last.
        launch.select_config = forced(256, 128, "a")
        worst = max(worst, dense(1024, 1024, 384, "forced 256x128 mc=a: "),
                    dense(1024, 1024, 128, "forced 256x128 mc=a: "),
                    dense(1024, 512, 4224, "forced 256x128 mc=a: "),
                    masked([30, 0, 130, 129], 256, 512, 256, 128, "forced 256x128 mc=a: "))
        launch.select_config = forced(128, 192, "b")
        worst = max(worst, dense(384, 576, 384, "forced 128x192 mc=b: "))
        # Tiles wider than tall sharing A (dense M of an odd block count, config._multicast): 3 M
        # blocks, the last of 1 row; 4 N blocks of 160, the last of 32 columns.
        launch.select_config = forced(128, 160, "a")
        worst = max(worst, dense(257, 512, 1408, "forced 128x160 mc=a: "))
        for tiles in [(128, 192, "b"), (128, 128, "a")]:
            launch.select_config = forced(*tiles)
            tag = f"forced {tiles[0]}x{tiles[1]} mc={tiles[2]}: "
            worst = max(worst, contiguous([100, 0, 200, 130, 1], 512, 256, tag),
                        masked([30, 0, 130, 129], 256, 512, 256, 128, tag),
                        contiguous([100, 0, 200, 130, 1], 512, 1408, tag),   # 11 K blocks: rounds
                        masked([30, 0, 130, 129], 256, 512, 1408, 128, tag),
                        # 4 N blocks of 192: B multicast runs odd groups' last blocks in pairs along N
                        masked([30, 0, 300, 129], 384, 768, 1408, 128, tag))
        # Decode tiles whose K blocks overlap (2-4 wgmma groups in flight), with K block counts that
        # leave a remainder.
        for tiles in [(64, 32, "none"), (64, 128, "a"), (128, 96, "none"), (128, 64, "none")]:
            launch.select_config = forced(*tiles)
            tag = f"forced {tiles[0]}x{tiles[1]} mc={tiles[2]}: "
            worst = max(worst, dense(33, 512, 1168, tag), masked([7, 0, 65, 1], 128, 512, 1168, 32, tag))
        # Decode tiles of 64 rows whose two M blocks share B (the pick for some dense M = 65-128):
        # a second block of 1 and of 36 rows, a B-scale boundary inside the tile (112).
        for tiles in [(64, 64, "b"), (64, 112, "b")]:
            launch.select_config = forced(*tiles)
            tag = f"forced {tiles[0]}x{tiles[1]} mc={tiles[2]}: "
            worst = max(worst, dense(65, 512, 1168, tag), dense(100, 1008, 1168, tag))
        # A dense GEMM inside one tile loads only A's rows inside M (codegen.tma_boxes); the other
        # decode cases above do too, with chunked A scales. Per-stage A-scale boxes of 32 and 96 rows:
        launch.select_config = forced(128, 192, "none")
        worst = max(worst, dense(9, 576, 1168, "forced 128x192 mc=none: "),
                    dense(65, 576, 1168, "forced 128x192 mc=none: "),
                    dense(201, 576, 1168, "forced 128x192 mc=none: "))   # last block starts at 80
        launch.select_config = forced(256, 128, "a")   # ... and inside a multicast pair (at 48)
        worst = max(worst, dense(300, 512, 1168, "forced 256x128 mc=a: "))
        # Split-K in a cluster: rank 0 adds the other slices' sums out of their shared memory. With
        # 8 "SMs" the clusters take several tiles each (the handoff's barriers change phase); odd M,
        # unequal slices, one- and two-warpgroup tiles, 2 and 3 slices; two 64-row M blocks (the
        # measured pick for 65-128 x 2112 x 7168, config.MEASURED_DECODE_TILES).
        for bm, bn, splits, (m, n, k) in [(64, 32, 3, (7, 520, 1424)), (64, 32, 2, (130, 200, 1424)),
                                          (128, 128, 2, (100, 384, 1040)), (64, 16, 2, (1, 264, 3008)),
                                          (64, 64, 2, (100, 528, 1424))]:
            launch.select_config = lambda *args, bm=bm, bn=bn, s=splits, **kw: with_tiles(
                select_config(*args, **kw), bm, bn, "none", k_splits=s)
            worst = max(worst, dense(m, n, k, f"forced {bm}x{bn} k_splits={splits}: "))
    finally:
        launch.select_config = original
    return worst


def training() -> float:
    """The FP32-output kernel on small problems, every variant: diff against the reference (0-token
    groups must keep their NaN)."""
    worst = 0.0
    original = launch.select_fp32_config
    ks = [130, 0, 257, 1]
    gen = torch.Generator(device="cuda").manual_seed(0)
    a, sa = fp8gemm.k_grouped_per_channel_transpose_cast_to_fp8(torch.randn(sum(ks), 136, device="cuda",
                                                                            generator=gen), ks)
    b, sb = fp8gemm.k_grouped_per_channel_transpose_cast_to_fp8(torch.randn(sum(ks), 200, device="cuda",
                                                                            generator=gen), ks)
    ks_tensor = torch.tensor(ks, dtype=torch.int32, device="cuda")
    want = reference.k_grouped_contiguous(a, sa, b, sb, ks)
    # a dense problem long enough for whole unrolled rounds of the ring (9 K blocks)
    cast = fp8gemm.per_channel_transpose_cast_to_fp8
    long_a, long_sa = cast(torch.randn(1040, 136, device="cuda", generator=gen))
    long_b, long_sb = cast(torch.randn(1040, 200, device="cuda", generator=gen))
    long_want = reference.gemm_nt_fp32(long_a, long_sa, long_b, long_sb)
    try:
        # (block_m, block_n, epilogue from registers)
        variants = [(128, 160, True), (128, 96, False), (64, 32, True), (128, 64, False), (128, 128, False),
                    (128, 128, True)]
        for block_m, block_n, direct in variants:
            def select(layout, m, n, groups=1, num_sms=132, tiles=(block_m, block_n, direct)):
                return with_fp32_tiles(original(layout, m, n, groups, num_sms), tiles[0], tiles[1],
                                       direct_epilogue=tiles[2])
            launch.select_fp32_config = select
            tag = f"training {block_m}x{block_n} {'direct' if direct else 'tma'}"
            d = torch.full((4, 136, 200), float("nan"), device="cuda")
            fp8gemm.k_grouped_fp8_gemm_nt_contiguous((a, sa), (b, sb), d, ks, ks_tensor)
            assert d[1].isnan().all(), "a 0-token group was written"
            fp8gemm.k_grouped_fp8_gemm_nt_contiguous((a, sa), (b, sb), d, ks, ks_tensor, c=d)  # d += again
            worst = max(worst, case(f"{tag}: k-grouped {ks} then d += again",
                                    calc_diff(d[[0, 2, 3]], 2 * want[[0, 2, 3]])))
            parts = [x[:, :width].contiguous() for x, width in ((a, 384), (sa, 3), (b, 384), (sb, 3))]
            dense_d = torch.full((136, 200), float("nan"), device="cuda")
            fp8gemm.fp8_gemm_nt((parts[0], parts[1]), (parts[2], parts[3]), dense_d)
            worst = max(worst, case(f"{tag}: dense 136x200x384",
                                    calc_diff(dense_d, reference.gemm_nt_fp32(*parts))))
            dense_d = torch.full((136, 200), float("nan"), device="cuda")
            fp8gemm.fp8_gemm_nt((long_a, long_sa), (long_b, long_sb), dense_d)
            fp8gemm.fp8_gemm_nt((long_a, long_sa), (long_b, long_sb), dense_d, c=dense_d)  # d += again
            worst = max(worst, case(f"{tag}: dense 136x200x1040 then d += again",
                                    calc_diff(dense_d, 2 * long_want)))
    finally:
        launch.select_fp32_config = original
    return worst


def main() -> int:
    if "--training" in sys.argv[1:]:
        fp8gemm.set_num_sms(8)   # several tiles per CTA, as in the full run
        worst = training()
        torch.cuda.synchronize()
        print(f"worst diff vs reference (training kernel): {worst:.2e}")
        return 0 if worst < 1e-5 else 1
    # NOTES: with 8 "SMs" the heuristics pick a 2-CTA cluster with multicast for a small problem.
    fp8gemm.set_num_sms(8)
    worst = 0.0
    for m, n, k in [(512, 512, 256), (1024, 256, 512), (200, 384, 384)]:
        print(select_config("dense", m, n, k, 1, 8), flush=True)
        worst = max(worst, dense(m, n, k))
    fp8gemm.set_num_sms(torch.cuda.get_device_properties(0).multi_processor_count)
    print(select_config("dense", 64, 1024, 4096, 1, fp8gemm.get_num_sms()), flush=True)
    worst = max(worst, dense(64, 1024, 4096))  # split-K
    # K % 128 != 0 and N % 64 != 0: partial scale blocks along K, a partial last N tile.
    worst = max(worst, dense(7, 520, 1040), dense(130, 136, 208))
    worst = max(worst, contiguous([100, 0, 37, 1], 136, 208), masked([5, 0, 70], 128, 520, 1040, 32))
    worst = max(worst, contiguous([100, 0, 200], 256, 512), masked([30, 0, 130], 192, 256, 512, 64))
    fp8gemm.set_num_sms(8)
    worst = max(worst, forced_tiles())
    worst = max(worst, training())
    torch.cuda.synchronize()
    print(f"worst diff vs reference: {worst:.2e}")
    return 0 if worst < 1e-5 else 1


if __name__ == "__main__":
    sys.exit(main())
