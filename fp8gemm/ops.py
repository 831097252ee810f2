"""The GEMMs as PyTorch custom operators (namespace ``fp8gemm``), for ``torch.compile`` and export.

    torch.ops.fp8gemm.gemm_nt(a, sa, b, sb, out)                                  -> None
    torch.ops.fp8gemm.m_grouped_gemm_nt_contiguous(a, sa, b, sb, out, m_indices)  -> None
    torch.ops.fp8gemm.m_grouped_gemm_nt_masked(a, sa, b, sb, out, masked_m, expected_m) -> None
    torch.ops.fp8gemm.per_token_cast_to_fp8_tma(x) -> (q, sa)   # sa in the TMA-aligned layout

and the training GEMMs (FP32 output, 1x128 scales on both operands; ``accumulate``: ``d +=`` rather
than ``d =``; a k-grouped group with no tokens leaves its ``d[g]`` untouched)::

    torch.ops.fp8gemm.gemm_nt_fp32(a, sa, b, sb, d, accumulate)                      -> None
    torch.ops.fp8gemm.k_grouped_gemm_nt_contiguous(a, sa, b, sb, d, ks_tensor, accumulate) -> None

Each op writes into ``out`` (``mutates_args=("out",)``), exactly like the public functions. We chose
mutating ops over functional ones because they keep the library's semantics (rows past ``masked_m``
and padding rows of the contiguous layout are left untouched) and allocate nothing: under
``torch.compile(fullgraph=True)`` the op is functionalized and Inductor re-inplaces it, so no copy
of ``out`` is made. For code that prefers values, `gemm_nt` & co. below allocate ``out`` and call the op;
they trace without graph breaks too.

Strides: the ops carry ``needs_exact_strides`` (where torch has it), so a compiler passes tensors with
the strides they had in eager mode, and every call (and the fake implementation, at trace time)
re-validates them with `fp8gemm.validate`: an ``sa`` that is neither row-major nor TMA-aligned
column-major, or a non-contiguous operand, raises ``ValueError`` naming it instead of being misread.

Registration happens when ``fp8gemm`` is imported; it touches no CUDA state.
"""

from __future__ import annotations

import torch

from . import gemm, quant, training, validate
from .layout import get_tma_aligned_size

__all__ = [
    "gemm_nt",
    "m_grouped_gemm_nt_contiguous",
    "m_grouped_gemm_nt_masked",
    "gemm_nt_fp32",
    "k_grouped_gemm_nt_contiguous",
]

_TAGS = tuple(
    getattr(torch.Tag, name) for name in ("needs_exact_strides",) if hasattr(torch.Tag, name)
) or tuple(getattr(torch.Tag, name) for name in ("needs_fixed_stride_order",) if hasattr(torch.Tag, name))


# NOTES: the GEMMs are registered with the low-level Library API, one Python kernel for every
# backend, rather than with torch.library.custom_op: custom_op adds Python kernels for autograd and
# for ADInplaceOrView on top of the implementation, and those hops cost ~17 us per call (measured on
# the H200: 30 us through torch.ops against 12 us direct). Here a call crosses into Python once.
# Autograd sees no formula (the ops take FP8 and return nothing): torch's C++ fallback handles it.
_lib = torch.library.Library("fp8gemm", "FRAGMENT")


def _define(schema: str, impl, fake) -> None:
    name = schema.split("(", 1)[0]
    _lib.define(schema, tags=_TAGS)
    _lib.impl(name, impl, "CompositeExplicitAutograd")
    torch.library.register_fake(f"fp8gemm::{name}", fake, lib=_lib)


def _gemm_nt(a: torch.Tensor, sa: torch.Tensor, b: torch.Tensor, sb: torch.Tensor, out: torch.Tensor) -> None:
    gemm.gemm_fp8_fp8_bf16_nt((a, sa), (b, sb), out)


def _gemm_nt_fake(a: torch.Tensor, sa: torch.Tensor, b: torch.Tensor, sb: torch.Tensor,
                  out: torch.Tensor) -> None:
    validate.check_dense((a, sa), (b, sb), out)


