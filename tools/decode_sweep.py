"""Sweep tiles and split-K slices over the small-M dense shapes in one device call: correctness
against the reference and CUPTI kernel time (L2 flushed) of every candidate, next to the reference
time of ../shared/reference_h200.json. For tuning the decode heuristics (config.select_config).

    PYTHONPATH=. python tools/decode_sweep.py [--m 64 128] [--out DIR]
    PYTHONPATH=. python tools/decode_sweep.py --m 65 100 120 128   # partial M blocks (KERNEL.md)
    PYTHONPATH=. python tools/decode_sweep.py --m 256 512           # mid-size M: 256-row tiles, multicast
    PYTHONPATH=. python tools/decode_sweep.py --m 256 320 384 512 640 768 896 1024 1280 1536 2048 3072 \
        --nk 2112x7168 24576x1536 32768x512 7168x16384 4096x7168 7168x2048 1536x7168 7168x4096 \
        --near-model 0.3 --part 0/2     # a sweep like the mid-M refit's (BENCHMARKS.md, thirteenth session)

Candidates per shape: every (BLOCK_M, BLOCK_N) the kernel supports for the shape, unsplit, and
split into 2 to --max-splits slices where the split tiles fit in one wave of clusters; where a shape
has more than one 64-row M block, also the 64-row tiles unsplit with B shared by the pair of M
blocks (multicast "b": 64x64 B ran 65-128 x 4096 x 7168 up to 29% faster than the pick, 2026-11-30).
(A shared by pairs of N blocks, multicast "a", was slower than the best unshared tile on all 24
shapes at M = 64, 65, 100, 128 on 2026-11-30, by 3-31%, and is no longer swept.)
`--near-model F` keeps only the candidates the model rates within F of its best for the shape (and
the pick): a refit's sweep, where most candidates are far off. `--part I/N` times every N-th shape
from the I-th (one process per GPU). The candidates' kernels are compiled first, in a process pool (--jobs).
The heuristics' pick is marked with '*'. The table printed last has each shape's best candidate.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.testing import make_dense_inputs  # noqa: E402
from benchmarks.timing import cupti_time_us  # noqa: E402
from fp8gemm import aot, codegen, launch, reference  # noqa: E402
from fp8gemm.config import (  # noqa: E402
    BLOCK_N_CANDIDATES,
    MAX_BLOCK_N,
    MAX_K_SPLITS,
    MAX_SPLIT_K_ROWS,
    MIN_BLOCK_N,
    max_stages,
    select_config,
    spans_at_most_two_scale_blocks,
    tile_cost_us,
    with_tiles,
)
from fp8gemm.layout import get_tma_aligned_size  # noqa: E402
from fp8gemm.reference import calc_diff  # noqa: E402

REF = Path(__file__).resolve().parents[1] / "benchmarks" / "reference_h200.json"
NK = [(2112, 7168), (24576, 1536), (32768, 512), (7168, 16384), (4096, 7168), (7168, 2048)]
BLOCK_N = tuple(bn for bn in BLOCK_N_CANDIDATES if spans_at_most_two_scale_blocks(bn))


def candidates(m: int, n: int, k: int, num_sms: int, max_splits: int = MAX_K_SPLITS,
               max_waves: int | None = None) -> list[tuple[int, int, int, str]]:
    """(BLOCK_M, BLOCK_N, K slices, multicast) of every candidate for one shape.

    Past MAX_SPLIT_K_ROWS rows (the mid-size M the heuristics reach with whole tiles): 256-row tiles
    too, no split-K, and the 128- and 256-row tiles also with A shared (an even N-block count) or B
    shared. Tiles of at most `max_waves` waves (default: 8 past the decode rows, 3 below)."""
    out = []
    num_k_blocks = math.ceil(k / 128)
    mid = m > MAX_SPLIT_K_ROWS
    for bm in (64, 128, 256) if mid else (64, 128):
        if bm > 64 and m <= 64:
            continue
        for bn in BLOCK_N:
            if not MIN_BLOCK_N[bm] <= bn <= MAX_BLOCK_N[bm]:
                continue
            n_blocks = math.ceil(n / bn)
            tiles = math.ceil(m / bm) * n_blocks
            for ks in range(1, 2 if mid else max_splits + 1):
                if ks > 1 and (tiles > num_sms // ks or math.ceil(num_k_blocks / ks) < 4):
                    continue
                if ks == 1 and tiles > (max_waves or (8 if mid else 3)) * num_sms:
                    continue
                if max_stages(bm, bn, k_splits=ks) < 3:
                    continue
                out.append((bm, bn, ks, "none"))
                if bm == 64 and ks == 1 and m > 64 and not mid:
                    out.append((bm, bn, ks, "b"))
                if mid and bm > 64:
                    if n_blocks % 2 == 0:   # A pairs N blocks
                        out.append((bm, bn, ks, "a"))
                    out.append((bm, bn, ks, "b"))
    return out


def near_model(m: int, n: int, k: int, cands: list[tuple[int, int, int, str]], within: float,
               num_sms: int) -> list[tuple[int, int, int, str]]:
    """The candidates whose model cost (config.tile_cost_us) is within `within` of the best one's,
    and the heuristics' pick."""
    def cost(c):
        bm, bn, ks, mc = c
        shared_b = bm == 64 and mc == "b"
        return tile_cost_us("dense", m, n, k, bm, bn, 1, num_sms, k_splits=ks, shared_b=shared_b)
    best = min(cost(c) for c in cands)
    pick = select_config("dense", m, n, k, 1, num_sms)
    return [c for c in cands if cost(c) <= best * (1 + within)
            or c == (pick.block_m, pick.block_n, pick.k_splits, pick.multicast)]


