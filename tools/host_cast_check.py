"""Decode-issue check on an H200, one run, one table: the host time of one eager GEMM call (dense,
contiguous, masked; direct and through torch.ops, with the pieces of the launch), and the activation
cast's bandwidth (CUPTI, L2 flushed) at [64, 7168], [4096, 7168] and [16384, 7168] for each unroll,
next to an empty kernel of the same grid (the launch floor) and torch's plain ``x.to(float8_e4m3fn)``
(no scales: what a simple elementwise kernel reaches), each checked bit for bit against the torch
version.

    PYTHONPATH=. python tools/host_cast_check.py [--json PATH]

Budgets (issue 11): host time <= 10 us per call, torch.ops within a few us of it; the cast >= 3.5 TB/s
on [4096, 7168] and larger, and within 1 us of the floor at m = 64.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import sys
from pathlib import Path

import torch

if not __package__:  # run as a script: import from this checkout
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.testing import make_contiguous_inputs, make_dense_inputs, make_masked_inputs  # noqa: E402
from benchmarks.timing import cupti_time_us, host_time_us  # noqa: E402
from fp8gemm import gemm, jit, quant_cuda  # noqa: E402
from fp8gemm.jit.driver import raw_launch_kernel_ex  # noqa: E402
from fp8gemm.layout import get_tma_aligned_size  # noqa: E402
from fp8gemm.quant import per_token_cast_to_fp8  # noqa: E402

CAST_SHAPES = [(64, 7168), (4096, 7168), (16384, 7168)]
UNROLLS = (1, 2, 4)
THREADS = quant_cuda.THREADS
CAST = quant_cuda.per_token_cast_to_fp8_cuda
EMPTY_ARGS = (ctypes.c_int(0),)
EMPTY = 'extern "C" __global__ void fp8gemm_cast_floor(int x) { if (x == 12345) __trap(); }'


def _best_host_us(fn, iters: int = 300) -> float:
    return min(host_time_us(fn, iters=iters) for _ in range(5))


def _gemm_cases() -> list[tuple[str, object, object]]:
    """The GPU test's calls (tests/test_host_time_gpu.py): (name, direct call, torch.ops call)."""
    x = make_dense_inputs(128, 7168, 2048)
    out = torch.empty((128, 7168), dtype=torch.bfloat16, device="cuda")
    c = make_contiguous_inputs([100, 37, 128, 5], 512, 7168)
    out_c = torch.empty((c.a.shape[0], 512), dtype=torch.bfloat16, device="cuda")
    mk = make_masked_inputs([3, 0, 17, 8] * 4, 128, 512, 7168)
    out_m = torch.empty((16, 128, 512), dtype=torch.bfloat16, device="cuda")
    ops = torch.ops.fp8gemm
    return [
        ("dense 128x7168x2048",
         lambda: gemm.gemm_fp8_fp8_bf16_nt((x.a, x.sa_tma), (x.b, x.sb), out),
         lambda: ops.gemm_nt(x.a, x.sa_tma, x.b, x.sb, out)),
        ("contiguous 4 groups n=512 k=7168",
         lambda: gemm.m_grouped_gemm_fp8_fp8_bf16_nt_contiguous((c.a, c.sa_tma), (c.b, c.sb), out_c,
                                                                c.m_indices),
         lambda: ops.m_grouped_gemm_nt_contiguous(c.a, c.sa_tma, c.b, c.sb, out_c, c.m_indices)),
        ("masked 16x128 n=512 k=7168",
         lambda: gemm.m_grouped_gemm_fp8_fp8_bf16_nt_masked((mk.a, mk.sa_tma), (mk.b, mk.sb), out_m,
                                                            mk.masked_m, 8),
         lambda: ops.m_grouped_gemm_nt_masked(mk.a, mk.sa_tma, mk.b, mk.sb, out_m, mk.masked_m, 8)),
    ]


def host_times() -> list[dict]:
    from cuda.bindings import driver as cu

    rows = []
    raw = raw_launch_kernel_ex()
    for name, direct, op in _gemm_cases():
        gemm.clear_prepared()
        direct()  # compile, load, prepare: one entry
        op()
        torch.cuda.synchronize()
        (_device, prepared), = gemm._prepared.values()
        row = {"case": name, "direct_us": _best_host_us(direct), "torch_ops_us": _best_host_us(op),
               "prepared_launch_us": _best_host_us(prepared)}
        if isinstance(prepared, jit.Launch):
            cfg, fn, params = prepared._cfg, prepared._fn, prepared._params
            row["bindings_launch_us"] = _best_host_us(
                lambda cfg=cfg, fn=fn, params=params: cu.cuLaunchKernelEx(cfg, fn, params, 0))
            if raw is not None:
                addresses = (cfg.getPtr(), int(fn), params, None)
                row["ctypes_launch_us"] = _best_host_us(lambda addresses=addresses: raw(*addresses))
        rows.append(row)
    return rows


def _same_bits(q: torch.Tensor, s: torch.Tensor, q_ref: torch.Tensor, s_ref: torch.Tensor) -> bool:
    return torch.equal(q.view(torch.uint8), q_ref.view(torch.uint8)) and torch.equal(
        s.contiguous().view(torch.int32), s_ref.contiguous().view(torch.int32))


