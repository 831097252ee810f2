"""Issue 6 on an H200 in one call: GPU tests, quantization GB/s, precompile cold/warm, the MoE example.

    PYTHONPATH=. python3 tools/integration_check.py

Prints each part as it goes and a short table last; with $OUT set, writes the details there
(integration.json, pytest.log, precompile_*.json, moe_block.json).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = Path(os.environ["OUT"]) if os.environ.get("OUT") else None
SHAPES = ROOT / "fp8gemm" / "data" / "shapes.json"
TEST_FILES = ["tests/test_ops.py", "tests/test_quant_cuda.py", "tests/test_examples.py"]
report: dict = {}


def _save(name: str, text: str) -> None:
    if OUT is not None:
        OUT.mkdir(parents=True, exist_ok=True)
        (OUT / name).write_text(text)


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}


def run_tests() -> None:
    print("== pytest -m gpu", *TEST_FILES, flush=True)
    proc = subprocess.run([sys.executable, "-m", "pytest", "-m", "gpu", "-q", "-rfE", *TEST_FILES],
                          cwd=ROOT, env=_env(), capture_output=True, text=True)
    log = proc.stdout + proc.stderr
    _save("pytest.log", log)
    tail = log.strip().splitlines()[-25:]
    print("\n".join(tail), flush=True)
    report["pytest"] = {"rc": proc.returncode, "summary": tail[-1] if tail else ""}


def bench_quant() -> None:
    import torch

    from benchmarks.timing import time_kernel
    from fp8gemm.layout import get_col_major_tma_aligned_tensor
    from fp8gemm.quant import per_token_cast_to_fp8

    print("== per_token_cast_to_fp8: CUDA kernel vs torch (+ layout conversion)", flush=True)
    rows = []
    cases = [((4096, 7168), torch.bfloat16), ((128, 7168), torch.bfloat16), ((8192, 2048), torch.bfloat16),
             ((32, 256, 7168), torch.bfloat16), ((4096, 7168), torch.float32), ((64, 7168), torch.bfloat16)]
    for shape, dtype in cases:
        x = torch.randn(shape, device="cuda").to(dtype)
        k = shape[-1]
        elems = x.numel()
        nbytes = elems * x.element_size() + elems + elems // 128 * 4  # read x, write q and scales
        t_kernel = time_kernel(lambda x=x: per_token_cast_to_fp8(x, tma_aligned_scales=True))

        def torch_version(x=x):
            q, s = per_token_cast_to_fp8(x)
            return q, get_col_major_tma_aligned_tensor(s)

        t_torch = time_kernel(torch_version)
        q, s = per_token_cast_to_fp8(x, tma_aligned_scales=True)
        q_ref, s_ref = per_token_cast_to_fp8(x)
        exact = bool(torch.equal(q.view(torch.uint8), q_ref.view(torch.uint8)) and torch.equal(s, s_ref))
        row = {"shape": list(shape), "dtype": str(dtype).replace("torch.", ""), "k": k,
               "kernel_us": t_kernel, "torch_us": t_torch, "kernel_GBps": nbytes / t_kernel / 1e3,
               "torch_GBps": nbytes / t_torch / 1e3, "speedup": t_torch / t_kernel, "bit_exact": exact}
        rows.append(row)
        print(f"  {str(list(shape)):>16} {row['dtype']:>8}: kernel {t_kernel:8.1f} us "
              f"{row['kernel_GBps']:7.0f} GB/s | torch {t_torch:8.1f} us {row['torch_GBps']:6.0f} GB/s "
              f"| x{row['speedup']:.1f} exact={exact}", flush=True)
    report["quant"] = rows


_PRECOMPILE_SNIPPET = r"""
import json, sys, time
t0 = time.perf_counter()
import fp8gemm
t_import = time.perf_counter() - t0
t1 = time.perf_counter()
results = fp8gemm.precompile(sys.argv[1], progress=False)
t_call = time.perf_counter() - t1
per_shape = {}
from fp8gemm import launch
from fp8gemm.jit import compile_cuda
from fp8gemm.aot import plan_requests
from fp8gemm.shapes import load_shapes
for request in plan_requests(load_shapes(sys.argv[1])):  # warm fetch time of each shape's kernel
    t = time.perf_counter()
    plan = launch.plan(request.layout, request.m, request.n, request.k, num_groups=request.num_groups)
    compile_cuda(plan.source, plan.kernel_name)
    per_shape[str(request)] = {"kernel": plan.kernel_name, "fetch_s": time.perf_counter() - t}
