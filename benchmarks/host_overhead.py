"""Where the host time of one eager GEMM call goes (GPU kept busy, median of many calls).

    PYTHONPATH=. python benchmarks/host_overhead.py

Prints, for a dense, a contiguous and a masked decode-sized call: the whole public call, the
torch.ops path, and the pieces of the call (the prepared launch alone, the bare driver launch through
cuda-bindings and through ctypes; the rest of a repeat call is one key and one dictionary lookup in
`fp8gemm.gemm`). tools/host_cast_check.py prints the same table next to the cast's figures.
"""

from __future__ import annotations

import ctypes
import sys
from pathlib import Path

import torch

if not __package__:  # run as a script: import from this checkout
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.testing import make_contiguous_inputs, make_dense_inputs, make_masked_inputs
from benchmarks.timing import host_time_us
from fp8gemm import gemm


def _ctypes_launch(prepared) -> callable:
    """The same launch as `prepared()`, with cuLaunchKernelEx called through ctypes on libcuda."""
    libcuda = ctypes.CDLL("libcuda.so.1")
    fn = libcuda.cuLaunchKernelEx
    fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]
    fn.restype = ctypes.c_int
    cfg = prepared._cfg.getPtr()
    func = int(prepared._fn)
    params = prepared._params
    return lambda: fn(cfg, func, params, None)


def report(name: str, direct, op) -> None:
    gemm.clear_prepared()
    direct()
    op()
    torch.cuda.synchronize()
    (_device, prepared), = gemm._prepared.values()
    from cuda.bindings import driver as cu

    cfg, fn, params = prepared._cfg, prepared._fn, prepared._params
    rows = {
        "public call": direct,
        "torch.ops call": op,
        "prepared launch alone": prepared,
        "cuLaunchKernelEx via cuda-bindings": lambda: cu.cuLaunchKernelEx(cfg, fn, params, 0),
        "cuLaunchKernelEx via ctypes": _ctypes_launch(prepared),
    }
    print(f"== {name}")
    for label, fn_ in rows.items():
        us = min(host_time_us(fn_, iters=500) for _ in range(3))
        print(f"  {label:42s} {us:6.2f} us")
    gemm.clear_prepared()


def main() -> None:
    x = make_dense_inputs(128, 7168, 2048)
    out = torch.empty((128, 7168), dtype=torch.bfloat16, device="cuda")
    report(
        "dense 128x7168x2048",
        lambda: gemm.gemm_fp8_fp8_bf16_nt((x.a, x.sa_tma), (x.b, x.sb), out),
        lambda: torch.ops.fp8gemm.gemm_nt(x.a, x.sa_tma, x.b, x.sb, out),
    )
    c = make_contiguous_inputs([100, 37, 128, 5], 512, 7168)
    out_c = torch.empty((c.a.shape[0], 512), dtype=torch.bfloat16, device="cuda")
    lhs, rhs = (c.a, c.sa_tma), (c.b, c.sb)
    report(
        "contiguous 4 groups n=512 k=7168",
        lambda: gemm.m_grouped_gemm_fp8_fp8_bf16_nt_contiguous(lhs, rhs, out_c, c.m_indices),
        lambda: torch.ops.fp8gemm.m_grouped_gemm_nt_contiguous(*lhs, *rhs, out_c, c.m_indices),
    )
    mk = make_masked_inputs([3, 0, 17, 8] * 4, 128, 512, 7168)
    out_m = torch.empty((16, 128, 512), dtype=torch.bfloat16, device="cuda")
    lhs_m, rhs_m = (mk.a, mk.sa_tma), (mk.b, mk.sb)
    report(
        "masked 16 groups max_m=128 n=512 k=7168",
        lambda: gemm.m_grouped_gemm_fp8_fp8_bf16_nt_masked(lhs_m, rhs_m, out_m, mk.masked_m, 8),
        lambda: torch.ops.fp8gemm.m_grouped_gemm_nt_masked(*lhs_m, *rhs_m, out_m, mk.masked_m, 8),
    )
    empty = torch.empty(1, device="cuda")
    print(f"== reference points\n  torch empty_like (allocator)               "
          f"{min(host_time_us(lambda: torch.empty_like(empty), iters=500) for _ in range(3)):6.2f} us")
    print(f"  torch.cuda.device(0) context              "
          f"{min(host_time_us(_device_ctx, iters=500) for _ in range(3)):6.2f} us")


def _device_ctx() -> None:
    with torch.cuda.device(0):
        pass


if __name__ == "__main__":
    main()
