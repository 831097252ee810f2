"""``python -m fp8gemm precompile``: compile, ahead of time, every kernel a shape set can launch.

Each shape goes through ``fp8gemm.launch.plan`` (the same choice the GEMMs make at run time), and
every kernel a plan launches is compiled: the GEMM itself (split-K included: it is one kernel), and
any other kernel a plan lists; the activation-cast kernels of ``per_token_cast_to_fp8(x,
tma_aligned_scales=True)`` (one per input dtype) are compiled too. Kernels shared by several shapes
are compiled once; compiles run in a process pool and fill the on-disk JIT cache; kernels already
there are reported as cached, not compiled again. (Measured on a 2-core CPU, 4 tiny kernels:
sequential 0.14 s, 2 threads 0.07 s, 2 forked processes 0.09 s: NVRTC through cuda-bindings does
release the GIL, but processes also isolate a compiler crash or leak, and the fork cost is small
next to real kernels' seconds of compile.)
Works without a GPU: the plan then assumes an H200 (132 SMs).

Which ``m`` is planned. M is a run-time argument of every kernel, but the heuristics pick the tile
configuration from M, so different M can need different kernels (7 to 26 of them per (n, k) over
M <= 8192). So:

- ``(n, k)`` pairs (and a model's ``nn.Linear`` layers) are planned for every M from 1 to ``max_m``
  (default 8192): the configs are enumerated (the heuristics are pure and cheap, about 2 s per pair)
  and each distinct one is compiled, so no M up to ``max_m`` compiles at run time;
- ``m_values`` replaces that by the given M values; ``max_m`` applies the scan to a shape file's dense
  shapes too (else they are planned for their own ``m``);
- contiguous shapes: the total rows ``groups * round_up(m_per_group, 128)``; masked shapes:
  ``expected_m = m_per_group``.

From Python, ``fp8gemm.precompile(model)`` is `precompile` below (this module is ``fp8gemm.aot``); it
takes a shapes file, a `ShapeSet`, ``(m, n, k)`` / ``(n, k)`` tuples, or a ``torch.nn.Module``
whose ``nn.Linear`` layers give the ``(n, k)`` = ``(out_features, in_features)``.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import functools
import multiprocessing
import operator
import os
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from fp8gemm.layout import get_m_alignment_for_contiguous_layout
from fp8gemm.shapes import DenseShape, ShapeSet, load_shapes
from fp8gemm.utils import round_up

__all__ = [
    "PlanRequest", "PrecompileResult", "plan_requests", "precompile", "shapes_of", "covering_m_values",
    "DEFAULT_MAX_M", "main",
]

# (n, k) pairs given without M (a model's layers): planned for every config M = 1..DEFAULT_MAX_M picks.
DEFAULT_MAX_M = 8192


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
    cached: bool = False  # found in the cache: nothing was compiled for it this time
    kind: str = "gemm"  # "gemm", "extra" (another kernel a plan lists) or "cast" (activation quantization)

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


def _positive(value: object, name: str) -> int:
    if isinstance(value, bool):
        raise TypeError(f"{name}: expected a positive int, got bool")
    try:
        value = operator.index(value)
    except TypeError:
        raise TypeError(f"{name}: expected a positive int, got {type(value).__name__}") from None
    if value <= 0:
        raise ValueError(f"{name}: expected a positive int, got {value}")
    return value


@functools.lru_cache(maxsize=256)
def covering_m_values(n: int, k: int, num_sms: int, max_m: int = DEFAULT_MAX_M) -> tuple[int, ...]:
    """For a dense ``(n, k)``: the smallest M of each distinct config that `select_config` picks for
    M = 1..max_m. Planning these M compiles every kernel any M up to ``max_m`` can launch."""
    from fp8gemm.config import select_config

    select = getattr(select_config, "__wrapped__", select_config)  # the scan must not flush its cache
    first: dict[object, int] = {}
    for m in range(1, max_m + 1):
        first.setdefault(select("dense", m, n, k, 1, num_sms), m)
    return tuple(sorted(first.values()))


def plan_requests(shapes: ShapeSet, m_values: list[int] | None = None, *, max_m: int | None = None,
                  num_sms: int = 132) -> list[PlanRequest]:
    """The ``launch.plan`` calls for a shape set (see the module docstring for the ``m`` chosen)."""
    requests = []
    for s in shapes.dense:
        if m_values:
            ms = m_values
        elif max_m:
            ms = covering_m_values(s.n, s.k, num_sms, max_m)
        else:
            ms = [s.m]
        requests += [PlanRequest("dense", m, s.n, s.k) for m in ms]
    alignment = get_m_alignment_for_contiguous_layout()
    for s in shapes.contiguous:
        rows = s.groups * round_up(s.m_per_group, alignment)
        requests.append(PlanRequest("contiguous", rows, s.n, s.k, s.groups))
    for s in shapes.masked:
        requests.append(PlanRequest("masked", s.m_per_group, s.n, s.k, s.groups))
    return list(dict.fromkeys(requests))  # dedupe, keep order


def plan_kernels(plan: object) -> list[tuple[str, str]]:
    """``(source, kernel name)`` of every kernel a launch of ``plan`` runs.

    A plan that lists them (a ``kernels`` attribute) is taken at its word; otherwise it is the GEMM
    kernel alone (split-K sums its slices inside the kernel).
    """
    listed = getattr(plan, "kernels", None)
    if listed is not None:
        return [tuple(pair) for pair in listed]
    return [(plan.source, plan.kernel_name)]


def cast_kernels() -> list[tuple[str, str, str]]:
    """``(source, kernel name, description)`` of the activation-cast kernels, one per input dtype."""
    from fp8gemm import quant_cuda

    return [(quant_cuda.kernel_source(dtype), quant_cuda.kernel_name(dtype),
             f"per_token_cast_to_fp8 {str(dtype).replace('torch.', '')}") for dtype in quant_cuda.KINDS]


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
    shapes: ShapeSet | str | Path | Iterable | object | None, m_values: list[int] | None = None, *,
    num_sms: int = 132, max_m: int | None = None,
) -> tuple[ShapeSet, list[int] | None]:
    """Normalise what `precompile` accepts into a ShapeSet (and the M values to plan dense shapes for).

    ``nn.Module`` -> its ``nn.Linear`` ``(out_features, in_features)``; tuples ``(m, n, k)`` or ``(n, k)``;
    ``(n, k)`` pairs (and modules) are planned for ``m_values``, else for `covering_m_values` up to
    ``max_m`` (default `DEFAULT_MAX_M`). Shapes the CUDA kernel cannot run (n % 8 or k % 16) are dropped
    with a note on stderr: they would never reach a kernel.
    """
    if shapes is None or isinstance(shapes, (str, Path)):
        return load_shapes(shapes), m_values
    if isinstance(shapes, ShapeSet):
        return shapes, m_values
    import torch

    items = _linear_shapes(shapes) if isinstance(shapes, torch.nn.Module) else list(shapes)
    dense: list[DenseShape] = []
    for item in items:
        try:
            dims = tuple(operator.index(d) for d in item)
        except TypeError:
            raise ValueError(f"shapes: expected (m, n, k) or (n, k) tuples of ints, got {item!r}") from None
        if len(dims) == 2:
            n, k = dims
            ok = n > 0 and k > 0 and n % 8 == 0 and k % 16 == 0
            ms = m_values or (covering_m_values(n, k, num_sms, max_m or DEFAULT_MAX_M) if ok else [1])
            dense += [DenseShape(m, n, k) for m in ms]
        elif len(dims) == 3:
            dense += [DenseShape(m, dims[1], dims[2]) for m in (m_values or [dims[0]])]
        else:
            raise ValueError(f"shapes: expected (m, n, k) or (n, k) tuples, got {item!r}")
    kept, skipped = [], {}
    for s in dict.fromkeys(dense):  # dedupe, keep order
        if s.n <= 0 or s.k <= 0 or s.m <= 0 or s.n % 8 or s.k % 16:
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
    max_m: int | None = None,
    num_sms: int | None = None,
    jobs: int | None = None,
    progress: bool = True,
    cast: bool = True,
) -> list[PrecompileResult]:
    """Plan every shape, compile each distinct kernel once, in parallel; return one result per kernel.

    Args:
        shapes: a :class:`ShapeSet`, a shapes.json path, None for the packaged shapes, an iterable of
            ``(m, n, k)`` or ``(n, k)`` tuples, or a ``torch.nn.Module`` (its ``nn.Linear`` layers).
        m_values: plan each dense ``(n, k)`` for these M instead (positive ints).
        max_m: plan each dense ``(n, k)`` for every config M = 1..max_m selects (`covering_m_values`);
            the default for ``(n, k)`` pairs and modules, with `DEFAULT_MAX_M`.
        num_sms: SM count to plan for; default: the current GPU's, or 132 without a GPU.
        jobs: worker processes; default: the CPU count. 1 compiles in this process.
        progress: draw a progress line on stderr.
        cast: also compile the activation-cast kernels (`fp8gemm.quant_cuda`).

    Returns:
        One `PrecompileResult` per distinct kernel; ``cached`` says it was found in the cache.

    Raises:
        TypeError, ValueError: a bad argument, a malformed shapes file, an empty shape set, or a shape
            the CUDA kernel cannot run (named).
        FileNotFoundError: no such shapes file.
        fp8gemm.jit.cache.CacheDirError: the cache directory is not writable (nothing is compiled into
            a temporary directory that would vanish with the process).
        Compile errors do not raise: they are in the results' ``error``.
    """
    from fp8gemm import device, launch
    from fp8gemm.jit import cache

    if m_values is not None:
        m_values = [_positive(m, "m_values") for m in m_values]
    max_m = None if max_m is None else _positive(max_m, "max_m")
    num_sms = _positive(num_sms, "num_sms") if num_sms is not None else device.get_num_sms()
    jobs = None if jobs is None else _positive(jobs, "jobs")
    shape_set, m_values = shapes_of(shapes, m_values, num_sms=num_sms, max_m=max_m)
    requests = plan_requests(shape_set, m_values, max_m=max_m, num_sms=num_sms)
    if not requests:
        raise ValueError("shapes: nothing to precompile (no shape the CUDA kernel can run)")
    cache.cache_dir(fallback=False)

    kernels: dict[tuple[str, str], PrecompileResult] = {}
    for request in requests:
        try:
            plan = launch.plan(request.layout, request.m, request.n, request.k, num_groups=request.num_groups,
                               num_sms=num_sms)
        except ValueError as e:
            raise ValueError(f"{request}: {e}") from None
        for source, name in plan_kernels(plan):
            key = (source, name)
            if key not in kernels:
                gemm = name == plan.kernel_name
                kernels[key] = PrecompileResult(
                    name, str(plan.config) if gemm else f"second kernel of {plan.kernel_name}",
                    kind="gemm" if gemm else "extra")
            kernels[key].shapes.append(str(request))
    if cast:
        for source, name, what in cast_kernels():
            kernels.setdefault((source, name), PrecompileResult(name, what, kind="cast")).shapes.append(what)

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
            result.cached = True
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
    """One line per kernel: registers, spills, compile time ("cached" when it was already built) or the
    error; then its config and the shapes that use it."""
    lines = [f"{'regs':>5} {'spill st/ld':>11} {'compile s':>9}  kernel / config / shapes"]
    for r in results:
        res = r.resources
        if r.error or res is None:
            lines.append(f"{'-':>5} {'-':>11} {'-':>9}  {r.kernel_name}: FAILED {r.error}")
            continue
        spills = f"{res.spill_stores}/{res.spill_loads}"
        warn = "  SPILLS" if r.has_spills else ""
        when = "cached" if r.cached else f"{r.compile_seconds:.2f}"
        lines.append(f"{res.registers:>5} {spills:>11} {when:>9}  {r.kernel_name}{warn}")
        lines.append(f"{'':>28}{r.config}")
        lines.append(f"{'':>28}for {', '.join(r.shapes)}")
    return "\n".join(lines)


def summary(results: list[PrecompileResult], seconds: float) -> str:
    """``"N kernels in T s: C compiled, H already cached, F failed, S spill"``."""
    failed = sum(1 for r in results if r.error)
    cached = sum(1 for r in results if r.cached)
    spilled = sum(1 for r in results if r.has_spills)
    compiled = len(results) - cached - failed
    return (f"{len(results)} kernels in {seconds:.1f} s: {compiled} compiled, {cached} already cached, "
            f"{failed} failed, {spilled} spill")


class _OneLineParser(argparse.ArgumentParser):
    """Usage errors as one line on stderr and exit status 2 (argparse's default prints the usage too)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}\n")


def _positive_arg(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def main(argv: list[str] | None = None) -> int:
    """CLI. Exit status: 0 all compiled (or cached) without spills; 1 a kernel failed or spills; 2 bad
    arguments, shapes file or cache directory (one line on stderr)."""
    parser = _OneLineParser(prog="python -m fp8gemm precompile", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--shapes", type=Path, help="shapes file (shapes.json format); default: the packaged one"
    )
    parser.add_argument("--jobs", type=_positive_arg, help="worker processes (default: CPU count)")
    parser.add_argument("--num-sms", type=_positive_arg,
                        help="SM count to plan for (default: the GPU's, or 132)")
    parser.add_argument("--m", type=_positive_arg, nargs="+", action="extend", dest="m_values", metavar="M",
                        help="plan dense shapes for these M (e.g. --m 1 64 4096; repeatable)")
    parser.add_argument("--max-m", type=_positive_arg, metavar="M",
                        help="plan dense shapes for every kernel that M = 1..M can select")
    parser.add_argument("--no-cast", action="store_true", help="skip the activation-cast kernels")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    try:
        results = precompile(
            args.shapes, m_values=args.m_values, max_m=args.max_m, num_sms=args.num_sms, jobs=args.jobs,
            progress=not args.quiet, cast=not args.no_cast,
        )
    except (OSError, ValueError, TypeError, ImportError) as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 2
    print(format_results(results))
    print(summary(results, time.perf_counter() - started))
    return 1 if any(r.error or r.has_spills for r in results) else 0



if __name__ == "__main__":
    sys.exit(main())
