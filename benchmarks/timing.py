"""GPU timing for the benchmark and the tools.

- :func:`cupti_time_us` (the benchmark's kernel time): CUPTI durations through ``torch.profiler``;
  for one call of ``fn``, the span from its first kernel's start to its last kernel's end, the L2
  cache flushed before the call, the median over many calls.
- :func:`time_kernel`: CUDA events around a CUDA-graph replay. Events add a few microseconds of
  their own to short kernels (3.5-4 us measured on the H200), so this is reported only as an extra.
- :func:`host_time_us`: host (CPU) time of one eager call, with the GPU kept busy so that only the
  host side counts.
"""

from __future__ import annotations

import statistics
import time
import warnings
from collections.abc import Callable

import torch

__all__ = [
    "L2_FLUSH_BYTES", "capture", "cupti_spans_us", "cupti_time_us", "host_time_us", "segment_spans",
    "time_kernel",
]

# Larger than any GPU's L2 (H200: 50 MB), so reading it evicts the operands of the previous run.
L2_FLUSH_BYTES = 256 << 20
# Cycles of torch.cuda._sleep per microsecond of host time to cover (SM clocks stay below 2 GHz).
_SLEEP_CYCLES_PER_US = 2000

_flush_buffers: dict[torch.device, torch.Tensor] = {}


