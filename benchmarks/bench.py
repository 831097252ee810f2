"""``python -m fp8gemm bench`` (or ``python benchmarks/bench.py``): our kernels against cuBLASLt and
BF16 matmul, in one run.

Kernel time is CUPTI's (:func:`benchmarks.timing.cupti_time_us`): for one call, the span from its
first kernel's start to its last kernel's end, the L2 flushed before every call, the median of many.
For every shape: our time, TFLOPS, GB/s of compulsory traffic (A, B and their scales read once, D
written once), ``torch._scaled_mm`` with blockwise 1x128/128x128 scales (cuBLASLt; a per-group loop
of it for grouped shapes) and, for dense shapes, torch BF16 ``matmul``, each timed the same way; our
speed-ups; our accuracy (``calc_diff``) against cuBLASLt's output and against the FP32 product of the
unquantized inputs. Extra columns: our time from CUDA events around a CUDA-graph replay (the
previous method; events add a few microseconds to short kernels), and for dense shapes with
M <= 128, the whole decode step (the activation cast + the GEMM) captured in a CUDA graph.

Masked shapes: every group has exactly ``m_per_group`` valid rows by default (the shapes as listed);
``--masked-spread s`` draws ``round(m_per_group * u)``, u uniform in [1-s, 1+s] with a fixed seed.
``expected_m = m_per_group``; TFLOPS and GB/s count valid rows only. Contiguous shapes: every group
has ``m_per_group`` rows, padded to 128.

A failure (ours or a baseline) is printed in its table cell and the run goes on.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

if not __package__:  # run as a script, `python benchmarks/bench.py`: import from this checkout
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fp8gemm.shapes import DenseShape, GroupedShape, ShapeSet, load_shapes
from fp8gemm.utils import ceil_div

__all__ = ["main", "BenchRow", "compulsory_bytes", "format_table", "geomean"]


@dataclass
class BenchRow:
    """One shape's results. Times in microseconds; ``None`` where not measured (see the ``*_error``)."""

    kind: str  # "dense", "contiguous" or "masked"
    shape: str
    m: int  # valid rows (all groups)
    n: int
    k: int
    groups: int = 1
    flops: float = 0.0
    bytes: float = 0.0
    config: str | None = None
    ours_us: float | None = None
    ours_error: str | None = None
    ours_event_us: float | None = None  # CUDA events around a graph replay (extra column)
    decode_step_us: float | None = None  # cast + GEMM in one CUDA graph (dense, M <= 128)
    decode_step_error: str | None = None
    scaled_mm_us: float | None = None
    scaled_mm_error: str | None = None
    bf16_us: float | None = None
    bf16_error: str | None = None
    diff_vs_scaled_mm: float | None = None
    diff_vs_fp32: float | None = None
    extra: dict = field(default_factory=dict)

    @staticmethod
    def _rate(amount: float, us: float | None, scale: float) -> float | None:
        return amount / us / scale if us else None

    @property
    def tflops(self) -> float | None:
        return self._rate(self.flops, self.ours_us, 1e6)

    @property
    def gbps(self) -> float | None:
        return self._rate(self.bytes, self.ours_us, 1e3)

    @property
    def speedup_scaled_mm(self) -> float | None:
        return self.scaled_mm_us / self.ours_us if self.ours_us and self.scaled_mm_us else None

    @property
    def speedup_bf16(self) -> float | None:
        return self.bf16_us / self.ours_us if self.ours_us and self.bf16_us else None

    def to_json(self) -> dict:
        data = asdict(self)
        for name in ("tflops", "gbps", "speedup_scaled_mm", "speedup_bf16"):
            data[name] = getattr(self, name)
        return data


def compulsory_bytes(m: int, n: int, k: int, groups: int = 1) -> int:
    """Bytes that must move at least once: FP8 A (m valid rows in all) and B (one per group), FP32
    scales of both, BF16 D."""
    kb = ceil_div(k, 128)
    a = m * k + m * kb * 4
    b = groups * (n * k + ceil_div(n, 128) * kb * 4)
    return a + b + m * n * 2


def geomean(values: list[float]) -> float | None:
    values = [v for v in values if v and v > 0]
    return math.exp(sum(math.log(v) for v in values) / len(values)) if values else None


def _error_text(exc: BaseException) -> str:
    first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {first_line}"[:200]


def _config_of(layout: str, m: int, n: int, k: int, groups: int) -> str | None:
    try:
        from fp8gemm import launch

        return str(launch.plan(layout, m, n, k, num_groups=groups).config)
    except Exception:  # the config is decoration; a missing planner must not stop the bench
        return None


