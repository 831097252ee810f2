"""CPU tests of tools/bench_compare.py: a run against an earlier run's saved rows."""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))

from bench_compare import compare, report  # noqa: E402
from perf_check import row_name  # noqa: E402


def _dense(m: int, n: int, k: int, us: float) -> dict:
    return {"kind": "dense", "m": m, "n": n, "k": k, "ours_us": us}


def test_only_rows_slower_by_more_than_the_threshold_are_flagged() -> None:
    before = [_dense(64, 2112, 7168, 10.0), _dense(4096, 7168, 16384, 650.0), _dense(128, 4096, 7168, 13.0)]
    now = [_dense(64, 2112, 7168, 10.4), _dense(4096, 7168, 16384, 690.0), _dense(128, 4096, 7168, 12.0),
           _dense(4096, 4096, 7168, 170.0)]   # new shape: no baseline, skipped
    lines, slower = compare(now, before, row_name, "ours_us")
    assert len(lines) == 3
    assert [s.split()[1] for s in slower] == ["4096x7168x16384"]   # +6.2%; +4% and -7.7% are not
    assert all("SLOWER" in s for s in slower)


def test_grouped_rows_match_by_layout_groups_and_shape() -> None:
    row = {"kind": "masked", "groups": 32, "m_per_group": 192, "n": 6144, "k": 7168, "ours_us": 600.0}
    other = dict(row, groups=4, ours_us=100.0)
    before = [dict(row, ours_us=540.0), dict(other, ours_us=100.0)]
    _, slower = compare([row, other], before, row_name, "ours_us")
    assert len(slower) == 1 and slower[0].startswith("masked 32x192 6144x7168")


def test_report_reads_a_saved_run(tmp_path: Path) -> None:
    saved = tmp_path / "old.json"
    saved.write_text(json.dumps([{"case": "dense 7168x2048x8192 d is c", "us": 257.0}]))
    lines = report([{"case": "dense 7168x2048x8192 d is c", "us": 324.0}], saved, lambda r: r["case"], "us")
    assert "1 over 5% slower" in lines[0] and lines[-1].endswith("SLOWER")
    saved.write_text(json.dumps({"rows": [{"case": "x", "us": 100.0}]}))   # perf_check's object form
    head = report([{"case": "x", "us": 101.0}], saved, lambda r: r["case"], "us")[0]
    assert head.endswith("0 over 5% slower)")
