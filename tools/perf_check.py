"""One device call: correctness of the kernels the heuristics pick (and of forced tile variants),
then CUPTI kernel times of every shapes.json shape against the reference times of
../shared/reference_h200.json and cuBLASLt measured in the same run.

    PYTHONPATH=. python tools/perf_check.py [--no-check] [--no-time] [--sweep] [--repeat N] [--out DIR]

Grouped shapes draw group sizes m_per_group * U(0.7, 1.3) as the reference run did; they are
compared by TFLOPS over valid rows (the draws differ), dense shapes by time.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_compare  # noqa: E402

import fp8gemm  # noqa: E402
from benchmarks.baselines import scaled_mm_blockwise  # noqa: E402
from benchmarks.testing import make_contiguous_inputs, make_dense_inputs, make_masked_inputs  # noqa: E402
from benchmarks.timing import cupti_time_us  # noqa: E402
from fp8gemm import launch, reference  # noqa: E402
from fp8gemm.config import select_config, with_tiles  # noqa: E402
from fp8gemm.layout import get_tma_aligned_size  # noqa: E402
from fp8gemm.reference import calc_diff  # noqa: E402

# A copy of ../shared/reference_h200.json (the device machine sees only this repository).
REF = Path(__file__).resolve().parents[1] / "benchmarks" / "reference_h200.json"

DENSE_CASES = [(1, 512, 256), (7, 520, 1008), (33, 4096, 7168), (65, 2112, 7168), (100, 7168, 2048),
               (128, 256, 512), (257, 640, 1040), (300, 4104, 1024), (1000, 4096, 7168), (4096, 2112, 7168),
               (4096, 7168, 2048), (2304, 24576, 1536), (4000, 7168, 2048), (777, 1544, 2064),
               (64, 2112, 7168), (300, 640, 1024), (100, 4096, 7168), (1, 7168, 16384), (64, 7168, 16384),
               (128, 7168, 16384)]
CONTIG_CASES = [([300, 700, 129, 1000, 0, 513, 640, 900], 2112, 1024), ([100, 300, 0, 256], 512, 1024),
                ([4096, 3000, 5000, 4100], 4096, 7168), ([1500, 2200, 900, 3100], 7168, 2048),
                ([129, 1, 600], 520, 1040), ([1024, 1000, 1024, 900], 2112, 1024), ([8192] * 4, 4096, 7168)]
MASKED_CASES = [([20, 0, 64, 130], 256, 512, 1024, 64), ([900], 1024, 4096, 7168, 1024),
                ([18, 25, 20, 22] * 8, 128, 6144, 7168, 20), ([180, 0, 210, 150] * 8, 256, 6144, 7168, 192),
                ([300, 511, 0, 260], 512, 7168, 2048, 256), ([1, 100, 65], 128, 520, 1040, 64),
                ([1024], 1024, 4096, 7168, 1024)]


def check_dense(m, n, k):
    x = make_dense_inputs(m, n, k)
    out = torch.full((m, n), float("nan"), dtype=torch.bfloat16, device="cuda")
    fp8gemm.gemm_fp8_fp8_bf16_nt((x.a, x.sa_tma), (x.b, x.sb), out)
    ref = reference.gemm_nt(x.a, x.sa, x.b, x.sb)
    nan = out.isnan().sum().item()
    d = calc_diff(out, ref)
    cfg = select_config("dense", m, n, k, 1, fp8gemm.get_num_sms())
    return nan == 0 and d < 1e-5, f"dense {m}x{n}x{k} nan={nan} diff={d:.1e} [{cfg}]"


def check_contiguous(sizes, n, k):
    x = make_contiguous_inputs(sizes, n, k)
    out = torch.full((x.a.shape[0], n), float("nan"), dtype=torch.bfloat16, device="cuda")
    fp8gemm.m_grouped_gemm_fp8_fp8_bf16_nt_contiguous((x.a, x.sa_tma), (x.b, x.sb), out, x.m_indices)
    ref = torch.full_like(out, float("nan"))
    reference.m_grouped_contiguous_reference(x.a, x.sa, x.b, x.sb, ref, x.m_indices)
    valid = x.m_indices >= 0
    pad_ok = out[~valid].isnan().all().item()
    nan = out[valid].isnan().sum().item()
    d = calc_diff(out[valid], ref[valid])
    cfg = select_config("contiguous", x.a.shape[0], n, k, len(sizes), fp8gemm.get_num_sms())
    line = f"contig {sizes} {n}x{k} pad_ok={pad_ok} nan={nan} diff={d:.1e} [{cfg}]"
    return pad_ok and nan == 0 and d < 1e-5, line


def check_masked(counts, max_m, n, k, expected):
    x = make_masked_inputs(counts, max_m, n, k)
    g = len(counts)
    out = torch.full((g, max_m, n), float("nan"), dtype=torch.bfloat16, device="cuda")
    fp8gemm.m_grouped_gemm_fp8_fp8_bf16_nt_masked((x.a, x.sa_tma), (x.b, x.sb), out, x.masked_m, expected)
    ref = torch.full_like(out, float("nan"))
    reference.m_grouped_masked_reference(x.a, x.sa, x.b, x.sb, ref, x.masked_m)
    rows = torch.arange(max_m, device="cuda")[None, :] < x.masked_m.clamp(max=max_m)[:, None]
    pad_ok = out[~rows].isnan().all().item()
    nan = out[rows].isnan().sum().item()
    d = calc_diff(out[rows], ref[rows])
    cfg = select_config("masked", expected, n, k, g, fp8gemm.get_num_sms())
    return pad_ok and nan == 0 and d < 1e-5, f"masked {counts[:4]}.. {max_m} {n}x{k} e={expected} " \
                                              f"pad_ok={pad_ok} nan={nan} diff={d:.1e} [{cfg}]"


def variant(base, bm, bn, mc, stages=None, raster=None):
    return with_tiles(base, bm, bn, mc, stages=stages, raster_width=raster)


def prepare_dense_config(cfg, x, out, m):
    """The prepared launch of an explicit dense config on these buffers (call it to run)."""
    kb = x.sa_tma.shape[1]
    return launch._prepare(cfg, x.a, (m, kb), get_tma_aligned_size(m, 4), x.sa_tma, x.b, x.sb, out, None, m,
                           m, fp8gemm.get_num_sms())


def sweep_dense(m, n, k, variants, lines):
    x = make_dense_inputs(m, n, k)
    ref = reference.gemm_nt(x.a, x.sa, x.b, x.sb)
    base = select_config("dense", m, n, k, 1, fp8gemm.get_num_sms())
    for v in [base] + [variant(base, *v) for v in variants]:
        out = torch.full((m, n), float("nan"), dtype=torch.bfloat16, device="cuda")
        try:
            run = prepare_dense_config(v, x, out, m)
            run()
            torch.cuda.synchronize()
            d = calc_diff(out, ref)
            us = cupti_time_us(run, iters=15)
            lines.append(f"sweep dense {m}x{n}x{k} BM={v.block_m} BN={v.block_n} mc={v.multicast} "
                         f"s={v.stages} r={v.raster_width}: {us:8.1f} us {2*m*n*k/us/1e6:6.0f} TF "
                         f"diff={d:.1e}")
        except Exception as e:  # one bad variant must not hide the others
            lines.append(f"sweep dense {m}x{n}x{k} {v}: ERROR {type(e).__name__}: {str(e)[:150]}")
        print(lines[-1], flush=True)


def sweep_grouped(layout, sizes, n, k, expected, variants, lines):
    """Forced variants of a grouped shape, through select_config's cache (replaced for the run); each
    variant's valid rows are checked against the reference once (output NaN-poisoned first)."""
    if layout == "contiguous":
        x = make_contiguous_inputs(sizes, n, k)
        out = torch.empty((x.a.shape[0], n), dtype=torch.bfloat16, device="cuda")
        plan_m = x.a.shape[0]
        ref = reference.m_grouped_contiguous(x.a, x.sa, x.b, x.sb, x.m_indices)
        valid = x.m_indices >= 0

        def call():
            fp8gemm.m_grouped_gemm_fp8_fp8_bf16_nt_contiguous((x.a, x.sa_tma), (x.b, x.sb), out, x.m_indices)
    else:
        x = make_masked_inputs(sizes, max(sizes), n, k)
        out = torch.empty((len(sizes), max(sizes), n), dtype=torch.bfloat16, device="cuda")
        plan_m = expected
        ref = reference.m_grouped_masked(x.a, x.sa, x.b, x.sb, x.masked_m)
        valid = torch.arange(max(sizes), device="cuda")[None, :] < x.masked_m[:, None]

        def call():
            fp8gemm.m_grouped_gemm_fp8_fp8_bf16_nt_masked((x.a, x.sa_tma), (x.b, x.sb), out, x.masked_m,
                                                          expected)
    g = len(sizes)
    base = select_config(layout, plan_m, n, k, g, fp8gemm.get_num_sms())
    original = launch.select_config
    for v in [base] + [variant(base, *v) for v in variants]:
        launch.select_config = lambda *a, v=v, **kw: v
        try:
            out.fill_(float("nan"))
            call()
            diff = calc_diff(out[valid], ref[valid])
            us = cupti_time_us(call, iters=10)
            flops = 2 * sum(sizes) * n * k
            lines.append(f"sweep {layout} {g}g {n}x{k} BM={v.block_m} BN={v.block_n} mc={v.multicast} "
                         f"s={v.stages}: {us:8.1f} us {flops/us/1e6:6.0f} TF diff {diff:.1e}")
        except Exception as e:
            lines.append(f"sweep {layout} {n}x{k} {v}: ERROR {type(e).__name__}: {str(e)[:150]}")
        finally:
            launch.select_config = original
        print(lines[-1], flush=True)


