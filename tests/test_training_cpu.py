"""The training GEMMs on CPU tensors (the reference path) against an independent float64 computation:
the dense FP32-output GEMM (`fp8_gemm_nt` with an FP32 d, `wgrad_gemm_fp8_fp8_fp32_nt`) and the
k-grouped contiguous GEMM; groups of 0 tokens, odd token counts, accumulation onto a non-zero C, in
place (d is c); the custom ops and their fake implementations."""

from __future__ import annotations

import pytest
import torch
from f64_helpers import BLOCK, ceil_div, dequant_rows, random_fp8, random_scales

import fp8gemm
from fp8gemm import ops, reference


def _f64(a, sa, b, sb) -> tuple[torch.Tensor, torch.Tensor]:
    """The product in float64 from dequantized operands (1x128 scales on both), and sum |terms|."""
    da, db = dequant_rows(a, sa), dequant_rows(b, sb)
    return da @ db.T, da.abs() @ db.abs().T


def _assert_fp32_close(d: torch.Tensor, exact: torch.Tensor, bound: torch.Tensor,
                       c: torch.Tensor | None = None) -> None:
    """FP32 accumulation error: at most 1e-5 of sum |terms| (loose), plus FP32 rounding of c + acc."""
    assert d.dtype == torch.float32
    if c is not None:
        exact = exact + c.double()
        bound = bound + c.double().abs()
    err = (d.double() - exact).abs()
    allowed = bound * 1e-5 + exact.abs() * 2.0**-22 + 1e-30
    worst = (err / allowed).max().item() if err.numel() else 0.0
    assert worst <= 1.0, f"max error / allowed = {worst:.3f}"


def _dense(m: int, n: int, k: int, gen: torch.Generator):
    kb = ceil_div(k, BLOCK)
    return (random_fp8((m, k), gen), random_scales((m, kb), gen), random_fp8((n, k), gen),
            random_scales((n, kb), gen))


PUBLIC = ["k_grouped_fp8_gemm_nt_contiguous", "wgrad_gemm_fp8_fp8_fp32_nt",
          "per_channel_transpose_cast_to_fp8", "k_grouped_per_channel_transpose_cast_to_fp8",
          "transpose_per_block_fp8"]


def test_training_api_is_exported() -> None:
    for name in PUBLIC:
        assert callable(getattr(fp8gemm, name)), name
    assert set(PUBLIC) | {"nn"} <= set(fp8gemm.__all__)
    assert fp8gemm.nn.FP8Linear and fp8gemm.nn.FP8GroupedLinear


# --------------------------------------------------------------------------------------------- dense
@pytest.mark.parametrize("m,n,k", [(1, 4, 16), (37, 136, 336), (130, 64, 256), (5, 260, 400)])
@pytest.mark.parametrize("col_major", [False, True])
def test_dense_fp32_matches_float64(m, n, k, col_major, gen) -> None:
    a, sa, b, sb = _dense(m, n, k, gen)
    cm = fp8gemm.get_col_major_tma_aligned_tensor
    d = torch.full((m, n), float("nan"))
    fp8gemm.fp8_gemm_nt((a, cm(sa) if col_major else sa), (b, cm(sb) if col_major else sb), d)
    _assert_fp32_close(d, *_f64(a, sa, b, sb))


def test_dense_fp32_accumulates_onto_c(gen) -> None:
    m, n, k = 33, 96, 272
    a, sa, b, sb = _dense(m, n, k, gen)
    c = torch.randn(m, n, generator=gen) * 50
    c_before = c.clone()
    d = torch.full((m, n), float("nan"))
    fp8gemm.fp8_gemm_nt((a, sa), (b, sb), d, c=c, recipe=(1, 1, 128))
    assert torch.equal(c, c_before)  # c is read only
    _assert_fp32_close(d, *_f64(a, sa, b, sb), c=c_before)
    # In place, d is c: the same values bit for bit.
    fp8gemm.fp8_gemm_nt((a, sa), (b, sb), c, c)
    assert torch.equal(c, d)
    # The older name accumulates too.
    out = c_before.clone()
    fp8gemm.wgrad_gemm_fp8_fp8_fp32_nt((a, sa), (b, sb), out)
    assert torch.equal(out, d)


