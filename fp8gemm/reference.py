"""The exact semantics of the GEMMs, in plain torch, on any device (the spec the kernels meet).

The three forward GEMMs (BF16 output, 1x128 scales on A, 128x128 scales on B) come first; the two
training GEMMs (FP32 output, 1x128 scales on both operands) are described in their own section below.

For one output element of a forward GEMM (``nb = j // 128``, K split into blocks of 128, the last one
possibly shorter):

    out[i, j] = bf16( sum over kb of  (sa[i, kb] * sb[nb, kb]) * P[i, j, kb] )
    P[i, j, kb] = sum over k in block kb of  float(a[i, k]) * float(b[j, k])

with P and the outer sum in FP32, blocks added in increasing kb order. The work goes block by block
over K and in chunks of rows, so no full FP32 copy of A, B or a 3D intermediate is ever made: the
largest DeepSeek-V3 shapes run on a CPU with a few GB of memory (slowly).

Functions here do not validate their arguments beyond what they need; the public entry points in
`fp8gemm.gemm` do. ``sa`` may be row-major or TMA-aligned column-major (any strides work).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .utils import BLOCK

__all__ = [
    "calc_diff",
    "gemm_nt_reference",
    "m_grouped_contiguous_reference",
    "m_grouped_masked_reference",
    "gemm_nt",
    "m_grouped_contiguous",
    "m_grouped_masked",
    "k_grouped_offsets",
    "gemm_nt_fp32_reference",
    "k_grouped_contiguous_reference",
    "gemm_nt_fp32",
    "k_grouped_contiguous",
]

# A chunk of rows is sized so that its FP32 accumulator holds at most this many elements (64 MiB);
# the peak extra memory is a few such buffers plus one FP32 K block of B.
_MAX_CHUNK_ELEMENTS = 1 << 24


def calc_diff(x: torch.Tensor, y: torch.Tensor) -> float:
    """The accuracy measure of DESIGN.md: ``1 - 2*sum(x*y) / sum(x*x + y*y)``, in FP64.

    0 for equal tensors (two all-zero tensors included), about 1e-4 for FP8 quantization noise, 2 for
    ``y = -x``; independent of the scale of the values.
    """
    x, y = x.double(), y.double()
    denominator = (x * x + y * y).sum()
    if denominator == 0:
        return 0.0
    return float(1 - 2 * (x * y).sum() / denominator)


def _rows_per_chunk(n: int) -> int:
    return max(1, _MAX_CHUNK_ELEMENTS // max(n, 1))


def _blockwise_fp32(a: torch.Tensor, sa: torch.Tensor, b: torch.Tensor,
                    sb_rows: torch.Tensor) -> torch.Tensor:
    """acc ``[rows, n]`` of a chunk of rows: a ``[rows, k]``, sa ``[rows, kb]``, b ``[n, k]``, and
    ``sb_rows [n, kb]``, the B scale of every row of b (its own for 1x128 scales, its 128-row block's
    for 128x128): ``acc = sum over kb of P_kb * (sa[:, kb] x sb_rows[:, kb])``, P_kb the FP32
    product of block kb, the blocks added in increasing kb order."""
    rows, k = a.shape
    n = b.shape[0]
    acc = torch.zeros((rows, n), dtype=torch.float32, device=a.device)
    for kb, k0 in enumerate(range(0, k, BLOCK)):
        k1 = min(k0 + BLOCK, k)
        partial = a[:, k0:k1].float() @ b[:, k0:k1].float().t()
        acc += partial * (sa[:, kb].float().unsqueeze(1) * sb_rows[:, kb].float().unsqueeze(0))
    return acc


def _dense_fp32(a: torch.Tensor, sa: torch.Tensor, b: torch.Tensor, sb: torch.Tensor) -> torch.Tensor:
    """FP32 result ``[rows, n]`` of a small chunk of rows with 128x128 B scales ``sb [ceil(n/128), kb]``."""
    # sb[j // 128, kb] for every row j of b.
    return _blockwise_fp32(a, sa, b, sb.repeat_interleave(BLOCK, dim=0)[: b.shape[0]])


def _dense_into(
    a: torch.Tensor, sa: torch.Tensor, b: torch.Tensor, sb: torch.Tensor, out: torch.Tensor
) -> None:
    """out[m, n] (a view is fine) = the GEMM of a[m, k] with b[n, k], row chunk by row chunk."""
    step = _rows_per_chunk(b.shape[0])
    for r0 in range(0, a.shape[0], step):
        r1 = min(r0 + step, a.shape[0])
        out[r0:r1] = _dense_fp32(a[r0:r1], sa[r0:r1], b, sb).to(out.dtype)


def gemm_nt_reference(
    a: torch.Tensor, sa: torch.Tensor, b: torch.Tensor, sb: torch.Tensor, out: torch.Tensor
) -> None:
    """Dense ``out = A @ B^T`` with fine-grained scales, written into ``out``.

    Args:
        a: float8_e4m3fn ``[m, k]``.
        sa: float32 ``[m, ceil(k / 128)]``, one scale per 1x128 block of ``a`` (any layout).
        b: float8_e4m3fn ``[n, k]`` (B transposed, K-major).
        sb: float32 ``[ceil(n / 128), ceil(k / 128)]``, one scale per 128x128 block of ``b``.
        out: bfloat16 ``[m, n]``, overwritten.
    """
    _dense_into(a, sa, b, sb, out)


def m_grouped_contiguous_reference(
    a: torch.Tensor,
    sa: torch.Tensor,
    b: torch.Tensor,
    sb: torch.Tensor,
    out: torch.Tensor,
    m_indices: torch.Tensor,
) -> None:
    """M-grouped GEMM, groups concatenated along M: ``out[i] = A[i] @ B[m_indices[i]]^T``.

    Args:
        a: float8_e4m3fn ``[M, k]``; sa: float32 ``[M, ceil(k / 128)]``.
        b: float8_e4m3fn ``[g, n, k]``; sb: float32 ``[g, ceil(n / 128), ceil(k / 128)]``.
        out: bfloat16 ``[M, n]``; rows whose ``m_indices`` is -1 are left untouched.
        m_indices: integer ``[M]``, the group of each row in ``[0, g)`` or -1 for a padding row.

    Raises:
        ValueError: an index outside ``[-1, g)``.
    """
    groups = b.shape[0]
    indices = m_indices.to(device=a.device, dtype=torch.int64)
    bad = (indices < -1) | (indices >= groups)
    if bool(bad.any()):
        first = int(bad.nonzero()[0, 0])
        raise ValueError(
            f"m_indices: expected values in [-1, {groups}), got {int(indices[first])} at row {first}"
        )
    step = _rows_per_chunk(b.shape[1])
    for g in range(groups):
        rows = (indices == g).nonzero().squeeze(1)
        for r0 in range(0, rows.numel(), step):
            idx = rows[r0 : r0 + step]
            result = _dense_fp32(a.index_select(0, idx), sa.index_select(0, idx), b[g], sb[g])
            out.index_copy_(0, idx, result.to(out.dtype))


def m_grouped_masked_reference(
    a: torch.Tensor,
    sa: torch.Tensor,
    b: torch.Tensor,
    sb: torch.Tensor,
    out: torch.Tensor,
    masked_m: torch.Tensor,
) -> None:
    """M-grouped GEMM with a padded group dimension: ``out[g, :masked_m[g]] = A[g, :masked_m[g]] @ B[g]^T``.

    Args:
        a: float8_e4m3fn ``[g, max_m, k]``; sa: float32 ``[g, max_m, ceil(k / 128)]``.
        b: float8_e4m3fn ``[g, n, k]``; sb: float32 ``[g, ceil(n / 128), ceil(k / 128)]``.
        out: bfloat16 ``[g, max_m, n]``; rows at or past ``masked_m[g]`` are left untouched.
        masked_m: integer ``[g]``, valid rows per group, clamped to ``[0, max_m]``.
    """
    max_m = a.shape[1]
    for g, valid in enumerate(masked_m.tolist()):
        rows = min(max(int(valid), 0), max_m)
        if rows:
            _dense_into(a[g, :rows], sa[g, :rows], b[g], sb[g], out[g, :rows])


def _new_out(rows_shape: tuple[int, ...], n: int, device: torch.device) -> torch.Tensor:
    return torch.zeros((*rows_shape, n), dtype=torch.bfloat16, device=device)


def gemm_nt(a: torch.Tensor, sa: torch.Tensor, b: torch.Tensor, sb: torch.Tensor) -> torch.Tensor:
    """Functional `gemm_nt_reference`: returns a new bfloat16 ``[m, n]`` tensor."""
    out = _new_out((a.shape[0],), b.shape[0], a.device)
    gemm_nt_reference(a, sa, b, sb, out)
    return out


def m_grouped_contiguous(
    a: torch.Tensor, sa: torch.Tensor, b: torch.Tensor, sb: torch.Tensor, m_indices: torch.Tensor
) -> torch.Tensor:
    """Functional `m_grouped_contiguous_reference`: returns a new bfloat16 ``[M, n]`` tensor whose
    padding rows (``m_indices == -1``) are zero."""
    out = _new_out((a.shape[0],), b.shape[1], a.device)
    m_grouped_contiguous_reference(a, sa, b, sb, out, m_indices)
    return out


def m_grouped_masked(
    a: torch.Tensor, sa: torch.Tensor, b: torch.Tensor, sb: torch.Tensor, masked_m: torch.Tensor
) -> torch.Tensor:
    """Functional `m_grouped_masked_reference`: returns a new bfloat16 ``[g, max_m, n]`` tensor whose
    rows past ``masked_m`` are zero."""
    out = _new_out(tuple(a.shape[:2]), b.shape[1], a.device)
    m_grouped_masked_reference(a, sa, b, sb, out, masked_m)
    return out


# ------------------------------------------------------------------------------- training GEMMs
#
# Both operands carry one FP32 scale per row and per 128-wide K block ("1x128 on both", recipe
# (1, 1, 128)): weight gradients, where K is the token dimension and each scale covers one channel
# over 128 tokens. For one output element (K split into blocks of 128, the last one possibly shorter):
#
#     d[i, j] = c[i, j] + acc[i, j]
#     acc[i, j] = sum over kb of  (sa[i, kb] * sb[j, kb]) * P[i, j, kb]
#     P[i, j, kb] = sum over k in block kb of  float(a[i, k]) * float(b[j, k])
#
# all in FP32: P and the scale product first, the blocks added into acc (starting from 0) in increasing
# kb order, c added last (c absent: d = acc). The output is FP32, not rounded to BF16.


def _fp32_into(
    a: torch.Tensor, sa: torch.Tensor, b: torch.Tensor, sb: torch.Tensor, d: torch.Tensor,
    c: torch.Tensor | None,
) -> None:
    """d[m, n] = (c +) the FP32 GEMM, row chunk by row chunk. Each chunk of c is read before the same
    rows of d are written, so ``d`` may be ``c`` itself."""
    step = _rows_per_chunk(b.shape[0])
    for r0 in range(0, a.shape[0], step):
        r1 = min(r0 + step, a.shape[0])
        acc = _blockwise_fp32(a[r0:r1], sa[r0:r1], b, sb)
        d[r0:r1] = acc if c is None else c[r0:r1].float() + acc


def gemm_nt_fp32_reference(
    a: torch.Tensor, sa: torch.Tensor, b: torch.Tensor, sb: torch.Tensor, d: torch.Tensor,
    c: torch.Tensor | None = None,
) -> None:
    """Dense FP32-output GEMM with 1x128 scales on both operands: ``d = c + A @ B^T`` (or ``A @ B^T``).

    Exactly, for every ``i < m``, ``j < n`` (FP32 throughout, blocks added in increasing ``kb`` order
    into an accumulator that starts at 0, ``c`` added last)::

        d[i, j] = c[i, j] + sum_kb (sa[i, kb] * sb[j, kb]) * sum_{k in block kb} a[i, k] * b[j, k]

    Args:
        a: float8_e4m3fn ``[m, k]``; sa: float32 ``[m, ceil(k / 128)]`` (any strides).
        b: float8_e4m3fn ``[n, k]``; sb: float32 ``[n, ceil(k / 128)]``: one scale per row of ``b`` and
            per 128-wide K block, like ``sa`` (not 128x128 blocks as in the forward GEMM).
        d: float32 ``[m, n]``, overwritten.
        c: None, or float32 ``[m, n]``: added to the product. ``d`` may be ``c`` itself (in place:
            ``d += A @ B^T``).
    """
    _fp32_into(a, sa, b, sb, d, c)


def k_grouped_offsets(ks: Sequence[int]) -> list[int]:
    """Where each group of the k-grouped contiguous layout starts along K, and where the last ends.

    Group ``g`` occupies columns ``[offsets[g], offsets[g] + ks[g])``; the next group starts at the
    next multiple of 128 (``offsets[g + 1] = offsets[g] + round_up(ks[g], 128)``). Returns
    ``len(ks) + 1`` offsets: ``offsets[-1]`` is the number of columns the layout uses.
    """
    offsets = [0]
    for count in ks:
        offsets.append(offsets[-1] + (int(count) + BLOCK - 1) // BLOCK * BLOCK)
    return offsets


def _host_counts(ks: Sequence[int] | torch.Tensor) -> list[int]:
    return [int(v) for v in (ks.tolist() if isinstance(ks, torch.Tensor) else ks)]


def k_grouped_contiguous_reference(
    a: torch.Tensor, sa: torch.Tensor, b: torch.Tensor, sb: torch.Tensor, d: torch.Tensor,
    ks: Sequence[int] | torch.Tensor, c: torch.Tensor | None = None,
) -> None:
    """K-grouped contiguous GEMM (MoE weight gradients): one FP32 product per group, groups along K.

    The layout: the groups' tokens are concatenated along K, group ``g`` in columns
    ``[k0, k0 + ks[g])`` with ``k0 = k_grouped_offsets(ks)[g]``; every group starts at a multiple of
    128, so each 128-wide K block (and its scale column ``kb = k // 128``) belongs to one group only,
    and block numbering restarts at each group's start. Columns between a group's end and the next
    multiple of 128, and past the last group, are padding: they are not part of any sum here (the
    public functions require the padding inside a group's last block to be zero, since the kernels
    read whole blocks). For every group with ``ks[g] > 0``, every ``i < m``, ``j < n`` (FP32 as in
    `gemm_nt_fp32_reference`, ``kb0 = k0 // 128``)::

        d[g, i, j] = c[g, i, j] + sum_{kb in [kb0, kb0 + ceil(ks[g] / 128))} (sa[i, kb] * sb[j, kb])
                                   * sum_{k in block kb, k < k0 + ks[g]} a[i, k] * b[j, k]

    A group with ``ks[g] == 0`` leaves ``d[g]`` untouched (it is not even set to ``c[g]``).

    Args:
        a: float8_e4m3fn ``[m, K]`` (K-major: e.g. dY^T, channels by tokens); sa: float32
            ``[m, ceil(K / 128)]``, one scale per row and per 128 tokens.
        b: float8_e4m3fn ``[n, K]`` (e.g. X^T); sb: float32 ``[n, ceil(K / 128)]``.
        d: float32 ``[g, m, n]``.
        ks: ``g`` non-negative token counts (a sequence of ints or an integer tensor, read on the
            host), with ``k_grouped_offsets(ks)[-1] <= K``.
        c: None, or float32 ``[g, m, n]`` added to each product; ``d`` may be ``c`` itself.
    """
    counts = _host_counts(ks)
    offsets = k_grouped_offsets(counts)
    for g, count in enumerate(counts):
        if count == 0:
            continue
        k0 = offsets[g]
        kb0, kb1 = k0 // BLOCK, k0 // BLOCK + (count + BLOCK - 1) // BLOCK
        _fp32_into(a[:, k0 : k0 + count], sa[:, kb0:kb1], b[:, k0 : k0 + count], sb[:, kb0:kb1], d[g],
                   None if c is None else c[g])


def gemm_nt_fp32(
    a: torch.Tensor, sa: torch.Tensor, b: torch.Tensor, sb: torch.Tensor, c: torch.Tensor | None = None
) -> torch.Tensor:
    """Functional `gemm_nt_fp32_reference`: returns a new float32 ``[m, n]`` tensor."""
    d = torch.empty((a.shape[0], b.shape[0]), dtype=torch.float32, device=a.device)
    gemm_nt_fp32_reference(a, sa, b, sb, d, c)
    return d


def k_grouped_contiguous(
    a: torch.Tensor, sa: torch.Tensor, b: torch.Tensor, sb: torch.Tensor,
    ks: Sequence[int] | torch.Tensor, c: torch.Tensor | None = None,
) -> torch.Tensor:
    """Functional `k_grouped_contiguous_reference`: returns a new float32 ``[g, m, n]`` tensor; the
    groups with no tokens hold ``c[g]`` (zeros without ``c``)."""
    counts = _host_counts(ks)
    shape = (len(counts), a.shape[0], b.shape[0])
    d = torch.zeros(shape, dtype=torch.float32, device=a.device) if c is None else c.float().clone()
    k_grouped_contiguous_reference(a, sa, b, sb, d, counts, c=None if c is None else d)
    return d
