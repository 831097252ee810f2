"""cuBLASLt's blockwise FP8 GEMM through ``torch._scaled_mm``: the baseline of the benchmark.

``torch._scaled_mm(mat1, mat2, scale_a, scale_b, out_dtype=torch.bfloat16)`` computes
``mat1[M,K] @ mat2[K,N]``. For DeepSeek-style scaling (1x128 on A, 128x128 on B, FP32 scales, Hopper,
cuBLASLt >= 12.9) torch's ``get_joint_scaling`` (aten/src/ATen/native/cuda/ScaledBlas.cpp) accepts:

- ``mat1 = a``: ``[M, K]`` row-major; ``mat2 = b.t()``: ``[K, N]`` column-major (stride ``(1, K)``).
- ``scale_a``: ``[M, ceil(K/128)]`` FP32, **column-major with leading dimension exactly M**: stride
  ``(1, M)`` (``is_blockwise_1x128_scaling(a, scale_a)``). Our TMA-aligned ``sa`` pads M to a multiple
  of 4, so it is re-laid out here.
- ``scale_b``: ``[ceil(K/128), ceil(N/128)]`` FP32 with stride ``(1, ld)``, i.e. ``scale_b.t()`` is
  our row-major ``sb[ceil(N/128), ceil(K/128)]`` (``is_blockwise_128x128_scaling(b.t(), scale_b.t())``).
  Torch versions differ on ``ld``: ``ceil(K/128)`` in some, ``round_up(ceil(K/128), 4)`` (16-byte
  aligned rows) in others; both agree when ``ceil(K/128) % 4 == 0`` (every shape of shapes.json).
  We try the padded layout first and fall back to the exact one.

A stride of a dimension of size 1 is not checked (``check_size_stride``).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from fp8gemm.utils import round_up

__all__ = ["cublas_scale_a", "cublas_scale_b", "scaled_mm_blockwise", "grouped_scaled_mm_blockwise"]


def cublas_scale_a(sa: torch.Tensor) -> torch.Tensor:
    """``sa[M, kb]`` (any layout) as cuBLASLt's 1x128 scales: same values, stride ``(1, M)``."""
    return sa.float().t().contiguous().t()


def cublas_scale_b(sb: torch.Tensor, pad_to: int = 4) -> torch.Tensor:
    """``sb[nb, kb]`` as cuBLASLt's 128x128 scales for ``mat2 = b.t()``: shape ``[kb, nb]``, stride
    ``(1, round_up(kb, pad_to))`` (``pad_to=1``: the exact ``(1, kb)``)."""
    nb, kb = sb.shape
    storage = torch.zeros((nb, round_up(kb, pad_to)), dtype=torch.float32, device=sb.device)
    storage[:, :kb].copy_(sb)
    return storage[:, :kb].t()


def scaled_mm_blockwise(
    a: torch.Tensor, sa: torch.Tensor, b: torch.Tensor, sb: torch.Tensor
) -> Callable[[], torch.Tensor]:
    """A prepared cuBLASLt call ``fn() -> bf16[M, N]`` for ``a[M,K] @ b[N,K]^T`` with DeepSeek scales.

    The scale tensors are re-laid out here, once, so that ``fn`` is only the GEMM. The call is made
    once to pick the ``scale_b`` layout this torch accepts; its errors (e.g. no sm_90, old cuBLASLt)
    propagate to the caller.
    """
    scale_a = cublas_scale_a(sa)
    mat2 = b.t()
    kb = sb.shape[1]
    pads = (4, 1) if kb % 4 else (1,)
    error: Exception | None = None
    for pad in pads:
        scale_b = cublas_scale_b(sb, pad)

        def fn(scale_b: torch.Tensor = scale_b) -> torch.Tensor:
            return torch._scaled_mm(a, mat2, scale_a, scale_b, out_dtype=torch.bfloat16)

        try:
            fn()
        except (RuntimeError, ValueError) as exc:  # TORCH_CHECK / TORCH_CHECK_VALUE failures
            error = exc
            continue
        return fn
    assert error is not None
    raise error


def grouped_scaled_mm_blockwise(
    a: torch.Tensor,
    sa: torch.Tensor,
    b: torch.Tensor,
    sb: torch.Tensor,
    rows: list[tuple[int, int]],
    layout: str,
) -> Callable[[], list[torch.Tensor]]:
    """A loop of per-group cuBLASLt calls over the valid rows of each group (groups of 0 rows skipped).

    ``layout="contiguous"``: ``a[M, K]``, group g is rows ``[start, start + count)``;
    ``layout="masked"``: ``a[G, max_m, K]``, group g is ``a[g, :count]``. The baseline knows the row
    counts on the host, which the masked kernel does not: an advantage for the baseline.
    """
    calls = []
    for g, (start, count) in enumerate(rows):
        if count == 0:
            continue
        # cuBLASLt wants the 1x128 scales' leading dimension (the row count) 16-byte aligned: run
        # up to 3 extra rows (they exist: groups are padded), a negligible extra for the baseline.
        count = min(round_up(count, 4), a.shape[-2] - start if layout == "contiguous" else a.shape[1])
        if layout == "contiguous":
            a_g, sa_g = a[start : start + count], sa[start : start + count]
        else:
            a_g, sa_g = a[g, :count], sa[g, :count]
        calls.append(scaled_mm_blockwise(a_g, sa_g, b[g], sb[g]))
    return lambda: [call() for call in calls]
