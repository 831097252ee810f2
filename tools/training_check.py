"""The training GEMMs' kernel (fp8_gemm_fp32.cuh) on the GPU in one run: correctness against
`fp8gemm.reference` (computed on the GPU) on fresh random inputs, then CUPTI times (L2 flushed) of
the issue's target shapes. Exits non-zero if any result is wrong.

    python tools/training_check.py             # checks and times
    python tools/training_check.py --no-time   # checks only
    python tools/training_check.py --tiles 128x96 128x160:tma   # also time forced variants
    python tools/training_check.py --json OUT.json --baseline EARLIER.json   # save; flag slowdowns

Checks: NaN-poisoned outputs, c = None / d is c / another c, dense K % 128 != 0 and odd N, 0-token
groups (their d stays as it was), odd token counts, forced tiles (64- and 128-row, 32-160 wide, both
epilogues), and a CUDA graph replayed after the token counts changed on the GPU.
"""

from __future__ import annotations

import argparse
import functools
import json
import random
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tools"))

import bench_compare  # noqa: E402

import fp8gemm  # noqa: E402
from benchmarks.timing import cupti_time_us  # noqa: E402
from fp8gemm import config_fp32, launch, reference  # noqa: E402
from fp8gemm.reference import calc_diff  # noqa: E402

# Output within this of the reference (FP32 output; only the tensor cores' accumulation inside a
# 128-deep block, which keeps about 14 bits (DeepSeek-V3 report), and the fused promotion differ).
MAX_DIFF = 1e-6
# Per element: |d - reference| <= MAX_ELEMENT_ERROR * sum over k of |a sa| |b sb| (+ |c|): about
# 4 k-steps x 2^-13 of the block's magnitude. A wrong element (a missed or doubled K block, a wrong
# scale) is off by a sizable share of that sum; calc_diff alone would not see a few of them.
MAX_ELEMENT_ERROR = 2.0**-10
FAILURES: list[str] = []


def _check(name: str, got: torch.Tensor, want: torch.Tensor, magnitude: torch.Tensor | None = None,
           bound: float = MAX_DIFF) -> float:
    nan = int(got.isnan().sum())
    diff = calc_diff(got.double(), want.double()) if nan == 0 else float("nan")
    worst = 0.0
    if magnitude is not None and nan == 0:
        worst = float(((got.double() - want.double()).abs() / (magnitude.double() + 1e-30)).max())
    ok = nan == 0 and diff < bound and worst <= MAX_ELEMENT_ERROR
    if not ok:
        FAILURES.append(name)
    print(f"{'ok  ' if ok else 'FAIL'} {name:60s} diff {diff:.2e}  max err/|terms| {worst:.1e}  NaN {nan}",
          flush=True)
    return diff


def _magnitude(a: torch.Tensor, sa: torch.Tensor, b: torch.Tensor, sb: torch.Tensor) -> torch.Tensor:
    """sum over k of |a[i, k] sa[i, k / 128]| |b[j, k] sb[j, k / 128]| (the scales row-major or not)."""
    cols = torch.arange(a.shape[1], device=a.device) // 128
    return (a.float().abs() * sa.float()[:, cols]) @ (b.float().abs() * sb.float()[:, cols]).T


def _cm(x: torch.Tensor) -> torch.Tensor:
    return fp8gemm.get_col_major_tma_aligned_tensor(x)


def dense_operands(m: int, n: int, k: int, seed: int):
    gen = torch.Generator(device="cuda").manual_seed(seed)
    dy = torch.randn(k, m, generator=gen, device="cuda").bfloat16()
    x = torch.randn(k, n, generator=gen, device="cuda").bfloat16()
    a, sa = fp8gemm.per_channel_transpose_cast_to_fp8(dy)
    b, sb = fp8gemm.per_channel_transpose_cast_to_fp8(x)
    return a, sa, b, sb