def test_dense_fp32_reference_formula_order(gen) -> None:
    """The spec in the docstring, spelled out block by block in FP32: equal bit for bit."""
    a, sa, b, sb = _dense(7, 12, 300, gen)
    c = torch.randn(7, 12, generator=gen)
    acc = torch.zeros(7, 12)
    for kb in range(3):
        ks = slice(kb * 128, (kb + 1) * 128)
        acc += (a[:, ks].float() @ b[:, ks].float().T) * (sa[:, kb, None] * sb[None, :, kb])
    assert torch.equal(reference.gemm_nt_fp32(a, sa, b, sb, c), c + acc)
    assert torch.equal(reference.gemm_nt_fp32(a, sa, b, sb), acc)


def test_dense_fp32_empty_m(gen) -> None:
    _, _, b, sb = _dense(1, 8, 128, gen)
    d = torch.empty(0, 8)
    fp8gemm.fp8_gemm_nt((random_fp8((0, 128), gen), torch.empty(0, 1)), (b, sb), d)


# ---------------------------------------------------------------------------------------- k-grouped
def _k_grouped(ks: list[int], m: int, n: int, gen: torch.Generator, capacity: int | None = None):
    """Operands in the k-grouped layout, random in every group's tokens, zero in the padding."""
    offsets = reference.k_grouped_offsets(ks)
    big_k = capacity or offsets[-1]
    a, b = torch.zeros(m, big_k).to(torch.float8_e4m3fn), torch.zeros(n, big_k).to(torch.float8_e4m3fn)
    for g, count in enumerate(ks):
        a[:, offsets[g] : offsets[g] + count] = random_fp8((m, count), gen)
        b[:, offsets[g] : offsets[g] + count] = random_fp8((n, count), gen)
    sa, sb = random_scales((m, big_k // BLOCK), gen), random_scales((n, big_k // BLOCK), gen)
    return a, sa, b, sb, offsets


def _group_f64(a, sa, b, sb, offsets, g, count):
    k0 = offsets[g]
    kb0, kb1 = k0 // BLOCK, k0 // BLOCK + ceil_div(count, BLOCK)
    return _f64(a[:, k0 : k0 + count], sa[:, kb0:kb1], b[:, k0 : k0 + count], sb[:, kb0:kb1])


@pytest.mark.parametrize("ks,capacity", [([128, 256], None), ([100, 0, 257, 1], None), ([0, 0, 3], 512),
                                         ([37], 256), ([0], None)])
def test_k_grouped_matches_float64(ks, capacity, gen) -> None:
    m, n = 24, 40
    a, sa, b, sb, offsets = _k_grouped(ks, m, n, gen, capacity)
    d = torch.full((len(ks), m, n), float("nan"))
    ks_tensor = torch.tensor(ks, dtype=torch.int32)
    fp8gemm.k_grouped_fp8_gemm_nt_contiguous((a, sa), (b, sb), d, ks, ks_tensor)
    for g, count in enumerate(ks):
        if count == 0:
            assert d[g].isnan().all()  # untouched
        else:
            _assert_fp32_close(d[g], *_group_f64(a, sa, b, sb, offsets, g, count))


def test_k_grouped_accumulates_in_place_and_onto_c(gen) -> None:
    ks, m, n = [300, 0, 5, 128], 16, 32
    a, sa, b, sb, offsets = _k_grouped(ks, m, n, gen)
    cm = fp8gemm.get_col_major_tma_aligned_tensor
    ks_tensor = torch.tensor(ks, dtype=torch.int32)
    c = torch.randn(len(ks), m, n, generator=gen) * 100
    c_before = c.clone()
    d = torch.full_like(c, float("nan"))
    fp8gemm.k_grouped_fp8_gemm_nt_contiguous((a, sa), (b, cm(sb)), d, ks, ks_tensor, c=c, recipe=(1, 1, 128))
    assert torch.equal(c, c_before)
    assert d[1].isnan().all()  # a 0-token group leaves d untouched, even with c given
    for g in (0, 2, 3):
        _assert_fp32_close(d[g], *_group_f64(a, sa, b, sb, offsets, g, ks[g]), c=c_before[g])
    # In place, ks=None (the device counts only):
    fp8gemm.k_grouped_fp8_gemm_nt_contiguous((a, cm(sa)), (b, sb), c, None, ks_tensor, c)
    assert torch.equal(c[1], c_before[1])
    for g in (0, 2, 3):
        assert torch.equal(c[g], d[g])


def test_k_grouped_blocks_restart_at_each_group(gen) -> None:
    """A group of 130 tokens after one of 5: its blocks are its tokens [0, 128) and [128, 130), with
    scale columns 1 and 2, whatever sits in the scale column of the padding."""
    ks, m, n = [5, 130], 8, 8
    a, sa, b, sb, offsets = _k_grouped(ks, m, n, gen)
    assert offsets == [0, 128, 384]
    want = reference.k_grouped_contiguous(a, sa, b, sb, ks)
    for g, (k0, kb) in enumerate([(0, [0]), (128, [1, 2])]):
        acc = torch.zeros(m, n)
        for j, col in enumerate(kb):
            cols = slice(k0 + 128 * j, k0 + min(128 * (j + 1), ks[g]))
            acc += (a[:, cols].float() @ b[:, cols].float().T) * (sa[:, col, None] * sb[None, :, col])
        assert torch.equal(want[g], acc)


def test_functional_reference_helpers(gen) -> None:
    ks = [0, 200]
    a, sa, b, sb, _ = _k_grouped(ks, 8, 16, gen)
    d = reference.k_grouped_contiguous(a, sa, b, sb, torch.tensor(ks))
    assert (d[0] == 0).all()
    c = torch.ones(2, 8, 16)
    assert torch.equal(reference.k_grouped_contiguous(a, sa, b, sb, ks, c=c), d + 1)
    assert reference.k_grouped_offsets([0, 1, 128, 129]) == [0, 0, 128, 256, 512]


# ------------------------------------------------------------------------------------- custom ops
def test_ops_match_the_public_functions(gen) -> None:
    a, sa, b, sb = _dense(20, 64, 208, gen)
    want = reference.gemm_nt_fp32(a, sa, b, sb)
    assert torch.equal(ops.gemm_nt_fp32(a, sa, b, sb), want)
    c = torch.randn(20, 64, generator=gen)
    assert torch.equal(ops.gemm_nt_fp32(a, sa, b, sb, c), reference.gemm_nt_fp32(a, sa, b, sb, c))
    ks = [7, 0, 129]
    a, sa, b, sb, _ = _k_grouped(ks, 16, 24, gen)
    ks_tensor = torch.tensor(ks, dtype=torch.int32)
    assert torch.equal(ops.k_grouped_gemm_nt_contiguous(a, sa, b, sb, ks_tensor),
                       reference.k_grouped_contiguous(a, sa, b, sb, ks))
    c = torch.randn(3, 16, 24, generator=gen)
    got = ops.k_grouped_gemm_nt_contiguous(a, sa, b, sb, ks_tensor, c)
    assert torch.equal(got, reference.k_grouped_contiguous(a, sa, b, sb, ks, c))
    assert torch.equal(got[1], c[1])


_OPCHECK = ("test_autograd_registration", "test_faketensor", "test_aot_dispatch_dynamic")


def test_opcheck_training_ops(gen) -> None:
    a, sa, b, sb = _dense(8, 32, 256, gen)
    for accumulate in (False, True):
        torch.library.opcheck(torch.ops.fp8gemm.gemm_nt_fp32.default,
                              (a, sa, b, sb, torch.ones(8, 32), accumulate), test_utils=_OPCHECK)
    a, sa, b, sb, _ = _k_grouped([3, 0, 130], 8, 16, gen)
    ks_tensor = torch.tensor([3, 0, 130], dtype=torch.int32)
    torch.library.opcheck(torch.ops.fp8gemm.k_grouped_gemm_nt_contiguous.default,
                          (a, sa, b, sb, torch.ones(3, 8, 16), ks_tensor, True), test_utils=_OPCHECK)


def test_fake_implementations_validate() -> None:
    from torch._subclasses.fake_tensor import FakeTensorMode

    e4m3 = torch.float8_e4m3fn
    with FakeTensorMode():
        a, b = torch.empty(16, 256, dtype=e4m3), torch.empty(32, 256, dtype=e4m3)
        sa, sb = torch.empty(16, 2), torch.empty(32, 2)
        torch.ops.fp8gemm.gemm_nt_fp32(a, sa, b, sb, torch.empty(16, 32), False)
        with pytest.raises(ValueError, match="sb: expected shape"):
            torch.ops.fp8gemm.gemm_nt_fp32(a, sa, b, torch.empty(1, 2), torch.empty(16, 32), False)
        ks = torch.empty(3, dtype=torch.int32)
        torch.ops.fp8gemm.k_grouped_gemm_nt_contiguous(a, sa, b, sb, torch.empty(3, 16, 32), ks, True)
        with pytest.raises(ValueError, match="ks_tensor: expected shape"):
            torch.ops.fp8gemm.k_grouped_gemm_nt_contiguous(a, sa, b, sb, torch.empty(2, 16, 32), ks, True)
