"""The public GEMMs: validate, then compute.

CPU tensors go through `fp8gemm.reference` (exact, slow: for development and tests, not for speed).
CUDA tensors go to the JIT-compiled Hopper kernels through `fp8gemm.launch`, after ``sa`` is put in
the TMA-aligned column-major layout the kernels read (a copy when it is row-major: pass it through
`get_col_major_tma_aligned_tensor` once yourself to avoid that per call).

Each function writes into ``out`` and returns None; on CUDA the work is queued on torch's current stream.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from . import reference, validate
from .layout import get_col_major_tma_aligned_tensor

__all__ = [
    "gemm_fp8_fp8_bf16_nt",
    "m_grouped_gemm_fp8_fp8_bf16_nt_contiguous",
    "m_grouped_gemm_fp8_fp8_bf16_nt_masked",
    "fp8_gemm_nt",
    "m_grouped_fp8_gemm_nt_contiguous",
    "m_grouped_fp8_gemm_nt_masked",
]

TensorPair = tuple[torch.Tensor, torch.Tensor]


def _launcher(name: str) -> Callable[..., None]:
    # Imported lazily: the launch layer pulls in the JIT (NVRTC, driver API), which CPU users never need.
    from . import launch

    fn = getattr(launch, name, None)
    if fn is None:
        raise NotImplementedError(
            f"fp8gemm.launch.{name} is not available: the CUDA kernels for this GEMM are not built into "
            "this version of fp8gemm yet. CPU tensors work through the (slow) reference implementation."
        )
    return fn


def gemm_fp8_fp8_bf16_nt(lhs: TensorPair, rhs: TensorPair, out: torch.Tensor) -> None:
    """Dense FP8 GEMM ``out = A @ B^T`` with 1x128 activation and 128x128 weight scales.

    Args:
        lhs: ``(a, sa)``: a float8_e4m3fn ``[m, k]`` contiguous (K-major, k % 16 == 0); sa float32
            ``[m, ceil(k/128)]``, row-major or TMA-aligned column-major (faster on CUDA).
        rhs: ``(b, sb)``: b float8_e4m3fn ``[n, k]`` contiguous (B transposed); sb float32
            ``[ceil(n/128), ceil(k/128)]`` contiguous.
        out: bfloat16 ``[m, n]`` contiguous (n % 8 == 0), overwritten.

    All tensors on one device. Semantics: `fp8gemm.reference.gemm_nt_reference`.
    """
    (a, sa, b, sb), aligned = validate.check_cached(validate.check_dense, lhs, rhs, out)
    if a.shape[0] == 0:
        return
    if a.device.type == "cpu":
        reference.gemm_nt_reference(a, sa, b, sb, out)
        return
    if not aligned:
        sa = get_col_major_tma_aligned_tensor(sa)
    _launcher("gemm_dense")(a, sa, b, sb, out)


def m_grouped_gemm_fp8_fp8_bf16_nt_contiguous(
    lhs: TensorPair, rhs: TensorPair, out: torch.Tensor, m_indices: torch.Tensor
) -> None:
    """M-grouped FP8 GEMM (MoE prefill): groups of rows concatenated along M, one B per group.

    Args:
        lhs: ``(a, sa)``: a float8_e4m3fn ``[M, k]`` contiguous; sa float32 ``[M, ceil(k/128)]``,
            row-major or TMA-aligned column-major.
        rhs: ``(b, sb)``: b float8_e4m3fn ``[g, n, k]`` contiguous; sb float32
            ``[g, ceil(n/128), ceil(k/128)]``.
        out: bfloat16 ``[M, n]`` contiguous; rows whose index is -1 are left untouched.
        m_indices: int32 ``[M]``: the group of each row, or -1 for a padding row. Each group's rows
            start at a multiple of `get_m_alignment_for_contiguous_layout()` (128).

    Semantics: `fp8gemm.reference.m_grouped_contiguous_reference`.
    """
    (a, sa, b, sb), aligned = validate.check_cached(validate.check_contiguous, lhs, rhs, out, m_indices)
    if a.shape[0] == 0:
        return
    if a.device.type == "cpu":
        reference.m_grouped_contiguous_reference(a, sa, b, sb, out, m_indices)
        return
    if not aligned:
        sa = get_col_major_tma_aligned_tensor(sa)
    _launcher("gemm_contiguous")(a, sa, b, sb, out, m_indices)


def m_grouped_gemm_fp8_fp8_bf16_nt_masked(
    lhs: TensorPair, rhs: TensorPair, out: torch.Tensor, masked_m: torch.Tensor, expected_m: int
) -> None:
    """M-grouped FP8 GEMM (MoE decode): each group padded to max_m rows, a per-group valid-row count.

    Args:
        lhs: ``(a, sa)``: a float8_e4m3fn ``[g, max_m, k]`` contiguous; sa float32
            ``[g, max_m, ceil(k/128)]``, row-major or TMA-aligned column-major.
        rhs: ``(b, sb)``: b float8_e4m3fn ``[g, n, k]`` contiguous; sb float32
            ``[g, ceil(n/128), ceil(k/128)]``.
        out: bfloat16 ``[g, max_m, n]`` contiguous; rows at or past ``masked_m[i]`` are left untouched.
        masked_m: int32 ``[g]`` on the same device: group i's rows ``[0, masked_m[i])`` are computed.
        expected_m: positive host int, a hint of the typical ``masked_m`` for choosing the kernel config.

    Semantics: `fp8gemm.reference.m_grouped_masked_reference`.
    """
    (a, sa, b, sb), aligned = validate.check_cached(validate.check_masked, lhs, rhs, out, masked_m,
                                                    expected_m)
    if a.shape[1] == 0:
        return
    if a.device.type == "cpu":
        reference.m_grouped_masked_reference(a, sa, b, sb, out, masked_m)
        return
    if not aligned:
        sa = get_col_major_tma_aligned_tensor(sa)
    _launcher("gemm_masked")(a, sa, b, sb, out, masked_m, expected_m)


# The newer names of the same functions.
fp8_gemm_nt = gemm_fp8_fp8_bf16_nt
m_grouped_fp8_gemm_nt_contiguous = m_grouped_gemm_fp8_fp8_bf16_nt_contiguous
m_grouped_fp8_gemm_nt_masked = m_grouped_gemm_fp8_fp8_bf16_nt_masked
