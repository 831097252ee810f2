"""Inputs and accuracy measures shared by the benchmark and the GPU tests.

The benchmark and the tests build their operands the same way (random N(0,1) BF16, activations cast
per 1x128 token block, weights per 128x128 block, ``sa`` already in the TMA-aligned layout), so a
number in the benchmark and a pass in the tests speak about the same data.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

import torch

from fp8gemm.reference import calc_diff
from fp8gemm.utils import round_up

__all__ = [
    "calc_diff",
    "DenseInputs",
    "GroupedInputs",
    "make_dense_inputs",
    "make_contiguous_inputs",
    "make_masked_inputs",
    "masked_counts",
    "reference_dense",
    "unquantized_product",
]


def _randn(shape: tuple[int, ...], device: torch.device | str, seed: int) -> torch.Tensor:
    generator = torch.Generator(device=device).manual_seed(seed)
    return torch.randn(shape, generator=generator, device=device, dtype=torch.float32).to(torch.bfloat16)


def _tma_aligned(sa: torch.Tensor) -> torch.Tensor:
    from fp8gemm.layout import get_col_major_tma_aligned_tensor

    return get_col_major_tma_aligned_tensor(sa)


@dataclass
class DenseInputs:
    """Operands of one dense GEMM; ``sa`` is row-major, ``sa_tma`` the layout the kernel reads."""

    a_bf16: torch.Tensor
    b_bf16: torch.Tensor
    a: torch.Tensor
    sa: torch.Tensor
    sa_tma: torch.Tensor
    b: torch.Tensor
    sb: torch.Tensor


def make_dense_inputs(
    m: int, n: int, k: int, device: torch.device | str = "cuda", seed: int = 0
) -> DenseInputs:
    """Random N(0,1) BF16 ``A[m,k]``, ``B[n,k]`` and their FP8 casts (1x128 for A, 128x128 for B)."""
    from fp8gemm.quant import per_block_cast_to_fp8, per_token_cast_to_fp8

    a_bf16 = _randn((m, k), device, seed)
    b_bf16 = _randn((n, k), device, seed + 1)
    a, sa = per_token_cast_to_fp8(a_bf16)
    b, sb = per_block_cast_to_fp8(b_bf16)
    return DenseInputs(a_bf16, b_bf16, a, sa, _tma_aligned(sa), b, sb)


@dataclass
class GroupedInputs:
    """Operands of one grouped GEMM.

    Contiguous: ``a[M, k]`` with ``m_indices[M]``; masked: ``a[g, max_m, k]`` with ``masked_m[g]``.
    ``rows[i] = (start, count)`` are the valid rows of group i (start is the row in ``a`` for contiguous,
    0 for masked), known on the host for baselines and checks.
    """

    layout: str
    a_bf16: torch.Tensor
    b_bf16: torch.Tensor
    a: torch.Tensor
    sa: torch.Tensor
    sa_tma: torch.Tensor
    b: torch.Tensor
    sb: torch.Tensor
    rows: list[tuple[int, int]]
    m_indices: torch.Tensor | None = None
    masked_m: torch.Tensor | None = None
    max_m: int = 0

    @property
    def valid_rows(self) -> int:
        return sum(count for _, count in self.rows)

    def valid_a(self, g: int) -> torch.Tensor:
        """Group g's valid rows of the BF16 ``A`` (a view)."""
        start, count = self.rows[g]
        return self.a_bf16[start : start + count] if self.layout == "contiguous" else self.a_bf16[g, :count]

    def valid_out(self, out: torch.Tensor, g: int) -> torch.Tensor:
        """Group g's valid rows of ``out`` (a view)."""
        start, count = self.rows[g]
        return out[start : start + count] if self.layout == "contiguous" else out[g, :count]


def _cast_weights(b_bf16: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    from fp8gemm.quant import per_block_cast_to_fp8

    return per_block_cast_to_fp8(b_bf16)


def make_contiguous_inputs(
    group_sizes: list[int], n: int, k: int, device: torch.device | str = "cuda", seed: int = 0
) -> GroupedInputs:
    """Groups of ``group_sizes[i]`` rows, each padded up to the contiguous-layout alignment (128).

    Padding rows have ``m_indices == -1`` and zero activations. A group of 0 rows takes no rows at all.
    """
    from fp8gemm.layout import get_m_alignment_for_contiguous_layout
    from fp8gemm.quant import per_token_cast_to_fp8

    alignment = get_m_alignment_for_contiguous_layout()
    rows, start = [], 0
    for count in group_sizes:
        rows.append((start, count))
        start += round_up(count, alignment)
    total = start
    a_bf16 = _randn((total, k), device, seed)
    m_indices = torch.full((total,), -1, dtype=torch.int32, device=device)
    for g, (begin, count) in enumerate(rows):
        m_indices[begin : begin + count] = g
    a_bf16[m_indices < 0] = 0
    b_bf16 = _randn((len(group_sizes), n, k), device, seed + 1)
    a, sa = per_token_cast_to_fp8(a_bf16)
    b, sb = _cast_weights(b_bf16)
    return GroupedInputs(
        "contiguous", a_bf16, b_bf16, a, sa, _tma_aligned(sa), b, sb, rows, m_indices=m_indices
    )


def masked_counts(groups: int, m_per_group: int, spread: float = 0.3, seed: int = 0) -> tuple[list[int], int]:
    """Valid rows per group for the masked benchmark, and the ``max_m`` to allocate.

    Each count is ``round(m_per_group * u)``, u uniform in ``[1 - spread, 1 + spread]`` (seeded, so
    every run measures the same rows); ``spread=0`` gives exactly ``m_per_group``. ``max_m`` is the
    largest possible count, ``ceil((1 + spread) * m_per_group)``, rounded up to 128 rows.
    """
    rng = random.Random(seed)
    counts = [max(0, round(m_per_group * rng.uniform(1 - spread, 1 + spread))) for _ in range(groups)]
    max_m = round_up(math.ceil(m_per_group * (1 + spread)), 128)
    return counts, max(max_m, max(counts, default=0))


def make_masked_inputs(
    counts: list[int], max_m: int, n: int, k: int, device: torch.device | str = "cuda", seed: int = 0
) -> GroupedInputs:
    """``a[g, max_m, k]`` random everywhere (rows past ``counts[g]`` too: the kernel must ignore them)."""
    from fp8gemm.quant import per_token_cast_to_fp8

    groups = len(counts)
    a_bf16 = _randn((groups, max_m, k), device, seed)
    b_bf16 = _randn((groups, n, k), device, seed + 1)
    a, sa = per_token_cast_to_fp8(a_bf16)
    b, sb = _cast_weights(b_bf16)
    masked_m = torch.tensor(counts, dtype=torch.int32, device=device)
    rows = [(0, min(count, max_m)) for count in counts]
    return GroupedInputs(
        "masked", a_bf16, b_bf16, a, sa, _tma_aligned(sa), b, sb, rows, masked_m=masked_m, max_m=max_m
    )


def unquantized_product(a_bf16: torch.Tensor, b_bf16: torch.Tensor) -> torch.Tensor:
    """FP32 product ``a @ b.T`` of the original BF16 operands (the accuracy yardstick of DESIGN.md)."""
    return a_bf16.float() @ b_bf16.float().t()


def reference_dense(a: torch.Tensor, sa: torch.Tensor, b: torch.Tensor, sb: torch.Tensor) -> torch.Tensor:
    """The dense semantics (``fp8gemm.reference.gemm_nt``) on the inputs' device: BF16 ``[m, n]``."""
    from fp8gemm import reference

    return reference.gemm_nt(a, sa, b, sb)
