"""Autograd layers on the FP8 GEMMs: `FP8Linear` and `FP8GroupedLinear` (MoE experts).

Both keep their weight as a master parameter in BF16 or FP32 and use DeepSeek-V3's recipe in every
GEMM of a training step:

* forward ``Y = X @ W^T``: X cast per token (1x128), W per 128x128 block, the forward GEMM, BF16 Y;
* dgrad ``dX = dY @ W``: dY cast per token (1x128), the forward GEMM with ``W^T`` as B (the FP8
  weight of the forward pass and its 128x128 scales transposed: `transpose_per_block_fp8`, exact);
* wgrad ``dW = dY^T @ X``: dY and X cast per channel and per 128 tokens
  (`per_channel_transpose_cast_to_fp8`), the FP32-output GEMM (`fp8_gemm_nt` with an FP32 ``d``; the
  k-grouped GEMM for the experts), then cast to the weight's dtype.

Every GEMM goes through ``torch.ops.fp8gemm.*``, so the layers trace under ``torch.compile``. On CPU
tensors everything runs through the reference path; on CUDA all three are Hopper kernels (the wgrad
GEMMs the FP32-output kernel of `fp8gemm.training`, which reads the token counts on the GPU: no host
synchronization).

Sizes: ``in_features`` and ``out_features`` multiples of 16 (K-major rows of 16 bytes in every GEMM).
"""

from __future__ import annotations

import math

import torch

from . import ops
from .quant import (
    per_block_cast_to_fp8,
    per_channel_transpose_cast_to_fp8,
    per_token_cast_to_fp8,
    transpose_per_block_fp8,
)
from .utils import BLOCK

__all__ = ["FP8Linear", "FP8GroupedLinear", "fp8_linear", "fp8_grouped_linear", "grouped_rows",
           "grouped_m_indices", "grouped_capacity"]

_ALIGN = 16  # elements: every K-major FP8 row and BF16 output row is a multiple of 16 bytes


def _check_features(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name}: expected an int, got {type(value).__name__}")
    if value <= 0 or value % _ALIGN:
        raise ValueError(f"{name}: expected a positive multiple of {_ALIGN}, got {value}")
    return value


def _pad_rows(x: torch.Tensor, multiple: int) -> torch.Tensor:
    extra = -x.shape[0] % multiple
    return x if extra == 0 else torch.cat([x, x.new_zeros((extra, x.shape[1]))])


def _wgrad_operands(dy: torch.Tensor, x: torch.Tensor):
    """dY^T and X^T, cast per channel and per 128 tokens (token count padded with zero rows to a
    multiple of 16, which adds nothing to the sums)."""
    gt, sgt = per_channel_transpose_cast_to_fp8(_pad_rows(dy, _ALIGN))
    xt, sxt = per_channel_transpose_cast_to_fp8(_pad_rows(x, _ALIGN))
    return gt, sgt, xt, sxt


class _LinearFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        a, sa = per_token_cast_to_fp8(x)
        b, sb = per_block_cast_to_fp8(weight)
        ctx.save_for_backward(x, b, sb)
        ctx.x_dtype, ctx.w_dtype = x.dtype, weight.dtype
        return ops.gemm_nt(a, sa, b, sb)

    @staticmethod
    def backward(ctx, dy: torch.Tensor):
        x, b, sb = ctx.saved_tensors
        dy = dy.contiguous()
        dx = dw = None
        if ctx.needs_input_grad[0]:
            g, sg = per_token_cast_to_fp8(dy)
            bt, sbt = transpose_per_block_fp8(b, sb)
            dx = ops.gemm_nt(g, sg, bt, sbt).to(ctx.x_dtype)
        if ctx.needs_input_grad[1]:
            dw = ops.gemm_nt_fp32(*_wgrad_operands(dy, x)).to(ctx.w_dtype)
        return dx, dw


def fp8_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """``x @ weight.T (+ bias)`` with FP8 GEMMs forward and backward; returns BF16 ``[..., out]``.

    Args:
        x: floating ``[..., in]`` (any leading dims), in % 16 == 0.
        weight: floating ``[out, in]`` (the master weight), out % 16 == 0.
        bias: None or ``[out]``, added in BF16.
    """
    if x.shape[-1] != weight.shape[-1]:
        raise ValueError(f"x: expected last dim {weight.shape[-1]} (in_features), got shape {tuple(x.shape)}")
    lead = x.shape[:-1]
    y = _LinearFunction.apply(x.reshape(-1, x.shape[-1]).contiguous(), weight)
    y = y.reshape(*lead, weight.shape[0])
    return y if bias is None else y + bias.to(y.dtype)