def row_name(row: dict) -> str:
    """A timed shape's name, the same in every run (for tools/bench_compare.py)."""
    if row["kind"] == "dense":
        return f"dense {row['m']}x{row['n']}x{row['k']}"
    return f"{row['kind']} {row['groups']}x{row['m_per_group']} {row['n']}x{row['k']}"


def spread_sizes(groups, m_per_group, seed, total=None):
    """m_per_group * U(0.7, 1.3) per group; with `total`, rescaled to sum to it (the reference's rows)."""
    rng = random.Random(seed)
    sizes = [m_per_group * rng.uniform(0.7, 1.3) for _ in range(groups)]
    scale = total / sum(sizes) if total else 1.0
    sizes = [round(s * scale) for s in sizes]
    if total:
        sizes[0] += total - sum(sizes)
    return sizes


def _entry_sizes(index: int, entry: dict) -> list[int]:
    """The rows per group of reference entry `index` of its layout: the reference run's total,
    spread with the index as seed."""
    return spread_sizes(entry["groups"], entry["m_per_group"], index, total=entry["valid_rows"])


def reference_sizes(layout: str, groups: int, m_per_group: int, n: int, k: int) -> list[int]:
    """The rows per group that time_shapes uses for this shapes.json shape."""
    ref = json.loads(REF.read_text())[f"grouped_{layout}"]
    for i, r in enumerate(ref):
        if (r["groups"], r["m_per_group"], r["n"], r["k"]) == (groups, m_per_group, n, k):
            return _entry_sizes(i, r)
    raise KeyError(f"{layout} {groups}x{m_per_group} {n}x{k} is not a reference shape")


