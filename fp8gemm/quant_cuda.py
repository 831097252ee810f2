"""The one-pass CUDA kernel behind ``per_token_cast_to_fp8(x, tma_aligned_scales=True)`` on CUDA tensors.

It reads BF16/FP16/FP32 ``x`` (``[m, k]`` or ``[g, m, k]``) once and writes the FP8 values and the FP32
scales, the scales straight into the TMA-aligned column-major layout the GEMMs read (padding rows
zeroed), so no layout conversion follows. Results are bit-for-bit those of the torch version in
`fp8gemm.quant`. Device code: ``include/fp8gemm/quant/per_token_cast.cuh``.
"""

from __future__ import annotations

import ctypes

import torch

from . import device as _device
from .device import get_num_sms, is_sm90, num_sms_of
from .layout import get_tma_aligned_size
from .utils import BLOCK

__all__ = ["supports", "per_token_cast_to_fp8_cuda", "cast_if_supported", "kernel_source",
           "kernel_name", "default_unroll", "KINDS"]

THREADS = 256
# NOTES: UNROLL: tasks (128-wide blocks of a row) per lane group, i.e. 16-byte loads each thread
# issues at once. Chosen from H200 sweeps (tools/host_cast_check.py; BENCHMARKS.md): unroll 4 where
# the tasks fill the GPU (3.85 / 3.81 TB/s at [4096, 7168] / [16384, 7168]; unroll 2 3.76 / 3.68,
# unroll 8 3.16 / 3.26, 512-thread blocks 3.59 / 3.68), unroll 1 where one thread per task fits in
# one wave (at [64, 7168] the kernel is a single dependent chain: 1.92 us, 2.43 at unroll 4).
UNROLL = 4
SMALL_UNROLL = 1
_MAX_THREADS_PER_SM = 2048
_MAX_TASKS = 2**31  # the kernel indexes tasks with 32-bit arithmetic
# dtype -> (ElemKind in the header, short name for the entry point)
KINDS = {torch.float32: (0, "f32"), torch.bfloat16: (1, "bf16"), torch.float16: (2, "f16")}

_kernels: dict[tuple[torch.dtype, int], object] = {}
_current_device = _device.current_device_index


def kernel_name(dtype: torch.dtype, unroll: int = UNROLL) -> str:
    """The entry point's name for one input dtype and unroll."""
    return f"fp8gemm_per_token_cast_{KINDS[dtype][1]}_u{unroll}"


