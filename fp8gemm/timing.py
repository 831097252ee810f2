"""Kernel timing with CUDA events, the L2 cache flushed before every run."""

from __future__ import annotations

import statistics
from collections.abc import Callable

import torch

__all__ = ["time_kernel", "host_time", "L2_FLUSH_BYTES"]

# Larger than any GPU's L2 (H200: 50 MB), so writing it evicts the operands of the previous run.
L2_FLUSH_BYTES = 256 << 20

_flush_buffers: dict[torch.device, torch.Tensor] = {}


def _flush_buffer(device: torch.device) -> torch.Tensor:
    if device not in _flush_buffers:
        _flush_buffers[device] = torch.zeros(L2_FLUSH_BYTES // 4, dtype=torch.int32, device=device)
    return _flush_buffers[device]


def time_kernel(
    fn: Callable[[], object], *, flush_l2: bool = True, iters: int = 50, warmup: int = 5,
    use_graph: bool = True,
) -> float:
    """Median GPU time of ``fn()`` in microseconds.

    ``fn`` runs ``warmup`` times untimed (JIT, cuBLASLt heuristics, allocator), then ``iters`` times,
    each preceded (when ``flush_l2``) by reading a 256 MB buffer; CUDA events on the current stream
    bracket ``fn`` alone, so the flush is not counted. The median resists outliers (clock ramps,
    other tenants). ``fn`` must put all its work on the current stream. With ``use_graph`` (default)
    ``fn`` is captured once into a CUDA graph and the graph is replayed, so host overhead does not
    count; a function that cannot be captured is timed directly.
    """
    if iters < 1:
        raise ValueError(f"iters: expected >= 1, got {iters}")
    device = torch.device("cuda", torch.cuda.current_device())
    buffer = _flush_buffer(device) if flush_l2 else None
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    # NOTES: replaying a captured CUDA graph takes the Python host cost of `fn` (argument checks,
    # launch calls) out of the measurement for every library alike: what remains is GPU time.
    if use_graph:
        graph = _capture(fn)
        if graph is not None:
            fn = graph.replay
    starts = [torch.cuda.Event(enable_timing=True) for _ in range(iters)]
    ends = [torch.cuda.Event(enable_timing=True) for _ in range(iters)]
    for start, end in zip(starts, ends, strict=True):
        if buffer is not None:
            _flush(buffer)
        start.record()
        fn()
        end.record()
    torch.cuda.synchronize()
    return statistics.median([s.elapsed_time(e) * 1e3 for s, e in zip(starts, ends, strict=True)])


def _flush(buffer: torch.Tensor) -> None:
    # NOTES: the flush reads 256 MB rather than writing it: a written buffer leaves L2 full of
    # dirty lines whose write-back the timed kernel would then pay for, which is not a cold cache
    # but a penalty that swamps short kernels (the same for every library, but not what is meant).
    torch.sum(buffer, dtype=torch.int64)


def _capture(fn: Callable[[], object]) -> torch.cuda.CUDAGraph | None:
    graph = torch.cuda.CUDAGraph()
    try:
        with torch.cuda.graph(graph):
            fn()
    except Exception:  # not capturable (host syncs, allocations of a new size): time it directly
        torch.cuda.synchronize()
        return None
    torch.cuda.synchronize()
    return graph


def host_time(fn: Callable[[], object], *, iters: int = 200) -> float:
    """Host (CPU) time of one ``fn()`` call in microseconds: the eager-mode launch overhead."""
    import time

    for _ in range(10):
        fn()
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(iters):
        fn()
    elapsed = time.perf_counter() - start
    torch.cuda.synchronize()
    return elapsed / iters * 1e6
