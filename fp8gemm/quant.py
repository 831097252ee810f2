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

from .utils import BLOCK, ceil_div

__all__ = [
    "per_token_cast_to_fp8",
    "per_block_cast_to_fp8",
    "per_channel_transpose_cast_to_fp8",
    "k_grouped_per_channel_transpose_cast_to_fp8",
    "transpose_per_block_fp8",
    "FP8_MAX",
    "BLOCK",
    "AMAX_MIN",
]

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
    # NOTES: the decode-step fast path, before the checks below: a plain CUDA tensor goes straight to
    # the kernel's entry, which checks what it takes once per shape, dtype and device (its plan
    # cache); anything it does not take returns None and meets the checks. Saves ~0.6 us of Python
    # per call on the development CPU (on an H200 host the difference was lost in the host's noise,
    # BENCHMARKS.md 2026-11-30). Not while compiling: the custom op below is the traced path.
    if (tma_aligned_scales is True and not torch.compiler.is_compiling() and type(x) is torch.Tensor
            and x.is_cuda):
        result = (_quant_cuda or _import_quant_cuda()).cast_if_supported(x)
        if result is not None:
            return result
    _check_float_input(x, 1)
    if tma_aligned_scales:
        if x.dim() not in (2, 3):
            raise ValueError(
                "x: expected 2D [m, k] or 3D [g, m, k] with tma_aligned_scales=True, "
                f"got shape {tuple(x.shape)}"
            )
        # Under torch.compile through the custom op (fp8gemm.ops): one opaque node, not a launch.
        # NOTES: eager calls skip the custom-op dispatch (~10 us of host time per call, more than the
        # kernel's own launch path); the op's body is the same function.
        if torch.compiler.is_compiling():
            return torch.ops.fp8gemm.per_token_cast_to_fp8_tma(x)
        return per_token_cast_tma_impl(x)
    k = x.shape[-1]
    kb = (k + BLOCK - 1) // BLOCK
    padded = F.pad(x.float(), (0, kb * BLOCK - k))  # zeros do not change a block's amax
    blocks = padded.view(*x.shape[:-1], kb, BLOCK)
    amax = blocks.abs().amax(dim=-1).clamp(min=AMAX_MIN)
    scale = _scale_of(amax)
    q = _to_fp8(blocks, scale.unsqueeze(-1)).view(*x.shape[:-1], kb * BLOCK)[..., :k]
    return q.contiguous(), scale


_quant_cuda = None  # fp8gemm.quant_cuda, imported on first CUDA use: it pulls in the JIT


def _import_quant_cuda():
    global _quant_cuda
    from . import quant_cuda

    _quant_cuda = quant_cuda
    return quant_cuda