def _measure(row: BenchRow, name: str, make: Callable[[], Callable[[], object]], iters: int,
             events: bool = False) -> object:
    """Build ``fn = make()``, run it once (its result is returned for the accuracy checks), then time it
    into ``row.<name>_us`` (CUPTI; with ``events`` also ``row.<name>_event_us``); any error lands in
    ``row.<name>_error`` and ``None`` is returned."""
    from benchmarks.timing import cupti_time_us, time_kernel

    try:
        fn = make()
        result = fn()
        torch.cuda.synchronize()
        setattr(row, f"{name}_us", cupti_time_us(fn, iters=iters))
        if events:
            setattr(row, f"{name}_event_us", time_kernel(fn, iters=iters))
        return result
    except Exception as exc:  # one failing kernel must not end the run
        setattr(row, f"{name}_error", _error_text(exc))
        torch.cuda.synchronize()
        return None


DECODE_MAX_M = 128


def decode_step(
    x_bf16: torch.Tensor, b: torch.Tensor, sb: torch.Tensor, out: torch.Tensor
) -> Callable[[], None]:
    """One decode step as a model runs it, captured in a CUDA graph: the activation cast (1x128,
    scales straight into the TMA-aligned layout) and the GEMM. Returns the graph's replay."""
    from benchmarks.timing import capture
    from fp8gemm import gemm, quant

    def step() -> None:
        a, sa = quant.per_token_cast_to_fp8(x_bf16, tma_aligned_scales=True)
        gemm.gemm_fp8_fp8_bf16_nt((a, sa), (b, sb), out)

    step()  # build and load both kernels outside the capture
    torch.cuda.synchronize()
    graph = capture(step)
    if graph is None:
        raise RuntimeError("the decode step could not be captured in a CUDA graph")
    return graph.replay


def bench_dense(shape: DenseShape, iters: int, seed: int = 0) -> BenchRow:
    """Ours vs cuBLASLt blockwise vs BF16 matmul on one dense shape."""
    from benchmarks.baselines import scaled_mm_blockwise
    from benchmarks.testing import calc_diff, make_dense_inputs, unquantized_product

    m, n, k = shape.m, shape.n, shape.k
    row = BenchRow("dense", str(shape), m, n, k, flops=2.0 * m * n * k, bytes=compulsory_bytes(m, n, k))
    row.config = _config_of("dense", m, n, k, 1)
    x = make_dense_inputs(m, n, k, seed=seed)
    out = torch.empty((m, n), dtype=torch.bfloat16, device="cuda")

    def make_ours() -> Callable[[], torch.Tensor]:
        from fp8gemm import gemm

        def fn() -> torch.Tensor:
            gemm.gemm_fp8_fp8_bf16_nt((x.a, x.sa_tma), (x.b, x.sb), out)
            return out

        return fn

    ours = _measure(row, "ours", make_ours, iters, events=True)
    ours = ours.clone() if ours is not None else None  # later runs overwrite `out`
    if m <= DECODE_MAX_M:
        step_out = torch.empty_like(out)
        _measure(row, "decode_step", lambda: decode_step(x.a_bf16, x.b, x.sb, step_out), iters)
        if ours is not None and row.decode_step_error is None:
            row.extra["decode_step_matches"] = bool(torch.equal(step_out, ours))
    theirs = _measure(row, "scaled_mm", lambda: scaled_mm_blockwise(x.a, x.sa, x.b, x.sb), iters)
    _measure(row, "bf16", lambda: lambda: torch.matmul(x.a_bf16, x.b_bf16.t()), iters)
    if ours is not None:
        if theirs is not None:
            row.diff_vs_scaled_mm = calc_diff(ours, theirs)
        row.diff_vs_fp32 = calc_diff(ours, unquantized_product(x.a_bf16, x.b_bf16))
        row.extra["ours_nan"] = bool(ours.isnan().any())
    return row


