"""The JIT's test kernels, and a self-test that measures it on a GPU.

    PYTHONPATH=. python -m benchmarks.jit_selftest   # on an sm_90 GPU: correctness, compile times,
                                                     # launch overhead

Two kernels: `tma_roundtrip` (benchmarks/tma_roundtrip.cuh, pasted into the source: TMA load with
2-CTA multicast into shared memory, mbarrier completion, TMA store back) and `launch_probe`, an empty
kernel with four tensor maps and six scalars, for measuring the host cost of one launch. They use
the library's PTX wrappers (fp8gemm/include) and are not part of the installed package.
"""

from __future__ import annotations

import ctypes
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

if not __package__:  # run as a script: import from this checkout
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fp8gemm import jit
from fp8gemm.jit import cache, compile_cuda
from fp8gemm.jit.compiler import compiler_id

ROUNDTRIP_KERNEL = "fp8gemm_tma_roundtrip"
PROBE_KERNEL = "fp8gemm_launch_probe"
ROUNDTRIP_THREADS = 128


_ROUNDTRIP_HEADER = (Path(__file__).resolve().parent / "tma_roundtrip.cuh").read_text().replace(
    "#pragma once\n", "")


def roundtrip_source(box_rows: int, box_cols: int, elem_bytes: int) -> str:
    """Source of one member of the round-trip family (the tile shape is baked in as constants)."""
    return f"""{_ROUNDTRIP_HEADER}
extern "C" __global__ void __launch_bounds__({ROUNDTRIP_THREADS}, 1)
{ROUNDTRIP_KERNEL}(const __grid_constant__ fp8gemm::TensorMap in_map,
                   const __grid_constant__ fp8gemm::TensorMap out0_map,
                   const __grid_constant__ fp8gemm::TensorMap out1_map,
                   int tiles_per_row) {{
    fp8gemm::testing::tma_roundtrip<{box_rows}, {box_cols}, {elem_bytes}>(
        &in_map, &out0_map, &out1_map, tiles_per_row);
}}
"""


PROBE_SOURCE = f"""#include <fp8gemm/ptx/tma.cuh>

// Does nothing unless n is negative (never, in the probe); the parameters must still be passed.
extern "C" __global__ void {PROBE_KERNEL}(
        const __grid_constant__ fp8gemm::TensorMap a, const __grid_constant__ fp8gemm::TensorMap b,
        const __grid_constant__ fp8gemm::TensorMap c, const __grid_constant__ fp8gemm::TensorMap d,
        int m, int n, int k, unsigned int flags, long long offset, float alpha) {{
    if (n < 0 && threadIdx.x == 0) {{
        fp8gemm::ptx::tma_prefetch_descriptor(m ? &a : k ? &b : flags ? &c : &d);
        if (alpha * offset == 1.0f) asm volatile("trap;");
    }}
}}
"""

# (dtype, box_rows, box_cols, swizzle_bytes): byte-wide, bf16 and f32 elements, with and without swizzle.
ROUNDTRIP_CASES = [
    (torch.uint8, 64, 128, 128),
    (torch.uint8, 32, 64, 0),
    (torch.bfloat16, 32, 64, 128),
    (torch.float32, 32, 32, 128),
    (torch.float32, 16, 64, 0),
]


def roundtrip_smem_bytes(box_rows: int, box_cols: int, elem_bytes: int) -> int:
    return box_rows * box_cols * elem_bytes + 8


def random_bytes(rows: int, cols: int, seed: int = 0) -> torch.Tensor:
    """A [rows, cols] uint8 CUDA tensor of random bytes (every value, NaN patterns included)."""
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (rows, cols), dtype=torch.uint8, generator=gen).cuda()


