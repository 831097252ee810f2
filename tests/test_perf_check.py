"""CPU tests of tools/perf_check.py's timing passes (the GPU parts run on the device)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))

import pytest  # noqa: E402
from perf_check import REF, reference_sizes, spread_sizes, timed_rounds  # noqa: E402


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


def test_reference_sizes_are_the_reference_runs_rows_for_every_grouped_shape() -> None:
    import json
    ref = json.loads(REF.read_text())
    for layout in ("contiguous", "masked"):
        for r in ref[f"grouped_{layout}"]:
            sizes = reference_sizes(layout, r["groups"], r["m_per_group"], r["n"], r["k"])
            assert len(sizes) == r["groups"] and sum(sizes) == r["valid_rows"]
    with pytest.raises(KeyError, match="not a reference shape"):
        reference_sizes("masked", 3, 100, 4096, 7168)
