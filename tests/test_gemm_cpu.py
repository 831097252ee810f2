"""The public GEMMs on CPU tensors (the reference path) against an independent float64 computation
(tests/f64_helpers.py): argument plumbing, both scale layouts, rows that must stay untouched."""

from __future__ import annotations

import pytest
import torch
from f64_helpers import (
    BLOCK,
    assert_close_to_f64,
    ceil_div,
    gemm_f64,
    gemm_f64_bound,
    random_fp8,
    random_scales,
)

import fp8gemm
from fp8gemm.reference import calc_diff

PUBLIC_API = [
    "gemm_fp8_fp8_bf16_nt", "m_grouped_gemm_fp8_fp8_bf16_nt_contiguous",
    "m_grouped_gemm_fp8_fp8_bf16_nt_masked",
    "fp8_gemm_nt", "m_grouped_fp8_gemm_nt_contiguous", "m_grouped_fp8_gemm_nt_masked",
    "set_num_sms", "get_num_sms", "get_tma_aligned_size", "get_col_major_tma_aligned_tensor",
    "get_m_alignment_for_contiguous_layout", "per_token_cast_to_fp8", "per_block_cast_to_fp8",
]


def test_public_api_is_exported():
    for name in PUBLIC_API:
        assert callable(getattr(fp8gemm, name)), name
    assert set(PUBLIC_API) <= set(fp8gemm.__all__)
    assert isinstance(fp8gemm.__version__, str) and fp8gemm.__version__


def _close_to_f64(out: torch.Tensor, a, sa, b, sb) -> None:
    assert_close_to_f64(out, gemm_f64(a, sa, b, sb), gemm_f64_bound(a, sa, b, sb))


@pytest.mark.parametrize("m,n,k", [(1, 128, 128), (37, 136, 336), (64, 256, 512), (130, 64, 208)])
@pytest.mark.parametrize("col_major", [False, True])
def test_dense_matches_float64(m, n, k, col_major, gen):
    a, b = random_fp8((m, k), gen), random_fp8((n, k), gen)
    sa = random_scales((m, ceil_div(k, BLOCK)), gen)
    sb = random_scales((ceil_div(n, BLOCK), ceil_div(k, BLOCK)), gen)
    sa_arg = fp8gemm.get_col_major_tma_aligned_tensor(sa) if col_major else sa
    out = torch.full((m, n), float("nan"), dtype=torch.bfloat16)
    assert fp8gemm.gemm_fp8_fp8_bf16_nt((a, sa_arg), (b, sb), out) is None
    _close_to_f64(out, a, sa, b, sb)


def test_contiguous_matches_float64_and_keeps_padding(gen):
    align = fp8gemm.get_m_alignment_for_contiguous_layout()
    counts = [100, 256, 1]
    m_indices = torch.cat([torch.tensor([g] * c + [-1] * (-c % align)) for g, c in enumerate(counts)])
    m_indices = m_indices.int()
    big_m, n, k = m_indices.numel(), 192, 272
    a, sa = random_fp8((big_m, k), gen), random_scales((big_m, ceil_div(k, BLOCK)), gen)
    b = random_fp8((3, n, k), gen)
    sb = random_scales((3, ceil_div(n, BLOCK), ceil_div(k, BLOCK)), gen)
    out = torch.full((big_m, n), float("nan"), dtype=torch.bfloat16)
    fp8gemm.m_grouped_gemm_fp8_fp8_bf16_nt_contiguous((a, sa), (b, sb), out, m_indices)
    for g in range(3):
        rows = m_indices == g
        _close_to_f64(out[rows], a[rows], sa[rows], b[g], sb[g])
    assert out[m_indices < 0].isnan().all()


def test_masked_matches_float64_and_keeps_tail(gen):
    g, max_m, n, k = 4, 48, 128, 384
    a, sa = random_fp8((g, max_m, k), gen), random_scales((g, max_m, 3), gen)
    b, sb = random_fp8((g, n, k), gen), random_scales((g, 1, 3), gen)
    masked_m = torch.tensor([0, 1, 48, 20], dtype=torch.int32)
    out = torch.full((g, max_m, n), float("nan"), dtype=torch.bfloat16)
    sa_cm = fp8gemm.get_col_major_tma_aligned_tensor(sa)
    fp8gemm.m_grouped_gemm_fp8_fp8_bf16_nt_masked((a, sa_cm), (b, sb), out, masked_m, expected_m=24)
    for group, rows in enumerate(masked_m.tolist()):
        _close_to_f64(out[group, :rows], a[group, :rows], sa[group, :rows], b[group], sb[group])
        assert out[group, rows:].isnan().all()


def test_empty_m_still_validates_its_arguments(gen):
    # No rows: nothing to compute, but a bad argument is still an error (checks run first).
    b, sb = random_fp8((128, 128), gen), random_scales((1, 1), gen)
    a, sa = random_fp8((0, 128), gen), torch.empty(0, 1)
    assert fp8gemm.gemm_fp8_fp8_bf16_nt((a, sa), (b, sb), torch.empty((0, 128), dtype=torch.bfloat16)) is None
    with pytest.raises(TypeError, match="out"):
        fp8gemm.gemm_fp8_fp8_bf16_nt((a, sa), (b, sb), torch.empty((0, 128), dtype=torch.float32))
    with pytest.raises(ValueError, match="out"):
        fp8gemm.gemm_fp8_fp8_bf16_nt((a, sa), (b, sb), torch.empty((0, 64), dtype=torch.bfloat16))


def test_quantized_end_to_end_accuracy(gen):
    """DESIGN.md's measure: below 1e-3 against the FP32 product of the unquantized N(0,1) inputs."""
    x = torch.randn(32, 1024, generator=gen).bfloat16()
    w = torch.randn(256, 1024, generator=gen).bfloat16()
    a, sa = fp8gemm.per_token_cast_to_fp8(x)
    b, sb = fp8gemm.per_block_cast_to_fp8(w)
    out = torch.empty(32, 256, dtype=torch.bfloat16)
    fp8gemm.fp8_gemm_nt((a, sa), (b, sb), out)
    diff = calc_diff(out, x.float() @ w.float().T)
    assert 0 < diff < 1e-3
    assert calc_diff(out, -(x.float() @ w.float().T)) > 1.9  # the measure itself tells a wrong sign


def test_calc_diff():
    x = torch.randn(100)
    assert calc_diff(x, x) == pytest.approx(0, abs=1e-12)
    assert calc_diff(x, 2 * x) == pytest.approx(1 - 4 / 5)
    assert calc_diff(x, -x) == pytest.approx(2)
    zeros = torch.zeros(100)
    assert calc_diff(zeros, zeros) == 0.0  # equal, not NaN (the old CLI copy divided by zero)
    assert calc_diff(zeros, x) == pytest.approx(1)