def bench_grouped(shape: GroupedShape, iters: int, masked_spread: float, seed: int = 0) -> BenchRow:
    """Ours vs a per-group loop of cuBLASLt blockwise calls on one grouped shape."""
    from benchmarks.baselines import grouped_scaled_mm_blockwise
    from benchmarks.testing import calc_diff, make_contiguous_inputs, make_masked_inputs, masked_counts

    g, n, k = shape.groups, shape.n, shape.k
    if shape.layout == "contiguous":
        x = make_contiguous_inputs([shape.m_per_group] * g, n, k, seed=seed)
        plan_m = x.a.shape[0]
    else:
        counts, max_m = masked_counts(g, shape.m_per_group, masked_spread, seed=seed)
        x = make_masked_inputs(counts, max_m, n, k, seed=seed)
        plan_m = shape.m_per_group
    valid = x.valid_rows
    row = BenchRow(
        shape.layout,
        str(shape),
        valid,
        n,
        k,
        groups=g,
        flops=2.0 * valid * n * k,
        bytes=compulsory_bytes(valid, n, k, g),
    )
    row.config = _config_of(shape.layout, plan_m, n, k, g)
    if shape.layout == "masked":
        row.extra.update(max_m=x.max_m, masked_m=[count for _, count in x.rows], expected_m=shape.m_per_group)
    out_shape = (x.a.shape[0], n) if shape.layout == "contiguous" else (g, x.max_m, n)
    out = torch.empty(out_shape, dtype=torch.bfloat16, device="cuda")

    def make_ours() -> Callable[[], torch.Tensor]:
        from fp8gemm import gemm

        if shape.layout == "contiguous":

            def fn() -> torch.Tensor:
                gemm.m_grouped_gemm_fp8_fp8_bf16_nt_contiguous((x.a, x.sa_tma), (x.b, x.sb), out, x.m_indices)
                return out
        else:

            def fn() -> torch.Tensor:
                gemm.m_grouped_gemm_fp8_fp8_bf16_nt_masked(
                    (x.a, x.sa_tma), (x.b, x.sb), out, x.masked_m, shape.m_per_group
                )
                return out

        return fn

    ours = _measure(row, "ours", make_ours, iters, events=True)
    theirs = _measure(
        row, "scaled_mm", lambda: grouped_scaled_mm_blockwise(x.a, x.sa, x.b, x.sb, x.rows, x.layout), iters
    )
    if ours is not None:
        groups = [i for i, (_, count) in enumerate(x.rows) if count]
        if theirs is not None:
            ours_valid = torch.cat([x.valid_out(ours, i) for i in groups])
            row.diff_vs_scaled_mm = calc_diff(ours_valid, torch.cat(theirs))
        diffs = [
            calc_diff(x.valid_out(ours, i), x.valid_a(i).float() @ x.b_bf16[i].float().t()) for i in groups
        ]
        row.diff_vs_fp32 = max(diffs, default=0.0)
    return row


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def format_table(rows: list[BenchRow]) -> str:
    """The compact table: one line per shape, errors (shortened) in place of missing numbers.

    Times are CUPTI kernel times (us); ``events`` is ours from CUDA events (extra), ``step`` the
    decode step (cast + GEMM in a CUDA graph) for dense shapes with M <= 128."""
    header = (
        f"{'kind':<5} {'shape':<30} {'ours us':>9} {'TFLOPS':>7} {'GB/s':>7} {'cublasLt us':>11} "
        f"{'bf16 us':>9} {'x cublasLt':>10} {'x bf16':>7} {'diff fp32':>9} {'events us':>9} {'step us':>8}"
        "  config"
    )
    lines = [header, "-" * len(header)]
    for r in rows:
        cublas = _fmt(r.scaled_mm_us, "11.1f") if r.scaled_mm_error is None else "ERR".rjust(11)
        bf16 = (
            "-".rjust(9)
            if r.kind != "dense"
            else (_fmt(r.bf16_us, "9.1f") if r.bf16_error is None else "ERR".rjust(9))
        )
        ours = _fmt(r.ours_us, "9.1f") if r.ours_error is None else "ERR".rjust(9)
        step = _fmt(r.decode_step_us, "8.1f") if r.decode_step_error is None else "ERR".rjust(8)
        lines.append(
            f"{r.kind[:5]:<5} {r.shape:<30} {ours} {_fmt(r.tflops, '7.0f')} {_fmt(r.gbps, '7.0f')} {cublas} "
            f"{bf16} {_fmt(r.speedup_scaled_mm, '9.2f')}x {_fmt(r.speedup_bf16, '6.2f')}x "
            f"{_fmt(r.diff_vs_fp32, '9.1e')} {_fmt(r.ours_event_us, '9.1f')} {step}  {r.config or ''}"
        )
        for name in ("ours", "scaled_mm", "bf16", "decode_step"):
            error = getattr(r, f"{name}_error")
            if error:
                lines.append(f"      {name} error: {error}")
    dense = geomean([r.speedup_scaled_mm for r in rows if r.kind == "dense"])
    counted = sum(1 for r in rows if r.kind == "dense" and r.speedup_scaled_mm)
    total = sum(1 for r in rows if r.kind == "dense")
    if total:
        lines.append(
            f"geomean speed-up over torch._scaled_mm (dense, {counted}/{total} shapes): {_fmt(dense, '.3f')}x"
        )
    return "\n".join(lines)


