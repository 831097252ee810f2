"""Casting BF16/FP32 tensors to FP8 e4m3 with DeepSeek-V3's fine-grained FP32 scales.

``x ~= q.float() * scale`` where each scale covers one block: 1x128 along the last dim for
activations (`per_token_cast_to_fp8`), 128x128 over the last two dims for weights
(`per_block_cast_to_fp8`). ``scale = amax(|x| over the block) / 448`` with amax clamped below at
1e-4, so that all-zero blocks do not divide by zero. A last block that is shorter than 128 is fine.
Both divisions are IEEE (correctly rounded) on every device, so results are the same bit for bit on
CPU, on CUDA and in the CUDA kernel of `fp8gemm.quant_cuda`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .utils import BLOCK

__all__ = ["per_token_cast_to_fp8", "per_block_cast_to_fp8", "FP8_MAX", "BLOCK", "AMAX_MIN"]

FP8_MAX = 448.0  # largest finite float8_e4m3fn
AMAX_MIN = 1e-4


def _check_float_input(x: torch.Tensor, min_dim: int) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x: expected a torch.Tensor, got {type(x).__name__}")
    if x.dtype not in (torch.bfloat16, torch.float16, torch.float32):
        raise TypeError(f"x: expected dtype bfloat16, float16 or float32, got {x.dtype}")
    if x.dim() < min_dim:
        raise ValueError(f"x: expected at least {min_dim} dimensions, got shape {tuple(x.shape)}")


def _scale_of(amax: torch.Tensor) -> torch.Tensor:
    # A tensor divisor, not the Python scalar: torch's CUDA division by a CPU scalar multiplies by its
    # reciprocal, which can differ from the true quotient in the last bit.
    return amax / torch.full_like(amax, FP8_MAX)


def _to_fp8(x: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    # amax / (amax / 448) can land a hair above 448 in FP32; clamp so the cast never overflows.
    return (x / scale).clamp(-FP8_MAX, FP8_MAX).to(torch.float8_e4m3fn)


def per_token_cast_to_fp8(
    x: torch.Tensor, *, tma_aligned_scales: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """Quantize activations per 1x128 block along the last dimension.

    Args:
        x: bfloat16/float16/float32 ``[..., k]`` (2D ``[m, k]`` or batched 3D ``[g, m, k]``), any device.
        tma_aligned_scales: return ``scale`` in the TMA-aligned column-major layout the GEMMs read
            (`get_col_major_tma_aligned_tensor`'s layout; x must then be 2D or 3D). On CUDA, for
            ``k % 16 == 0``, this runs one fused kernel (`fp8gemm.quant_cuda`) that reads x once and
            writes both outputs, bit-for-bit equal to the torch computation; elsewhere it is the torch
            computation followed by the layout conversion.

    Returns:
        ``(q, scale)``: ``q`` float8_e4m3fn with x's shape (contiguous); ``scale`` float32
        ``[..., ceil(k / 128)]``, row-major, with ``x[..., j] ~= q[..., j] * scale[..., j // 128]``.
        Pass ``scale`` through `get_col_major_tma_aligned_tensor` (or ask for ``tma_aligned_scales``)
        to avoid a conversion in the GEMM.
    """
    _check_float_input(x, 1)
    if tma_aligned_scales:
        if x.dim() not in (2, 3):
            raise ValueError(
                "x: expected 2D [m, k] or 3D [g, m, k] with tma_aligned_scales=True, "
                f"got shape {tuple(x.shape)}"
            )
        # Through the custom op (fp8gemm.ops), so that torch.compile sees one opaque node, not a launch.
        return torch.ops.fp8gemm.per_token_cast_to_fp8_tma(x)
    k = x.shape[-1]
    kb = (k + BLOCK - 1) // BLOCK
    padded = F.pad(x.float(), (0, kb * BLOCK - k))  # zeros do not change a block's amax
    blocks = padded.view(*x.shape[:-1], kb, BLOCK)
    amax = blocks.abs().amax(dim=-1).clamp(min=AMAX_MIN)
    scale = _scale_of(amax)
    q = _to_fp8(blocks, scale.unsqueeze(-1)).view(*x.shape[:-1], kb * BLOCK)[..., :k]
    return q.contiguous(), scale


def per_token_cast_tma_impl(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Eager body of ``torch.ops.fp8gemm.per_token_cast_to_fp8_tma``: the CUDA kernel where it applies."""
    if x.is_cuda:
        from . import quant_cuda  # imported on first CUDA use: it pulls in the JIT

        if quant_cuda.supports(x):
            return quant_cuda.per_token_cast_to_fp8_cuda(x)
    from .layout import get_col_major_tma_aligned_tensor

    q, scale = per_token_cast_to_fp8(x)
    return q, get_col_major_tma_aligned_tensor(scale)


def per_block_cast_to_fp8(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Quantize weights per 128x128 block over the last two dimensions.

    Args:
        x: bfloat16/float16/float32 ``[..., n, k]`` (2D ``[n, k]`` or batched 3D ``[g, n, k]``), any device.

    Returns:
        ``(q, scale)``: ``q`` float8_e4m3fn with x's shape (contiguous); ``scale`` float32
        ``[..., ceil(n / 128), ceil(k / 128)]`` (contiguous) with
        ``x[..., i, j] ~= q[..., i, j] * scale[..., i // 128, j // 128]``.
    """
    _check_float_input(x, 2)
    n, k = x.shape[-2], x.shape[-1]
    nb, kb = (n + BLOCK - 1) // BLOCK, (k + BLOCK - 1) // BLOCK
    padded = F.pad(x.float(), (0, kb * BLOCK - k, 0, nb * BLOCK - n))
    blocks = padded.view(*x.shape[:-2], nb, BLOCK, kb, BLOCK)
    amax = blocks.abs().amax(dim=(-3, -1)).clamp(min=AMAX_MIN)  # [..., nb, kb]
    scale = _scale_of(amax)
    q = _to_fp8(blocks, scale[..., :, None, :, None]).view(*x.shape[:-2], nb * BLOCK, kb * BLOCK)
    return q[..., :n, :k].contiguous(), scale.contiguous()
