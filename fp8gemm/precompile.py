"""``python -m fp8gemm precompile``: compile, ahead of time, every kernel the heuristics pick for a shape set.

Each shape goes through ``fp8gemm.launch.plan`` (the same choice the GEMMs make at run time); plans
that share ``(source, kernel_name)`` are compiled once; compiles run in a process pool and fill the on-disk
JIT cache. (Measured on a 2-core CPU, 4 tiny kernels: sequential 0.14 s, 2 threads 0.07 s, 2 forked
processes 0.09 s: NVRTC through cuda-bindings does release the GIL, but processes also isolate a
compiler crash or leak, and the fork cost is small next to real kernels' seconds of compile.)
Works without a GPU: the plan then assumes an H200 (132 SMs).

Which ``m`` is planned: dense shapes their own ``m`` (or each of ``m_values``); contiguous shapes the
total rows ``groups * round_up(m_per_group, 128)``; masked shapes ``expected_m = m_per_group``.

From Python, the module itself is callable: ``fp8gemm.precompile(model, m_values=[1, 64, 4096])`` is
`precompile` below; it takes a shapes file, a `ShapeSet`, ``(m, n, k)`` / ``(n, k)`` tuples, or a
``torch.nn.Module`` whose ``nn.Linear`` layers give the ``(n, k)`` = ``(out_features, in_features)``.
M is a run-time argument of every kernel, so one kernel serves many M; the M values only matter where
the heuristics pick a different tile configuration (small decode M versus large prefill M).
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import multiprocessing
import os
import sys
import time
import types
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from fp8gemm.layout import get_m_alignment_for_contiguous_layout
from fp8gemm.shapes import DenseShape, ShapeSet, load_shapes
from fp8gemm.utils import round_up

__all__ = [
    "PlanRequest", "PrecompileResult", "plan_requests", "precompile", "shapes_of", "DEFAULT_M_VALUES", "main",
]

# M values planned for (n, k) pairs given without M (a model's layers): decode batches to prefill chunks.
DEFAULT_M_VALUES = (1, 16, 64, 128, 256, 512, 1024, 2048, 4096, 8192)


@dataclass(frozen=True)
class PlanRequest:
    """One call of ``launch.plan``: what to plan and the shape it stands for (for the report)."""

    layout: str
    m: int
    n: int
    k: int
    num_groups: int = 1

    def __str__(self) -> str:
        groups = f" g={self.num_groups}" if self.layout != "dense" else ""
        return f"{self.layout} m={self.m} n={self.n} k={self.k}{groups}"


@dataclass
class PrecompileResult:
    """One distinct kernel: its config, the shapes that use it, and how its compile went."""

    kernel_name: str
    config: str
    shapes: list[str] = field(default_factory=list)
    kernel: object | None = None  # fp8gemm.jit CompiledKernel
    error: str | None = None

    @property
    def resources(self) -> object | None:
        return getattr(self.kernel, "resources", None)

    @property
    def compile_seconds(self) -> float | None:
        return getattr(self.kernel, "compile_seconds", None)

    @property
    def has_spills(self) -> bool:
        res = self.resources
        return res is not None and (res.spill_stores > 0 or res.spill_loads > 0)


def plan_requests(shapes: ShapeSet, m_values: list[int] | None = None) -> list[PlanRequest]:
    """The ``launch.plan`` calls for a shape set (see the module docstring for the ``m`` chosen)."""
    requests = []
    for s in shapes.dense:
        for m in m_values or [s.m]:
            requests.append(PlanRequest("dense", m, s.n, s.k))
    alignment = get_m_alignment_for_contiguous_layout()
    for s in shapes.contiguous:
        rows = s.groups * round_up(s.m_per_group, alignment)
        requests.append(PlanRequest("contiguous", rows, s.n, s.k, s.groups))
    for s in shapes.masked:
        requests.append(PlanRequest("masked", s.m_per_group, s.n, s.k, s.groups))
    return requests


def _compile_cuda():
    try:
        from fp8gemm.jit import compile_cuda
    except ImportError:  # the jit package may not re-export it
        from fp8gemm.jit.compiler import compile_cuda
    return compile_cuda


def _compile_one(source: str, kernel_name: str) -> tuple[object | None, str | None]:
    """Worker: compile one kernel; errors come back as text (exceptions with extra state may not pickle)."""
    try:
        return _compile_cuda()(source, kernel_name), None
    except Exception as exc:
        return None, f"{type(exc).__name__}: {exc}"


def _progress(done: int, total: int, enabled: bool, started: float) -> None:
    if enabled:
        width = 30
        filled = width * done // max(total, 1)
        bar = "#" * filled + "." * (width - filled)
        end = "\n" if done == total else ""
        print(
            f"\r[precompile] [{bar}] {done}/{total} kernels, {time.perf_counter() - started:.1f} s",
            end=end,
            file=sys.stderr,
            flush=True,
        )


def _executor(jobs: int) -> cf.Executor:
    import torch

    # fork is fast, but unsafe once this process has initialised CUDA (e.g. inside the GPU tests).
    method = "spawn" if torch.cuda.is_initialized() else "fork"
    return cf.ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context(method))


def _linear_shapes(module: object) -> list[tuple[int, int]]:
    import torch

    pairs = []
    for layer in module.modules():
        if isinstance(layer, torch.nn.Linear):
            pairs.append((layer.out_features, layer.in_features))
    return pairs


def shapes_of(
    shapes: ShapeSet | str | Path | Iterable | object | None, m_values: list[int] | None = None
) -> tuple[ShapeSet, list[int] | None]:
    """Normalise what `precompile` accepts into a ShapeSet (and the M values to plan dense shapes for).

    ``nn.Module`` -> its ``nn.Linear`` ``(out_features, in_features)``; tuples ``(m, n, k)`` or ``(n, k)``;
    ``(n, k)`` pairs (and modules) are planned for ``m_values`` or `DEFAULT_M_VALUES`. Shapes the CUDA kernel
    cannot run (n % 8 or k % 16) are dropped with a note on stderr: they would never reach a kernel.
    """
    if shapes is None or isinstance(shapes, (str, Path)):
        return load_shapes(shapes), m_values
    if isinstance(shapes, ShapeSet):
        return shapes, m_values
    import torch

    items = _linear_shapes(shapes) if isinstance(shapes, torch.nn.Module) else list(shapes)
    dense: list[DenseShape] = []
    for item in items:
        dims = tuple(int(d) for d in item)
        if len(dims) == 2:
            dense += [DenseShape(m, *dims) for m in (m_values or DEFAULT_M_VALUES)]
        elif len(dims) == 3:
            dense += [DenseShape(m, dims[1], dims[2]) for m in (m_values or [dims[0]])]
        else:
            raise ValueError(f"shapes: expected (m, n, k) or (n, k) tuples, got {item!r}")
    kept, skipped = [], {}
    for s in dict.fromkeys(dense):  # dedupe, keep order
        if s.n % 8 or s.k % 16:
            skipped[s.n, s.k] = None
        else:
            kept.append(s)
    for n, k in skipped:
        print(f"[precompile] skipping n={n} k={k}: the CUDA kernel needs n % 8 == 0 and k % 16 == 0",
              file=sys.stderr)
    return ShapeSet(dense=tuple(kept)), None


def precompile(
    shapes: ShapeSet | str | Path | Iterable | object | None = None,
    *,
    m_values: list[int] | None = None,
    num_sms: int | None = None,
    jobs: int | None = None,
    progress: bool = True,
) -> list[PrecompileResult]:
    """Plan every shape, compile each distinct kernel once, in parallel; return one result per kernel.

    Args:
        shapes: a :class:`ShapeSet`, a shapes.json path, None for the packaged shapes, an iterable of
            ``(m, n, k)`` or ``(n, k)`` tuples, or a ``torch.nn.Module`` (its ``nn.Linear`` layers).
        m_values: plan each dense ``(n, k)`` for these M instead of the file's M (for ``(n, k)`` pairs
            and modules: default `DEFAULT_M_VALUES`).
        num_sms: SM count to plan for; default: the current GPU's, or 132 without a GPU.
        jobs: worker processes; default: the CPU count. 1 compiles in this process.
        progress: draw a progress line on stderr.

    Raises:
        ImportError: when ``fp8gemm.launch.plan`` does not exist yet. Compile errors do not raise:
        they are in the results' ``error``.
    """
    from fp8gemm import device, launch

    if not hasattr(launch, "plan"):
        raise ImportError("fp8gemm.launch.plan is not available yet: nothing to precompile")
    shapes, m_values = shapes_of(shapes, m_values)
    num_sms = num_sms or device.get_num_sms()

    kernels: dict[tuple[str, str], PrecompileResult] = {}
    for request in plan_requests(shapes, m_values):
        plan = launch.plan(
            request.layout, request.m, request.n, request.k, num_groups=request.num_groups, num_sms=num_sms
        )
        key = (plan.source, plan.kernel_name)
        if key not in kernels:
            kernels[key] = PrecompileResult(plan.kernel_name, str(plan.config))
        kernels[key].shapes.append(str(request))

    started = time.perf_counter()
    _progress(0, len(kernels), progress, started)
    # NOTES: cache hits are read here, in milliseconds; only misses pay for worker processes (each
    # imports torch: seconds), so a warm precompile costs next to nothing.
    from fp8gemm.jit.compiler import find_cached

    done = 0
    missing: dict[tuple[str, str], PrecompileResult] = {}
    for (source, name), result in kernels.items():
        result.kernel = find_cached(source, name)
        if result.kernel is None:
            missing[source, name] = result
        else:
            done += 1
            _progress(done, len(kernels), progress, started)
    jobs = max(1, min(jobs or os.cpu_count() or 1, len(missing)))
    if jobs == 1:
        for (source, name), result in missing.items():
            result.kernel, result.error = _compile_one(source, name)
            done += 1
            _progress(done, len(kernels), progress, started)
    else:
        with _executor(jobs) as pool:
            futures = {
                pool.submit(_compile_one, source, name): result for (source, name), result in missing.items()
            }
            for future in cf.as_completed(futures):
                done += 1
                result = futures[future]
                try:
                    result.kernel, result.error = future.result()
                except Exception as exc:  # a worker died (e.g. out of memory)
                    result.error = f"{type(exc).__name__}: {exc}"
                _progress(done, len(kernels), progress, started)
    return list(kernels.values())


def format_results(results: list[PrecompileResult]) -> str:
    """One line per kernel: config, registers, spills, compile time (or the error)."""
    lines = [f"{'regs':>5} {'spill st/ld':>11} {'compile s':>9}  kernel / config / shapes"]
    for r in results:
        res = r.resources
        if r.error or res is None:
            lines.append(f"{'-':>5} {'-':>11} {'-':>9}  {r.kernel_name}: FAILED {r.error}")
            continue
        spills = f"{res.spill_stores}/{res.spill_loads}"
        warn = "  SPILLS" if r.has_spills else ""
        lines.append(f"{res.registers:>5} {spills:>11} {r.compile_seconds:>9.2f}  {r.kernel_name}{warn}")
        lines.append(f"{'':>28}{r.config}")
        lines.append(f"{'':>28}for {', '.join(r.shapes)}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """CLI; exit status 1 when any kernel failed to compile or spills."""
    parser = argparse.ArgumentParser(prog="python -m fp8gemm precompile", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--shapes", type=Path, help="shapes file (shapes.json format); default: the packaged one"
    )
    parser.add_argument("--jobs", type=int, help="worker processes (default: CPU count)")
    parser.add_argument("--num-sms", type=int, help="SM count to plan for (default: the GPU's, or 132)")
    parser.add_argument(
        "--m", type=int, action="append", dest="m_values", help="plan dense shapes for this M"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    try:
        results = precompile(
            args.shapes, m_values=args.m_values, num_sms=args.num_sms, jobs=args.jobs, progress=not args.quiet
        )
    except ImportError as exc:
        print(f"precompile: {exc}", file=sys.stderr)
        return 2
    print(format_results(results))
    failed = sum(1 for r in results if r.error)
    spilled = sum(1 for r in results if r.has_spills)
    print(
        f"{len(results)} kernels in {time.perf_counter() - started:.1f} s: {failed} failed, {spilled} spill"
    )
    return 1 if failed or spilled else 0


class _CallableModule(types.ModuleType):
    """Lets ``fp8gemm.precompile(...)`` call `precompile` while ``fp8gemm.precompile`` stays this module."""

    def __call__(self, *args, **kwargs) -> list[PrecompileResult]:
        return precompile(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule


if __name__ == "__main__":
    sys.exit(main())
