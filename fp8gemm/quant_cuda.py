"""The one-pass CUDA kernel behind ``per_token_cast_to_fp8(x, tma_aligned_scales=True)`` on CUDA tensors.

It reads BF16/FP16/FP32 ``x`` (``[m, k]`` or ``[g, m, k]``) once and writes the FP8 values and the FP32
scales, the scales straight into the TMA-aligned column-major layout the GEMMs read (padding rows
zeroed), so no layout conversion follows. Results are bit-for-bit those of the torch version in
`fp8gemm.quant`. Device code: ``include/fp8gemm/quant/per_token_cast.cuh``.
"""

from __future__ import annotations

import ctypes

import torch

from .device import get_num_sms, is_sm90
from .layout import get_tma_aligned_size
from .utils import BLOCK

__all__ = ["supports", "per_token_cast_to_fp8_cuda", "kernel_source", "kernel_name", "bulk_kernel_source",
           "bulk_kernel_name", "bulk_tile_rows", "default_unroll", "resident_blocks_per_sm", "KINDS"]

THREADS = 256
# NOTES: UNROLL: tasks (128-wide blocks of a row) per lane group and sweep, i.e. 16-byte loads each
# thread issues at once (twice that in flight with the looping kernel's prefetch). WAVES: the grid, in
# waves of blocks resident at once (None: one thread per task, a single sweep, no loop). Chosen from
# the H200 sweeps of tools/host_cast_check.py (BENCHMARKS.md): one sweep; unroll 4 where the tasks
# fill the GPU (3.3-3.4 TB/s at [4096, 7168] and [16384, 7168]), unroll 1 where one thread per task
# fits in one wave (at [64, 7168] the kernel is a single dependent chain: 1.98 us, 2.66 at unroll 4).
UNROLL = 4
SMALL_UNROLL = 1
WAVES: int | None = None
# The bulk-copy form (per_token_cast_bulk): blocks of BULK_THREADS threads, BULK_STAGES tiles of whole
# rows of about BULK_TILE_BYTES each in flight per block. FORM: the form used by default (None: by size).
BULK_THREADS = 512
BULK_STAGES = 3
BULK_TILE_BYTES = 28 << 10
FORM: str | None = "registers"
_FORMS = ("registers", "bulk")
_BULK_MAX_SMEM = 200 << 10
_SMEM_PER_SM = 233472  # H100/H200: 228 KB of shared memory per SM, 1 KB of it reserved per block
_REGISTERS_PER_SM = 65536
_MAX_THREADS_PER_SM = 2048
_MAX_TASKS = 2**31  # the kernel indexes tasks with 32-bit arithmetic
# dtype -> (ElemKind in the header, short name for the entry point)
KINDS = {torch.float32: (0, "f32"), torch.bfloat16: (1, "bf16"), torch.float16: (2, "f16")}

_kernels: dict[tuple[torch.dtype, int], object] = {}
_current_device = getattr(torch._C, "_cuda_getDevice", None) or torch.cuda.current_device


def bulk_kernel_name(dtype: torch.dtype) -> str:
    """The bulk-copy form's entry point for one input dtype."""
    return f"fp8gemm_per_token_cast_bulk_{KINDS[dtype][1]}_s{BULK_STAGES}"


def bulk_kernel_source(dtype: torch.dtype) -> str:
    """The CUDA source of the bulk-copy form for one input dtype."""
    kind, _ = KINDS[dtype]
    return f"""#include <fp8gemm/quant/per_token_cast.cuh>

extern "C" __global__ void __launch_bounds__({BULK_THREADS}) {bulk_kernel_name(dtype)}(
        const fp8gemm::uint8_t* x, fp8gemm::uint8_t* q, float* scales, int groups, int rows, int scale_rows,
        int k, int tile_rows, long long scale_row_stride, long long scale_kb_stride,
        long long scale_group_stride) {{
    fp8gemm::quant::per_token_cast_bulk<{kind}, {BULK_STAGES}>(
        x, q, scales, groups, rows, scale_rows, k, tile_rows, scale_row_stride, scale_kb_stride,
        scale_group_stride);
}}
"""


