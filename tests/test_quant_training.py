"""The training quantization helpers, bit for bit against straightforward torch formulas: per channel
and per 128 tokens into the transposed K-major layout (dense and k-grouped, blocks restarting at each
group), and the exact transpose of a 128x128-scaled FP8 weight for dgrad."""

from __future__ import annotations

import pytest
import torch

import fp8gemm
from fp8gemm.layout import is_col_major_tma_aligned
from fp8gemm.reference import calc_diff, k_grouped_offsets


def _bits(q: torch.Tensor) -> torch.Tensor:
    return q.view(torch.uint8)


def _by_formula(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """x [t, c] -> q [c, t], scale [c, ceil(t/128)], one channel and one block of 128 tokens at a time."""
    t, c = x.shape
    kb = -(-t // 128)
    q = torch.empty(c, t, dtype=torch.float8_e4m3fn)
    scale = torch.empty(c, kb)
    xf = x.float()
    for j in range(c):
        for b in range(kb):
            block = xf[b * 128 : (b + 1) * 128, j]
            amax = block.abs().max().clamp(min=1e-4)
            s = amax / torch.tensor(448.0)
            scale[j, b] = s
            q[j, b * 128 : (b + 1) * 128] = (block / s).clamp(-448, 448).to(torch.float8_e4m3fn)
    return q, scale


@pytest.mark.parametrize("t,c,dtype", [(300, 24, torch.bfloat16), (128, 16, torch.float32),
                                       (5, 8, torch.float16)])
def test_per_channel_transpose_cast_matches_the_formula(t, c, dtype, gen) -> None:
    x = (torch.randn(t, c, generator=gen) * torch.rand(1, c, generator=gen) * 10).to(dtype)
    x[:, 0] = 0  # an all-zero channel: the clamped amax
    q, scale = fp8gemm.per_channel_transpose_cast_to_fp8(x)
    want_q, want_scale = _by_formula(x)
    assert q.shape == (c, t) and q.is_contiguous()
    assert torch.equal(_bits(q), _bits(want_q))
    assert torch.equal(scale, want_scale)
    # The same bits as the forward's per-token cast of x^T.
    q2, s2 = fp8gemm.per_token_cast_to_fp8(x.t())
    assert torch.equal(_bits(q), _bits(q2)) and torch.equal(scale, s2)
    q3, s3 = fp8gemm.per_channel_transpose_cast_to_fp8(x, tma_aligned_scales=True)
    assert is_col_major_tma_aligned(s3) and torch.equal(s3, scale) and torch.equal(_bits(q3), _bits(q))


@pytest.mark.parametrize("ks,capacity", [([100, 0, 257, 1], None), ([0, 0], None), ([3, 128], 640)])
def test_k_grouped_cast_matches_the_formula_per_group(ks, capacity, gen) -> None:
    c = 24
    x = torch.randn(sum(ks), c, generator=gen).to(torch.bfloat16) * 3
    q, scale = fp8gemm.k_grouped_per_channel_transpose_cast_to_fp8(x, ks, capacity=capacity)
    offsets = k_grouped_offsets(ks)
    big_k = capacity or offsets[-1]
    assert q.shape == (c, big_k) and scale.shape == (c, big_k // 128)
    zero_block_scale = torch.tensor(1e-4) / torch.tensor(448.0)
    used = torch.zeros(big_k, dtype=torch.bool)
    used_blocks = torch.zeros(big_k // 128, dtype=torch.bool)
    start = 0
    for g, count in enumerate(ks):
        k0 = offsets[g]
        want_q, want_scale = _by_formula(x[start : start + count])  # this group's tokens alone
        start += count
        assert torch.equal(_bits(q[:, k0 : k0 + count]), _bits(want_q))
        assert torch.equal(scale[:, k0 // 128 : k0 // 128 + want_scale.shape[1]], want_scale)
        used[k0 : k0 + count] = True
        used_blocks[k0 // 128 : k0 // 128 + want_scale.shape[1]] = True
    assert (_bits(q[:, ~used]) == 0).all()  # zero padding, as the k-grouped GEMM requires
    assert (scale[:, ~used_blocks] == zero_block_scale).all()
    q_t, s_t = fp8gemm.k_grouped_per_channel_transpose_cast_to_fp8(x, torch.tensor(ks), capacity=capacity,
                                                                    tma_aligned_scales=True)
    assert torch.equal(_bits(q_t), _bits(q)) and torch.equal(s_t, scale) and is_col_major_tma_aligned(s_t)


def test_padded_layout_needs_no_regrouping(gen) -> None:
    ks = [70, 200]
    x = torch.randn(sum(ks), 16, generator=gen)
    padded = torch.zeros(k_grouped_offsets(ks)[-1], 16)
    padded[:70], padded[128:328] = x[:70], x[70:]
    q, s = fp8gemm.k_grouped_per_channel_transpose_cast_to_fp8(x, ks)
    q2, s2 = fp8gemm.per_channel_transpose_cast_to_fp8(padded)
    assert torch.equal(_bits(q), _bits(q2)) and torch.equal(s, s2)


@pytest.mark.parametrize("shape", [(300, 200), (2, 256, 136)])
def test_transpose_per_block_is_exact(shape, gen) -> None:
    w = torch.randn(shape, generator=gen).to(torch.bfloat16)
    q, s = fp8gemm.per_block_cast_to_fp8(w)
    q_t, s_t = fp8gemm.transpose_per_block_fp8(q, s)
    want_q, want_s = fp8gemm.per_block_cast_to_fp8(w.transpose(-1, -2))  # quantized in the transposed layout
    assert torch.equal(_bits(q_t), _bits(want_q)) and torch.equal(s_t, want_s)
    assert torch.equal(_bits(q_t), _bits(q.transpose(-1, -2).contiguous()))
    assert q_t.is_contiguous() and s_t.is_contiguous()


def test_wgrad_end_to_end_accuracy(gen) -> None:
    """DESIGN.md's measure for the k-grouped wgrad: the quantized GEMM against the FP32 product of the
    unquantized N(0,1) inputs, per group (0-token group included)."""
    ks, m, n = [300, 0, 77, 513], 64, 96
    dy = torch.randn(sum(ks), m, generator=gen).to(torch.bfloat16)
    x = torch.randn(sum(ks), n, generator=gen).to(torch.bfloat16)
    a = fp8gemm.k_grouped_per_channel_transpose_cast_to_fp8(dy, ks)
    b = fp8gemm.k_grouped_per_channel_transpose_cast_to_fp8(x, ks)
    d = torch.zeros(len(ks), m, n)
    fp8gemm.k_grouped_fp8_gemm_nt_contiguous(a, b, d, ks, torch.tensor(ks, dtype=torch.int32))
    start = 0
    for g, count in enumerate(ks):
        want = dy[start : start + count].float().T @ x[start : start + count].float()
        start += count
        assert calc_diff(d[g], want) < 1e-3
    assert (d[1] == 0).all()
