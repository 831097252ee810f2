"""Small GEMMs for compute-sanitizer (memcheck, racecheck, synccheck): every layout, a 2-CTA
cluster with TMA multicast, split-K, K % 128 != 0 and N % 64 != 0 for all three layouts, and forced
tiles the heuristics pick only for large problems (BLOCK_M 256 with two chains per warpgroup,
BLOCK_N 192, B multicast on the grouped layouts, with pairs of M blocks that belong to different
experts). Exits non-zero if any result is wrong.

    compute-sanitizer --report-api-errors no --tool racecheck python tools/sanitize_check.py
"""

from __future__ import annotations

import sys

import torch

import fp8gemm
from benchmarks.testing import calc_diff, make_contiguous_inputs, make_dense_inputs, make_masked_inputs
from fp8gemm import launch, reference
from fp8gemm.config import select_config, with_tiles


def dense(m: int, n: int, k: int) -> float:
    x = make_dense_inputs(m, n, k)
    out = torch.full((m, n), float("nan"), dtype=torch.bfloat16, device="cuda")
    fp8gemm.gemm_fp8_fp8_bf16_nt((x.a, x.sa_tma), (x.b, x.sb), out)
    return calc_diff(out, reference.gemm_nt(x.a, x.sa, x.b, x.sb))


def contiguous(sizes: list[int], n: int, k: int) -> float:
    """Diff of a contiguous-layout GEMM against the reference; padding rows must stay NaN."""
    x = make_contiguous_inputs(sizes, n, k)
    out = torch.full((x.a.shape[0], n), float("nan"), dtype=torch.bfloat16, device="cuda")
    fp8gemm.m_grouped_gemm_fp8_fp8_bf16_nt_contiguous((x.a, x.sa_tma), (x.b, x.sb), out, x.m_indices)
    ref = reference.m_grouped_contiguous(x.a, x.sa, x.b, x.sb, x.m_indices)
    valid = x.m_indices >= 0
    assert out[~valid].isnan().all(), "padding rows were written"
    return calc_diff(out[valid], ref[valid])


def masked(counts: list[int], max_m: int, n: int, k: int, expected_m: int) -> float:
    """Diff of a masked-layout GEMM against the reference; rows past masked_m must stay NaN."""
    y = make_masked_inputs(counts, max_m, n, k)
    out = torch.full((len(counts), max_m, n), float("nan"), dtype=torch.bfloat16, device="cuda")
    fp8gemm.m_grouped_gemm_fp8_fp8_bf16_nt_masked((y.a, y.sa_tma), (y.b, y.sb), out, y.masked_m, expected_m)
    ref = reference.m_grouped_masked(y.a, y.sa, y.b, y.sb, y.masked_m)
    rows = torch.arange(max_m, device="cuda")[None, :] < y.masked_m[:, None]
    assert out[~rows].isnan().all(), "rows past masked_m were written"
    return calc_diff(out[rows], ref[rows])


def forced(bm: int, bn: int, multicast: str):
    """A config selector that returns the heuristics' pick with these tiles (swapped into launch)."""
    def select(layout, m, n, k, groups=1, num_sms=132):
        return with_tiles(select_config(layout, m, n, k, groups, num_sms), bm, bn, multicast)
    return select


def forced_tiles() -> float:
    worst = 0.0
    original = launch.select_config
    try:
        launch.select_config = forced(256, 128, "a")
        worst = max(worst, dense(512, 512, 384))
        launch.select_config = forced(128, 192, "b")
        worst = max(worst, dense(384, 576, 384))
        for tiles in [(128, 192, "b"), (128, 128, "a")]:
            launch.select_config = forced(*tiles)
            worst = max(worst, contiguous([100, 0, 200, 130, 1], 512, 256),
                        masked([30, 0, 130, 129], 256, 512, 256, 128))
    finally:
        launch.select_config = original
    return worst


def main() -> int:
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
    torch.cuda.synchronize()
    print(f"worst diff vs reference: {worst:.2e}")
    return 0 if worst < 1e-5 else 1


if __name__ == "__main__":
    sys.exit(main())