def _flush_buffer(device: torch.device) -> torch.Tensor:
    if device not in _flush_buffers:
        _flush_buffers[device] = torch.zeros(L2_FLUSH_BYTES // 4, dtype=torch.int32, device=device)
    return _flush_buffers[device]


def _flush(buffer: torch.Tensor) -> None:
    # NOTES: the flush reads 256 MB rather than writing it: a written buffer leaves L2 full of
    # dirty lines whose write-back the timed kernel would then pay for, which is not a cold cache
    # but a penalty that swamps short kernels (the same for every library, but not what is meant).
    torch.sum(buffer, dtype=torch.int64)


# ------------------------------------------------------------------------------------------ CUPTI


def segment_spans(
    activities: list[tuple[float, float, str]], calls: int, prefix: list[str]
) -> list[float]:
    """Split a device trace into ``calls`` calls and return the span of each, in the trace's units.

    ``activities``: ``(start, end, name)`` of every GPU activity (kernels, memsets, copies) in the
    trace, in any order. The trace must be ``calls`` repetitions of: the ``prefix`` activities (the
    L2 flush and the padding that precede each call; their names, in order), then the call's own
    activities, the same number each time. A call's span runs from the earliest start to the latest
    end of its own activities: the prefix is never counted. Raises RuntimeError when the trace does
    not have that structure (a call whose kernel count varies, work on an unsynchronised stream that
    overlaps the flush, dropped records), rather than returning a number that means something else.
    """
    ordered = sorted(activities)
    if calls < 1 or len(ordered) % calls:
        raise RuntimeError(f"{len(ordered)} GPU activities cannot be split into {calls} equal calls")
    per_call = len(ordered) // calls
    own = per_call - len(prefix)
    if own < 1:
        raise RuntimeError(f"the timed function ran no GPU work ({len(ordered)} activities in {calls} calls, "
                           f"{len(prefix)} of them the flush before each call)")
    spans = []
    for i in range(calls):
        segment = ordered[i * per_call : (i + 1) * per_call]
        names = [name for _, _, name in segment[: len(prefix)]]
        if names != prefix:
            raise RuntimeError(f"call {i}: expected the flush {prefix} before the call's own work, found "
                               f"{names}: the trace does not split into calls")
        body = segment[len(prefix) :]
        spans.append(max(end for _, end, _ in body) - min(start for start, _, _ in body))
    return spans


def _device_activities(body: Callable[[], None]) -> list[tuple[float, float, str]]:
    """Run ``body`` under torch.profiler (CUPTI) and return its GPU activities: (start_us, end_us, name)."""
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile

    torch.cuda.synchronize()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*Profiler clears events")  # one cycle is all we use
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            body()
            torch.cuda.synchronize()
    return [
        (e.time_range.start, e.time_range.end, e.name)
        for e in prof.events()
        if e.device_type == DeviceType.CUDA and not getattr(e, "is_user_annotation", False)
    ]


_prefix_names: dict[tuple, list[str]] = {}


def cupti_spans_us(
    fn: Callable[[], object], *, iters: int = 30, warmup: int = 3, flush_l2: bool = True
) -> list[float]:
    """The span (microseconds) of each of ``iters`` calls of ``fn``; see :func:`cupti_time_us`."""
    if iters < 1:
        raise ValueError(f"iters: expected >= 1, got {iters}")
    device = torch.device("cuda", torch.cuda.current_device())
    buffer = _flush_buffer(device) if flush_l2 else None
    for _ in range(max(warmup, 1)):
        fn()
    torch.cuda.synchronize()
    # The host time of one call, so that the GPU can be kept busy for longer than that before each
    # call: the call's kernels are then all queued before the first starts, and the span measures
    # the GPU alone even for a function that launches several kernels from Python.
    start = time.perf_counter()
    fn()
    host_us = (time.perf_counter() - start) * 1e6
    torch.cuda.synchronize()
    pad_cycles = int((2 * host_us + 20) * _SLEEP_CYCLES_PER_US)

    def prefix() -> None:
        if buffer is not None:
            _flush(buffer)
        torch.cuda._sleep(pad_cycles)

    key = (device, flush_l2)
    if key not in _prefix_names:
        _prefix_names[key] = [name for _, _, name in sorted(_device_activities(prefix))]

    def body() -> None:
        for _ in range(iters):
            prefix()
            fn()

    return segment_spans(_device_activities(body), iters, _prefix_names[key])


def cupti_time_us(
    fn: Callable[[], object], *, iters: int = 30, warmup: int = 3, flush_l2: bool = True
) -> float:
    """Median GPU time of one ``fn()`` call in microseconds, from CUPTI (``torch.profiler``).

    ``fn`` runs ``warmup`` times untimed (JIT, cuBLASLt heuristics, allocator), then ``iters`` times
    under the profiler. Before each call the L2 is flushed (when ``flush_l2``) by reading a 256 MB
    buffer, and the GPU is kept busy for longer than the call's host time, so all of the call's
    kernels are queued before its first one starts. A call's time is the span from its first kernel's
    start to its last kernel's end (gaps between its kernels included, the flush excluded); the
    median of the ``iters`` spans is returned. ``fn`` must launch the same number of kernels on
    every call, on the current stream (or streams ordered after it).
    """
    return statistics.median(cupti_spans_us(fn, iters=iters, warmup=warmup, flush_l2=flush_l2))


# ------------------------------------------------------------------------------- CUDA events


def time_kernel(
    fn: Callable[[], object], *, flush_l2: bool = True, iters: int = 50, warmup: int = 5,
    use_graph: bool = True,
) -> float:
    """Median GPU time of ``fn()`` in microseconds, from CUDA events (the extra column of the bench).

    ``fn`` runs ``warmup`` times untimed, then ``iters`` times, each preceded (when ``flush_l2``) by
    reading a 256 MB buffer; CUDA events on the current stream bracket ``fn`` alone. With
    ``use_graph`` (default) ``fn`` is captured once into a CUDA graph and the graph is replayed, so
    host overhead does not count; a function that cannot be captured is timed directly. The events
    themselves add a few microseconds: prefer :func:`cupti_time_us` for short kernels.
    """
    if iters < 1:
        raise ValueError(f"iters: expected >= 1, got {iters}")
    device = torch.device("cuda", torch.cuda.current_device())
    buffer = _flush_buffer(device) if flush_l2 else None
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    if use_graph:
        graph = capture(fn)
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


def capture(fn: Callable[[], object]) -> torch.cuda.CUDAGraph | None:
    """``fn`` captured into a CUDA graph (run it once before, to build its kernels), or None when it
    cannot be captured (host syncs, allocations of a new size)."""
    graph = torch.cuda.CUDAGraph()
    try:
        with torch.cuda.graph(graph):
            fn()
    except Exception:  # not capturable: the caller times it directly
        torch.cuda.synchronize()
        return None
    torch.cuda.synchronize()
    return graph


# ------------------------------------------------------------------------------------- host


def host_time_us(fn: Callable[[], object], *, iters: int = 200, warmup: int = 20) -> float:
    """Host (CPU) time of one eager ``fn()`` call in microseconds: the median over ``iters`` calls.

    Before the timed calls the GPU gets a long sleep kernel, so it stays busy for the whole loop:
    launches queue up behind it instead of waiting on the GPU or racing it, and what is measured is
    the host's own cost of a call (argument checks, config lookup, packing, the driver launch).
    """
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    clock = time.perf_counter_ns
    start = clock()
    fn()
    one_us = (clock() - start) / 1e3
    torch.cuda.synchronize()
    # Enough GPU work for all the calls however fast the host is; the queue holds > 1000 launches.
    torch.cuda._sleep(int((iters * max(one_us, 10.0) * 2 + 1000) * _SLEEP_CYCLES_PER_US))
    times = []
    for _ in range(iters):
        t0 = clock()
        fn()
        times.append((clock() - t0) / 1e3)
    torch.cuda.synchronize()
    return statistics.median(times)