def per_token_cast_tma_impl(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Eager body of ``torch.ops.fp8gemm.per_token_cast_to_fp8_tma``: the CUDA kernel where it applies."""
    if x.is_cuda:
        result = (_quant_cuda or _import_quant_cuda()).cast_if_supported(x)
        if result is not None:
            return result
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


# ------------------------------------------------------------------------------------ training
# The weight-gradient GEMMs take both operands K-major with K = tokens: dW = dY^T @ X needs dY^T
# [out, tokens] and X^T [in, tokens], each scaled per channel (row) and per 128 tokens. The helpers
# below quantize token-major tensors ([tokens, channels], as activations and their gradients come)
# straight into that transposed layout. The dgrad GEMM dX = dY @ W is the forward GEMM with W^T as B:
# `transpose_per_block_fp8` transposes an FP8 weight and its 128x128 scales (exactly: same FP8 values).


def per_channel_transpose_cast_to_fp8(
    x: torch.Tensor, *, tma_aligned_scales: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """Quantize ``x [t, c]`` per channel and per 128 tokens, into the transposed, K-major layout.

    ``q[j, i] ~= x[i, j] / scale[j, i // 128]``: exactly `per_token_cast_to_fp8` of ``x^T`` (same bits),
    the operand layout of the wgrad GEMMs (``fp8_gemm_nt`` with an FP32 ``d``,
    `k_grouped_fp8_gemm_nt_contiguous`). Blocks of 128 tokens start at token 0; a last, shorter block is
    fine. (The field's ``per_channel_cast_to_fp8`` keeps x's ``[t, c]`` layout for MN-major kernels;
    FP8 wgmma on sm_90 reads K-major operands only, hence the transpose and the different name.)

    Args:
        x: bfloat16/float16/float32 ``[t, c]`` (tokens, channels), any device, any strides.
        tma_aligned_scales: return ``scale`` in the TMA-aligned column-major layout the kernels read.

    Returns:
        ``(q, scale)``: q float8_e4m3fn ``[c, t]`` contiguous; scale float32 ``[c, ceil(t / 128)]``.
    """
    _check_float_input(x, 2)
    if x.dim() != 2:
        raise ValueError(f"x: expected 2D [tokens, channels], got shape {tuple(x.shape)}")
    q, scale = per_token_cast_to_fp8(x.t().contiguous())
    if tma_aligned_scales:
        from .layout import get_col_major_tma_aligned_tensor

        scale = get_col_major_tma_aligned_tensor(scale)
    return q, scale


def _host_counts(ks: object) -> list[int]:
    if isinstance(ks, torch.Tensor):
        if ks.dim() != 1 or ks.dtype.is_floating_point or ks.dtype == torch.bool:
            raise TypeError(f"ks: expected a 1D integer tensor or a list of ints, got {ks.dtype} "
                            f"shape {tuple(ks.shape)}")
        values = ks.tolist()
    elif isinstance(ks, (list, tuple)):
        values = list(ks)
    else:
        raise TypeError(f"ks: expected a list of ints or a 1D integer tensor, got {type(ks).__name__}")
    import operator

    counts = []
    for i, v in enumerate(values):
        if isinstance(v, bool):
            raise TypeError(f"ks[{i}]: expected an int, got bool")
        try:
            v = operator.index(v)
        except TypeError:
            raise TypeError(f"ks[{i}]: expected an int, got {type(v).__name__}") from None
        if v < 0:
            raise ValueError(f"ks[{i}]: expected a non-negative token count, got {v}")
        counts.append(v)
    return counts


def k_grouped_per_channel_transpose_cast_to_fp8(
    x: torch.Tensor, ks: list[int] | torch.Tensor, *, capacity: int | None = None,
    tma_aligned_scales: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Quantize packed per-group tokens into the k-grouped contiguous layout (per channel, 1x128).

    ``x [sum(ks), c]`` holds the groups' tokens one after another (group ``g`` in rows
    ``[p_g, p_g + ks[g])``, ``p_g = ks[0] + ... + ks[g-1]``). The result is the K-major operand of
    `k_grouped_fp8_gemm_nt_contiguous`: group ``g`` in columns ``[k0, k0 + ks[g])`` with ``k0 =
    fp8gemm.reference.k_grouped_offsets(ks)[g]`` (each group starts at a multiple of 128), zeros in the
    rest of each group's last 128-wide block and up to ``capacity``. Blocks of 128 tokens restart at
    each group's start, so no block mixes groups: ``q``, ``scale`` are bit for bit
    `per_channel_transpose_cast_to_fp8` of each group's tokens alone, placed side by side. Blocks with
    no tokens (past the last group) get the scale of an all-zero block (``1e-4 / 448``).

    A tensor already in the padded layout (zeros in the padding rows, e.g. the forward pass's
    128-aligned contiguous layout) needs no regrouping: `per_channel_transpose_cast_to_fp8` of it is
    the same thing.

    Args:
        x: bfloat16/float16/float32 ``[sum(ks), c]``.
        ks: the token count of each group: a list of ints or a 1D integer tensor (read on the host).
        capacity: the K of the result, a multiple of 128 at least the padded total (default: the padded
            total, ``k_grouped_offsets(ks)[-1]``). A fixed capacity keeps shapes static across steps.
        tma_aligned_scales: return ``scale`` in the TMA-aligned column-major layout.

    Returns:
        ``(q, scale)``: q float8_e4m3fn ``[c, K]`` contiguous; scale float32 ``[c, K / 128]``.
    """
    _check_float_input(x, 2)
    if x.dim() != 2:
        raise ValueError(f"x: expected 2D [tokens, channels], got shape {tuple(x.shape)}")
    counts = _host_counts(ks)
    if sum(counts) != x.shape[0]:
        raise ValueError(f"ks: expected counts that add up to the {x.shape[0]} rows of x, got sum "
                         f"{sum(counts)} for {counts}")
    offsets = [0]
    for count in counts:
        offsets.append(offsets[-1] + ceil_div(count, BLOCK) * BLOCK)
    if capacity is None:
        capacity = offsets[-1]
    else:
        if isinstance(capacity, bool) or not isinstance(capacity, int):
            raise TypeError(f"capacity: expected an int or None, got {type(capacity).__name__}")
        if capacity % BLOCK or capacity < offsets[-1]:
            raise ValueError(f"capacity: expected a multiple of {BLOCK} that is at least {offsets[-1]} "
                             f"(the groups padded to {BLOCK} tokens each), got {capacity}")
    padded = x.new_zeros((capacity, x.shape[1]))
    start = 0
    for g, count in enumerate(counts):
        padded[offsets[g] : offsets[g] + count] = x[start : start + count]
        start += count
    return per_channel_transpose_cast_to_fp8(padded, tma_aligned_scales=tma_aligned_scales)


def transpose_per_block_fp8(q: torch.Tensor, scale: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Transpose an FP8 weight and its 128x128 block scales: the B operand of the dgrad GEMM.

    ``W [n, k] ~= q * scale (per 128x128 block)`` gives ``W^T [k, n] ~= q_t * scale_t``: the same FP8
    values transposed, the scales transposed (a 128x128 block transposes onto one). Nothing is
    re-quantized, so this is exact, and equal bit for bit to ``per_block_cast_to_fp8(w.transpose(-1, -2))``
    of the original weight.

    Args:
        q: float8_e4m3fn ``[..., n, k]`` (2D, or 3D ``[g, n, k]`` for grouped experts).
        scale: float32 ``[..., ceil(n / 128), ceil(k / 128)]``.

    Returns:
        ``(q_t, scale_t)``: float8_e4m3fn ``[..., k, n]`` and float32 ``[..., ceil(k/128), ceil(n/128)]``,
        both contiguous.
    """
    if not isinstance(q, torch.Tensor):
        raise TypeError(f"q: expected a torch.Tensor, got {type(q).__name__}")
    if not isinstance(scale, torch.Tensor):
        raise TypeError(f"scale: expected a torch.Tensor, got {type(scale).__name__}")
    if q.dtype != torch.float8_e4m3fn:
        raise TypeError(f"q: expected dtype torch.float8_e4m3fn, got {q.dtype}")
    if scale.dtype != torch.float32:
        raise TypeError(f"scale: expected dtype torch.float32, got {scale.dtype}")
    if q.dim() not in (2, 3):
        raise ValueError(f"q: expected 2D [n, k] or 3D [g, n, k], got shape {tuple(q.shape)}")
    expected = (*q.shape[:-2], ceil_div(q.shape[-2], BLOCK), ceil_div(q.shape[-1], BLOCK))
    if tuple(scale.shape) != expected:
        raise ValueError(f"scale: expected shape {list(expected)} (one per 128x128 block of q), "
                         f"got {list(scale.shape)}")
    if q.device != scale.device:
        raise ValueError(f"scale: expected device {q.device} (the device of q), got {scale.device}")
    return q.transpose(-1, -2).contiguous(), scale.transpose(-1, -2).contiguous()
