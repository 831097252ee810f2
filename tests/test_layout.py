"""Layout helpers: TMA-aligned sizes, column-major scale layout (2D and 3D), contiguous alignment."""

from __future__ import annotations

import pytest
import torch

from fp8gemm import get_col_major_tma_aligned_tensor, get_m_alignment_for_contiguous_layout
from fp8gemm.layout import get_tma_aligned_size, is_col_major_tma_aligned


@pytest.mark.parametrize(
    "x,element_size,want",
    [(0, 4, 0), (1, 4, 4), (4, 4, 4), (5, 4, 8), (127, 4, 128), (1, 1, 16), (17, 1, 32), (3, 2, 8)]
    + [(1, 16, 1)],
)
def test_tma_aligned_size(x, element_size, want):
    assert get_tma_aligned_size(x, element_size) == want


@pytest.mark.parametrize("x,element_size", [(5, 3), (5, 0), (-1, 4)])
def test_tma_aligned_size_rejects(x, element_size):
    with pytest.raises(ValueError):
        get_tma_aligned_size(x, element_size)


@pytest.mark.parametrize("m,kb", [(1, 1), (5, 3), (128, 56), (37, 16), (4, 1), (3, 1)])
def test_col_major_2d(m, kb, gen):
    x = torch.randn(m, kb, generator=gen)
    y = get_col_major_tma_aligned_tensor(x)
    aligned = get_tma_aligned_size(m, 4)
    assert y.shape == x.shape and y.dtype == x.dtype and torch.equal(y, x)
    assert y.stride() == (1, aligned)
    assert is_col_major_tma_aligned(y)
    assert y.untyped_storage().nbytes() >= aligned * kb * 4
    assert get_col_major_tma_aligned_tensor(y) is y  # already in the layout: no copy


@pytest.mark.parametrize("g,m,kb", [(1, 5, 3), (4, 37, 16), (2, 128, 56), (3, 1, 2)])
def test_col_major_3d(g, m, kb, gen):
    x = torch.randn(g, m, kb, generator=gen)
    y = get_col_major_tma_aligned_tensor(x)
    aligned = get_tma_aligned_size(m, 4)
    assert y.shape == x.shape and torch.equal(y, x)
    assert y.stride() == (aligned * kb, 1, aligned)
    assert get_col_major_tma_aligned_tensor(y) is y


def test_col_major_from_transposed_input(gen):
    """A column-major input with unaligned M is re-laid out with padded columns."""
    x = torch.randn(16, 37, generator=gen).t()  # shape [37, 16], strides (1, 37)
    y = get_col_major_tma_aligned_tensor(x)
    assert torch.equal(y, x) and y.stride() == (1, 40)


def test_col_major_aligned_input_is_returned_as_is(gen):
    x = torch.randn(16, 40, generator=gen).t()  # [40, 16] with strides (1, 40): already the layout
    assert is_col_major_tma_aligned(x)
    assert get_col_major_tma_aligned_tensor(x) is x


@pytest.mark.parametrize("shape", [(8, 2), (3, 8, 2)])
def test_row_major_is_not_col_major(shape):
    assert not is_col_major_tma_aligned(torch.zeros(shape))


def test_col_major_rejects_bad_rank():
    with pytest.raises(ValueError, match="x: expected a 2D"):
        get_col_major_tma_aligned_tensor(torch.zeros(3))
    assert not is_col_major_tma_aligned(torch.zeros(3))


def test_m_alignment_for_contiguous_layout():
    assert get_m_alignment_for_contiguous_layout() == 128
