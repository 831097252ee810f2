"""CPU tests of tools/perf_check.py's timing passes (the GPU parts run on the device)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))

from perf_check import spread_sizes, timed_rounds  # noqa: E402


def test_timed_rounds_runs_every_timer_once_per_pass_round_robin() -> None:
    order = []

    def timer(name: str, values: list[float]):
        def run() -> float:
            order.append(name)
            return values[sum(1 for o in order if o == name) - 1]
        return run

    runs = timed_rounds([timer("a", [3.0, 1.0, 2.0]), timer("b", [5.0, 6.0, 4.0])], 3)
    assert runs == [[3.0, 1.0, 2.0], [5.0, 6.0, 4.0]]
    assert order == ["a", "b", "a", "b", "a", "b"]
    assert timed_rounds([timer("c", [1.0])], 0) == [[]]


def test_spread_sizes_sum_to_the_reference_rows() -> None:
    sizes = spread_sizes(4, 8192, 0, total=36471)
    assert sum(sizes) == 36471 and len(sizes) == 4
    assert all(0.6 * 8192 < s < 1.4 * 8192 for s in sizes)
