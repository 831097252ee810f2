"""tools/host_path_cpu.py runs on the CPU: every case it times is a hit of the prepared-call cache, and
it leaves no fake behind."""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))

from host_path_cpu import measure  # noqa: E402

from fp8gemm import gemm  # noqa: E402
from fp8gemm.jit import runtime  # noqa: E402


def test_host_path_cpu_times_every_call_kind_on_hits() -> None:
    def patched() -> tuple:
        return runtime._raw_launcher, runtime._current_device, gemm._launch_module, torch.Tensor.is_cuda

    before = patched()
    results = measure(rounds=2, number=5)  # asserts that no timed call missed the cache
    assert {"dense", "contiguous", "masked", "fp8_gemm_nt", "torch.ops masked"} <= set(results)
    assert all(0 < r["min_us"] <= r["median_us"] for r in results.values())
    assert patched() == before
    assert gemm._prepared == {}