def _contiguous(
    a: torch.Tensor, sa: torch.Tensor, b: torch.Tensor, sb: torch.Tensor, out: torch.Tensor,
    m_indices: torch.Tensor,
) -> None:
    gemm.m_grouped_gemm_fp8_fp8_bf16_nt_contiguous((a, sa), (b, sb), out, m_indices)


def _contiguous_fake(
    a: torch.Tensor, sa: torch.Tensor, b: torch.Tensor, sb: torch.Tensor, out: torch.Tensor,
    m_indices: torch.Tensor,
) -> None:
    validate.check_contiguous((a, sa), (b, sb), out, m_indices)


def _masked(
    a: torch.Tensor, sa: torch.Tensor, b: torch.Tensor, sb: torch.Tensor, out: torch.Tensor,
    masked_m: torch.Tensor, expected_m: int,
) -> None:
    gemm.m_grouped_gemm_fp8_fp8_bf16_nt_masked((a, sa), (b, sb), out, masked_m, expected_m)


def _masked_fake(
    a: torch.Tensor, sa: torch.Tensor, b: torch.Tensor, sb: torch.Tensor, out: torch.Tensor,
    masked_m: torch.Tensor, expected_m: int,
) -> None:
    validate.check_masked((a, sa), (b, sb), out, masked_m, expected_m)


_define("gemm_nt(Tensor a, Tensor sa, Tensor b, Tensor sb, Tensor(a!) out) -> ()", _gemm_nt, _gemm_nt_fake)
_define("m_grouped_gemm_nt_contiguous(Tensor a, Tensor sa, Tensor b, Tensor sb, Tensor(a!) out, "
        "Tensor m_indices) -> ()", _contiguous, _contiguous_fake)
_define("m_grouped_gemm_nt_masked(Tensor a, Tensor sa, Tensor b, Tensor sb, Tensor(a!) out, "
        "Tensor masked_m, SymInt expected_m) -> ()", _masked, _masked_fake)



def _gemm_nt_fp32(a: torch.Tensor, sa: torch.Tensor, b: torch.Tensor, sb: torch.Tensor, d: torch.Tensor,
                  accumulate: bool) -> None:
    training.fp8_gemm_nt_fp32((a, sa), (b, sb), d, d if accumulate else None)


def _gemm_nt_fp32_fake(a: torch.Tensor, sa: torch.Tensor, b: torch.Tensor, sb: torch.Tensor,
                       d: torch.Tensor, accumulate: bool) -> None:
    validate.check_dense_fp32((a, sa), (b, sb), d)


def _k_grouped(a: torch.Tensor, sa: torch.Tensor, b: torch.Tensor, sb: torch.Tensor, d: torch.Tensor,
               ks_tensor: torch.Tensor, accumulate: bool) -> None:
    training.k_grouped_fp8_gemm_nt_contiguous((a, sa), (b, sb), d, None, ks_tensor, d if accumulate else None)


def _k_grouped_fake(a: torch.Tensor, sa: torch.Tensor, b: torch.Tensor, sb: torch.Tensor, d: torch.Tensor,
                    ks_tensor: torch.Tensor, accumulate: bool) -> None:
    validate.check_k_grouped((a, sa), (b, sb), d, None, ks_tensor)


_define("gemm_nt_fp32(Tensor a, Tensor sa, Tensor b, Tensor sb, Tensor(a!) d, bool accumulate) -> ()",
        _gemm_nt_fp32, _gemm_nt_fp32_fake)
_define("k_grouped_gemm_nt_contiguous(Tensor a, Tensor sa, Tensor b, Tensor sb, Tensor(a!) d, "
        "Tensor ks_tensor, bool accumulate) -> ()", _k_grouped, _k_grouped_fake)


