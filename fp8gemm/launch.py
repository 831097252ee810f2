"""CUDA path of the public GEMMs: choose a config, build (or fetch) its kernel, encode the tensor
maps and launch on torch's current stream. Inputs arrive validated by `fp8gemm.validate`, with
`sa` already in the TMA-aligned column-major layout.

`gemm_dense`, `gemm_contiguous` and `gemm_masked` prepare everything that depends only on the problem
and the buffers' addresses (the config, the kernel, the four tensor maps, the packed kernel
arguments, the launch dimensions) into a `jit.Launch`, launch it, and return it: `fp8gemm.gemm`
keeps it for repeat calls on the same buffers (its one hot-path cache), which then cost one
dictionary lookup and one driver call. Kernels are kept per config in ``_kernels``.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable
from dataclasses import dataclass

import torch

from . import jit
from .codegen import (
    fp32_kernel_name,
    fp32_kernel_source,
    fp32_tma_boxes,
    kernel_name,
    kernel_source,
    tma_boxes,
)
from .config import GemmConfig, grid_size, select_config
from .config_fp32 import Fp32GemmConfig, fp32_grid_size, select_fp32_config
from .device import current_device_index, get_num_sms
from .layout import get_tma_aligned_size

Prepared = Callable[[], None]


@dataclass(frozen=True)
class KernelPlan:
    """What one problem compiles to: the config, the generated source and its entry point."""

    config: GemmConfig
    source: str
    kernel_name: str


def plan(layout: str, m: int, n: int, k: int, num_groups: int = 1, num_sms: int | None = None) -> KernelPlan:
    """The kernel a problem uses. `m`: rows (dense), total rows (contiguous), expected rows per
    group (masked). Needs no GPU (num_sms defaults to `get_num_sms()`, 132 without one)."""
    check_supported_shape(n, k)
    config = select_config(layout, m, n, k, num_groups, num_sms or get_num_sms())
    return KernelPlan(config, kernel_source(config), kernel_name(config))


def check_supported_shape(n: int, k: int) -> None:
    """Limits of the kernel itself (the public API validates everything else)."""
    if n % 8 != 0 or n <= 0:
        raise ValueError(f"the CUDA kernel needs n to be a positive multiple of 8 (TMA store rows are "
                         f"16-byte aligned), got n={n}")
    if k % 16 != 0 or k <= 0:
        raise ValueError(f"the CUDA kernel needs k to be a positive multiple of 16 (TMA rows are 16-byte "
                         f"aligned), got k={k}")


# NOTES: off the hot path, but on every miss of `fp8gemm.gemm`'s prepared calls (new buffers: fresh
# activations from the allocator): `jit.build` hashes the source and its headers (~2 ms), so kernels
# are kept per config.
_kernels: dict[tuple, jit.Kernel] = {}


def kernel_for(config: GemmConfig, flags: tuple[str, ...] = ()) -> jit.Kernel:
    """The loaded kernel of a config (built through the JIT's caches the first time)."""
    kernel = _kernels.get((config, flags))
    if kernel is None:
        kernel = _kernels[config, flags] = jit.build(kernel_source(config), kernel_name(config), flags)
    return kernel


def _tensor_map(t: torch.Tensor, dims: tuple[int, ...], strides: tuple[int, ...], box: tuple[int, ...],
                swizzle: int) -> jit.TensorMap:
    tmap = jit.make_tensor_map(t, box, swizzle_bytes=swizzle, dims=dims, strides=strides)
    tmap.tensor = None  # owned by a cached launch, which must not keep the buffer alive
    return tmap


_NULL = ctypes.c_uint64(0)


def _kernel_args(config: GemmConfig, a2d: torch.Tensor, sa_dims: tuple[int, int], sa_stride: int,
                 sa: torch.Tensor, b2d: torch.Tensor, sb: torch.Tensor, out2d: torch.Tensor,
                 grouped: torch.Tensor | None, rows: int) -> tuple:
    """The GEMM kernel's arguments, in its parameter order (the one place that knows that order)."""
    k = a2d.shape[1]
    box = tma_boxes(config, rows)
    tmap_a = _tensor_map(a2d, (k, a2d.shape[0]), (k,), (box["a"].cols, box["a"].rows), box["a"].swizzle)
    tmap_b = _tensor_map(b2d, (k, b2d.shape[0]), (k,), (box["b"].cols, box["b"].rows), box["b"].swizzle)
    tmap_sa = _tensor_map(sa, sa_dims, (sa_stride,), (box["sa"].cols, box["sa"].rows), box["sa"].swizzle)
    tmap_d = _tensor_map(out2d, (config.n, out2d.shape[0]), (config.n,), (box["d"].cols, box["d"].rows),
                         box["d"].swizzle)
    return (tmap_a, tmap_b, tmap_sa, tmap_d, sb, grouped if grouped is not None else _NULL, out2d,
            ctypes.c_int32(rows))


def _prepare(config: GemmConfig, a2d: torch.Tensor, sa_dims: tuple[int, int], sa_stride: int,
             sa: torch.Tensor, b2d: torch.Tensor, sb: torch.Tensor, out2d: torch.Tensor,
             grouped: torch.Tensor | None, rows: int, grid_rows: int, num_sms: int,
             flags: tuple[str, ...] = ()):
    """A callable that launches `config` on these tensors (see `_run` for the arguments)."""
    kernel = kernel_for(config, flags)
    grid = grid_size(config, grid_rows, num_sms)
    args = _kernel_args(config, a2d, sa_dims, sa_stride, sa, b2d, sb, out2d, grouped, rows)
    return kernel.prepare(grid, config.num_threads, config.smem_bytes, args, cluster=config.cluster_size)


def gemm_dense(a: torch.Tensor, sa: torch.Tensor, b: torch.Tensor, sb: torch.Tensor,
               out: torch.Tensor) -> Prepared:
    """Prepare the dense GEMM on these tensors, launch it once and return the prepared launch."""
    m, k = a.shape
    n = b.shape[0]
    check_supported_shape(n, k)
    num_sms = get_num_sms()
    config = select_config("dense", m, n, k, 1, num_sms)
    prepared = _prepare(config, a, (m, sa.shape[1]), get_tma_aligned_size(m, 4), sa, b, sb, out, None, m, m,
                        num_sms)
    prepared()
    return prepared


def gemm_contiguous(a: torch.Tensor, sa: torch.Tensor, b: torch.Tensor, sb: torch.Tensor, out: torch.Tensor,
                    m_indices: torch.Tensor) -> Prepared:
    """Prepare the contiguous grouped GEMM (aligned layout), launch it once and return it."""
    m, k = a.shape
    g, n, _ = b.shape
    check_supported_shape(n, k)
    num_sms = get_num_sms()
    config = select_config("contiguous", m, n, k, g, num_sms)
    prepared = _prepare(config, a, (m, sa.shape[1]), get_tma_aligned_size(m, 4), sa, b.view(g * n, k), sb,
                        out, m_indices, m, m, num_sms)
    prepared()
    return prepared


def gemm_masked(a: torch.Tensor, sa: torch.Tensor, b: torch.Tensor, sb: torch.Tensor, out: torch.Tensor,
                masked_m: torch.Tensor, expected_m: int) -> Prepared:
    """Prepare the masked grouped GEMM, launch it once and return it."""
    g, max_m, k = a.shape
    n = b.shape[1]
    check_supported_shape(n, k)
    num_sms = get_num_sms()
    config = select_config("masked", expected_m, n, k, g, num_sms)
    kb = sa.shape[2]
    # sa [g, max_m, kb] with strides (aligned * kb, 1, aligned) is a 2D map of (max_m, g * kb).
    prepared = _prepare(config, a.view(g * max_m, k), (max_m, g * kb), get_tma_aligned_size(max_m, 4), sa,
                        b.view(g * n, k), sb, out.view(g * max_m, n), masked_m, max_m, g * max_m, num_sms)
    prepared()
    return prepared


# ------------------------------------------------------------------ training GEMMs (FP32 output)
# The kernel of include/fp8gemm/fp8_gemm_fp32.cuh. Inputs arrive validated by fp8gemm.training, both
# scale tensors in the TMA-aligned column-major layout. A launch is prepared once per problem and
# buffers (addresses and sizes) and kept in ``_fp32_launches``.


def plan_fp32(layout: str, m: int, n: int, num_groups: int = 1, num_sms: int | None = None) -> KernelPlan:
    """The FP32-output kernel a training problem uses (no GPU needed): `m` rows of each output."""
    config = select_fp32_config(layout, m, n, num_groups, num_sms or get_num_sms())
    return KernelPlan(config, fp32_kernel_source(config), fp32_kernel_name(config))


def fp32_kernel_for(config: Fp32GemmConfig, flags: tuple[str, ...] = ()) -> jit.Kernel:
    """The loaded FP32-output kernel of a config (built through the JIT's caches the first time)."""
    kernel = _kernels.get((config, flags))
    if kernel is None:
        kernel = jit.build(fp32_kernel_source(config), fp32_kernel_name(config), flags)
        _kernels[config, flags] = kernel
    return kernel


def _fp32_args(config: Fp32GemmConfig, a: torch.Tensor, sa: torch.Tensor, b: torch.Tensor, sb: torch.Tensor,
               d: torch.Tensor, ks_tensor: torch.Tensor | None, accumulate: bool) -> tuple:
    """The FP32-output kernel's arguments, in its parameter order. `d` is ``[g, m, n]`` (dense: g = 1)."""
    (m, k), n = a.shape, b.shape[0]
    kb = sa.shape[1]
    box = fp32_tma_boxes(config)
    tmap_a = _tensor_map(a, (k, m), (k,), (box["a"].cols, box["a"].rows), box["a"].swizzle)
    tmap_b = _tensor_map(b, (k, n), (k,), (box["b"].cols, box["b"].rows), box["b"].swizzle)
    tmap_sa = _tensor_map(sa, (m, kb), (get_tma_aligned_size(m, 4),), (box["sa"].cols, box["sa"].rows),
                          box["sa"].swizzle)
    tmap_sb = _tensor_map(sb, (n, kb), (get_tma_aligned_size(n, 4),), (box["sb"].cols, box["sb"].rows),
                          box["sb"].swizzle)
    groups = d.shape[0]
    tmap_d = _tensor_map(d, (n, m, groups), (n, m * n), (box["d"].cols, box["d"].rows, 1), box["d"].swizzle)
    return (tmap_a, tmap_b, tmap_sa, tmap_sb, tmap_d, d, sb, ctypes.c_int32(get_tma_aligned_size(n, 4)),
            ks_tensor if ks_tensor is not None else _NULL, ctypes.c_int32(m), ctypes.c_int32(kb),
            ctypes.c_int32(int(accumulate)))


# NOTES: bounded like fp8gemm.gemm's cache: a workload that keeps allocating new buffers refills it.
_MAX_FP32_LAUNCHES = 4096
_fp32_launches: dict[tuple, object] = {}
_fp32_current_device = current_device_index


def run_fp32(config: Fp32GemmConfig, a: torch.Tensor, sa: torch.Tensor, b: torch.Tensor, sb: torch.Tensor,
             d: torch.Tensor, ks_tensor: torch.Tensor | None, accumulate: bool, num_sms: int | None = None,
             flags: tuple[str, ...] = ()) -> None:
    """Launch the FP32-output kernel of `config`: ``d[g] (+)= a @ b.T`` over the group's K blocks.

    `a` ``[m, K]``, `b` ``[n, K]`` FP8 K-major; `sa` ``[m, K/128]``, `sb` ``[n, K/128]`` TMA-aligned
    column-major; `d` FP32 ``[g, m, n]`` (dense: ``[1, m, n]``); `ks_tensor` the groups' token counts
    (k-grouped) or None (dense: every K block); `accumulate`: add into `d` (TMA reduction) rather than
    overwrite it."""
    num_sms = num_sms or get_num_sms()
    key = (config, flags, a.data_ptr(), sa.data_ptr(), b.data_ptr(), sb.data_ptr(), d.data_ptr(),
           ks_tensor.data_ptr() if ks_tensor is not None else 0, tuple(a.shape), b.shape[0], d.shape[0],
           accumulate, num_sms, _fp32_current_device())
    launch = _fp32_launches.get(key)
    if launch is None:
        kernel = fp32_kernel_for(config, flags)
        grid = fp32_grid_size(config, a.shape[0], num_sms)
        args = _fp32_args(config, a, sa, b, sb, d, ks_tensor, accumulate)
        launch = kernel.prepare(grid, config.num_threads, config.smem_bytes, args)
        if len(_fp32_launches) >= _MAX_FP32_LAUNCHES:
            _fp32_launches.clear()
        _fp32_launches[key] = launch
    launch()


def gemm_fp32_dense(a: torch.Tensor, sa: torch.Tensor, b: torch.Tensor, sb: torch.Tensor, d: torch.Tensor,
                    accumulate: bool) -> None:
    """``d = a @ b.T`` or, with `accumulate`, ``d += a @ b.T`` (FP32 `d` ``[m, n]``)."""
    config = select_fp32_config("dense", a.shape[0], b.shape[0], 1, get_num_sms())
    run_fp32(config, a, sa, b, sb, d.view(1, *d.shape), None, accumulate)


def gemm_k_grouped(a: torch.Tensor, sa: torch.Tensor, b: torch.Tensor, sb: torch.Tensor, d: torch.Tensor,
                   ks_tensor: torch.Tensor, accumulate: bool) -> None:
    """Per group with tokens: ``d[g] = a_g @ b_g.T`` or, with `accumulate`, ``d[g] += a_g @ b_g.T``."""
    config = select_fp32_config("k_grouped", a.shape[0], b.shape[0], d.shape[0], get_num_sms())
    run_fp32(config, a, sa, b, sb, d, ks_tensor, accumulate)
