"""Hunt for performance cliffs off the benchmark shapes: the public dense GEMM (the heuristics' pick)
against cuBLASLt's blockwise FP8 GEMM over a grid of M x (N, K), in one device call. CUPTI kernel
time, L2 flushed, both in the same process; every output checked against `fp8gemm.reference` on a
NaN-poisoned buffer.

    PYTHONPATH=. python tools/cliff_hunt.py [--m 24 640 1600] [--nk 7168x2048 2112x7168] [--out F.json]

The eighteenth session's run (BENCHMARKS.md, eighth session) found 7 of 88 shapes behind cuBLASLt:
five shared B with an odd M-block count (config._multicast), two ran 256x48 tiles (config.MIN_BLOCK_N).
Prints one line per shape, then the shapes behind cuBLASLt. cuBLASLt refuses some shapes (M = 1):
those get no ratio.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

DEFAULT_M = [1, 24, 96, 160, 320, 640, 1000, 1600, 2500, 4096, 6000, 8192]
# DeepSeek-V3's dense N x K and a few nearby (MLP 18432, MoE 1536 / 3072, K 9216)
DEFAULT_NK = ["7168x2048", "4096x7168", "2112x7168", "24576x1536", "1536x7168", "18432x7168", "7168x9216",
              "3072x1536"]


def grid(ms: list[int], nks: list[str]) -> list[tuple[int, int, int]]:
    """(m, n, k) for every N x K (outer) and M (inner)."""
    shapes = []
    for nk in nks:
        n, k = (int(v) for v in nk.split("x"))
        shapes += [(m, n, k) for m in ms]
    return shapes


def behind(rows: list[dict], margin: float = 1.0) -> list[dict]:
    """The rows where fp8gemm took longer than cuBLASLt times `margin` (rows without a cuBLASLt time
    are left out)."""
    return [r for r in rows if not math.isnan(r["cublas_us"]) and r["us"] > r["cublas_us"] * margin]


def measure(m: int, n: int, k: int) -> dict:
    import torch

    from benchmarks.baselines import scaled_mm_blockwise
    from benchmarks.testing import make_dense_inputs
    from benchmarks.timing import cupti_time_us
    from fp8gemm import gemm, reference
    from fp8gemm.config import select_config
    from fp8gemm.reference import calc_diff

    x = make_dense_inputs(m, n, k, seed=m + n)
    out = torch.empty(m, n, dtype=torch.bfloat16, device="cuda")

    def run() -> None:
        gemm.gemm_fp8_fp8_bf16_nt((x.a, x.sa_tma), (x.b, x.sb), out)

    out.fill_(float("nan"))
    run()
    torch.cuda.synchronize()
    diff = calc_diff(out, reference.gemm_nt(x.a, x.sa, x.b, x.sb))
    unwritten = int(out.isnan().sum())
    us = cupti_time_us(run, iters=20)
    try:
        cublas_us = cupti_time_us(scaled_mm_blockwise(x.a, x.sa, x.b, x.sb), iters=20)
    except Exception:  # cuBLASLt refuses the shape (M = 1): no baseline, the hunt goes on
        cublas_us = float("nan")
    c = select_config("dense", m, n, k, 1, torch.cuda.get_device_properties(0).multi_processor_count)
    return dict(m=m, n=n, k=k, us=us, cublas_us=cublas_us, diff=diff, unwritten=unwritten,
                tile=f"{c.block_m}x{c.block_n} mc={c.multicast} ks={c.k_splits}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--m", type=int, nargs="+", default=DEFAULT_M)
    p.add_argument("--nk", nargs="+", default=DEFAULT_NK, help="NxK pairs, e.g. 7168x2048")
    p.add_argument("--out", type=Path, help="write every row here (JSON)")
    p.add_argument("--budget-s", type=float, default=420.0, help="stop starting new shapes after this long")
    args = p.parse_args()
    start, rows = time.time(), []
    for m, n, k in grid(args.m, args.nk):
        if time.time() - start > args.budget_s:
            print(f"time budget spent: stopped before {m}x{n}x{k}", flush=True)
            break
        r = measure(m, n, k)
        rows.append(r)
        ratio = r["cublas_us"] / r["us"]
        print(f"{m:5d}x{n:5d}x{k:5d} {r['tile']:24s} {r['us']:8.2f} us  cuBLASLt {r['cublas_us']:8.2f}  "
              f"x{ratio:5.2f}  diff {r['diff']:.1e}  unwritten {r['unwritten']}", flush=True)
    if args.out:
        args.out.write_text(json.dumps(rows, indent=1))
    slow = behind(rows)
    bad = [r for r in rows if r["diff"] > 1e-5 or r["unwritten"]]
    print(f"\n{len(slow)} of {sum(not math.isnan(r['cublas_us']) for r in rows)} shapes behind cuBLASLt:")
    for r in slow:
        print(f"  {r['m']}x{r['n']}x{r['k']} {r['tile']}: {r['us']:.1f} us against {r['cublas_us']:.1f}")
    print(f"{len(bad)} failures")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
