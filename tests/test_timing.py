"""benchmarks/timing.py: splitting a CUPTI trace into calls (CPU), and the timers on a GPU."""

from __future__ import annotations

import pytest
import torch

from benchmarks import timing
from fp8gemm.device import is_sm90_available

FLUSH = ["reduce_kernel", "spin_kernel"]


def _trace(calls: list[list[tuple[float, float, str]]]) -> list[tuple[float, float, str]]:
    """A trace of calls, each preceded by the flush and the padding (at the call's own time - 100)."""
    events = []
    for body in calls:
        t0 = min(start for start, _, _ in body)
        events += [(t0 - 100, t0 - 50, FLUSH[0]), (t0 - 50, t0 - 1, FLUSH[1])]
        events += body
    return events


def test_span_runs_from_first_start_to_last_end_of_each_call() -> None:
    calls = [
        [(1000.0, 1010.0, "gemm"), (1012.0, 1015.0, "reduce")],  # gap between kernels counts: 15
        [(2000.0, 2008.0, "gemm"), (2007.0, 2020.0, "reduce")],  # overlapping kernels: 20
        [(3000.0, 3011.0, "gemm"), (3011.0, 3012.0, "reduce")],  # 12
    ]
    trace = _trace(calls)
    assert timing.segment_spans(trace, 3, FLUSH) == [15.0, 20.0, 12.0]
    # The order the profiler lists activities in does not matter, only their start times.
    assert timing.segment_spans(trace[::-1], 3, FLUSH) == [15.0, 20.0, 12.0]


def test_flush_is_not_counted_even_when_the_call_reuses_its_kernel_name() -> None:
    # A call whose own work is a reduction (e.g. a cast's amax) named like the flush's kernel.
    calls = [[(1000.0, 1004.0, "reduce_kernel")], [(2000.0, 2006.0, "reduce_kernel")]]
    assert timing.segment_spans(_trace(calls), 2, FLUSH) == [4.0, 6.0]


def test_a_trace_that_does_not_split_into_calls_is_refused() -> None:
    calls = [[(1000.0, 1004.0, "gemm")], [(2000.0, 2004.0, "gemm"), (2005.0, 2006.0, "reduce")]]
    with pytest.raises(RuntimeError, match="equal calls"):  # 5 + 4 activities into 2 calls
        timing.segment_spans(_trace(calls), 2, FLUSH)
    # Equal counts, but the second call's flush sits after its own kernels (work on another stream,
    # not ordered after the flush): the segment does not start with the flush.
    trace = _trace([[(1000.0, 1004.0, "gemm")]]) + [(2000.0, 2004.0, "gemm"), (2010.0, 2011.0, FLUSH[0]),
                                                     (2011.0, 2012.0, FLUSH[1])]
    with pytest.raises(RuntimeError, match="does not split"):
        timing.segment_spans(trace, 2, FLUSH)
    with pytest.raises(RuntimeError, match="no GPU work"):
        timing.segment_spans(_trace([[(0.0, 1.0, "x")]])[:2], 1, FLUSH)


gpu = pytest.mark.skipif(not is_sm90_available(), reason="needs an sm_90 (Hopper) GPU")


@pytest.mark.gpu
@gpu
def test_cupti_time_of_a_sleep_kernel_matches_its_length() -> None:
    # torch.cuda._sleep spins for a number of cycles: its span is its own length, and two of them
    # back to back take twice as long. The flush before each call (~70 us) is not in the figure.
    one = timing.cupti_time_us(lambda: torch.cuda._sleep(20_000), iters=10)
    two = timing.cupti_time_us(lambda: (torch.cuda._sleep(20_000), torch.cuda._sleep(20_000)), iters=10)
    assert 5 < one < 40, one  # 20k cycles at 1-2 GHz
    assert 1.8 < two / one < 2.3, (one, two)


@pytest.mark.gpu
@gpu
def test_cupti_span_excludes_host_gaps_between_kernels() -> None:
    # Host work between two launches would leave the GPU idle inside the span, were the launches
    # not queued behind the padding before each call.
    import time

    def fn() -> None:
        torch.cuda._sleep(1000)
        end = time.perf_counter() + 200e-6
        while time.perf_counter() < end:
            pass
        torch.cuda._sleep(1000)

    assert timing.cupti_time_us(fn, iters=10, flush_l2=False) < 50


@pytest.mark.gpu
@gpu
def test_host_time_counts_the_host_not_the_gpu() -> None:
    # A 2 ms kernel costs microseconds of host time to launch.
    assert timing.host_time_us(lambda: torch.cuda._sleep(4_000_000), iters=20, warmup=2) < 100