def timed_rounds(timers, repeat):
    """Each timer's results over `repeat` passes. The timers run round-robin, pass after pass, so that a
    slow stretch of a shared machine lands on every shape alike rather than on a few."""
    runs = [[] for _ in timers]
    for _ in range(repeat):
        for i, timer in enumerate(timers):
            runs[i].append(timer())
        print(f"timed pass {len(runs[0]) if runs else 0} of {repeat}", flush=True)
    return runs


def time_shapes(lines, rows_out, repeat=1):
    """CUPTI times of every reference shape (the median of `repeat` round-robin passes; every pass's
    figure in the row's `runs_us`), with cuBLASLt's once for the dense shapes."""
    ref = json.loads(REF.read_text())
    num_sms = fp8gemm.get_num_sms()
    cases = []   # (row without times, call, iters)
    for r in ref["dense"]:
        m, n, k = r["m"], r["n"], r["k"]
        x = make_dense_inputs(m, n, k)
        out = torch.empty(m, n, dtype=torch.bfloat16, device="cuda")

        def call(x=x, out=out):
            fp8gemm.gemm_fp8_fp8_bf16_nt((x.a, x.sa_tma), (x.b, x.sb), out)
        try:
            cub = cupti_time_us(scaled_mm_blockwise(x.a, x.sa, x.b, x.sb))
        except Exception:
            cub = float("nan")
        cfg = select_config("dense", m, n, k, 1, num_sms)
        cases.append((dict(kind="dense", m=m, n=n, k=k, cublaslt_us=cub, reference_us=r["reference_us"],
                           config=str(cfg)), call, 30))
    for layout in ("contiguous", "masked"):
        for i, r in enumerate(ref[f"grouped_{layout}"]):
            g, mpg, n, k = r["groups"], r["m_per_group"], r["n"], r["k"]
            sizes = _entry_sizes(i, r)
            if layout == "contiguous":
                x = make_contiguous_inputs(sizes, n, k)
                out = torch.empty((x.a.shape[0], n), dtype=torch.bfloat16, device="cuda")
                cfg = select_config(layout, x.a.shape[0], n, k, g, num_sms)

                def call(x=x, out=out):
                    fp8gemm.m_grouped_gemm_fp8_fp8_bf16_nt_contiguous((x.a, x.sa_tma), (x.b, x.sb), out,
                                                                      x.m_indices)
            else:
                max_m = -(-max(sizes) // 128) * 128
                x = make_masked_inputs(sizes, max_m, n, k)
                out = torch.empty((g, max_m, n), dtype=torch.bfloat16, device="cuda")
                cfg = select_config(layout, mpg, n, k, g, num_sms)

                def call(x=x, out=out, mpg=mpg):
                    fp8gemm.m_grouped_gemm_fp8_fp8_bf16_nt_masked((x.a, x.sa_tma), (x.b, x.sb), out,
                                                                  x.masked_m, mpg)
            cases.append((dict(kind=layout, groups=g, m_per_group=mpg, n=n, k=k, valid_rows=sum(sizes),
                               reference_us=r["reference_us"],
                               reference_tflops=2 * r["valid_rows"] * n * k / r["reference_us"] / 1e6,
                               config=str(cfg)), call, 15))
    runs = timed_rounds([lambda call=call, iters=iters: cupti_time_us(call, iters=iters)
                         for _, call, iters in cases], repeat)
    for (row, _, _), times in zip(cases, runs, strict=True):
        ours = statistics.median(times)
        row = dict(row, ours_us=ours, runs_us=times)
        cfg = row["config"].split(": ", 1)[-1]
        if row["kind"] == "dense":
            m, n, k = row["m"], row["n"], row["k"]
            lines.append(f"dense {m:5d}x{n:5d}x{k:5d} ours {ours:8.1f} ref {row['reference_us']:8.1f} "
                         f"cuBLASLt {row['cublaslt_us']:8.1f} ref/ours {row['reference_us']/ours:5.2f} "
                         f"{2*m*n*k/ours/1e6:6.0f} TF  {cfg}")
        else:
            row["ours_tflops"] = 2 * row["valid_rows"] * row["n"] * row["k"] / ours / 1e6
            ours_tf, ref_tf = row["ours_tflops"], row["reference_tflops"]
            shape = f"{row['groups']:2d}x{row['m_per_group']:5d} {row['n']}x{row['k']}"
            lines.append(f"{row['kind'][:6]} {shape} ours {ours:8.1f} us {ours_tf:6.0f} TF, "
                         f"ref {ref_tf:6.0f} TF ratio {ours_tf / ref_tf:5.2f}  {cfg}")
        if repeat > 1:
            lines[-1] += "  runs " + " ".join(f"{t:.1f}" for t in times)
        rows_out.append(row)
        print(lines[-1], flush=True)


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--no-check", action="store_true")
    p.add_argument("--no-time", action="store_true")
    p.add_argument("--sweep", action="store_true")
    p.add_argument("--out", type=Path)
    p.add_argument("--repeat", type=int, default=1,
                   help="timed passes over every shape, round-robin; the median is reported")
    p.add_argument("--baseline", type=Path,
                   help="an earlier run's perf_check.json: report the shapes that got slower")
    args = p.parse_args()
    failures, lines, rows = 0, [], []
    if not args.no_check:
        cases = [(check_dense, c) for c in DENSE_CASES] + [(check_contiguous, c) for c in CONTIG_CASES] + \
                [(check_masked, c) for c in MASKED_CASES]
        for fn, params in cases:
            t0 = time.time()
            try:
                ok, line = fn(*params)
            except Exception as e:
                ok, line = False, f"{fn.__name__} {params}: {type(e).__name__}: {str(e)[:300]}"
            failures += not ok
            lines.append(("PASS " if ok else "FAIL ") + line + f" ({time.time() - t0:.1f}s)")
            print(lines[-1], flush=True)
    if args.sweep:
        # masked shapes of shapes.json with the reference run's valid rows
        for g, mpg, n, k, rows, tiles in [
                (1, 1024, 4096, 7168, 909, [(128, 128, "a"), (128, 160, "a"), (128, 144, "b")]),
                (2, 512, 4096, 7168, 1069, [(128, 128, "a"), (128, 160, "a"), (128, 144, "b")]),
                (4, 256, 4096, 7168, 1155, [(128, 128, "a"), (128, 160, "a")]),
                (1, 1024, 7168, 2048, 871, [(128, 160, "b"), (128, 128, "a"), (128, 144, "a")]),
                (2, 512, 7168, 2048, 958, [(128, 160, "b"), (128, 128, "a"), (128, 144, "a")]),
                (4, 256, 7168, 2048, 950, [(128, 128, "a"), (128, 144, "a")]),
                (32, 192, 6144, 7168, 5750, [(128, 160, "b"), (128, 128, "a")]),
                (32, 20, 6144, 7168, 624, [(64, 128, "b"), (64, 128, "a"), (64, 160, "b"), (64, 64, "a")])]:
            sweep_grouped("masked", spread_sizes(g, mpg, g, rows), n, k, mpg, tiles, lines)
    if not args.no_time:
        time_shapes(lines, rows, args.repeat)
        dense = [r for r in rows if r["kind"] == "dense"]
        ratios = [r["reference_us"] / r["ours_us"] for r in dense]
        lines.append(f"dense geomean ref/ours {math.exp(statistics.mean(map(math.log, ratios))):.3f}")
        if args.baseline:
            lines += bench_compare.report(rows, args.baseline, row_name, "ours_us")
    print("\n==== summary ====")
    print("\n".join(lines))
    print(f"{failures} failures")
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "perf_check.json").write_text(json.dumps(rows, indent=1))
        (args.out / "perf_check.txt").write_text("\n".join(lines) + f"\n{failures} failures\n")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