class FP8Linear(torch.nn.Module):
    """A linear layer ``y = x @ W^T (+ b)`` whose three GEMMs (forward, dgrad, wgrad) run in FP8.

    The weight is the master copy (FP32 by default, or BF16), cast to FP8 on every forward; the output
    is BF16; gradients come back in the dtypes of x and the weight.

    Args:
        in_features, out_features: multiples of 16.
        bias: add a learnable bias (kept in the weight's dtype, added in BF16).
        device, dtype: of the parameters (dtype float32 or bfloat16).
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = False, *,
                 device: torch.device | str | None = None, dtype: torch.dtype = torch.float32):
        super().__init__()
        self.in_features = _check_features("in_features", in_features)
        self.out_features = _check_features("out_features", out_features)
        if dtype not in (torch.float32, torch.bfloat16):
            raise TypeError(f"dtype: expected torch.float32 or torch.bfloat16, got {dtype}")
        self.weight = torch.nn.Parameter(torch.empty(out_features, in_features, device=device, dtype=dtype))
        self.bias = (torch.nn.Parameter(torch.zeros(out_features, device=device, dtype=dtype))
                     if bias else None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        torch.nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return fp8_linear(x, self.weight, self.bias)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}")


# ------------------------------------------------------------------------------------ grouped experts
# The experts' tokens use one layout in all three GEMMs: the k-grouped contiguous layout of
# `fp8gemm.k_grouped_fp8_gemm_nt_contiguous`, i.e. rows [k0, k0 + ks[g]) for expert g, each expert
# starting at a multiple of 128 (the forward and dgrad GEMMs see it as the M-grouped contiguous layout
# with m_indices = -1 on the padding rows; the wgrad GEMM as the k-grouped layout of its transpose).
# Everything here is computed on the device from ks_tensor: no host synchronization.


def grouped_capacity(num_tokens: int, num_groups: int) -> int:
    """Rows enough for any split of ``num_tokens`` over ``num_groups`` groups in the padded layout."""
    return (num_tokens + num_groups * (BLOCK - 1)) // BLOCK * BLOCK


def _starts(ks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(start row of each group in the padded layout, start of each group among packed tokens)."""
    ks = ks.long()
    padded = (ks + BLOCK - 1) // BLOCK * BLOCK
    return torch.cumsum(padded, 0) - padded, torch.cumsum(ks, 0) - ks


def grouped_rows(ks_tensor: torch.Tensor, num_tokens: int) -> torch.Tensor:
    """Row of each packed token in the padded layout (int64 ``[num_tokens]``).

    Packed tokens are sorted by group, group ``g`` holding ``ks_tensor[g]`` of them (the counts must
    add up to ``num_tokens``). ``padded.index_copy(0, rows, x_packed)`` builds the layout and
    ``y_padded.index_select(0, rows)`` reads it back.
    """
    starts, packed_starts = _starts(ks_tensor)
    group = torch.repeat_interleave(torch.arange(ks_tensor.shape[0], device=ks_tensor.device),
                                    ks_tensor.long(), output_size=num_tokens)
    token = torch.arange(num_tokens, device=ks_tensor.device)
    return token - packed_starts[group] + starts[group]


def grouped_m_indices(ks_tensor: torch.Tensor, rows: int) -> torch.Tensor:
    """``m_indices`` (int32 ``[rows]``) of the padded layout: the group of each row, -1 for padding."""
    starts, _ = _starts(ks_tensor)
    row = torch.arange(rows, device=ks_tensor.device)
    group = (torch.searchsorted(starts, row, right=True) - 1).clamp(min=0)
    valid = row - starts[group] < ks_tensor.long()[group]
    return torch.where(valid, group, -1).to(torch.int32)


