"""Time explicit kernel configs on one shape (CUPTI kernel time, L2 flushed): for tuning the heuristics.

    python tools/tune.py dense 4096 7168 16384 --variants "128,192,b" "256,128,a,,3"

`--define NAME[+NAME...]` compiles a variant with `-DNAME` for local experiments (a copy of the
kernel with an `#ifdef NAME` that skips loads, the wgmma or the promotion, say). The production
kernel has no such knobs; docs/KERNEL.md records what the earlier ones measured.
"""

from __future__ import annotations

import argparse

import torch

from benchmarks.testing import calc_diff, make_dense_inputs
from benchmarks.timing import cupti_time_us
from fp8gemm import launch
from fp8gemm.config import select_config, with_tiles


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("layout")
    p.add_argument("m", type=int)
    p.add_argument("n", type=int)
    p.add_argument("k", type=int)
    p.add_argument("--variants", nargs="*", default=[],
                   help="BM,BN,multicast[,raster[,stages[,k_splits]]]")
    p.add_argument("--define", nargs="*", default=["none"],
                   help="none, or macro names joined by + (compiled in as -DNAME), one variant each")
    args = p.parse_args()
    m, n, k = args.m, args.n, args.k
    num_sms = torch.cuda.get_device_properties(0).multi_processor_count
    base = select_config(args.layout, m, n, k, 1, num_sms)
    x = make_dense_inputs(m, n, k)
    ref = x.a_bf16.float() @ x.b_bf16.float().t()
    out = torch.empty(m, n, dtype=torch.bfloat16, device="cuda")
    configs = [base]
    for v in args.variants:
        parts = v.split(",")
        bm, bn, mc = int(parts[0]), int(parts[1]), parts[2]
        extra = [int(p) if p else None for p in parts[3:6]] + [None] * 3
        raster, stages, k_splits = extra[:3]
        configs.append(with_tiles(base, bm, bn, mc, stages=stages, raster_width=raster,
                                  k_splits=k_splits or base.k_splits))
    kb = x.sa_tma.shape[1]
    from fp8gemm.layout import get_tma_aligned_size
    for cfg in configs:
        for flags in args.define:
            fl = () if flags == "none" else tuple(f"-D{f}" for f in flags.split("+"))

            try:
                run = launch._prepare(cfg, x.a, (m, kb), get_tma_aligned_size(m, 4), x.sa_tma, x.b, x.sb, out,
                                      None, m, m, num_sms, fl)
                run()
                torch.cuda.synchronize()
                diff = calc_diff(out, ref)
                us = cupti_time_us(run, iters=30)
                print(f"{str(cfg):90s} r={cfg.raster_width:<3d} {flags:28s} {us:8.1f} us "
                      f"{2*m*n*k/us/1e6:7.0f} TFLOPS diff={diff:.1e}", flush=True)
            except Exception as e:
                print(f"{str(cfg):90s} {flags:28s} ERROR {type(e).__name__}: {str(e)[:200]}", flush=True)


if __name__ == "__main__":
    main()
