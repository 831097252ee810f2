"""Kernel development check for one device call: correctness of a list of cases against the
reference (outputs poisoned with NaN, untouched rows checked), then rough timings.

    python tools/dev_check.py [--time]
"""

from __future__ import annotations

import argparse
import sys
import time

import torch

import fp8gemm
from benchmarks.testing import calc_diff, make_contiguous_inputs, make_dense_inputs, make_masked_inputs
from fp8gemm import reference


def _time(fn, iters: int = 20) -> float:
    fn()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(iters):
        fn()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / iters * 1e3


def check_dense(m, n, k, timing):
    x = make_dense_inputs(m, n, k)
    out = torch.full((m, n), float("nan"), dtype=torch.bfloat16, device="cuda")
    fp8gemm.gemm_fp8_fp8_bf16_nt((x.a, x.sa_tma), (x.b, x.sb), out)
    torch.cuda.synchronize()
    ref = reference.gemm_nt(x.a, x.sa, x.b, x.sb)
    nan = out.isnan().sum().item()
    d_ref = calc_diff(out, ref)
    d_true = calc_diff(out, x.a_bf16.float() @ x.b_bf16.float().t())
    us = _time(lambda: fp8gemm.gemm_fp8_fp8_bf16_nt((x.a, x.sa_tma), (x.b, x.sb), out)) if timing else 0
    cfg = fp8gemm.launch.select_config("dense", m, n, k, 1, fp8gemm.get_num_sms())
    ok = nan == 0 and d_ref < 1e-5 and d_true < 1e-3
    return ok, f"dense {m}x{n}x{k}: nan={nan} diff_ref={d_ref:.2e} diff_true={d_true:.2e} " \
               f"{us:.1f}us {2*m*n*k/us/1e6 if us else 0:.0f}TF [{cfg}]"


def check_contiguous(sizes, n, k, timing):
    x = make_contiguous_inputs(sizes, n, k)
    total = x.a.shape[0]
    out = torch.full((total, n), float("nan"), dtype=torch.bfloat16, device="cuda")
    fp8gemm.m_grouped_gemm_fp8_fp8_bf16_nt_contiguous((x.a, x.sa_tma), (x.b, x.sb), out, x.m_indices)
    torch.cuda.synchronize()
    ref = torch.full_like(out, float("nan"))
    reference.m_grouped_contiguous_reference(x.a, x.sa, x.b, x.sb, ref, x.m_indices)
    valid = x.m_indices >= 0
    pad_ok = out[~valid].isnan().all().item()
    nan = out[valid].isnan().sum().item()
    d_ref = calc_diff(out[valid], ref[valid]) if valid.any() else 0.0
    us = _time(lambda: fp8gemm.m_grouped_gemm_fp8_fp8_bf16_nt_contiguous(
        (x.a, x.sa_tma), (x.b, x.sb), out, x.m_indices)) if timing else 0
    flops = 2 * x.valid_rows * n * k
    ok = pad_ok and nan == 0 and d_ref < 1e-5
    return ok, f"contig {len(sizes)}g rows={total} {n}x{k}: pad_untouched={pad_ok} nan={nan} " \
               f"diff_ref={d_ref:.2e} {us:.1f}us {flops/us/1e6 if us else 0:.0f}TF"


def check_masked(counts, max_m, n, k, expected, timing):
    x = make_masked_inputs(counts, max_m, n, k)
    g = len(counts)
    out = torch.full((g, max_m, n), float("nan"), dtype=torch.bfloat16, device="cuda")
    fp8gemm.m_grouped_gemm_fp8_fp8_bf16_nt_masked((x.a, x.sa_tma), (x.b, x.sb), out, x.masked_m, expected)
    torch.cuda.synchronize()
    ref = torch.full_like(out, float("nan"))
    reference.m_grouped_masked_reference(x.a, x.sa, x.b, x.sb, ref, x.masked_m)
    rows = torch.arange(max_m, device="cuda")[None, :] < x.masked_m.clamp(max=max_m)[:, None]
    pad_ok = out[~rows].isnan().all().item()
    nan = out[rows].isnan().sum().item()
    d_ref = calc_diff(out[rows], ref[rows]) if rows.any() else 0.0
    us = _time(lambda: fp8gemm.m_grouped_gemm_fp8_fp8_bf16_nt_masked(
        (x.a, x.sa_tma), (x.b, x.sb), out, x.masked_m, expected)) if timing else 0
    flops = 2 * rows.sum().item() * n * k
    ok = pad_ok and nan == 0 and d_ref < 1e-5
    return ok, f"masked {g}g max_m={max_m} {n}x{k}: untouched={pad_ok} nan={nan} diff_ref={d_ref:.2e} " \
               f"{us:.1f}us {flops/us/1e6 if us else 0:.0f}TF"


QUICK = [
    ("dense", (128, 256, 512)),
    ("dense", (64, 2112, 7168)),
    ("dense", (1, 512, 256)),
    ("dense", (300, 640, 1024)),
    ("dense", (4096, 7168, 2048)),
    ("dense", (1000, 4096, 7168)),
    ("dense", (100, 4096, 7168)),
    ("dense", (1, 7168, 16384)),
    ("dense", (128, 7168, 16384)),
    ("dense", (64, 7168, 16384)),
    ("dense", (4096, 2112, 7168)),  # BN=192 with B multicast: tiles over two B scale blocks
    ("contiguous", ([1024, 1000, 1024, 900], 2112, 1024)),  # BN=192, unicast
    ("contiguous", ([100, 300, 0, 256], 512, 1024)),
    ("contiguous", ([8192] * 4, 4096, 7168)),
    ("masked", ([20, 0, 64, 130], 256, 512, 1024, 64)),
    ("masked", ([1024], 1024, 4096, 7168, 1024)),
    ("masked", ([18, 25, 20, 22] * 8, 128, 6144, 7168, 20)),
]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--time", action="store_true")
    args = parser.parse_args()
    failures = 0
    for layout, params in QUICK:
        t0 = time.time()
        try:
            fn = {"dense": check_dense, "contiguous": check_contiguous, "masked": check_masked}[layout]
            ok, line = fn(*params, args.time)
        except Exception as e:  # report and continue: one broken case must not hide the others
            ok, line = False, f"{layout} {params}: {type(e).__name__}: {e}"
        failures += not ok
        print(("PASS " if ok else "FAIL ") + line + f" ({time.time() - t0:.1f}s)", flush=True)
    print(f"{failures} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