def kernel_source(dtype: torch.dtype, unroll: int = UNROLL) -> str:
    """The CUDA source of the entry point for one input dtype and `unroll` tasks per lane group."""
    kind, _ = KINDS[dtype]
    return f"""#include <fp8gemm/quant/per_token_cast.cuh>

extern "C" __global__ void __launch_bounds__({THREADS}) {kernel_name(dtype, unroll)}(
        const fp8gemm::uint8_t* x, fp8gemm::uint8_t* q, float* scales, int groups, int rows, int scale_rows,
        int k) {{
    fp8gemm::quant::per_token_cast<{kind}, {unroll}>(x, q, scales, groups, rows, scale_rows, k);
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


def _kernel(dtype: torch.dtype, unroll: int):
    kernel = _kernels.get((dtype, unroll))
    if kernel is None:
        from . import jit

        kernel = _kernels[dtype, unroll] = jit.build(kernel_source(dtype, unroll), kernel_name(dtype, unroll))
    return kernel


def default_unroll(tasks: int, lanes: int, num_sms: int | None = None) -> int:
    """UNROLL, or SMALL_UNROLL when one thread per task fits in one wave of the GPU (2048 per SM)."""
    num_sms = get_num_sms() if num_sms is None else num_sms
    return SMALL_UNROLL if tasks * lanes <= num_sms * _MAX_THREADS_PER_SM else UNROLL


class _Plan:
    """What a cast of one shape, dtype, device and unroll launches, worked out once: the kernel, its
    grid and the scalar arguments (the tensors' addresses change per call)."""

    __slots__ = ("kernel", "grid", "scalars", "storage_numel", "scale_size", "scale_stride", "launch")

    def __init__(self, shape: tuple[int, ...], dtype: torch.dtype, device: int, unroll: int | None):
        g, m, k = shape if len(shape) == 3 else (1, *shape)
        kb = (k + BLOCK - 1) // BLOCK
        aligned_m = get_tma_aligned_size(m, 4)
        lanes = BLOCK // (16 // dtype.itemsize)
        tasks = g * kb * aligned_m
        if unroll is None:
            unroll = default_unroll(tasks, lanes, num_sms_of(device))
        self.kernel = _kernel(dtype, unroll) if g * m > 0 else None
        self.grid = ((tasks + unroll - 1) // unroll * lanes + THREADS - 1) // THREADS
        self.scalars = (ctypes.c_int32(g), ctypes.c_int32(m), ctypes.c_int32(aligned_m), ctypes.c_int32(k))
        # The scales' storage is [g, kb, aligned_m]; the tensor returned views it as [(g,) m, kb].
        self.storage_numel = g * kb * aligned_m
        if len(shape) == 3:
            self.scale_size, self.scale_stride = (g, m, kb), (kb * aligned_m, 1, aligned_m)
        else:
            self.scale_size, self.scale_stride = (m, kb), (1, aligned_m)
        self.launch = None  # a jit.PointerLaunch, prepared by the first launch of the plan


_plans: dict[tuple, _Plan] = {}
_MAX_PLANS = 1024


def per_token_cast_to_fp8_cuda(x: torch.Tensor, *,
                               unroll: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Cast ``x`` (``supports(x)`` must hold) per 1x128 block; scales in the TMA-aligned column-major layout.

    Returns ``(q, scale)``: ``q`` float8_e4m3fn contiguous with x's shape; ``scale`` float32 ``[m, kb]``
    with strides ``(1, aligned_m)`` or ``[g, m, kb]`` with strides ``(aligned_m * kb, 1, aligned_m)``,
    ``aligned_m = get_tma_aligned_size(m, 4)``. Work is queued on torch's current stream (graph-safe
    once the kernel has been built, i.e. after a first call outside capture).

    ``unroll``: 128-wide blocks per group of lanes, 1 to 8 (None: `default_unroll`); it tunes the
    speed, every value gives the same bits.
    """
    bad_unroll = isinstance(unroll, bool) or not isinstance(unroll, int) or not 1 <= unroll <= 8
    if unroll is not None and bad_unroll:
        raise ValueError(f"unroll: expected None or an int in 1..8, got {unroll!r}")
    result = cast_if_supported(x, unroll)
    if result is None:
        raise ValueError(
            "x: expected a CUDA float32/bfloat16/float16 tensor of 2 or 3 dims with k % 16 == 0, got "
            f"{x.dtype} shape {list(x.shape)} on {x.device}"
        )
    return result


def cast_if_supported(x: torch.Tensor, unroll: int | None = None) -> tuple[torch.Tensor, torch.Tensor] | None:
    """`per_token_cast_to_fp8_cuda` of a CUDA tensor ``x``, or None where `supports` refuses it (then
    nothing ran). `supports` runs once per shape, dtype and device."""
    device = x.get_device()
    # NOTES: everything but the tensors' addresses is worked out once per shape (host time of a
    # decode step's cast: the support check, the grid, the unroll, the kernel lookup and the ctypes
    # scalars); `supports` depends on nothing else than this key.
    key = (x.shape, x.dtype, device, unroll, _device._num_sms_override)
    plan = _plans.get(key)
    if plan is None:
        if not supports(x):
            return None
        if len(_plans) >= _MAX_PLANS:
            _plans.clear()
        plan = _plans[key] = _Plan(tuple(x.shape), x.dtype, device, unroll)
    # NOTES: the kernel reads 16-byte vectors: rows must be dense and the base 16-byte aligned.
    if not x.is_contiguous() or x.data_ptr() % 16:
        x = x.contiguous() if not x.is_contiguous() else x.clone()
    # NOTES: host time on the H200 hosts: torch.empty with x's shape took 7.5 us, empty_like 3.7 (x is
    # contiguous here, so q is too); a 1-D storage viewed once by as_strided rather than an N-D one
    # transposed, sliced and indexed saves ~3 us more.
    q = torch.empty_like(x, dtype=torch.float8_e4m3fn)
    storage = torch.empty(plan.storage_numel, dtype=torch.float32, device=x.device)
    scale = storage.as_strided(plan.scale_size, plan.scale_stride)
    if plan.kernel is not None:
        if device == _current_device():  # NOTES: torch.cuda.device() costs ~1-2 us of host time
            _launch(plan, x, q, storage)
        else:
            with torch.cuda.device(device):
                _launch(plan, x, q, storage)
    return q, scale


def _launch(plan: _Plan, x: torch.Tensor, q: torch.Tensor, storage: torch.Tensor) -> None:
    """The plan's kernel on (x, q, storage), with x's device current. NOTES: through a PointerLaunch
    (the scalars packed once, the three addresses written per call): 7.6 -> ~4 us of host time."""
    if plan.launch is None:
        plan.launch = plan.kernel.prepare_pointers(plan.grid, THREADS, 0, (x, q, storage, *plan.scalars), 3)
    plan.launch.run(x, q, storage)