def check_dense(m: int, n: int, k: int) -> None:
    a, sa, b, sb = dense_operands(m, n, k, m + n + k)
    c = torch.randn(m, n, device="cuda") * 10
    want = reference.gemm_nt_fp32(a, sa, b, sb)
    magnitude = _magnitude(a, sa, b, sb)
    d = torch.full((m, n), float("nan"), device="cuda")
    fp8gemm.fp8_gemm_nt((a, _cm(sa)), (b, _cm(sb)), d)
    _check(f"dense {m}x{n}x{k} c=None", d, want, magnitude)
    d.fill_(float("nan"))
    fp8gemm.fp8_gemm_nt((a, sa), (b, sb), d, c=c)   # row-major scales: converted
    _check(f"dense {m}x{n}x{k} c (another tensor)", d, want + c, magnitude + c.abs())
    fp8gemm.fp8_gemm_nt((a, _cm(sa)), (b, _cm(sb)), c, c=c)
    _check(f"dense {m}x{n}x{k} d is c", c, d)


def k_grouped_operands(ks: list[int], m: int, n: int, seed: int):
    gen = torch.Generator(device="cuda").manual_seed(seed)
    dy = torch.randn(sum(ks), m, generator=gen, device="cuda").bfloat16()
    x = torch.randn(sum(ks), n, generator=gen, device="cuda").bfloat16()
    a, sa = fp8gemm.k_grouped_per_channel_transpose_cast_to_fp8(dy, ks, tma_aligned_scales=True)
    b, sb = fp8gemm.k_grouped_per_channel_transpose_cast_to_fp8(x, ks, tma_aligned_scales=True)
    return a, sa, b, sb


