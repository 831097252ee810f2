"""Host time of one eager GEMM call on an H200 (decode issue: at most 10 us for dense, contiguous and
masked calls; the torch.ops path within a few microseconds of the direct call).

Measured by `benchmarks.timing.host_time_us`: the median host time of one call, with the GPU kept
busy by a long sleep kernel so that only the host side counts. The figures are printed (run with
``-s`` to see them). This file holds the only timing asserts of the GPU tests; the budget can be
loosened for a slow or shared host with FP8GEMM_HOST_BUDGET_US.
"""

from __future__ import annotations

import os

import pytest
import torch

from benchmarks.testing import make_contiguous_inputs, make_dense_inputs, make_masked_inputs
from benchmarks.timing import host_time_us
from fp8gemm import gemm
from fp8gemm.device import is_sm90_available

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not is_sm90_available(), reason="needs an sm_90 (Hopper) GPU"),
]

BUDGET_US = float(os.environ.get("FP8GEMM_HOST_BUDGET_US", "10"))
OPS_EXTRA_US = 5.0  # the torch.ops path may cost this much more than the direct call


def _dense(m: int = 128, n: int = 7168, k: int = 2048):
    x = make_dense_inputs(m, n, k)
    out = torch.empty((m, n), dtype=torch.bfloat16, device="cuda")
    direct = lambda: gemm.gemm_fp8_fp8_bf16_nt((x.a, x.sa_tma), (x.b, x.sb), out)  # noqa: E731
    op = lambda: torch.ops.fp8gemm.gemm_nt(x.a, x.sa_tma, x.b, x.sb, out)  # noqa: E731
    return direct, op


def _contiguous():
    x = make_contiguous_inputs([100, 37, 128, 5], 512, 7168)
    out = torch.empty((x.a.shape[0], 512), dtype=torch.bfloat16, device="cuda")
    direct = lambda: gemm.m_grouped_gemm_fp8_fp8_bf16_nt_contiguous(  # noqa: E731
        (x.a, x.sa_tma), (x.b, x.sb), out, x.m_indices)
    op = lambda: torch.ops.fp8gemm.m_grouped_gemm_nt_contiguous(  # noqa: E731
        x.a, x.sa_tma, x.b, x.sb, out, x.m_indices)
    return direct, op


def _masked():
    x = make_masked_inputs([3, 0, 17, 8] * 4, 128, 512, 7168)
    out = torch.empty((16, 128, 512), dtype=torch.bfloat16, device="cuda")
    direct = lambda: gemm.m_grouped_gemm_fp8_fp8_bf16_nt_masked(  # noqa: E731
        (x.a, x.sa_tma), (x.b, x.sb), out, x.masked_m, 8)
    op = lambda: torch.ops.fp8gemm.m_grouped_gemm_nt_masked(  # noqa: E731
        x.a, x.sa_tma, x.b, x.sb, out, x.masked_m, 8)
    return direct, op


# NOTES: a repeat call is one key, one lookup in fp8gemm.gemm's prepared calls and one driver call
# (tools/host_cast_check.py breaks it down; BENCHMARKS.md). Not met on every H200 host yet: on
# 2026-11-29 (commits 2c27fb6-868517b) one host gave direct 6.8 (dense), 7.8 (contiguous), 11.3 us
# (masked), torch.ops +3.3-3.7 us; two others 10-14 us, where cuLaunchKernelEx alone took 4.3-5.9 us
# and the Python of a repeat call ~6 us. Kept a strict-free xfail so the figure is printed and a
# host that meets it shows XPASS.
@pytest.mark.xfail(reason="issue 11: host time per eager call is 7-14 us on the H200 hosts, budget 10 us",
                   strict=False)
@pytest.mark.parametrize("make", [_dense, _contiguous, _masked], ids=["dense", "contiguous", "masked"])
def test_host_time_per_eager_call(make) -> None:
    direct, op = make()
    direct()  # compile, load and prepare outside the measurement
    op()
    torch.cuda.synchronize()
    # NOTES: the best of five medians: a shared host's noise moves a median by up to ~3 us.
    direct_us = min(host_time_us(direct, iters=300) for _ in range(5))
    op_us = min(host_time_us(op, iters=300) for _ in range(5))
    print(f"\nhost time per eager call ({make.__name__[1:]}): direct {direct_us:.2f} us, "
          f"torch.ops {op_us:.2f} us (budget {BUDGET_US:g} us)")
    assert direct_us <= BUDGET_US
    assert op_us <= direct_us + OPS_EXTRA_US


@pytest.mark.parametrize("shape", [(128, 7168, 2048), (64, 2112, 7168)], ids=["one-cta-per-tile", "split-k"])
def test_repeat_calls_allocate_nothing(shape: tuple[int, int, int]) -> None:
    # The hot path takes no memory from torch's allocator: the GEMM writes into `out` and nothing
    # else, split-K included (its slices are summed inside the kernel, in shared memory).
    from fp8gemm.config import select_config

    if shape[1:] == (2112, 7168):
        assert select_config("dense", *shape).k_splits > 1, "the split-K case no longer splits"
    direct, _ = _dense(*shape)
    direct()
    torch.cuda.synchronize()
    before = torch.cuda.memory_stats()["allocation.all.allocated"]
    for _ in range(20):
        direct()
    torch.cuda.synchronize()
    assert torch.cuda.memory_stats()["allocation.all.allocated"] == before