def _sweep_configs(ms: list[int], nk: list[tuple[int, int]], num_sms: int, max_splits: int,
                   within: float | None = None) -> dict:
    """{(m, n, k): (the pick, [(candidate, its config), ...])} for every shape of the sweep."""
    out = {}
    for m in ms:
        for n, k in nk:
            pick = select_config("dense", m, n, k, 1, num_sms)
            if within is None:
                cands = candidates(m, n, k, num_sms, max_splits)
            else:   # every wave count: the model decides which candidates are near
                cands = near_model(m, n, k, candidates(m, n, k, num_sms, max_splits, max_waves=10**6), within,
                                   num_sms)
            out[m, n, k] = pick, [((bm, bn, ks, mc), with_tiles(pick, bm, bn, mc, k_splits=ks))
                                  for bm, bn, ks, mc in cands]
    return out


def _precompile(configs: dict, jobs: int | None) -> None:
    """Compiles every candidate's kernel into the JIT cache in a process pool (the sweep then only
    loads them): kernels depend on the tiles, N and K, not on M, so the M values share most."""
    kernels = {codegen.kernel_name(cfg): codegen.kernel_source(cfg)
               for _, cands in configs.values() for _, cfg in cands}
    with aot._executor(jobs or os.cpu_count() or 1) as pool:
        futures = [pool.submit(aot._compile_one, source, name) for name, source in kernels.items()]
        errors = [e for f in futures if (e := f.result()[1])]
    print(f"compiled {len(kernels)} kernels, {len(errors)} errors", *errors[:5], sep="\n", flush=True)


def _describe(row: dict) -> str:
    return f"{row['us']:6.2f} ({row['bm']}x{row['bn']} ks{row['ks']} {row['mc']})"


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--m", type=int, nargs="*", default=[64, 128])
    p.add_argument("--out", default=None)
    p.add_argument("--jobs", type=int, default=None, help="compile processes (default: one per CPU)")
    p.add_argument("--max-splits", type=int, default=MAX_K_SPLITS,
                   help="split-K slices to try (clusters of up to 8 CTAs; the heuristics use at most "
                        f"{MAX_K_SPLITS})")
    p.add_argument("--nk", nargs="*", default=[f"{n}x{k}" for n, k in NK],
                   help="N x K pairs, NxK (default: the six of shapes.json)")
    p.add_argument("--near-model", type=float, default=None, metavar="F",
                   help="only the candidates the model rates within F of its best (and the pick)")
    p.add_argument("--part", default="0/1", metavar="I/N", help="time every N-th shape from the I-th")
    args = p.parse_args()
    nk = [tuple(int(v) for v in s.split("x")) for s in args.nk]
    part, parts = (int(v) for v in args.part.split("/"))
    num_sms = torch.cuda.get_device_properties(0).multi_processor_count
    configs = _sweep_configs(args.m, nk, num_sms, args.max_splits, args.near_model)
    shapes = [(m, n, k) for m in args.m for n, k in nk][part::parts]
    configs = {s: configs[s] for s in shapes}
    _precompile(configs, args.jobs)
    ref_times = {(r["m"], r["n"], r["k"]): r["reference_us"] for r in json.loads(REF.read_text())["dense"]}
    rows, best = [], []
    for m, n, k in shapes:
        x = make_dense_inputs(m, n, k)
        want = reference.gemm_nt(x.a, x.sa, x.b, x.sb)
        out = torch.empty(m, n, dtype=torch.bfloat16, device="cuda")
        pick, cands = configs[m, n, k]
        results = []
        for (bm, bn, ks, mc), cfg in cands:
            try:
                run = launch._prepare(cfg, x.a, (m, x.sa_tma.shape[1]), get_tma_aligned_size(m, 4),
                                      x.sa_tma, x.b, x.sb, out, None, m, m, num_sms)
                out.fill_(float("nan"))
                run()
                torch.cuda.synchronize()
                diff = calc_diff(out, want)
                us = cupti_time_us(run, iters=30)
            except Exception as e:  # noqa: BLE001 - a failing candidate is reported, the sweep goes on
                print(f"{m}x{n}x{k} {bm}x{bn} ks={ks} mc={mc}: ERROR {type(e).__name__}: {str(e)[:200]}",
                      flush=True)
                continue
            picked_here = (bm, bn, ks, mc) == (pick.block_m, pick.block_n, pick.k_splits, pick.multicast)
            mark = "*" if picked_here else " "
            ok = diff < 1e-5
            row = dict(m=m, n=n, k=k, bm=bm, bn=bn, ks=ks, mc=mc, us=us, diff=diff, pick=mark == "*")
            rows.append(row)
            results.append(row)
            print(f"{m:4d}x{n:5d}x{k:5d} {mark}{bm:3d}x{bn:<3d} ks={ks} mc={mc:4s} {us:7.2f} us "
                  f"diff={diff:.1e}"
                  f"{'' if ok else '  WRONG'}", flush=True)
        good = [r for r in results if r["diff"] < 1e-5]
        b = min(good, key=lambda r: r["us"])
        picked = next((r for r in results if r["pick"]), None)
        best.append((m, n, k, b, picked, ref_times.get((m, n, k))))
    print("\n==== best per shape (us; ref = reference_h200.json)")
    for m, n, k, b, picked, ref in best:
        pk = _describe(picked) if picked else "-"
        best_at = _describe(b)
        print(f"{m:4d}x{n:5d}x{k:5d} best {best_at}  pick {pk}  ref {ref}")
    wrong = [r for r in rows if not r["diff"] < 1e-5]
    print(f"{len(rows)} candidates, {len(wrong)} wrong")
    if args.out:
        name = "decode_sweep.json" if parts == 1 else f"decode_sweep_part{part}.json"
        Path(args.out, name).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
