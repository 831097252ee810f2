"""fp8gemm.reference against an independent float64 computation."""

from __future__ import annotations

import subprocess
import sys
import textwrap

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

from fp8gemm import reference
from fp8gemm.layout import get_col_major_tma_aligned_tensor

DENSE_SHAPES = [
    (1, 128, 128),
    (1, 256, 7168 // 16),  # M=1, several K blocks, partial last one (448 = 3*128 + 64)
    (37, 200, 300),  # M not a multiple of 64, N and K with partial blocks
    (64, 384, 256),
    (100, 130, 129),  # K: one element in the last block
    (129, 64, 1000),
    (3, 1, 5),
]


def make_dense(m, n, k, gen):
    a, b = random_fp8((m, k), gen), random_fp8((n, k), gen)
    sa = random_scales((m, ceil_div(k, BLOCK)), gen)
    sb = random_scales((ceil_div(n, BLOCK), ceil_div(k, BLOCK)), gen)
    return a, sa, b, sb


@pytest.mark.parametrize("m,n,k", DENSE_SHAPES)
def test_dense_matches_float64(m, n, k, gen):
    a, sa, b, sb = make_dense(m, n, k, gen)
    out = reference.gemm_nt(a, sa, b, sb)
    assert out.dtype == torch.bfloat16 and out.shape == (m, n)
    assert_close_to_f64(out, gemm_f64(a, sa, b, sb), gemm_f64_bound(a, sa, b, sb))


@pytest.mark.parametrize("m,n,k", [(37, 200, 300), (5, 256, 512)])
def test_dense_accepts_col_major_sa(m, n, k, gen):
    a, sa, b, sb = make_dense(m, n, k, gen)
    sa_cm = get_col_major_tma_aligned_tensor(sa)
    assert sa_cm.stride() != sa.stride() or m == 1
    assert torch.equal(reference.gemm_nt(a, sa_cm, b, sb), reference.gemm_nt(a, sa, b, sb))


def test_dense_per_block_fp32_semantics(gen):
    """Bit-exact against the spec computed independently one K block at a time in FP32."""
    m, n, k = 9, 256, 384
    a, sa, b, sb = make_dense(m, n, k, gen)
    acc = torch.zeros(m, n)
    for kb in range(k // BLOCK):
        ks = slice(kb * BLOCK, (kb + 1) * BLOCK)
        part = a[:, ks].float() @ b[:, ks].float().T
        scale = sa[:, kb : kb + 1] * torch.cat([sb[j // BLOCK, kb : kb + 1] for j in range(n)])[None, :]
        acc = acc + part * scale
    assert torch.equal(reference.gemm_nt(a, sa, b, sb), acc.bfloat16())


def test_dense_writes_every_element_of_out(gen):
    a, sa, b, sb = make_dense(70, 136, 256, gen)
    out = torch.full((70, 136), float("nan"), dtype=torch.bfloat16)
    reference.gemm_nt_reference(a, sa, b, sb, out)
    assert not out.isnan().any()
    assert torch.equal(out, reference.gemm_nt(a, sa, b, sb))


def test_dense_row_chunks_match_single_chunk(gen, monkeypatch):
    a, sa, b, sb = make_dense(50, 192, 256, gen)
    whole = reference.gemm_nt(a, sa, b, sb)
    monkeypatch.setattr(reference, "_MAX_CHUNK_ELEMENTS", 192 * 7)  # 7 rows per chunk
    assert reference._rows_per_chunk(192) == 7
    assert torch.equal(reference.gemm_nt(a, sa, b, sb), whole)


def make_grouped_b(g, n, k, gen):
    b = random_fp8((g, n, k), gen)
    sb = random_scales((g, ceil_div(n, BLOCK), ceil_div(k, BLOCK)), gen)
    return b, sb


@pytest.mark.parametrize("rows_per_group,n,k", [([128, 256, 128], 136, 300), ([256, 384], 64, 128)])
def test_contiguous_matches_float64_and_leaves_padding(rows_per_group, n, k, gen):
    g = len(rows_per_group)
    # Each group: its real rows then padding (-1) rows, starting at a multiple of 128.
    m_indices = []
    for group, rows in enumerate(rows_per_group):
        valid = rows - 37 if rows > 128 else rows - 5
        m_indices += [group] * valid + [-1] * (rows - valid)
    m_indices = torch.tensor(m_indices, dtype=torch.int32)
    big_m = m_indices.numel()
    a = random_fp8((big_m, k), gen)
    sa = random_scales((big_m, ceil_div(k, BLOCK)), gen)
    b, sb = make_grouped_b(g, n, k, gen)

    out = torch.full((big_m, n), float("nan"), dtype=torch.bfloat16)
    reference.m_grouped_contiguous_reference(a, sa, b, sb, out, m_indices)

    padding = m_indices == -1
    assert out[padding].isnan().all(), "padding rows must be left untouched"
    for group in range(g):
        rows = m_indices == group
        exact = gemm_f64(a[rows], sa[rows], b[group], sb[group])
        bound = gemm_f64_bound(a[rows], sa[rows], b[group], sb[group])
        assert_close_to_f64(out[rows], exact, bound)


def test_contiguous_interleaved_groups(gen):
    """The semantics are per row: a row's group decides its B, wherever it sits."""
    m_indices = torch.tensor([1, 0, -1, 1, 0, 0, -1, 1], dtype=torch.int32)
    a, sa = random_fp8((8, 256), gen), random_scales((8, 2), gen)
    b, sb = make_grouped_b(2, 128, 256, gen)
    out = reference.m_grouped_contiguous(a, sa, b, sb, m_indices)
    for i, g in enumerate(m_indices.tolist()):
        if g < 0:
            assert (out[i] == 0).all()
        else:
            assert torch.equal(out[i : i + 1], reference.gemm_nt(a[i : i + 1], sa[i : i + 1], b[g], sb[g]))


def test_contiguous_rejects_out_of_range_index(gen):
    a, sa = random_fp8((4, 128), gen), random_scales((4, 1), gen)
    b, sb = make_grouped_b(2, 128, 128, gen)
    with pytest.raises(ValueError, match="m_indices"):
        reference.m_grouped_contiguous(a, sa, b, sb, torch.tensor([0, 1, 2, -1], dtype=torch.int32))


@pytest.mark.parametrize("masked", [[5, 0, 64], [64, 1, 200], [-3, 33, 17]])
def test_masked_matches_float64_and_leaves_tail(masked, gen):
    g, max_m, n, k = 3, 64, 136, 300
    a = random_fp8((g, max_m, k), gen)
    sa = random_scales((g, max_m, ceil_div(k, BLOCK)), gen)
    b, sb = make_grouped_b(g, n, k, gen)
    masked_m = torch.tensor(masked, dtype=torch.int32)
    out = torch.full((g, max_m, n), float("nan"), dtype=torch.bfloat16)
    reference.m_grouped_masked_reference(a, sa, b, sb, out, masked_m)
    for group, valid in enumerate(masked):
        rows = min(max(valid, 0), max_m)  # clamped to [0, max_m]
        assert out[group, rows:].isnan().all(), "rows past masked_m must be left untouched"
        if rows:
            exact = gemm_f64(a[group, :rows], sa[group, :rows], b[group], sb[group])
            bound = gemm_f64_bound(a[group, :rows], sa[group, :rows], b[group], sb[group])
            assert_close_to_f64(out[group, :rows], exact, bound)


def test_masked_accepts_col_major_sa(gen):
    g, max_m, n, k = 2, 30, 128, 256
    a, sa = random_fp8((g, max_m, k), gen), random_scales((g, max_m, 2), gen)
    b, sb = make_grouped_b(g, n, k, gen)
    masked_m = torch.tensor([30, 11], dtype=torch.int32)
    want = reference.m_grouped_masked(a, sa, b, sb, masked_m)
    got = reference.m_grouped_masked(a, get_col_major_tma_aligned_tensor(sa), b, sb, masked_m)
    assert torch.equal(got, want)


def test_memory_stays_bounded_block_by_block():
    """A full FP32 copy of B would need 512 MiB here; block by block the reference needs a few MiB.

    Measured as the growth of the peak resident size of a fresh process during the call.
    """
    script = textwrap.dedent(
        """
        import resource, torch
        from fp8gemm import reference
        torch.manual_seed(0)
        m, n, k = 8, 8192, 16384
        # Random finite positive e4m3 bytes (0x00..0x6f), made without a float copy.
        b = torch.empty((n, k), dtype=torch.uint8).random_(0, 0x70).view(torch.float8_e4m3fn)
        a = torch.empty((m, k), dtype=torch.uint8).random_(0, 0x70).view(torch.float8_e4m3fn)
        sa, sb = torch.ones(m, k // 128), torch.ones(n // 128, k // 128)
        out = torch.empty((m, n), dtype=torch.bfloat16)
        reference.gemm_nt_reference(a[:1, :128], sa[:1, :1], b[:128, :128], sb[:1, :1], out[:1, :128])
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        reference.gemm_nt_reference(a, sa, b, sb, out)
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        assert torch.isfinite(out.float()).all()
        print((after - before) // 1024)
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    growth_mib = int(result.stdout.strip().splitlines()[-1])
    assert growth_mib < 128, f"peak memory grew by {growth_mib} MiB"
