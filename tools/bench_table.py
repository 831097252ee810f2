"""Render a `python -m fp8gemm bench --out DIR` result (bench.json) as the Markdown table of
BENCHMARKS.md.

    python tools/bench_table.py docs/bench/bench.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def _num(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def main(path: str) -> None:
    data = json.loads(Path(path).read_text())
    meta = data["meta"]
    print(f"{meta['date']}, commit {meta['commit']}, {meta['device']}, torch {meta['torch']}; dense geomean "
          f"x cuBLASLt: {_num(meta.get('geomean_speedup_scaled_mm_dense'), '.3f')}\n")
    header = ["kind", "shape", "ours us", "TFLOPS", "GB/s", "cuBLASLt us", "BF16 us", "x cuBLASLt", "x BF16",
              "diff vs FP32", "config"]
    print("| " + " | ".join(header) + " |")
    print("| --- | --- |" + " ---: |" * 8 + " --- |")
    for r in data["rows"]:
        cells = [r["kind"], r["shape"], _num(r.get("ours_us"), ".1f"), _num(r.get("tflops"), ".0f"),
                 _num(r.get("gbps"), ".0f"), _num(r.get("scaled_mm_us"), ".1f"),
                 _num(r.get("bf16_us"), ".1f"),
                 _num(r.get("speedup_scaled_mm"), ".2f"), _num(r.get("speedup_bf16"), ".2f"),
                 _num(r.get("diff_vs_fp32"), ".1e"), (r.get("config") or "-").split(": ", 1)[-1]]
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "docs/bench/bench.json")