class _GroupedFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, ks_tensor: torch.Tensor) -> torch.Tensor:
        m_indices = grouped_m_indices(ks_tensor, x.shape[0])
        a, sa = per_token_cast_to_fp8(x)
        b, sb = per_block_cast_to_fp8(weight)
        ctx.save_for_backward(x, b, sb, ks_tensor, m_indices)
        ctx.x_dtype, ctx.w_dtype = x.dtype, weight.dtype
        return ops.m_grouped_gemm_nt_contiguous(a, sa, b, sb, m_indices)

    @staticmethod
    def backward(ctx, dy: torch.Tensor):
        x, b, sb, ks_tensor, m_indices = ctx.saved_tensors
        padding = (m_indices < 0).unsqueeze(1)
        # The padding rows of Y are constant zeros: their gradient is dropped; the k-grouped GEMM
        # needs zeros there in both operands.
        dy = dy.contiguous().masked_fill(padding, 0)
        dx = dw = None
        if ctx.needs_input_grad[0]:
            g, sg = per_token_cast_to_fp8(dy)
            bt, sbt = transpose_per_block_fp8(b, sb)
            dx = ops.m_grouped_gemm_nt_contiguous(g, sg, bt, sbt, m_indices).to(ctx.x_dtype)
        if ctx.needs_input_grad[1]:
            gt, sgt = per_channel_transpose_cast_to_fp8(dy)
            xt, sxt = per_channel_transpose_cast_to_fp8(x.masked_fill(padding, 0))
            dw = ops.k_grouped_gemm_nt_contiguous(gt, sgt, xt, sxt, ks_tensor).to(ctx.w_dtype)
        return dx, dw, None


def fp8_grouped_linear(x: torch.Tensor, weight: torch.Tensor, ks_tensor: torch.Tensor) -> torch.Tensor:
    """Per-expert ``x_g @ weight[g].T`` on the padded grouped layout, FP8 forward and backward.

    Args:
        x: floating ``[rows, in]``, rows a multiple of 128 (see `grouped_capacity`): expert ``g``'s
            tokens in rows ``[k0, k0 + ks_tensor[g])``, ``k0`` the padded prefix sum (each expert starts
            at a multiple of 128). Padding rows are ignored.
        weight: floating ``[g, out, in]``.
        ks_tensor: int32 ``[g]`` on x's device, the token count of each expert.

    Returns:
        BF16 ``[rows, out]``, zero on the padding rows. ``grouped_rows`` maps packed tokens to rows.
    """
    if x.dim() != 2 or x.shape[0] % BLOCK:
        raise ValueError(f"x: expected 2D [rows, in] with rows a multiple of {BLOCK}, "
                         f"got shape {tuple(x.shape)}")
    if weight.dim() != 3 or x.shape[1] != weight.shape[2]:
        raise ValueError(f"weight: expected [groups, out, {x.shape[1]}], got shape {tuple(weight.shape)}")
    if ks_tensor.dtype != torch.int32 or tuple(ks_tensor.shape) != (weight.shape[0],):
        raise ValueError(f"ks_tensor: expected int32 [{weight.shape[0]}], got {ks_tensor.dtype} "
                         f"shape {tuple(ks_tensor.shape)}")
    return _GroupedFunction.apply(x.contiguous(), weight, ks_tensor)


class FP8GroupedLinear(torch.nn.Module):
    """``num_experts`` linear layers (no bias) over the padded grouped layout, FP8 in all three GEMMs.

    ``forward(x, ks_tensor)``: see `fp8_grouped_linear`. Forward and dgrad are M-grouped contiguous
    GEMMs, the weight gradient is the k-grouped contiguous GEMM (FP32, then the weight's dtype).

    Args:
        num_experts: the number of experts (groups).
        in_features, out_features: multiples of 16.
        device, dtype: of the master weight ``[num_experts, out, in]`` (float32 or bfloat16).
    """

    def __init__(self, num_experts: int, in_features: int, out_features: int, *,
                 device: torch.device | str | None = None, dtype: torch.dtype = torch.float32):
        super().__init__()
        if isinstance(num_experts, bool) or not isinstance(num_experts, int) or num_experts <= 0:
            raise ValueError(f"num_experts: expected a positive int, got {num_experts!r}")
        self.num_experts = num_experts
        self.in_features = _check_features("in_features", in_features)
        self.out_features = _check_features("out_features", out_features)
        if dtype not in (torch.float32, torch.bfloat16):
            raise TypeError(f"dtype: expected torch.float32 or torch.bfloat16, got {dtype}")
        self.weight = torch.nn.Parameter(
            torch.empty(num_experts, out_features, in_features, device=device, dtype=dtype))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        bound = 1 / math.sqrt(self.in_features)
        torch.nn.init.uniform_(self.weight, -bound, bound)

    def forward(self, x: torch.Tensor, ks_tensor: torch.Tensor) -> torch.Tensor:
        return fp8_grouped_linear(x, self.weight, ks_tensor)

    def extra_repr(self) -> str:
        return (f"num_experts={self.num_experts}, in_features={self.in_features}, "
                f"out_features={self.out_features}")
