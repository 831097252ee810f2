"""Kernel times of one run against an earlier run's, so that a slowdown shows up in the next device call
rather than sessions later (the training kernel's 128-wide tiles lost 25% in 9f267f3 and nobody saw it
for two sessions: tools/final_check.sh printed only the k-grouped rows).

`compare` takes two lists of rows (what tools/perf_check.py and tools/training_check.py write with
their JSON output), matches them by a name, and reports each shape whose time grew by more than
`threshold`. Hosts differ by up to ~2.5% on the same kernel (BENCHMARKS.md), so the default threshold
is 5%: a flagged row is worth a same-run A/B, not a verdict.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

DEFAULT_THRESHOLD = 0.05


def compare(current: list[dict], baseline: list[dict], name: Callable[[dict], str], time_key: str,
            threshold: float = DEFAULT_THRESHOLD) -> tuple[list[str], list[str]]:
    """(every matched row as a line, the lines of rows slower than the baseline by > threshold).
    Rows present in only one run are skipped; so are rows without a positive time."""
    before = {name(r): r[time_key] for r in baseline if r.get(time_key, 0) > 0}
    lines, slower = [], []
    for row in current:
        key, now = name(row), row.get(time_key, 0)
        if key not in before or not now > 0:
            continue
        ratio = now / before[key]
        line = f"{key:48s} {before[key]:10.1f} -> {now:10.1f} us  x{ratio:5.3f}"
        if ratio > 1 + threshold:
            line += "  SLOWER"
            slower.append(line)
        lines.append(line)
    return lines, slower


def load_rows(path: Path) -> list[dict]:
    """A run's rows: a JSON list, or an object holding them under "rows"."""
    data = json.loads(Path(path).read_text())
    return data["rows"] if isinstance(data, dict) else data


def report(current: list[dict], baseline_path: Path, name: Callable[[dict], str], time_key: str) -> list[str]:
    """Printable lines: the comparison against the run saved at baseline_path, slower rows last."""
    lines, slower = compare(current, load_rows(baseline_path), name, time_key)
    head = f"against {baseline_path} ({len(lines)} shapes matched, {len(slower)} over "
    head += f"{DEFAULT_THRESHOLD:.0%} slower)"
    return [head, *lines, *(["slower than the baseline:", *slower] if slower else [])]