def _grid(m: int, kb: int, unroll: int) -> int:
    """The cast's grid for bf16 [m, k] (as quant_cuda computes it)."""
    tasks = kb * get_tma_aligned_size(m, 4)
    return ((tasks + unroll - 1) // unroll * 16 + THREADS - 1) // THREADS


def cast_times() -> list[dict]:
    floor_kernel = jit.build(EMPTY, "fp8gemm_cast_floor")
    rows = []
    for m, k in CAST_SHAPES:
        g = torch.Generator(device="cuda").manual_seed(m)
        rows_scale = torch.logspace(-3, 3, m, device="cuda")[:, None]
        x = (torch.randn((m, k), generator=g, device="cuda") * rows_scale).to(torch.bfloat16)
        q_ref, s_ref = per_token_cast_to_fp8(x)  # the torch version, on the GPU
        kb = (k + 127) // 128
        nbytes = m * k * 2 + m * k + kb * get_tma_aligned_size(m, 4) * 4
        plain_us = cupti_time_us(lambda x=x: x.to(torch.float8_e4m3fn), iters=40)
        rows.append({"m": m, "k": k, "torch_plain_cast_us": plain_us,
                     "torch_plain_cast_tb_s": m * k * 3 / plain_us / 1e6})
        for unroll in UNROLLS:
            q, s = quant_cuda.per_token_cast_to_fp8_cuda(x, unroll=unroll)
            exact = _same_bits(q, s, q_ref, s_ref)
            us = cupti_time_us(lambda x=x, u=unroll: CAST(x, unroll=u), iters=40)
            grid = _grid(m, kb, unroll)
            floor = cupti_time_us(lambda g=grid: floor_kernel.launch(g, THREADS, 0, EMPTY_ARGS), iters=40)
            rows.append({"m": m, "k": k, "unroll": unroll, "us": us, "tb_s": nbytes / us / 1e6,
                         "floor_us": floor, "bit_exact": exact, "grid": grid})
    # The public call's host time at the decode size (what a decode step pays) and at the largest,
    # and its two parts: the outputs' allocation and the prepared launch (the 2026-11-30 hosts gave
    # 16-30 us for the whole call on unchanged code, against ~7 us for a GEMM call).
    for m, k in (CAST_SHAPES[0], CAST_SHAPES[-1]):
        x = torch.randn((m, k), device="cuda").to(torch.bfloat16)
        host = _best_host_us(lambda x=x: per_token_cast_to_fp8(x, tma_aligned_scales=True), iters=200)
        q, _ = per_token_cast_to_fp8(x, tma_aligned_scales=True)
        plan = next(p for key, p in quant_cuda._plans.items()
                    if key[0] == x.shape and key[1] == x.dtype and key[3] is None)   # the public call's
        storage = torch.empty(plan.storage_numel, dtype=torch.float32, device=x.device)

        def allocate(x=x, plan=plan):   # the two allocations of quant_cuda.cast_if_supported
            return (torch.empty_like(x, dtype=torch.float8_e4m3fn),
                    torch.empty(plan.storage_numel, dtype=torch.float32, device=x.device))
        alloc = _best_host_us(allocate, iters=200)
        launch = _best_host_us(lambda x=x, q=q, st=storage, plan=plan: quant_cuda._launch(plan, x, q, st),
                               iters=200)
        rows.append({"m": m, "k": k, "public_call_host_us": host, "allocation_host_us": alloc,
                     "prepared_launch_host_us": launch})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    print(f"{torch.cuda.get_device_name()}, torch {torch.__version__}, default unroll {quant_cuda.UNROLL}",
          flush=True)
    host = host_times()
    nan = float("nan")
    print(f"{'host time per call (us)':34} {'direct':>7} {'ops':>7} {'launch':>7} {'bindings':>9} "
          f"{'ctypes':>7}")
    for r in host:
        print(f"{r['case']:34} {r['direct_us']:7.2f} {r['torch_ops_us']:7.2f} {r['prepared_launch_us']:7.2f} "
              f"{r.get('bindings_launch_us', nan):9.2f} {r.get('ctypes_launch_us', nan):7.2f}", flush=True)
    cast = cast_times()
    print(f"{'cast bf16 (CUPTI, L2 flushed)':22} {'unroll':>6} {'grid':>6} {'us':>7} {'TB/s':>6} "
          f"{'floor us':>9} {'exact':>6}")
    for r in cast:
        if "unroll" in r:
            print(f"[{r['m']}, {r['k']}]{'':10} {r['unroll']:6d} {r['grid']:6d} {r['us']:7.2f} "
                  f"{r['tb_s']:6.2f} {r['floor_us']:9.2f} {r['bit_exact']!s:>6}")
        elif "torch_plain_cast_us" in r:
            print(f"[{r['m']}, {r['k']}] torch x.to(fp8), no scales: {r['torch_plain_cast_us']:.2f} us, "
                  f"{r['torch_plain_cast_tb_s']:.2f} TB/s")
        else:
            print(f"public cast call host time at [{r['m']}, {r['k']}]: {r['public_call_host_us']:.2f} us "
                  f"(the two outputs' allocation {r['allocation_host_us']:.2f}, the prepared launch "
                  f"{r['prepared_launch_host_us']:.2f})")
    if args.json:
        args.json.write_text(json.dumps({"host": host, "cast": cast}, indent=1))
    if not all(r.get("bit_exact", True) for r in cast):
        raise SystemExit("the CUDA cast differs from the torch version")


if __name__ == "__main__":
    main()