def check_k_grouped(ks: list[int], m: int, n: int, label: str = "") -> None:
    a, sa, b, sb = k_grouped_operands(ks, m, n, len(ks) + m + n)
    g = len(ks)
    ks_tensor = torch.tensor(ks, dtype=torch.int32, device="cuda")
    c = torch.randn(g, m, n, device="cuda") * 32
    want = reference.k_grouped_contiguous(a, sa, b, sb, ks)          # 0-token groups: zeros
    name = f"k-grouped {label}g={g} {m}x{n} ks={ks if g <= 4 else '...'}"
    d = torch.full((g, m, n), float("nan"), device="cuda")
    fp8gemm.k_grouped_fp8_gemm_nt_contiguous((a, sa), (b, sb), d, ks, ks_tensor)
    full = [i for i, v in enumerate(ks) if v]
    empty = [i for i, v in enumerate(ks) if not v]
    if empty and not d[empty].isnan().all():
        FAILURES.append(name + " empty groups written")
        print(f"FAIL {name}: a 0-token group was written", flush=True)
    offsets = reference.k_grouped_offsets(ks)
    blocks = [(k0, k1, k0 // 128, k1 // 128) for k0, k1 in zip(offsets[:-1], offsets[1:], strict=True)]
    magnitude = torch.stack([_magnitude(a[:, k0:k1], sa[:, b0:b1], b[:, k0:k1], sb[:, b0:b1])
                             for k0, k1, b0, b1 in blocks])
    _check(name + " c=None", d[full], want[full], magnitude[full])
    d = torch.full((g, m, n), float("nan"), device="cuda")
    fp8gemm.k_grouped_fp8_gemm_nt_contiguous((a, sa), (b, sb), d, None, ks_tensor, c=c)
    if empty and not d[empty].isnan().all():
        FAILURES.append(name + " empty groups written (c)")
        print(f"FAIL {name}: a 0-token group was written (another c)", flush=True)
    _check(name + " c (another tensor)", d[full], (want + c)[full], (magnitude + c.abs())[full])
    before = c.clone()
    fp8gemm.k_grouped_fp8_gemm_nt_contiguous((a, sa), (b, sb), c, ks, ks_tensor, c=c)
    if empty and not torch.equal(c[empty], before[empty]):
        FAILURES.append(name + " empty groups changed (d is c)")
    _check(name + " d is c", c[full], d[full])


def check_graph() -> None:
    """A CUDA graph captured with one set of counts, replayed after they changed on the GPU."""
    g, m, n = 4, 256, 384
    capacity = 2048
    ks_tensor = torch.tensor([300, 0, 129, 500], dtype=torch.int32, device="cuda")
    a = torch.zeros(m, capacity, dtype=torch.float8_e4m3fn, device="cuda")
    b = torch.zeros(n, capacity, dtype=torch.float8_e4m3fn, device="cuda")
    sa = _cm(torch.ones(m, capacity // 128, device="cuda"))
    sb = _cm(torch.ones(n, capacity // 128, device="cuda"))
    d = torch.zeros(g, m, n, device="cuda")
    fp8gemm.k_grouped_fp8_gemm_nt_contiguous((a, sa), (b, sb), d, None, ks_tensor, c=d)  # warm up
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        fp8gemm.k_grouped_fp8_gemm_nt_contiguous((a, sa), (b, sb), d, None, ks_tensor, c=d)
    ks = [200, 77, 0, 640]
    qa, qsa, qb, qsb = k_grouped_operands(ks, m, n, 7)
    a[:, : qa.shape[1]].copy_(qa)
    b[:, : qb.shape[1]].copy_(qb)
    sa[:, : qsa.shape[1]].copy_(qsa)
    sb[:, : qsb.shape[1]].copy_(qsb)
    ks_tensor.copy_(torch.tensor(ks, dtype=torch.int32))
    d.fill_(1.0)
    graph.replay()
    torch.cuda.synchronize()
    want = reference.k_grouped_contiguous(qa, qsa, qb, qsb, ks) + 1.0
    want[2] = 1.0
    _check("k-grouped CUDA graph, counts changed before replay", d, want)


def forced_tiles() -> None:
    original = launch.select_fp32_config
    try:
        for spec in ("64x32", "64x128:tma", "128x32:tma", "128x64", "128x96:tma", "128x144", "128x160",
                     "128x128", "128x160:tma", "64x160"):
            launch.select_fp32_config = forced_fp32_selector(*parse_tiles(spec))
            check_dense(200, 328, 1008)
            check_k_grouped([130, 0, 257], 192, 200, f"{spec} ")
    finally:
        launch.select_fp32_config = original


def counts_for(groups: int, tokens: int, seed: int) -> list[int]:
    rng = random.Random(seed)
    return [int(tokens * rng.uniform(0.7, 1.3)) for _ in range(groups)]


def forced_fp32_selector(bm: int, bn: int, direct: bool, stages: int | None = None):
    """`launch.select_fp32_config` with these tiles, epilogue and stages (None: as many as fit) forced
    onto the current selector's pick (tools/ab_kernel.py's training variants use it too)."""
    original = launch.select_fp32_config

    def select(layout, m, n, groups=1, num_sms=132):
        return config_fp32.with_fp32_tiles(original(layout, m, n, groups, num_sms), bm, bn, stages=stages,
                                          direct_epilogue=direct)
    return select


def parse_tiles(spec: str) -> tuple[int, int, bool]:
    """'BMxBN[:tma]' -> (block_m, block_n, direct_epilogue): ':tma' for the TMA epilogue (else from
    the registers)."""
    tiles, *flags = spec.split(":")
    if set(flags) - {"tma"}:
        raise ValueError(f"tiles {spec!r}: expected BMxBN or BMxBN:tma")
    bm, bn = (int(v) for v in tiles.split("x"))
    return bm, bn, "tma" not in flags


def _time_dense(m: int, n: int, k: int, tiles: list[str], rows: list) -> None:
    a, sa, b, sb = dense_operands(m, n, k, 1)
    sa, sb = _cm(sa), _cm(sb)
    d = torch.zeros(m, n, device="cuda")
    for mode, c in (("d is c", d), ("c=None", None)):
        us = cupti_time_us(functools.partial(fp8gemm.fp8_gemm_nt, (a, sa), (b, sb), d, c=c))
        rows.append((f"dense {m}x{n}x{k} {mode}", us, 2 * m * n * k / us / 1e6))
    original = launch.select_fp32_config
    for spec in tiles:
        launch.select_fp32_config = forced_fp32_selector(*parse_tiles(spec))
        try:
            us = cupti_time_us(functools.partial(fp8gemm.fp8_gemm_nt, (a, sa), (b, sb), d, c=d))
        finally:
            launch.select_fp32_config = original
        rows.append((f"  forced {spec} (d is c)", us, 2 * m * n * k / us / 1e6))


def _time_k_grouped(g: int, m: int, n: int, tokens: int, tiles: list[str], rows: list) -> None:
    ks = counts_for(g, tokens, g * m + n)
    a, sa, b, sb = k_grouped_operands(ks, m, n, 3)
    ks_tensor = torch.tensor(ks, dtype=torch.int32, device="cuda")
    d = torch.zeros(g, m, n, device="cuda")
    flops = 2 * m * n * sum(ks)
    call = functools.partial(fp8gemm.k_grouped_fp8_gemm_nt_contiguous, (a, sa), (b, sb), d, ks, ks_tensor,
                             c=d)
    us = cupti_time_us(call)
    rows.append((f"k-grouped {g}x{m}x{n}x~{tokens} d is c", us, flops / us / 1e6))
    # Stores instead of L2 reductions: how much of the time the reductions cost.
    us = cupti_time_us(functools.partial(fp8gemm.k_grouped_fp8_gemm_nt_contiguous, (a, sa), (b, sb), d, ks,
                                         ks_tensor))
    rows.append((f"k-grouped {g}x{m}x{n}x~{tokens} c=None", us, flops / us / 1e6))
    original = launch.select_fp32_config
    for spec in tiles:
        launch.select_fp32_config = forced_fp32_selector(*parse_tiles(spec))
        try:
            us = cupti_time_us(call)
        finally:
            launch.select_fp32_config = original
        rows.append((f"  forced {spec}", us, flops / us / 1e6))


def time_shapes(extra_tiles: list[str]) -> list[dict]:
    """Times of the issue's shapes (and of forced tiles), printed as a table and returned as rows
    {"case", "us", "tflops"}."""
    rows: list = []
    for i, (m, n, k) in enumerate(((4096, 7168, 16384), (7168, 2048, 8192), (2112, 7168, 8192),
                                   (4096, 4096, 7168))):
        _time_dense(m, n, k, extra_tiles if i == 0 else [], rows)
    # the floor shapes first (forced tiles timed on these), then the other three of its six
    shapes = ((4, 4096, 7168, 8192), (8, 7168, 2048, 4096), (16, 4096, 7168, 2048),
              (4, 7168, 2048, 8192), (8, 4096, 7168, 4096), (16, 7168, 2048, 2048))
    for i, (g, m, n, tokens) in enumerate(shapes):
        _time_k_grouped(g, m, n, tokens, extra_tiles if i < 3 else [], rows)
    print(f"{'case':50s} {'us':>9s} {'TFLOPS':>8s}")
    for name, us, tflops in rows:
        print(f"{name:50s} {us:9.1f} {tflops:8.1f}", flush=True)
    return [{"case": name.strip(), "us": us, "tflops": tflops} for name, us, tflops in rows]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--no-time", action="store_true")
    p.add_argument("--tiles", nargs="*", default=[],
                   help="forced tiles to time as well: BMxBN (direct epilogue) or BMxBN:tma")
    p.add_argument("--json", type=Path, help="also write the timed rows here")
    p.add_argument("--baseline", type=Path, help="an earlier run's --json: report the cases that got slower")
    args = p.parse_args()
    torch.manual_seed(0)
    for m, n, k in ((4096, 7168, 4096), (2112, 7168, 8192), (256, 512, 1008), (129, 4, 16), (64, 200, 384),
                    (7168, 2048, 2048)):
        check_dense(m, n, k)
    for g, m, n, tokens in ((4, 4096, 7168, 1024), (8, 7168, 2048, 512), (16, 4096, 7168, 256)):
        ks = [v | 1 for v in counts_for(g, tokens, g + m)]
        ks[1] = 0
        check_k_grouped(ks, m, n)
    check_k_grouped([0, 300, 0], 256, 512)
    check_k_grouped([1], 64, 64)
    check_graph()
    forced_tiles()
    print(f"{len(FAILURES)} failures" + (f": {FAILURES}" if FAILURES else ""), flush=True)
    if not args.no_time:
        rows = time_shapes(args.tiles)
        if args.json:
            args.json.write_text(json.dumps(rows, indent=1))
        if args.baseline:
            print("\n".join(bench_compare.report(rows, args.baseline, lambda r: r["case"], "us")), flush=True)
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