def run_roundtrip(x: torch.Tensor, box_rows: int, box_cols: int, swizzle_bytes: int, *,
                  smem_bytes: int | None = None, stream=None, outputs=None):
    """Copy `x` (2D, CUDA) through the round-trip kernel; return the two outputs (one per CTA rank).

    The outputs are poisoned with 0xA5 bytes first, so every byte the kernel misses shows.
    """
    elem = x.element_size()
    kernel = jit.build(roundtrip_source(box_rows, box_cols, elem), ROUNDTRIP_KERNEL)
    if outputs is None:
        outputs = (torch.empty_like(x), torch.empty_like(x))
        for out in outputs:
            out.view(torch.uint8).fill_(0xA5)
    in_map = jit.make_tensor_map(x, (box_cols, box_rows // 2), swizzle_bytes=swizzle_bytes)
    out_maps = [jit.make_tensor_map(o, (box_cols, box_rows), swizzle_bytes=swizzle_bytes) for o in outputs]
    rows, cols = x.shape
    tiles_per_row = -(-cols // box_cols)
    tiles = tiles_per_row * -(-rows // box_rows)
    smem = smem_bytes if smem_bytes is not None else roundtrip_smem_bytes(box_rows, box_cols, elem)
    kernel.launch(2 * tiles, ROUNDTRIP_THREADS, smem, (in_map, *out_maps, ctypes.c_int32(tiles_per_row)),
                  cluster=2, stream=stream)
    return outputs


def probe_args(device: int | None = None):
    """A Kernel for the launch probe and arguments for it: 4 tensor maps + 6 scalars."""
    kernel = jit.build(PROBE_SOURCE, PROBE_KERNEL)
    t = torch.zeros(256, 256, dtype=torch.uint8, device=device if device is not None else "cuda")
    maps = [jit.make_tensor_map(t, (128, 64), swizzle_bytes=128) for _ in range(4)]
    scalars = (ctypes.c_int32(4096), ctypes.c_int32(7168), ctypes.c_int32(2048), ctypes.c_uint32(0),
               ctypes.c_int64(0), ctypes.c_float(1.5))
    return kernel, (*maps, *scalars), t


def launch_overhead_us(launches: int = 1000, warmup: int = 100) -> list[float]:
    """Host time of each of `launches` probe launches, in microseconds."""
    kernel, args, _keep = probe_args()
    for _ in range(warmup):
        kernel.launch(132, 128, 0, args)
    torch.cuda.synchronize()
    clock = time.perf_counter_ns
    times = []
    for _ in range(launches):
        t0 = clock()
        kernel.launch(132, 128, 0, args)
        times.append((clock() - t0) / 1e3)
    torch.cuda.synchronize()
    return times


def _warm_first_call() -> None:
    """In a fresh process, with the disk cache warm: time jit.build() and the first launch."""
    torch.zeros(1, device="cuda")  # torch's CUDA start-up is not ours to count
    torch.cuda.synchronize()
    x = random_bytes(256, 256)
    t0 = time.perf_counter()
    jit.build(roundtrip_source(64, 128, 1), ROUNDTRIP_KERNEL)
    t1 = time.perf_counter()
    run_roundtrip(x, 64, 128, 128)
    torch.cuda.synchronize()
    t2 = time.perf_counter()
    print(f"{1e3 * (t1 - t0):.2f} {1e3 * (t2 - t0):.2f}")


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--warm-first-call":
        _warm_first_call()
        return 0
    if not torch.cuda.is_available():
        print("selftest: no CUDA device")
        return 1
    cache_dir = tempfile.mkdtemp(prefix="fp8gemm-selftest-")
    os.environ["FP8GEMM_CACHE_DIR"] = cache_dir
    cache.clear_memory()
    print(f"device: {torch.cuda.get_device_name()}  compiler: {compiler_id()}  cache: {cache_dir}")

    t0 = time.perf_counter()
    compiled = compile_cuda(roundtrip_source(64, 128, 1), ROUNDTRIP_KERNEL)
    cold = time.perf_counter() - t0
    print(f"cold compile (tma_roundtrip, empty cache): {1e3 * cold:.1f} ms  [{compiled.resources}]")

    root = str(Path(__file__).resolve().parents[1])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])))
    proc = subprocess.run([sys.executable, "-m", "benchmarks.jit_selftest", "--warm-first-call"],
                          capture_output=True, text=True, env=env)
    if proc.returncode == 0 and proc.stdout.split():
        build_ms, first_ms = proc.stdout.split()[-2:]
        print(f"warm-cache first call, fresh process: jit.build() {build_ms} ms, "
              f"build + first launch + sync {first_ms} ms")
    else:
        print(f"warm-cache first call: failed\n{proc.stdout}{proc.stderr}")

    ok = True
    for dtype, box_rows, box_cols, swizzle in ROUNDTRIP_CASES:
        x = random_bytes(300, 528).view(dtype)  # ragged in both dims: partial tiles at the edges
        outs = run_roundtrip(x, box_rows, box_cols, swizzle)
        torch.cuda.synchronize()
        good = all(torch.equal(o.view(torch.uint8), x.view(torch.uint8)) for o in outs)
        ok &= good
        print(f"round trip {str(dtype):15} box {box_rows}x{box_cols} swizzle {swizzle:3}: "
              f"{'ok' if good else 'MISMATCH'}")

    times = launch_overhead_us()
    median = statistics.median(times)
    deciles = statistics.quantiles(times, n=10)
    print(f"host launch overhead (4 tensor maps + 6 scalars, median of {len(times)}): {median:.2f} us "
          f"(p10 {deciles[0]:.2f}, p90 {deciles[-1]:.2f})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