def plot(rows: list[BenchRow], path: Path) -> bool:
    """Bar chart of TFLOPS per shape (ours, cuBLASLt, BF16). Returns False when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    labels = [f"{r.kind[:4]} {r.shape}" for r in rows]
    series = {
        "fp8gemm": [r.tflops or 0 for r in rows],
        "cuBLASLt blockwise": [r.flops / r.scaled_mm_us / 1e6 if r.scaled_mm_us else 0 for r in rows],
        "BF16 matmul": [r.flops / r.bf16_us / 1e6 if r.bf16_us else 0 for r in rows],
    }
    width = 0.27
    fig, ax = plt.subplots(figsize=(max(8, 0.55 * len(rows)), 5))
    for i, (name, values) in enumerate(series.items()):
        ax.bar([j + (i - 1) * width for j in range(len(rows))], values, width, label=name)
    ax.set_xticks(range(len(rows)))
    ax.set_xticklabels(labels, rotation=70, ha="right", fontsize=7)
    ax.set_ylabel("TFLOPS")
    ax.set_title("FP8 GEMM (CUPTI kernel time, L2 flushed, median)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def _git_commit() -> str | None:
    """The commit the bench ran at: FP8GEMM_BENCH_COMMIT when set (a copy of the tree whose git
    metadata lags, as on a remote GPU machine), else `git rev-parse` beside the package."""
    if override := os.environ.get("FP8GEMM_BENCH_COMMIT"):
        return override
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).resolve().parent,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m fp8gemm bench", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--shapes", type=Path, help="shapes file (shapes.json format); default: the packaged one"
    )
    parser.add_argument("--m", type=int, help="one dense shape: M (with --n and --k)")
    parser.add_argument("--n", type=int)
    parser.add_argument("--k", type=int)
    parser.add_argument("--only", choices=("dense", "contiguous", "masked"), help="one kind of shape only")
    parser.add_argument(
        "--out", type=Path, default=Path("bench_out"), help="directory for bench.json, bench.png"
    )
    parser.add_argument("--iters", type=int, default=30, help="timed runs per kernel (median reported)")
    parser.add_argument(
        "--masked-spread", type=float, default=0.0, help="masked rows in [1-s, 1+s]*m_per_group"
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    given = [v is not None for v in (args.m, args.n, args.k)]
    if any(given) and not all(given):
        parser.error("--m, --n and --k go together")
    if not 0 <= args.masked_spread < 1:
        parser.error("--masked-spread: expected a value in [0, 1)")
    return args


def select_shapes(args: argparse.Namespace) -> ShapeSet:
    """The shapes this run measures: ``--m/--n/--k`` alone, else the file, filtered by ``--only``."""
    if args.m is not None:
        return ShapeSet(dense=(DenseShape(args.m, args.n, args.k),))
    shapes = load_shapes(args.shapes)
    if args.only:
        shapes = ShapeSet(**{args.only: getattr(shapes, args.only)})
    return shapes


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print progress, then the table last. Returns 0, or 2 without a CUDA GPU."""
    args = parse_args(argv)
    shapes = select_shapes(args)
    if not torch.cuda.is_available():
        print("bench: needs a CUDA GPU (none found)", file=sys.stderr)
        return 2
    rows: list[BenchRow] = []
    jobs: list[tuple[str, Callable[[], BenchRow]]] = []
    for s in shapes.dense:
        jobs.append((f"dense {s}", lambda s=s: bench_dense(s, args.iters, args.seed)))
    for s in (*shapes.contiguous, *shapes.masked):
        jobs.append((str(s), lambda s=s: bench_grouped(s, args.iters, args.masked_spread, args.seed)))
    for i, (name, job) in enumerate(jobs, 1):
        print(f"[{i}/{len(jobs)}] {name}", file=sys.stderr, flush=True)
        try:
            rows.append(job())
        except Exception as exc:  # e.g. input construction failed: record it, keep going
            kind = name.split()[0]
            rows.append(BenchRow(kind, name, 0, 0, 0, ours_error=f"setup: {_error_text(exc)}"))
        torch.cuda.empty_cache()

    args.out.mkdir(parents=True, exist_ok=True)
    meta = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "commit": _git_commit(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "device": torch.cuda.get_device_name(),
        "iters": args.iters,
        "timing": "CUPTI span of one call (first kernel start to last kernel end), L2 flushed, median",
        "masked_spread": args.masked_spread,
        "seed": args.seed,
        "geomean_speedup_scaled_mm_dense": geomean([r.speedup_scaled_mm for r in rows if r.kind == "dense"]),
    }
    (args.out / "bench.json").write_text(
        json.dumps({"meta": meta, "rows": [r.to_json() for r in rows]}, indent=1)
    )
    plotted = plot(rows, args.out / "bench.png")
    print(
        f"wrote {args.out / 'bench.json'}" + (f" and {args.out / 'bench.png'}" if plotted else " (no plot)")
    )
    print(f"{meta['device']}, torch {meta['torch']}, commit {meta['commit']}, {meta['date']}")
    print(format_table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
