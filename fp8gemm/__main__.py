"""Command line: ``python -m fp8gemm demo | bench | check | precompile``."""

from __future__ import annotations

import argparse
import importlib
import platform
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import torch

# DeepSeek-V3 shape for the demo on a Hopper GPU, and a smaller one for the (slow) CPU reference.
GPU_DEMO_SHAPE = (128, 7168, 2048)
CPU_DEMO_SHAPE = (64, 512, 1024)
DIFF_LIMIT = 1e-3


def _gpu_seconds(fn, calls: int = 20) -> float:
    """GPU time of one ``fn()``: CUDA events around a CUDA graph of ``calls`` calls, replayed (so
    host overhead does not count; L2 warm). The benchmark measures more carefully (benchmarks/)."""
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        for _ in range(calls):
            fn()
    graph.replay()  # warm-up
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    graph.replay()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) * 1e-3 / calls


def _demo(args: argparse.Namespace) -> int:
    from . import device, gemm, layout, quant
    from .reference import calc_diff

    on_gpu = device.is_sm90_available()
    if on_gpu:
        dev, (m, n, k) = torch.device("cuda"), GPU_DEMO_SHAPE
    else:
        dev, (m, n, k) = torch.device("cpu"), CPU_DEMO_SHAPE
        print("No sm_90 (Hopper) GPU found: running the CPU reference path on a smaller shape.")
    gen = torch.Generator(device=dev).manual_seed(args.seed)
    x = torch.randn((m, k), generator=gen, device=dev).bfloat16()
    w = torch.randn((n, k), generator=gen, device=dev).bfloat16()
    a, sa = quant.per_token_cast_to_fp8(x)
    b, sb = quant.per_block_cast_to_fp8(w)
    sa = layout.get_col_major_tma_aligned_tensor(sa)
    out = torch.empty((m, n), dtype=torch.bfloat16, device=dev)

    path = "fp8gemm kernel" if on_gpu else "CPU reference"
    gemm.gemm_fp8_fp8_bf16_nt((a, sa), (b, sb), out)  # warm-up (JIT compile on a GPU)

    def run() -> None:
        gemm.gemm_fp8_fp8_bf16_nt((a, sa), (b, sb), out)

    if dev.type == "cuda":
        seconds = _gpu_seconds(run)
    else:
        start = time.perf_counter()
        run()
        seconds = time.perf_counter() - start

    expected = x.float() @ w.float().t()
    diff = calc_diff(out, expected)
    tflops = 2 * m * n * k / seconds / 1e12
    print(f"shape m={m} n={n} k={k} on {dev} ({path})")
    print(f"time {seconds * 1e3:.3f} ms, {tflops:.4f} TFLOPS")
    print(f"diff vs FP32 product of the unquantized inputs: {diff:.3e} (limit {DIFF_LIMIT:g})")
    if not diff < DIFF_LIMIT:
        print("FAILED: the result is less accurate than the limit")
        return 1
    print("OK")
    return 0


def _check(args: argparse.Namespace) -> int:
    from . import __version__, device

    print(f"fp8gemm {__version__}, Python {platform.python_version()}, torch {torch.__version__}")
    print(f"torch built with CUDA: {torch.version.cuda}; CUDA available: {torch.cuda.is_available()}")
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(torch.cuda.current_device())
        print(f"GPU: {props.name}, compute capability {props.major}.{props.minor}")
    else:
        print("GPU: none")
    print(f"sm_90 available: {device.is_sm90_available()}; SMs planned for: {device.get_num_sms()}; "
          f"max shared memory per block: {device.max_shared_memory_per_block()} bytes")
    try:
        from cuda.bindings import nvrtc

        err, major, minor = nvrtc.nvrtcVersion()
        print(f"NVRTC: {major}.{minor}" if int(err) == 0 else f"NVRTC: error {err}")
    except Exception as err:  # any failure to load NVRTC is reported, not raised
        print(f"NVRTC: not available ({type(err).__name__}: {err})")
    return 0


# The repository this package was imported from, when it was (editable install or PYTHONPATH).
_CHECKOUT = Path(__file__).resolve().parents[1]


def _bench(argv: Sequence[str]) -> int:
    # The benchmark is a tool of the repository (benchmarks/), not part of the installed package:
    # this verb runs it when the package is used from a checkout.
    if not (_CHECKOUT / "benchmarks" / "bench.py").is_file():
        print("`python -m fp8gemm bench` runs benchmarks/bench.py of an fp8gemm checkout, which an installed "
              "package does not include: run it from a clone of the repository.", file=sys.stderr)
        return 2
    if str(_CHECKOUT) not in sys.path:
        sys.path.insert(0, str(_CHECKOUT))
    return int(importlib.import_module("benchmarks.bench").main(list(argv)) or 0)


def _precompile(argv: Sequence[str]) -> int:
    return int(importlib.import_module("fp8gemm.aot").main(list(argv)) or 0)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m fp8gemm``; returns the process exit status."""
    parser = argparse.ArgumentParser(prog="python -m fp8gemm", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="quantize random inputs, run one GEMM, report time and accuracy")
    demo.add_argument("--seed", type=int, default=0)
    sub.add_parser("check", help="print the environment: torch, CUDA, GPU, NVRTC")
    sub.add_parser("bench", help="benchmark, in a checkout (arguments go to benchmarks/bench.py)",
                   add_help=False)
    sub.add_parser("precompile", help="compile kernels ahead of time (arguments go to fp8gemm.aot)",
                   add_help=False)

    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "bench":
        return _bench(argv[1:])
    if argv and argv[0] == "precompile":
        return _precompile(argv[1:])
    args = parser.parse_args(argv)
    return _demo(args) if args.command == "demo" else _check(args)


if __name__ == "__main__":
    sys.exit(main())
