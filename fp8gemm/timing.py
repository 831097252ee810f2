"""Kernel timing with CUDA events, the L2 cache flushed before every run."""

from __future__ import annotations

import statistics
from collections.abc import Callable

import torch

__all__ = ["time_kernel", "L2_FLUSH_BYTES"]

# Larger than any GPU's L2 (H200: 50 MB), so writing it evicts the operands of the previous run.
L2_FLUSH_BYTES = 256 << 20

_flush_buffers: dict[torch.device, torch.Tensor] = {}


def _flush_buffer(device: torch.device) -> torch.Tensor:
    if device not in _flush_buffers:
        _flush_buffers[device] = torch.empty(L2_FLUSH_BYTES // 4, dtype=torch.int32, device=device)
    return _flush_buffers[device]


def time_kernel(
    fn: Callable[[], object], *, flush_l2: bool = True, iters: int = 50, warmup: int = 5
) -> float:
    """Median GPU time of ``fn()`` in microseconds.

    ``fn`` runs ``warmup`` times untimed (JIT, cuBLASLt heuristics, allocator), then ``iters`` times,
    each preceded (when ``flush_l2``) by zeroing a 256 MB buffer; CUDA events on the current stream
    bracket ``fn`` alone, so the flush is not counted. The median resists outliers (clock ramps,
    other tenants). ``fn`` must put all its work on the current stream.
    """
    if iters < 1:
        raise ValueError(f"iters: expected >= 1, got {iters}")
    device = torch.device("cuda", torch.cuda.current_device())
    buffer = _flush_buffer(device) if flush_l2 else None
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    starts = [torch.cuda.Event(enable_timing=True) for _ in range(iters)]
    ends = [torch.cuda.Event(enable_timing=True) for _ in range(iters)]
    for start, end in zip(starts, ends, strict=True):
        if buffer is not None:
            buffer.zero_()
        start.record()
        fn()
        end.record()
    torch.cuda.synchronize()
    return statistics.median([s.elapsed_time(e) * 1e3 for s, e in zip(starts, ends, strict=True)])
