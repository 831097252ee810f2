"""Memory layouts the kernels expect: TMA-aligned sizes, column-major scales, contiguous-layout alignment.

The kernels load the activation scales ``sa`` through TMA. TMA needs every global stride to be a
multiple of 16 bytes, so ``sa`` is stored column-major with its M dimension padded: element
``(i, kb)`` lives at offset ``kb * aligned_m + i`` where ``aligned_m = get_tma_aligned_size(m, 4)``.
"""

from __future__ import annotations

import torch

from .config import CONTIGUOUS_ALIGNMENT

__all__ = [
    "get_tma_aligned_size",
    "get_col_major_tma_aligned_tensor",
    "is_col_major_tma_aligned",
    "get_m_alignment_for_contiguous_layout",
]

_TMA_ALIGNMENT_BYTES = 16
_CONTIGUOUS_M_ALIGNMENT = CONTIGUOUS_ALIGNMENT


def get_tma_aligned_size(x: int, element_size: int) -> int:
    """Round ``x`` up so that ``x * element_size`` is a multiple of 16 bytes.

    Args:
        x: a non-negative element count (typically M, the number of rows of a scale tensor).
        element_size: bytes per element; must divide 16 (1, 2, 4, 8 or 16).

    Returns:
        The smallest ``y >= x`` with ``y * element_size % 16 == 0``.
    """
    if element_size <= 0 or _TMA_ALIGNMENT_BYTES % element_size != 0:
        raise ValueError(f"element_size: expected a divisor of 16 bytes, got {element_size}")
    if x < 0:
        raise ValueError(f"x: expected a non-negative size, got {x}")
    alignment = _TMA_ALIGNMENT_BYTES // element_size
    return (x + alignment - 1) // alignment * alignment


def _expected_col_major_strides(shape: tuple[int, ...], element_size: int) -> tuple[int, ...]:
    aligned_m = get_tma_aligned_size(shape[-2], element_size)
    if len(shape) == 2:
        return (1, aligned_m)
    return (aligned_m * shape[-1], 1, aligned_m)


def is_col_major_tma_aligned(x: torch.Tensor) -> bool:
    """Whether ``x`` (2D ``[m, kb]`` or 3D ``[g, m, kb]``) already has the TMA-aligned column-major layout.

    The layout is strides ``(1, aligned_m)`` (2D) or ``(aligned_m * kb, 1, aligned_m)`` (3D) with
    ``aligned_m = get_tma_aligned_size(m, x.element_size())``. Strides are compared exactly, also for
    dimensions of size 1, because the launch layer builds TMA descriptors from them.
    """
    if x.dim() not in (2, 3):
        return False
    expected = _expected_col_major_strides(tuple(x.shape), x.element_size())
    return tuple(x.stride()) == expected


def get_col_major_tma_aligned_tensor(x: torch.Tensor) -> torch.Tensor:
    """Return ``x`` with the same values in the TMA-aligned column-major layout the kernels read.

    Args:
        x: scales, 2D ``[m, kb]`` or 3D ``[g, m, kb]`` (usually float32, one per 1x128 block), any strides.

    Returns:
        ``x`` itself when it already has the layout (no copy); otherwise a new tensor of the same
        shape, dtype and device with strides ``(1, aligned_m)`` (2D) or ``(aligned_m * kb, 1, aligned_m)``
        (3D), ``aligned_m = get_tma_aligned_size(m, x.element_size())``. The padding rows are zero.
    """
    if x.dim() not in (2, 3):
        raise ValueError(f"x: expected a 2D [m, kb] or 3D [g, m, kb] tensor, got shape {tuple(x.shape)}")
    if is_col_major_tma_aligned(x):
        return x
    batched = x if x.dim() == 3 else x.unsqueeze(0)
    g, m, kb = batched.shape
    aligned_m = get_tma_aligned_size(m, x.element_size())
    # Allocate [g, kb, aligned_m] row-major, fill the first m of each column, and view it transposed.
    storage = torch.zeros((g, kb, aligned_m), dtype=x.dtype, device=x.device)
    storage[:, :, :m].copy_(batched.transpose(1, 2))
    result = storage[:, :, :m].transpose(1, 2)
    return result if x.dim() == 3 else result.squeeze(0)


def get_m_alignment_for_contiguous_layout() -> int:
    """Row alignment of each group in the M-grouped contiguous layout (128).

    In ``m_grouped_gemm_fp8_fp8_bf16_nt_contiguous`` every group's rows must start at a multiple of
    this value, so that one BLOCK_M tile never spans two groups; pad with rows whose index is -1.
    """
    return _CONTIGUOUS_M_ALIGNMENT
