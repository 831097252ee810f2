"""Any contiguous layout on the GPU: regroup the rows into the aligned layout, run the fast kernel on
that, and copy the results back.

The CUDA kernel takes each tile's group from the tile's first row, which is right for the aligned
layout (each group's rows start at a multiple of 128, padded with -1 after them) and nothing else.
For any other ``m_indices`` (``groups_aligned=False``) this module builds, on the GPU and without
reading anything on the host (so without a synchronization, and inside CUDA-graph capture):

- ``dest[i]``: the row of the regrouped layout that row ``i`` goes to. Rows are stably sorted by
  group; group ``g`` starts at ``sum over h < g of round_up(count_h, 128)``. Rows marked -1 (and ids
  outside ``[0, num_groups)``) all go to one spare row past the end, in a block of its own.
- the regrouped ``a``, ``sa`` (TMA-aligned column-major) and ``m_indices`` (-1 where nothing lands).

The number of regrouped rows is not known on the host, so the scratch buffers take its bound:
``M + min(num_groups, M) * 127`` rows, rounded up to 128, plus the spare row. The kernel skips
blocks that start with -1 at no cost, so only the rows that exist are computed; the price is the
scratch memory and three gathers (``a``, ``sa`` in, ``out`` back). Rows of ``out`` whose index is -1
(or out of range) are left untouched, as on the fast path.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from .layout import get_m_alignment_for_contiguous_layout, get_tma_aligned_size
from .utils import round_up

__all__ = ["Regrouped", "regroup", "gemm_any_layout", "regrouped_rows_bound"]


def regrouped_rows_bound(m: int, num_groups: int, alignment: int | None = None) -> int:
    """Rows of the regrouped layout (without the spare row): enough for any ``m_indices``."""
    alignment = alignment or get_m_alignment_for_contiguous_layout()
    return round_up(m + min(num_groups, m) * (alignment - 1), alignment)


@dataclass(frozen=True)
class Regrouped:
    """Where each row goes, and the regrouped layout's ``m_indices``.

    ``dest``: int64 ``[M]``; ``m_indices``: int32 ``[rows + 1]``; ``valid``: bool ``[M]`` (the rows
    that carry a group id in range); ``rows``: the bound, the spare row's index.
    """

    dest: torch.Tensor
    m_indices: torch.Tensor
    valid: torch.Tensor
    rows: int


def regroup(m_indices: torch.Tensor, num_groups: int, alignment: int | None = None) -> Regrouped:
    """Plan the regrouping of ``m_indices`` (any values) into the aligned layout; see the module doc.

    Runs on ``m_indices``' device with tensor operations only: nothing is read on the host.
    """
    alignment = alignment or get_m_alignment_for_contiguous_layout()
    device = m_indices.device
    m = m_indices.shape[0]
    rows = regrouped_rows_bound(m, num_groups, alignment)
    idx = m_indices.to(torch.int64)
    valid = (idx >= 0) & (idx < num_groups)
    key = torch.where(valid, idx, num_groups)  # every row without a group sorts last, as group g
    sorted_key, order = torch.sort(key, stable=True)
    # first[h]: the position in sorted order of group h's first row (h = 0..g+1).
    first = torch.searchsorted(sorted_key, torch.arange(num_groups + 2, device=device))
    counts = first[1 : num_groups + 1] - first[:num_groups]
    padded = (counts + alignment - 1) // alignment * alignment
    starts = torch.cumsum(padded, 0) - padded
    starts = torch.cat([starts, starts.new_full((1,), rows)])  # rows without a group: the spare row
    rank = torch.arange(m, device=device) - first[sorted_key]
    dest_sorted = starts[sorted_key] + torch.where(sorted_key < num_groups, rank, 0)
    dest = torch.empty_like(dest_sorted).scatter_(0, order, dest_sorted)
    regrouped = torch.full((rows + 1,), -1, dtype=torch.int32, device=device)
    regrouped.index_copy_(0, dest, torch.where(valid, m_indices, -1).to(torch.int32))
    return Regrouped(dest=dest, m_indices=regrouped, valid=valid, rows=rows)


def _regroup_sa(sa: torch.Tensor, dest: torch.Tensor, total: int) -> torch.Tensor:
    """``sa`` rows moved to ``dest``, in a new TMA-aligned column-major ``[total, kb]`` (padding zero)."""
    kb = sa.shape[1]
    aligned = get_tma_aligned_size(total, sa.element_size())
    storage = torch.zeros((kb, aligned), dtype=sa.dtype, device=sa.device)
    result = storage[:, :total].t()
    result.index_copy_(0, dest, sa)
    return result


def gemm_any_layout(
    a: torch.Tensor, sa: torch.Tensor, b: torch.Tensor, sb: torch.Tensor, out: torch.Tensor,
    m_indices: torch.Tensor,
    aligned_gemm: Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor,
                            torch.Tensor], None],
) -> None:
    """The contiguous grouped GEMM for any ``m_indices``, through ``aligned_gemm`` (a GEMM that is right
    for the aligned layout: the CUDA kernel, or in tests a model of it) on the regrouped rows.

    ``a``, ``sa``, ``b``, ``sb``, ``out``, ``m_indices`` as validated by the public function.
    """
    m, k = a.shape
    plan = regroup(m_indices, b.shape[0])
    total = plan.rows + 1
    a_rows = a.view(torch.uint8) if a.element_size() == 1 else a  # index_copy_ has no FP8 kernels
    a_regrouped = torch.empty((total, k), dtype=a_rows.dtype, device=a.device)
    a_regrouped.index_copy_(0, plan.dest, a_rows)
    sa_regrouped = _regroup_sa(sa, plan.dest, total)
    out_regrouped = torch.empty((total, out.shape[1]), dtype=out.dtype, device=out.device)
    aligned_gemm(a_regrouped.view(a.dtype), sa_regrouped, b, sb, out_regrouped, plan.m_indices)
    # Back to the caller's rows; rows without a group keep what out held.
    back = out_regrouped.index_select(0, plan.dest)
    torch.where(plan.valid.unsqueeze(1), back, out, out=out)