def bulk_tile_rows(k: int, element_size: int) -> int | None:
    """Rows of x per tile of the bulk-copy form, or None where BULK_STAGES tiles of even one row do not
    fit in shared memory (very long rows: the register form takes them)."""
    row_bytes = k * element_size
    rows = max(1, BULK_TILE_BYTES // row_bytes)
    return rows if BULK_STAGES * (rows * row_bytes + 8) <= _BULK_MAX_SMEM else None


def kernel_name(dtype: torch.dtype, unroll: int = UNROLL, loop: bool = False) -> str:
    """The entry point's name for one input dtype, unroll and form (one sweep, or a loop)."""
    return f"fp8gemm_per_token_cast_{KINDS[dtype][1]}_u{unroll}" + ("_loop" if loop else "")


def kernel_source(dtype: torch.dtype, unroll: int = UNROLL, loop: bool = False) -> str:
    """The CUDA source of the entry point for one input dtype, `unroll` tasks per lane group and
    sweep, and one sweep (a thread per task) or a loop (a resident grid)."""
    kind, _ = KINDS[dtype]
    return f"""#include <fp8gemm/quant/per_token_cast.cuh>

extern "C" __global__ void __launch_bounds__({THREADS}) {kernel_name(dtype, unroll, loop)}(
        const fp8gemm::uint8_t* x, fp8gemm::uint8_t* q, float* scales, int groups, int rows, int scale_rows,
        int k, long long scale_row_stride, long long scale_kb_stride, long long scale_group_stride) {{
    fp8gemm::quant::per_token_cast<{kind}, {unroll}, {str(loop).lower()}>(
        x, q, scales, groups, rows, scale_rows, k, scale_row_stride, scale_kb_stride, scale_group_stride);
}}
"""


def _tasks(x: torch.Tensor) -> int:
    """128-wide blocks the kernel visits: every row of the TMA-padded scale tensor, every k block."""
    *lead, m, k = x.shape
    return (lead[0] if lead else 1) * get_tma_aligned_size(m, 4) * ((k + BLOCK - 1) // BLOCK)


def supports(x: torch.Tensor) -> bool:
    """Whether the kernel takes ``x``: CUDA on a Hopper (sm_90) GPU (the cubin is sm_90a; elsewhere the
    torch computation gives the same bits), 2D or 3D, a float dtype it knows, and k % 16 == 0 (FP8 rows
    must stay 16-byte aligned for the GEMM's TMA loads anyway), and fewer than 2^31 blocks of 128."""
    return (
        x.is_cuda and x.dim() in (2, 3) and x.dtype in KINDS and x.shape[-1] % 16 == 0 and x.shape[-1] > 0
        and is_sm90(x.device) and _tasks(x) < _MAX_TASKS
    )


def resident_blocks_per_sm(registers: int, threads: int = THREADS) -> int:
    """Blocks of `threads` threads an SM holds at once with `registers` per thread, as far as registers
    and thread slots go: registers are handed out per warp in units of 256."""
    per_warp = -(-registers * 32 // 256) * 256
    warps = _REGISTERS_PER_SM // per_warp
    return max(1, min(warps // (threads // 32), _MAX_THREADS_PER_SM // threads))


def _kernel(dtype: torch.dtype, unroll: int, loop: bool):
    kernel = _kernels.get((dtype, unroll, loop))
    if kernel is None:
        from . import jit

        kernel = jit.build(kernel_source(dtype, unroll, loop), kernel_name(dtype, unroll, loop))
        _kernels[dtype, unroll, loop] = kernel
    return kernel


def _bulk_kernel(dtype: torch.dtype):
    kernel = _kernels.get((dtype, "bulk"))
    if kernel is None:
        from . import jit

        kernel = _kernels[dtype, "bulk"] = jit.build(bulk_kernel_source(dtype), bulk_kernel_name(dtype))
    return kernel


def default_unroll(tasks: int, lanes: int) -> int:
    """UNROLL, or SMALL_UNROLL when one thread per task fits in one wave of the GPU (2048 per SM)."""
    return SMALL_UNROLL if tasks * lanes <= get_num_sms() * _MAX_THREADS_PER_SM else UNROLL


def per_token_cast_to_fp8_cuda(x: torch.Tensor, *, unroll: int | None = None, waves: int | None = WAVES,
                               form: str | None = FORM) -> tuple[torch.Tensor, torch.Tensor]:
    """Cast ``x`` (``supports(x)`` must hold) per 1x128 block; scales in the TMA-aligned column-major layout.

    Returns ``(q, scale)``: ``q`` float8_e4m3fn contiguous with x's shape; ``scale`` float32 ``[m, kb]``
    with strides ``(1, aligned_m)`` or ``[g, m, kb]`` with strides ``(aligned_m * kb, 1, aligned_m)``,
    ``aligned_m = get_tma_aligned_size(m, 4)``. Work is queued on torch's current stream (graph-safe
    once the kernel has been built, i.e. after a first call outside capture).

    ``form``: "registers" (threads load x into registers) or "bulk" (the copy engine brings whole rows
    into shared memory; where rows are too long for it, the register form). Register form: ``unroll``
    (128-wide blocks per group of lanes and sweep, 1 to 8; None: `default_unroll`) and ``waves`` (None:
    one thread per task; n: a grid of n waves of resident blocks that loops). Bulk form: ``waves``
    (None: 1) waves of resident blocks. They tune the speed; every setting gives the same bits.
    """
    if form is not None and form not in _FORMS:
        raise ValueError(f"form: expected None, 'registers' or 'bulk', got {form!r}")
    bad_unroll = isinstance(unroll, bool) or not isinstance(unroll, int) or not 1 <= unroll <= 8
    if unroll is not None and bad_unroll:
        raise ValueError(f"unroll: expected None or an int in 1..8, got {unroll!r}")
    if waves is not None and (isinstance(waves, bool) or not isinstance(waves, int) or waves < 1):
        raise ValueError(f"waves: expected None or a positive int, got {waves!r}")
    if not supports(x):
        raise ValueError(
            "x: expected a CUDA float32/bfloat16/float16 tensor of 2 or 3 dims with k % 16 == 0, got "
            f"{x.dtype} shape {list(x.shape)} on {x.device}"
        )
    # NOTES: the kernel reads 16-byte vectors: rows must be dense and the base 16-byte aligned.
    if not x.is_contiguous() or x.data_ptr() % 16:
        x = x.contiguous() if not x.is_contiguous() else x.clone()
    batched = x if x.dim() == 3 else x.unsqueeze(0)
    g, m, k = batched.shape
    kb = (k + BLOCK - 1) // BLOCK
    aligned_m = get_tma_aligned_size(m, 4)
    q = torch.empty(x.shape, dtype=torch.float8_e4m3fn, device=x.device)
    storage = torch.empty((g, kb, aligned_m), dtype=torch.float32, device=x.device)
    scale = storage.transpose(1, 2)[:, :m, :]  # [g, m, kb], strides (kb * aligned_m, 1, aligned_m)
    if g * m > 0:
        lanes = BLOCK // (16 // x.element_size())
        tasks = g * kb * aligned_m
        tile_rows = bulk_tile_rows(k, x.element_size()) if form == "bulk" else None
        if tile_rows is not None:
            _launch_bulk(x, q, storage, g, m, aligned_m, k, kb, tile_rows, waves or 1)
            return q, scale if x.dim() == 3 else scale[0]
        if unroll is None:
            unroll = default_unroll(tasks, lanes)
        threads = (tasks + unroll - 1) // unroll * lanes
        grid = (threads + THREADS - 1) // THREADS
        kernel = _kernel(x.dtype, unroll, waves is not None)
        if waves is not None:
            per_sm = resident_blocks_per_sm(kernel.compiled.resources.registers)
            grid = min(grid, waves * per_sm * get_num_sms())
        args = (x, q, storage, ctypes.c_int32(g), ctypes.c_int32(m), ctypes.c_int32(aligned_m),
                ctypes.c_int32(k), ctypes.c_int64(1), ctypes.c_int64(aligned_m),
                ctypes.c_int64(kb * aligned_m))
        device = x.get_device()
        if device == _current_device():  # NOTES: torch.cuda.device() costs ~1-2 us of host time
            kernel.launch(grid, THREADS, 0, args)
        else:
            with torch.cuda.device(device):
                kernel.launch(grid, THREADS, 0, args)
    return q, scale if x.dim() == 3 else scale[0]


def _launch_bulk(x: torch.Tensor, q: torch.Tensor, storage: torch.Tensor, g: int, m: int, aligned_m: int,
                 k: int, kb: int, tile_rows: int, waves: int) -> None:
    kernel = _bulk_kernel(x.dtype)
    row_bytes = k * x.element_size()
    smem = BULK_STAGES * (tile_rows * row_bytes + 8)
    registers = kernel.compiled.resources.registers
    per_sm = min(_SMEM_PER_SM // (smem + 1024), resident_blocks_per_sm(registers, BULK_THREADS))
    tiles = (g * m + tile_rows - 1) // tile_rows
    grid = max(1, min(tiles, waves * per_sm * get_num_sms()))
    args = (x, q, storage, ctypes.c_int32(g), ctypes.c_int32(m), ctypes.c_int32(aligned_m), ctypes.c_int32(k),
            ctypes.c_int32(tile_rows), ctypes.c_int64(1), ctypes.c_int64(aligned_m),
            ctypes.c_int64(kb * aligned_m))
    device = x.get_device()
    if device == _current_device():
        kernel.launch(grid, BULK_THREADS, smem, args)
    else:
        with torch.cuda.device(device):
            kernel.launch(grid, BULK_THREADS, smem, args)
