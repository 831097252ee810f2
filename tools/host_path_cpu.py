"""The Python part of a repeat eager GEMM call, timed on a machine without a GPU (issue 11, item 2).

A repeat call on the same buffers is: the key (each tensor's address, shape, strides, dtype, ...), one
lookup in `fp8gemm.gemm._prepared`, then `jit.Launch.run` (current device, current stream, one ctypes
call to cuLaunchKernelEx). Here the cache is filled through the real miss path with CUDA faked (as
tests/test_prepared_calls.py does) and holds real `jit.Launch` objects whose ctypes launcher is a C
function that does nothing and returns 0 (libm's ``fegetround``: like the driver's entry point it is
called through ctypes with four addresses and releases the GIL); torch's current-device and raw-stream
queries are C builtins returning 0. Every timed call is a hit (checked).

    PYTHONPATH=. python tools/host_path_cpu.py [--rounds 41] [--number 3000] [--json PATH]

Prints the median and the minimum over rounds (round-robin over the cases) of the time per call.
On the H200 hosts the same Python costs ~3x more, plus ~5.5 us for the driver's launch itself.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import ctypes.util
import json
import statistics
import sys
import timeit
from pathlib import Path
from unittest import mock

import torch

if not __package__:  # run as a script: import from this checkout
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import fp8gemm  # noqa: E402
from fp8gemm import config, device, env, gemm  # noqa: E402
from fp8gemm.jit import runtime  # noqa: E402
from fp8gemm.jit.artifacts import CompiledKernel, PtxasResources  # noqa: E402
from fp8gemm.layout import get_col_major_tma_aligned_tensor as _tma  # noqa: E402

E4M3 = torch.float8_e4m3fn


def _noop_launcher():
    fn = ctypes.CDLL(ctypes.util.find_library("m") or "libm.so.6").fegetround  # returns 0 (FE_TONEAREST)
    fn.argtypes = [ctypes.c_void_p] * 4
    fn.restype = ctypes.c_int
    return fn


class _FakeLaunchLayer:
    """`fp8gemm.launch` as the hot path sees it: the real config selector, and launchers that return a
    real `jit.Launch` of a kernel 'loaded' on device 0 (no driver is called to build it)."""

    select_config = staticmethod(config.select_config)

    def __init__(self) -> None:
        from cuda.bindings import driver as cu

        compiled = CompiledKernel(name="noop", cubin=b"\x7fELF", resources=PtxasResources(8, 0, 0, 0, 0),
                                  compile_seconds=0.0, compiler="host_path_cpu")
        self.kernel = runtime.Kernel(compiled)
        self.kernel._functions[0] = cu.CUfunction()
        self.kernel._param_sizes[0] = None
        self.kernel._smem_set[0] = 1 << 20

    def _prepare(self, *args):
        return self.kernel.prepare(1, 128, 0, (ctypes.c_int32(7),))

    gemm_dense = gemm_contiguous = gemm_masked = _prepare


def _calls() -> dict[str, object]:
    """The calls of tests/test_host_time_gpu.py (same shapes), on CPU tensors."""
    a, sa = torch.zeros(128, 2048, dtype=E4M3), _tma(torch.ones(128, 16))
    b, sb = torch.zeros(7168, 2048, dtype=E4M3), torch.ones(56, 16)
    out = torch.zeros(128, 7168, dtype=torch.bfloat16)
    ca, csa = torch.zeros(512, 7168, dtype=E4M3), _tma(torch.ones(512, 56))
    cb, csb = torch.zeros(4, 512, 7168, dtype=E4M3), torch.ones(4, 4, 56)
    cout, m_indices = torch.zeros(512, 512, dtype=torch.bfloat16), torch.zeros(512, dtype=torch.int32)
    ma, msa = torch.zeros(16, 128, 7168, dtype=E4M3), _tma(torch.ones(16, 128, 56))
    mb, msb = torch.zeros(16, 512, 7168, dtype=E4M3), torch.ones(16, 4, 56)
    mout, masked_m = torch.zeros(16, 128, 512, dtype=torch.bfloat16), torch.zeros(16, dtype=torch.int32)
    ops = torch.ops.fp8gemm
    return {
        "dense": lambda: gemm.gemm_fp8_fp8_bf16_nt((a, sa), (b, sb), out),
        "contiguous": lambda: gemm.m_grouped_gemm_fp8_fp8_bf16_nt_contiguous((ca, csa), (cb, csb), cout,
                                                                             m_indices),
        "masked": lambda: gemm.m_grouped_gemm_fp8_fp8_bf16_nt_masked((ma, msa), (mb, msb), mout, masked_m, 8),
        "fp8_gemm_nt": lambda: fp8gemm.fp8_gemm_nt((a, sa), (b, sb), out),
        "m_grouped_fp8_gemm_nt_contiguous": lambda: fp8gemm.m_grouped_fp8_gemm_nt_contiguous(
            (ca, csa), (cb, csb), cout, m_indices),
        "m_grouped_fp8_gemm_nt_masked": lambda: fp8gemm.m_grouped_fp8_gemm_nt_masked(
            (ma, msa), (mb, msb), mout, masked_m, 8),
        "torch.ops dense": lambda: ops.gemm_nt(a, sa, b, sb, out),
        "torch.ops contiguous": lambda: ops.m_grouped_gemm_nt_contiguous(ca, csa, cb, csb, cout, m_indices),
        "torch.ops masked": lambda: ops.m_grouped_gemm_nt_masked(ma, msa, mb, msb, mout, masked_m, 8),
    }


@contextlib.contextmanager
def _faked_cuda():
    """CUDA faked for the hot path (undone on exit): the no-op launcher, device 0 current, stream 0."""
    current = (0).__int__  # a C call without arguments returning 0, like torch._C._cuda_getDevice
    with contextlib.ExitStack() as stack:
        from cuda.bindings import driver as cu

        launcher = _noop_launcher()
        stack.enter_context(mock.patch.object(runtime, "_raw_launcher", lambda: launcher))
        stack.enter_context(mock.patch.object(runtime, "_driver", lambda: cu))  # no cuInit
        stack.enter_context(mock.patch.object(runtime, "_current_device", current))
        stack.enter_context(mock.patch.object(runtime, "_raw_stream", abs))  # device 0 -> stream 0
        stack.enter_context(mock.patch.object(gemm, "_current_device", current))
        stack.enter_context(mock.patch.object(gemm, "_launch_module", _FakeLaunchLayer()))
        stack.enter_context(mock.patch.object(device, "_capability", lambda index: (9, 0)))
        stack.enter_context(mock.patch.object(device, "_num_sms_override", None))
        stack.callback(gemm.clear_prepared)
        stack.callback(env.refresh)
        gemm.clear_prepared()
        env.refresh()
        yield


def measure(rounds: int = 41, number: int = 3000) -> dict[str, dict[str, float]]:
    """{case: {"median_us", "min_us"}} per repeat call, and the same for the kept `jit.Launch` alone."""
    with _faked_cuda():
        calls = _calls()
        with mock.patch.object(torch.Tensor, "is_cuda", property(lambda self: True)), \
                mock.patch.object(torch.Tensor, "get_device", lambda self: 0):
            for name in ("dense", "contiguous", "masked"):
                calls[name]()  # the miss: checked, prepared, kept
        entries = list(gemm._prepared.values())
        assert len(entries) == 3 and all(isinstance(p, runtime.Launch) for _, p in entries)
        launch = entries[0][1]
        calls["jit.Launch alone"] = getattr(launch, "run", launch)  # older checkouts: no run, only __call__
        samples: dict[str, list[float]] = {name: [] for name in calls}
        for _ in range(rounds):  # round-robin: a drift of the machine hits every case alike
            for name, fn in calls.items():
                samples[name].append(timeit.timeit(fn, number=number) / number * 1e6)
        assert len(gemm._prepared) == 3, "a timed call missed the cache"
    return {name: {"median_us": statistics.median(xs), "min_us": min(xs)} for name, xs in samples.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=41)
    parser.add_argument("--number", type=int, default=3000, help="calls per timed round")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    results = measure(args.rounds, args.number)
    print(f"{'repeat call (Python part)':34s} {'median':>8s} {'min':>8s}")
    for name, r in results.items():
        print(f"{name:34s} {r['median_us']:6.3f} us {r['min_us']:6.3f} us")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