@torch.library.custom_op("fp8gemm::per_token_cast_to_fp8_tma", mutates_args=(), tags=_TAGS)
def _per_token_cast_tma(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return quant.per_token_cast_tma_impl(x)


@_per_token_cast_tma.register_fake
def _(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if x.dim() not in (2, 3):
        raise ValueError(f"x: expected 2D [m, k] or 3D [g, m, k], got shape {tuple(x.shape)}")
    *lead, m, k = x.shape
    kb = (k + quant.BLOCK - 1) // quant.BLOCK
    aligned = get_tma_aligned_size(m, 4)
    strides = (1, aligned) if not lead else (aligned * kb, 1, aligned)
    q = torch.empty(x.shape, dtype=torch.float8_e4m3fn, device=x.device)
    return q, torch.empty_strided((*lead, m, kb), strides, dtype=torch.float32, device=x.device)


def gemm_nt(a: torch.Tensor, sa: torch.Tensor, b: torch.Tensor, sb: torch.Tensor) -> torch.Tensor:
    """Functional form of ``torch.ops.fp8gemm.gemm_nt``: returns a new BF16 ``[m, n]``."""
    out = torch.empty((a.shape[0], b.shape[0]), dtype=torch.bfloat16, device=a.device)
    torch.ops.fp8gemm.gemm_nt(a, sa, b, sb, out)
    return out


def m_grouped_gemm_nt_contiguous(
    a: torch.Tensor, sa: torch.Tensor, b: torch.Tensor, sb: torch.Tensor, m_indices: torch.Tensor
) -> torch.Tensor:
    """Functional contiguous grouped GEMM: a new BF16 ``[M, n]``; padding rows (index -1) are zero."""
    out = torch.zeros((a.shape[0], b.shape[1]), dtype=torch.bfloat16, device=a.device)
    torch.ops.fp8gemm.m_grouped_gemm_nt_contiguous(a, sa, b, sb, out, m_indices)
    return out


def m_grouped_gemm_nt_masked(
    a: torch.Tensor, sa: torch.Tensor, b: torch.Tensor, sb: torch.Tensor, masked_m: torch.Tensor,
    expected_m: int,
) -> torch.Tensor:
    """Functional masked grouped GEMM: a new BF16 ``[g, max_m, n]``; rows past ``masked_m`` are zero."""
    out = torch.zeros((a.shape[0], a.shape[1], b.shape[1]), dtype=torch.bfloat16, device=a.device)
    torch.ops.fp8gemm.m_grouped_gemm_nt_masked(a, sa, b, sb, out, masked_m, expected_m)
    return out


def gemm_nt_fp32(
    a: torch.Tensor, sa: torch.Tensor, b: torch.Tensor, sb: torch.Tensor, c: torch.Tensor | None = None
) -> torch.Tensor:
    """Functional FP32-output GEMM (1x128 on both): a new float32 ``[m, n]`` = ``c + a @ b.T``
    (``a @ b.T`` without ``c``; ``c`` itself is not modified)."""
    if c is None:
        d = torch.empty((a.shape[0], b.shape[0]), dtype=torch.float32, device=a.device)
    else:
        d = c.clone()
    torch.ops.fp8gemm.gemm_nt_fp32(a, sa, b, sb, d, c is not None)
    return d


def k_grouped_gemm_nt_contiguous(
    a: torch.Tensor, sa: torch.Tensor, b: torch.Tensor, sb: torch.Tensor, ks_tensor: torch.Tensor,
    c: torch.Tensor | None = None,
) -> torch.Tensor:
    """Functional k-grouped GEMM: a new float32 ``[g, m, n]`` with ``d[g] = c[g] + a_g @ b_g.T``; groups
    with no tokens hold ``c[g]`` (zeros without ``c``). ``c`` itself is not modified."""
    shape = (ks_tensor.shape[0], a.shape[0], b.shape[0])
    d = torch.zeros(shape, dtype=torch.float32, device=a.device) if c is None else c.clone()
    torch.ops.fp8gemm.k_grouped_gemm_nt_contiguous(a, sa, b, sb, d, ks_tensor, c is not None)
    return d
