"""A/B of kernel source variants on the benchmark shapes (one device call, CUPTI, L2 flushed).

    PYTHONPATH=. python tools/ab_kernel.py --variants none FP8GEMM_EXP_X FP8GEMM_EXP_X+FP8GEMM_EXP_Y \
        [--shapes dense:4096x7168x2048 contiguous:4x8192x4096x7168 masked:4x256x4096x7168 \
                  fp32:4096x7168x16384 kgrouped:16x4096x7168x2048] [--rounds 3]

Each variant is compiled with `-DNAME` per name (`none`: as is); the library's public calls run
through the launch path with the variant's flags swapped in, with the heuristics' config, or with
other tiles where the variant ends in `@BMxBN` plus a letter and optionally `/STAGES`:
- the forward kernel: the multicast, `a`, `b` or `n` for none, e.g. `none@128x192b`,
  `FP8GEMM_EXP_X@64x64n` or `none@64x32n/12` (the pick's split-K is kept when the tiles are the
  pick's; `,ksN` forces N split-K slices: `none@64x64n,ks2`);
- the training kernel (`fp32:` and `kgrouped:` shapes): the epilogue, `t` through TMA or `r` from
  the registers, e.g. `none@128x128t` or `FP8GEMM_EXP_X@128x160r/4`.
Stages left out: as many as fit. Variants are timed round-robin,
`--rounds` times, and the median per variant is printed with its correctness (calc_diff against the
reference, outputs NaN-poisoned before the checked call). `--redraw` gives every round new inputs
(placed elsewhere in memory: the same kernel on the same inputs has differed by up to 4% between two
processes, docs/KERNEL.md, twentieth session); each variant is checked on the first round's.
For experiments on a local copy of the kernel (an `#ifdef` that skips a part, or a second version
of a file selected by a macro); the production kernel has no such knobs. `fp32:MxNxK` and
`kgrouped:GxMxNxTOKENS` time the training kernel (FP32 output, accumulated into D: `d is c`), as
tools/training_check.py does.
A grouped shape of shapes.json followed by `:ref` (`masked:32x192x6144x7168:ref`) gets the rows
that tools/perf_check.py times it with (the reference run's); otherwise its groups hold
m * U(0.7, 1.3) rows, drawn with seed G (the group count) or with the seed given after it
(`masked:2x512x4096x7168:seed=201`: a masked tile's speed depends on the draw, so compare over several).
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from perf_check import reference_sizes, spread_sizes  # noqa: E402

import fp8gemm  # noqa: E402
from benchmarks.testing import make_contiguous_inputs, make_dense_inputs, make_masked_inputs  # noqa: E402
from benchmarks.timing import cupti_time_us  # noqa: E402
from fp8gemm import launch, reference  # noqa: E402
from fp8gemm.config import with_tiles  # noqa: E402
from fp8gemm.reference import calc_diff  # noqa: E402

DEFAULT_SHAPES = ["dense:4096x32768x512", "dense:4096x7168x2048", "dense:4096x4096x7168",
                  "dense:4096x2112x7168", "dense:4096x24576x1536", "contiguous:4x8192x4096x7168",
                  "masked:4x256x4096x7168", "masked:32x192x6144x7168"]


def make_training_case(layout: str, nums: list[int]):
    """(call, check, flops) of the FP32-output kernel, D += A @ B^T in place."""
    from training_check import counts_for, dense_operands, k_grouped_operands
    if layout == "fp32":
        m, n, k = nums
        a, sa, b, sb = dense_operands(m, n, k, 1)
        sa, sb = fp8gemm.get_col_major_tma_aligned_tensor(sa), fp8gemm.get_col_major_tma_aligned_tensor(sb)
        d = torch.zeros(m, n, device="cuda")
        ref = reference.gemm_nt_fp32(a, sa, b, sb)

        def call():
            fp8gemm.fp8_gemm_nt((a, sa), (b, sb), d, c=d)
        flops = 2 * m * n * k
    else:
        g, m, n, tokens = nums
        ks = counts_for(g, tokens, g * m + n)
        a, sa, b, sb = k_grouped_operands(ks, m, n, 3)
        ks_tensor = torch.tensor(ks, dtype=torch.int32, device="cuda")
        d = torch.zeros(g, m, n, device="cuda")
        ref = reference.k_grouped_contiguous(a, sa, b, sb, ks)

        def call():
            fp8gemm.k_grouped_fp8_gemm_nt_contiguous((a, sa), (b, sb), d, ks, ks_tensor, c=d)
        flops = 2 * m * n * sum(ks)

    def check():
        d.zero_()
        call()
        return calc_diff(d, ref)
    return call, check, flops


def grouped_sizes(layout: str, nums: list[int], tail: list[str]) -> list[int]:
    """Rows per group of a grouped spec: `ref` (perf_check's rows), `seed=S`, or seed G by default."""
    g, mpg, n, k = nums
    if tail == ["ref"]:
        return reference_sizes(layout, g, mpg, n, k)
    if len(tail) == 1 and tail[0].startswith("seed="):
        return spread_sizes(g, mpg, seed=int(tail[0].removeprefix("seed=")))
    if tail:
        raise ValueError(f"after a grouped shape: `ref` or `seed=S`, got {':'.join(tail)!r}")
    return spread_sizes(g, mpg, seed=g)


def make_case(spec: str):
    """(call, check, flops) for one shape spec; check() returns calc_diff against the reference."""
    layout, dims, *tail = spec.split(":")
    nums = [int(v) for v in dims.split("x")]
    if layout in ("fp32", "kgrouped"):
        return make_training_case(layout, nums)
    if layout == "dense":
        m, n, k = nums
        x = make_dense_inputs(m, n, k)
        out = torch.empty(m, n, dtype=torch.bfloat16, device="cuda")
        ref = reference.gemm_nt(x.a, x.sa, x.b, x.sb)

        def call():
            fp8gemm.gemm_fp8_fp8_bf16_nt((x.a, x.sa_tma), (x.b, x.sb), out)

        def check():
            out.fill_(float("nan"))
            call()
            return calc_diff(out, ref)
        return call, check, 2 * m * n * k
    g, mpg, n, k = nums
    sizes = grouped_sizes(layout, nums, tail)
    if layout == "contiguous":
        x = make_contiguous_inputs(sizes, n, k)
        out = torch.empty((x.a.shape[0], n), dtype=torch.bfloat16, device="cuda")
        ref = reference.m_grouped_contiguous(x.a, x.sa, x.b, x.sb, x.m_indices)
        valid = x.m_indices >= 0

        def call():
            fp8gemm.m_grouped_gemm_fp8_fp8_bf16_nt_contiguous((x.a, x.sa_tma), (x.b, x.sb), out, x.m_indices)

        def check():
            out.fill_(float("nan"))
            call()
            return calc_diff(out[valid], ref[valid])
    else:
        max_m = -(-max(sizes) // 128) * 128
        x = make_masked_inputs(sizes, max_m, n, k)
        out = torch.empty((g, max_m, n), dtype=torch.bfloat16, device="cuda")
        ref = reference.m_grouped_masked(x.a, x.sa, x.b, x.sb, x.masked_m)
        rows = torch.arange(max_m, device="cuda")[None, :] < x.masked_m[:, None]

        def call():
            fp8gemm.m_grouped_gemm_fp8_fp8_bf16_nt_masked((x.a, x.sa_tma), (x.b, x.sb), out, x.masked_m, mpg)

        def check():
            out.fill_(float("nan"))
            call()
            return calc_diff(out[rows], ref[rows])
    return call, check, 2 * sum(sizes) * n * k


# The letter after a variant's tiles: a forward kernel's multicast, or a training kernel's epilogue.
_TILE_LETTERS = {"a": "a", "b": "b", "n": "none", "t": "tma", "r": "registers"}
_TRAINING_EPILOGUES = ("tma", "registers")


def parse_variant(variant: str) -> tuple[tuple[str, ...], tuple | None]:
    """(compile flags, forced tiles or None) of a variant spelled `A+B@128x192b`, or with a stage
    count `A@64x32n/12` (tiles: (block_m, block_n, multicast or training epilogue[, stages]))."""
    macros, _, tiles = variant.partition("@")
    flags = () if macros == "none" else tuple(f"-D{f}" for f in macros.split("+"))
    if not tiles:
        return flags, None
    tiles, _, splits = tiles.partition(",ks")
    tiles, _, stages = tiles.partition("/")
    if tiles[-1:] not in _TILE_LETTERS:
        raise ValueError(f"variant {variant!r}: tiles end in one of {'/'.join(_TILE_LETTERS)}")
    bm, bn = tiles[:-1].split("x")
    forced = (int(bm), int(bn), _TILE_LETTERS[tiles[-1]])
    if splits:
        return flags, forced + (int(stages) if stages else None, int(splits))
    return flags, forced + ((int(stages),) if stages else ())


def with_flags(flags: tuple[str, ...], tiles: tuple | None = None):
    """Route every launch the library prepares through these compile flags (and tiles, if given);
    returns what restore() puts back."""
    original = launch._prepare, launch.run_fp32, launch.select_config, launch.select_fp32_config
    if tiles is not None and tiles[2] in _TRAINING_EPILOGUES:
        from training_check import forced_fp32_selector
        bm, bn, epilogue, *stages = tiles
        launch.select_fp32_config = forced_fp32_selector(bm, bn, epilogue == "registers",
                                                         stages[0] if stages else None)
    elif tiles is not None:
        bm, bn, multicast, *rest = tiles
        stages = rest[0] if rest else None
        splits = rest[1] if len(rest) > 1 else None

        def select(layout, m, n, k, groups=1, num_sms=132):
            picked = original[2](layout, m, n, k, groups, num_sms)
            if splits is None:
                splits_here = picked.k_splits if (bm, bn) == (picked.block_m, picked.block_n) else 1
            else:
                splits_here = splits
            return with_tiles(picked, bm, bn, multicast, stages=stages, k_splits=splits_here)
        launch.select_config = select

    def flagged(fn):
        def call(*args, **kwargs):
            if flags:
                kwargs["flags"] = flags
            return fn(*args, **kwargs)
        return call
    forget_prepared()
    launch._prepare, launch.run_fp32 = flagged(original[0]), flagged(original[1])
    return original


def restore(original) -> None:
    launch._prepare, launch.run_fp32, launch.select_config, launch.select_fp32_config = original
    forget_prepared()


def forget_prepared() -> None:
    """Drop the library's prepared launches, so that the next call prepares (and compiles) again."""
    from fp8gemm import gemm
    gemm.clear_prepared()
    launch._fp32_launches.clear()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--variants", nargs="+", default=["none"])
    p.add_argument("--shapes", nargs="+", default=DEFAULT_SHAPES)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--iters", type=int, default=15)
    p.add_argument("--redraw", action="store_true",
                   help="new inputs every round (the earlier ones kept alive, so that they land elsewhere in "
                        "memory); all variants of a round share them")
    args = p.parse_args()
    lines = []
    for spec in args.shapes:
        call, check, flops = make_case(spec)
        times: dict[str, list[float]] = {v: [] for v in args.variants}
        diffs: dict[str, float] = {}
        kept = []
        for round_index in range(args.rounds):
            if args.redraw and round_index > 0:
                kept.append(call)
                call, check, flops = make_case(spec)
            for v in args.variants:
                original = with_flags(*parse_variant(v))
                try:
                    if v not in diffs:
                        diffs[v] = check()
                    times[v].append(cupti_time_us(call, iters=args.iters))
                except Exception as e:  # one broken variant must not hide the others
                    diffs[v] = float("nan")
                    print(f"{spec} {v}: ERROR {type(e).__name__}: {str(e)[:200]}", flush=True)
                finally:
                    restore(original)
        base = statistics.median(times[args.variants[0]]) if times[args.variants[0]] else float("nan")
        for v in args.variants:
            if not times[v]:
                continue
            us = statistics.median(times[v])
            lines.append(f"{spec:30s} {v:45s} {us:9.1f} us {flops / us / 1e6:6.0f} TF  x{base / us:5.3f}  "
                         f"diff {diffs[v]:.1e}  runs {' '.join(f'{t:.1f}' for t in times[v])}")
            print(lines[-1], flush=True)
    print("\n".join(["", "summary:"] + lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
