"""CUDA path of the public GEMMs: choose a config, build (or fetch) its kernel, encode the tensor
maps and launch on torch's current stream. Inputs arrive validated by `fp8gemm.validate`, with
`sa` already in the TMA-aligned column-major layout."""

from __future__ import annotations

import ctypes
from collections import OrderedDict
from dataclasses import dataclass

import torch

from . import jit
from .codegen import kernel_name, kernel_source, reduce_kernel_name, reduce_kernel_source
from .config import BLOCK_K, GemmConfig, grid_size, select_config
from .device import get_num_sms
from .layout import get_tma_aligned_size
from .utils import ceil_div


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


_kernels: dict[tuple[GemmConfig, tuple[str, ...]], jit.Kernel] = {}


def kernel_for(config: GemmConfig, flags: tuple[str, ...] = ()) -> jit.Kernel:
    kernel = _kernels.get((config, flags))
    if kernel is None:
        kernel = _kernels[config, flags] = jit.build(kernel_source(config), kernel_name(config), flags)
    return kernel


# NOTES: encoding a tensor map costs several microseconds of host time; serving loops reuse the
# same buffers, so maps are cached by (address, geometry). A map holds no reference to its tensor:
# it stays valid for any tensor at that address with that geometry.
_MAX_MAPS = 512
_maps: OrderedDict[tuple, jit.TensorMap] = OrderedDict()


def _tensor_map(t: torch.Tensor, dims: tuple[int, ...], strides: tuple[int, ...], box: tuple[int, ...],
                swizzle: int) -> jit.TensorMap:
    key = (t.data_ptr(), t.dtype, t.device.index, dims, strides, box, swizzle)
    tmap = _maps.get(key)
    if tmap is not None:
        _maps.move_to_end(key)
        return tmap
    tmap = jit.make_tensor_map(t, box, swizzle_bytes=swizzle, dims=dims, strides=strides)
    tmap.tensor = None
    _maps[key] = tmap
    if len(_maps) > _MAX_MAPS:
        _maps.popitem(last=False)
    return tmap


_NULL = ctypes.c_uint64(0)


def _run(config: GemmConfig, a2d: torch.Tensor, sa_dims: tuple[int, int], sa_stride: int, sa: torch.Tensor,
         b2d: torch.Tensor, sb: torch.Tensor, out2d: torch.Tensor, grouped: torch.Tensor | None,
         rows: int, grid_rows: int, num_sms: int, flags: tuple[str, ...] = ()) -> None:
    k = a2d.shape[1]
    half_a = config.multicast == "a"
    half_b = config.multicast == "b"
    tmap_a = _tensor_map(a2d, (k, a2d.shape[0]), (k,), (BLOCK_K, config.block_m // (2 if half_a else 1)), 128)
    tmap_b = _tensor_map(b2d, (k, b2d.shape[0]), (k,), (BLOCK_K, config.block_n // (2 if half_b else 1)), 128)
    tmap_sa = _tensor_map(sa, sa_dims, (sa_stride,), (config.block_m, 1), 0)
    slab = config.store_slab_cols
    tmap_d = _tensor_map(out2d, (config.n, out2d.shape[0]), (config.n,), (slab, 64), slab * 2)
    kernel = kernel_for(config, flags)
    workspace = None
    if config.k_splits > 1:
        # One FP32 plane per K slice; the caching allocator makes this cheap, and under CUDA-graph
        # capture it comes from the graph's private pool.
        workspace = torch.empty((config.k_splits, rows, config.n), dtype=torch.float32, device=out2d.device)
    args = (tmap_a, tmap_b, tmap_sa, tmap_d, sb, grouped if grouped is not None else _NULL, out2d,
            workspace if workspace is not None else _NULL, ctypes.c_int32(rows))
    kernel.launch(grid_size(config, grid_rows, num_sms), config.num_threads, config.smem_bytes, args,
                  cluster=config.cluster_size)
    if workspace is not None:
        elements = rows * config.n
        blocks = max(1, min(ceil_div(elements, 4 * 256), 8 * num_sms))
        _reduce_kernel(config.k_splits).launch(blocks, 256, 0, (workspace, out2d, ctypes.c_int64(elements)))


_reduce_kernels: dict[int, jit.Kernel] = {}


def _reduce_kernel(k_splits: int) -> jit.Kernel:
    kernel = _reduce_kernels.get(k_splits)
    if kernel is None:
        kernel = jit.build(reduce_kernel_source(k_splits), reduce_kernel_name(k_splits))
        _reduce_kernels[k_splits] = kernel
    return kernel


def gemm_dense(a: torch.Tensor, sa: torch.Tensor, b: torch.Tensor, sb: torch.Tensor,
               out: torch.Tensor) -> None:
    m, k = a.shape
    n = b.shape[0]
    check_supported_shape(n, k)
    num_sms = get_num_sms()
    config = select_config("dense", m, n, k, 1, num_sms)
    kb = sa.shape[1]
    _run(config, a, (m, kb), get_tma_aligned_size(m, 4), sa, b, sb, out, None, m, m, num_sms)


def gemm_contiguous(a: torch.Tensor, sa: torch.Tensor, b: torch.Tensor, sb: torch.Tensor, out: torch.Tensor,
                    m_indices: torch.Tensor) -> None:
    m, k = a.shape
    g, n, _ = b.shape
    check_supported_shape(n, k)
    num_sms = get_num_sms()
    config = select_config("contiguous", m, n, k, g, num_sms)
    kb = sa.shape[1]
    _run(config, a, (m, kb), get_tma_aligned_size(m, 4), sa, b.view(g * n, k), sb, out, m_indices, m, m,
         num_sms)


def gemm_masked(a: torch.Tensor, sa: torch.Tensor, b: torch.Tensor, sb: torch.Tensor, out: torch.Tensor,
                masked_m: torch.Tensor, expected_m: int) -> None:
    g, max_m, k = a.shape
    n = b.shape[1]
    check_supported_shape(n, k)
    num_sms = get_num_sms()
    config = select_config("masked", expected_m, n, k, g, num_sms)
    kb = sa.shape[2]
    # sa [g, max_m, kb] with strides (aligned * kb, 1, aligned) is a 2D map of (max_m, g * kb).
    _run(config, a.view(g * max_m, k), (max_m, g * kb), get_tma_aligned_size(max_m, 4), sa,
         b.view(g * n, k), sb, out.view(g * max_m, n), masked_m, max_m, g * max_m, num_sms)
