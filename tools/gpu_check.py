"""One call on the H200: GPU tests (optional subsets), then the benchmark, the short table printed last.

    python tools/gpu_check.py [--tests dense,grouped,all,none] [--bench-args "--only dense"]

Details (pytest log, bench.json, bench.png) go under $OUT when set, else ./gpu_check_out.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TEST_SETS = {
    "dense": ["tests/test_gemm_dense_gpu.py"],
    "grouped": ["tests/test_gemm_grouped_gpu.py"],
    "all": ["tests"],
    "none": [],
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tests", default="all", help="comma-separated: " + ", ".join(TEST_SETS))
    parser.add_argument("--bench-args", default="", help="extra arguments for python -m fp8gemm bench")
    parser.add_argument("--no-bench", action="store_true")
    args = parser.parse_args()
    out = Path(os.environ.get("OUT") or "gpu_check_out")
    out.mkdir(parents=True, exist_ok=True)

    paths = [p for name in args.tests.split(",") if name for p in TEST_SETS[name]]
    test_rc = 0
    if paths:
        cmd = [sys.executable, "-m", "pytest", "-m", "gpu", "-x", "-q", "-p", "no:cacheprovider", *paths]
        with open(out / "pytest.log", "w") as log:
            test_rc = subprocess.run(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT).returncode
        lines = (out / "pytest.log").read_text().splitlines()
        print("\n".join(lines[-25:]))  # the failure (with -x, at most one) and the summary line
    print(f"gpu_check: tests rc={test_rc}, details in {out}", flush=True)
    bench_rc = 0
    if not args.no_bench:
        cmd = [sys.executable, "-m", "fp8gemm", "bench", "--out", str(out), *shlex.split(args.bench_args)]
        bench_rc = subprocess.run(cmd, cwd=ROOT).returncode  # its table is the last thing printed
    return test_rc or bench_rc


if __name__ == "__main__":
    sys.exit(main())
