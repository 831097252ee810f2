"""The training GEMMs: FP32 output, 1x128 scales on both operands (recipe ``(1, 1, 128)``).

Weight gradients multiply two activations-like operands, both quantized per channel and per 128
tokens (K is the token dimension), and accumulate in FP32:

* dense: ``fp8_gemm_nt(a, b, d, c=None)`` with an FP32 ``d`` (the dispatch lives in `fp8gemm.gemm`):
  ``d = c + a @ b.T``, in place when ``d is c``; the older name `wgrad_gemm_fp8_fp8_fp32_nt`
  accumulates into its ``out``;
* k-grouped contiguous (MoE experts): `k_grouped_fp8_gemm_nt_contiguous`, one ``d[g]`` per group,
  the groups' tokens concatenated along K.

The semantics are final and defined by `fp8gemm.reference.gemm_nt_fp32_reference` and
`fp8gemm.reference.k_grouped_contiguous_reference`. CPU tensors compute through them. CUDA tensors
run the JIT kernel of ``include/fp8gemm/fp8_gemm_fp32.cuh`` (sm_90a): FP32 output through TMA
stores, or TMA reductions (``d += acc`` element-wise in L2) when accumulating. The k-grouped kernel
reads ``ks_tensor`` on the GPU (no host sync; CUDA-graph safe: a replay uses the counts the tensor
holds then). ``c`` that is neither None nor ``d`` is first copied into ``d`` (dense), or into the
groups of ``d`` that have tokens (k-grouped, selected on the GPU), then accumulated onto.

Layout of the k-grouped GEMM, and why: the Hopper tensor cores take FP8 operands K-major only, so
both operands are K-major, ``a [m, K]`` (e.g. dY^T: output channels by tokens) and ``b [n, K]`` (e.g.
X^T), with group ``g``'s tokens in columns ``[k0, k0 + ks[g])``, ``k0 =
fp8gemm.reference.k_grouped_offsets(ks)[g]``: every group starts at a multiple of 128 and its last
block is padded with zeros. That is the transpose of the forward pass's 128-aligned contiguous
layout (so a MoE layer needs no re-packing between forward and backward), one 2D tensor (one TMA
descriptor, no per-group descriptors), and every 128-deep K block and its scale column
``kb = k // 128`` belong to one group, so scale blocks restart at each group's start without any
per-group bookkeeping. The field's sm_90 API of the same name takes each group as a separate
flattened ``[m, k_i]`` block; its sm_100 ``k_grouped_fp8_gemm_tn_contiguous`` takes MN-major
``[K, m]`` operands, which FP8 wgmma on sm_90 cannot read.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from . import env, reference, validate
from .device import require_sm90
from .layout import get_col_major_tma_aligned_tensor

__all__ = [
    "fp8_gemm_nt_fp32",
    "wgrad_gemm_fp8_fp8_fp32_nt",
    "k_grouped_fp8_gemm_nt_contiguous",
    "RECIPE_1X128",
]

TensorPair = tuple[torch.Tensor, torch.Tensor]
RECIPE_1X128 = (1, 1, 128)  # (rows of A per scale, rows of B per scale, K per scale): 1x128 on both


def _check_recipe(recipe: object) -> None:
    if recipe is None:
        return
    if not isinstance(recipe, (tuple, list)) or tuple(recipe) != RECIPE_1X128:
        raise NotImplementedError(
            f"recipe: with an FP32 d only {RECIPE_1X128} (1x128 scales on both operands) is supported, "
            f"got {recipe!r}"
        )


def _check_options(compiled_dims: object) -> None:
    if not isinstance(compiled_dims, str):
        raise TypeError(f"compiled_dims: expected a str, got {type(compiled_dims).__name__}")


def _on_cuda(device: torch.device):
    """Checks the GPU; returns `fp8gemm.launch` (imported on the first CUDA call: importing fp8gemm
    loads no JIT)."""
    require_sm90(device)
    from . import launch

    return launch


def fp8_gemm_nt_fp32(a: TensorPair, b: TensorPair, d: torch.Tensor, c: torch.Tensor | None = None,
                     recipe: tuple[int, int, int] | None = None, *,
                     _names: tuple[str, str, str] = ("a", "b", "d")) -> None:
    """Dense FP32-output GEMM ``d = c + a @ b.T`` (``d = a @ b.T`` without ``c``), 1x128 on both.

    What `fp8gemm.fp8_gemm_nt` runs for an FP32 ``d``.

    Args:
        a: ``(a, sa)``: a float8_e4m3fn ``[m, k]`` contiguous (K-major, k % 16 == 0); sa float32
            ``[m, ceil(k/128)]``, row-major or TMA-aligned column-major.
        b: ``(b, sb)``: b float8_e4m3fn ``[n, k]`` contiguous (B transposed); sb float32
            ``[n, ceil(k/128)]`` (one scale per row of b and per 128-wide K block), row-major or
            TMA-aligned column-major.
        d: float32 ``[m, n]`` contiguous (n % 4 == 0), overwritten.
        c: None, ``d`` itself (in place: ``d += a @ b.T``), or float32 ``[m, n]`` contiguous that does
            not overlap ``d``.
        recipe: None or ``(1, 1, 128)``.

    Semantics: `fp8gemm.reference.gemm_nt_fp32_reference`. CUDA tensors: the FP32-output kernel
    (fp8_gemm_fp32.cuh); a row-major ``sa``/``sb`` is converted to the TMA-aligned column-major
    layout first (a copy; pass `get_col_major_tma_aligned_tensor` output to avoid it). With ``d is c``
    the kernel adds into ``d`` in L2 (``c + acc`` per element, one rounding; the reduction instruction
    flushes FP32 subnormals to zero); another ``c`` is copied into ``d`` first.

    Raises:
        TypeError, ValueError: a bad argument, named in the message.
        NotImplementedError: another recipe.
        fp8gemm.device.UnsupportedGPUError: CUDA tensors on a GPU that is not sm_90 (Hopper).
    """
    _check_recipe(recipe)
    a_, sa, b_, sb = validate.check_dense_fp32(a, b, d, c, _names)
    if not a_.is_cuda:
        if a_.shape[0]:
            reference.gemm_nt_fp32_reference(a_, sa, b_, sb, d, c)
        return
    launch = _on_cuda(a_.device)
    if a_.shape[0] == 0:
        return
    if c is not None and c is not d:
        d.copy_(c)
    launch.gemm_fp32_dense(a_, get_col_major_tma_aligned_tensor(sa), b_, get_col_major_tma_aligned_tensor(sb),
                           d, accumulate=c is not None)


def wgrad_gemm_fp8_fp8_fp32_nt(lhs: TensorPair, rhs: TensorPair, out: torch.Tensor) -> None:
    """The older name of the dense weight-gradient GEMM: accumulates, ``out += lhs @ rhs.T``.

    Args:
        lhs: ``(a, sa)``: a float8_e4m3fn ``[m, k]``, sa float32 ``[m, ceil(k/128)]`` (1x128).
        rhs: ``(b, sb)``: b float8_e4m3fn ``[n, k]``, sb float32 ``[n, ceil(k/128)]`` (1x128).
        out: float32 ``[m, n]`` contiguous, accumulated into.

    Same as ``fp8_gemm_nt(lhs, rhs, out, c=out)``; requirements and semantics as `fp8_gemm_nt_fp32`.
    """
    fp8_gemm_nt_fp32(lhs, rhs, out, out, _names=("lhs", "rhs", "out"))


def k_grouped_fp8_gemm_nt_contiguous(
    a: TensorPair, b: TensorPair, d: torch.Tensor, ks: Sequence[int] | None, ks_tensor: torch.Tensor,
    c: torch.Tensor | None = None, recipe: tuple[int, int, int] | None = None, compiled_dims: str = "mn",
) -> None:
    """K-grouped contiguous FP32 GEMM (MoE weight gradients): ``d[g] = c[g] + a_g @ b_g.T`` per group.

    Group ``g`` spans columns ``[k0, k0 + ks[g])`` of both operands, ``k0 =
    fp8gemm.reference.k_grouped_offsets(ks)[g]``: groups one after another in order, each starting at
    a multiple of 128, the rest of its last 128-wide block zero (padding). Scales are per row and per
    128-wide block of K, so block numbering restarts at each group's start. A group with
    ``ks[g] == 0`` leaves ``d[g]`` untouched (not even set to ``c[g]``). Columns past the last group
    are never read. `fp8gemm.k_grouped_per_channel_transpose_cast_to_fp8` builds this layout from
    token-major tensors.

    Args:
        a: ``(a, sa)``: a float8_e4m3fn ``[m, K]`` contiguous (K-major: e.g. dY^T, channels by tokens),
            K a multiple of 128 (a capacity: the groups may use less); sa float32 ``[m, K/128]``,
            row-major or TMA-aligned column-major.
        b: ``(b, sb)``: b float8_e4m3fn ``[n, K]`` contiguous (e.g. X^T); sb float32 ``[n, K/128]``.
        d: float32 ``[g, m, n]`` contiguous (n % 4 == 0).
        ks: None or ``g`` host ints, the token counts (the field passes them for host-side planning;
            they must equal ``ks_tensor``). None is allowed so that a CUDA-graph step needs no host
            copy.
        ks_tensor: int32 ``[g]`` on the device of ``a``: the token counts the GEMM uses, each >= 0,
            the padded groups fitting in K.
        c: None, ``d`` itself (in place: ``d[g] += ...``), or float32 ``[g, m, n]`` not overlapping d.
        recipe: None or ``(1, 1, 128)`` (the field's default).
        compiled_dims: accepted and ignored.

    Values (``ks_tensor``, its agreement with ``ks``, padding zeros) are checked on CPU; on CUDA only
    with ``FP8GEMM_CHECK_INPUTS=1`` (reading them synchronizes).

    Semantics: `fp8gemm.reference.k_grouped_contiguous_reference`. CUDA tensors: the FP32-output
    kernel (fp8_gemm_fp32.cuh), which reads ``ks_tensor`` on the GPU: no host sync, CUDA-graph safe.
    Row-major ``sa``/``sb`` are converted to the TMA-aligned column-major layout first (a copy).
    """
    _check_recipe(recipe)
    _check_options(compiled_dims)
    a_, sa, b_, sb, counts = validate.check_k_grouped(a, b, d, ks, ks_tensor, c)
    if not a_.is_cuda:
        counts = validate.check_k_grouped_values(a_, b_, ks_tensor, counts)
        reference.k_grouped_contiguous_reference(a_, sa, b_, sb, d, counts, c)
        return
    launch = _on_cuda(a_.device)
    if env.check_inputs():
        validate.check_k_grouped_values(a_, b_, ks_tensor, counts)
    if c is not None and c is not d:
        # Groups without tokens keep d[g] (the semantics leave them untouched); chosen on the GPU.
        torch.where(ks_tensor.view(-1, 1, 1) > 0, c, d, out=d)
    launch.gemm_k_grouped(a_, get_col_major_tma_aligned_tensor(sa), b_, get_col_major_tma_aligned_tensor(sb),
                          d, ks_tensor, accumulate=c is not None)