print(json.dumps({"import_s": t_import, "call_s": t_call, "per_shape": per_shape, "kernels": [
    {"name": r.kernel_name, "shapes": r.shapes, "compile_s": r.compile_seconds, "error": r.error,
     "spills": r.has_spills} for r in results]}))
"""


def bench_precompile() -> None:
    print(f"== precompile of every shape in {SHAPES} (fresh FP8GEMM_CACHE_DIR, fresh processes)", flush=True)
    with tempfile.TemporaryDirectory(prefix="fp8gemm-cache-") as cache:
        env = {**_env(), "FP8GEMM_CACHE_DIR": cache}
        runs = {}
        for label in ("cold", "warm"):
            t = time.perf_counter()
            proc = subprocess.run([sys.executable, "-c", _PRECOMPILE_SNIPPET, str(SHAPES)], env=env,
                                  capture_output=True, text=True)
            wall = time.perf_counter() - t
            if proc.returncode:
                print(proc.stderr[-3000:])
                runs[label] = {"error": proc.stderr[-2000:], "wall_s": wall}
                continue
            data = json.loads(proc.stdout.strip().splitlines()[-1])
            data["wall_s"] = wall
            runs[label] = data
            _save(f"precompile_{label}.json", json.dumps(data, indent=1))
            failed = [k["name"] for k in data["kernels"] if k["error"]]
            print(f"  {label}: precompile() {data['call_s']:.1f} s, process {wall:.1f} s, "
                  f"{len(data['kernels'])} kernels, {len(failed)} failed", flush=True)
    cold, warm = runs.get("cold", {}), runs.get("warm", {})
    if "kernels" in cold:
        by_kernel = {k["name"]: k for k in cold["kernels"]}
        print(f"  {'shape':<44} {'cold compile s':>14} {'warm fetch ms':>13}")
        for shape, info in warm.get("per_shape", cold["per_shape"]).items():
            compile_s = by_kernel.get(info["kernel"], {}).get("compile_s")
            cs = f"{compile_s:.2f}" if compile_s is not None else "-"
            print(f"  {shape:<44} {cs:>14} {info['fetch_s'] * 1e3:>13.1f}")
    report["precompile"] = {
        label: {k: v for k, v in r.items() if k != "per_shape"} for label, r in runs.items()
    }
    report["precompile_per_shape"] = {"cold": cold.get("per_shape"), "warm": warm.get("per_shape")}


def run_example() -> None:
    print("== examples/moe_block.py (full configuration)", flush=True)
    sys.path.insert(0, str(ROOT / "examples"))
    import moe_block

    result = moe_block.run(moe_block.MoEConfig(), "cuda")
    print(json.dumps(result, indent=1), flush=True)
    _save("moe_block.json", json.dumps(result, indent=1))
    report["moe_block"] = result


def table() -> str:
    lines = ["", "== summary", f"{'item':<40} {'value':>40}"]

    def add(item: str, value: str) -> None:
        lines.append(f"{item:<40} {value:>40}")

    add("gpu tests", report.get("pytest", {}).get("summary", "not run"))
    for row in report.get("quant", []):
        add(f"quant {row['dtype']} {row['shape']}",
            f"{row['kernel_GBps']:.0f} GB/s vs torch {row['torch_GBps']:.0f} (x{row['speedup']:.1f})"
            + ("" if row["bit_exact"] else " NOT EXACT"))
    pre = report.get("precompile", {})
    for label in ("cold", "warm"):
        if "call_s" in pre.get(label, {}):
            add(f"precompile {label} (all shapes.json)",
                f"{pre[label]['call_s']:.1f} s in call, {pre[label]['wall_s']:.1f} s process")
    moe = report.get("moe_block", {})
    if moe:
        add("moe prefill diff / speed-up vs BF16",
            f"{moe['prefill_diff']:.2e} / x{moe.get('prefill_speedup', 0):.2f}")
        add("moe decode (graph) diff / speed-up",
            f"{moe['decode_diff']:.2e} / x{moe.get('decode_speedup', 0):.2f}")
    for name, err in report.get("errors", {}).items():
        add(f"ERROR in {name}", err[:40])
    return "\n".join(lines)


def main() -> int:
    for name, part in (("tests", run_tests), ("quant", bench_quant), ("precompile", bench_precompile),
                       ("example", run_example)):
        try:
            part()
        except Exception as exc:  # keep going: one broken part should not hide the others' figures
            import traceback

            traceback.print_exc()
            report.setdefault("errors", {})[name] = f"{type(exc).__name__}: {exc}"
    _save("integration.json", json.dumps(report, indent=1, default=str))
    print(table())
    return 0 if report.get("pytest", {}).get("rc") == 0 and not report.get("errors") else 1


if __name__ == "__main__":
    sys.exit(main())
