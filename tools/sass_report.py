"""SASS report of the math warpgroup's main K loop, for the kernels the heuristics pick.

Runs on any machine (NVRTC and the cuobjdump wheel produce and dump sm_90a cubins without a GPU):

    python tools/sass_report.py                       # every config picked for shapes.json
    python tools/sass_report.py dense 4096 7168 16384 # one shape (layout m n k [groups])

For each kernel: registers and spills; for its main K loop(s) (a backward branch whose body holds
the QGMMA): instructions per 128-deep K block per 64-row chain (a chain is 4 QGMMA), how many of
those are not FFMA, the most non-FFMA instructions from a wgmma wait (WARPGROUP.DEPBAR) to the next
QGMMA (in an overlapped loop, which issues several K blocks before waiting, from its full wait,
shared out over the round's K blocks), and counts of S2R, generic LD/ST, R2UR and mbarrier waits
inside the loop. A kernel has one main loop per B-scale boundary variant; the report gives the worst
of them.

`BUDGETS` holds the limits the CPU test (tests/test_sass_report.py) enforces on every picked kernel.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from fp8gemm.codegen import kernel_name, kernel_source  # noqa: E402
from fp8gemm.config import GemmConfig, select_config  # noqa: E402

# NOTES: set from what the lean main loop reaches (2026-11-29, ptxas of NVRTC 13): 256x128 (two
# chains per warpgroup) 93.5-97 instructions per chain, 29.5-33 not FFMA (the reference kernel:
# 97 / 33); 128-row tiles 54-146 per chain, 38-51 not FFMA (one chain carries the whole K block's
# overhead), since the B scales are lane-held in every loop (before: 31-35 and 42-67); the old loop
# took 168-223 / 104-143. The worst one-chain loops are the overlapped decode loops' remainders (at
# most 3 K blocks per tile) with split-K, 60-63 not FFMA and 42-45 from wait to issue since their A
# scales come in chunks. Budgets leave a little room for ptxas's scheduling.
# Since the loops run whole rounds of the load ring unrolled (fp8_gemm.cuh, kRingRounds), a kernel
# has a round loop (kStages K blocks: 256x128 21.5-23 not FFMA per chain, 128x128 28.4, wait to
# issue 19-22) and the general loop for the K blocks around it. The round loops of 128x160 tiles
# whose B-scale boundary falls inside the tile reach 53-54 from wait to issue (55-57 not FFMA per
# chain); they were measured faster than before all the same (BENCHMARKS.md).
BUDGETS = {
    # by the config's chains per warpgroup (1: BLOCK_M <= 128, 2: 256)
    "non_ffma_per_chain": {1: 66, 2: 36},
    "non_ffma_wait_to_issue": 56,           # from a wgmma wait to the next QGMMA, FFMA not counted
    "s2r": 0,
    "generic_ld_st": 0,
    "r2ur": 4,
    "mbarrier_waits": 1,                    # per chain: one full-barrier wait per K block
    # per chain: one wgmma wait per K block; ptxas serializing the wgmma (C7514/C7517) puts one after
    # each of a chain's 4
    "wgmma_waits": 1,
    "spill_bytes": 0,
    # STL / LDL inside a main loop: a spill the loop pays on every K block
    "local_ld_st": 0,
}

_LINE = re.compile(r"/\*([0-9a-f]{4,})\*/\s+(.*?)\s*;")
_BRANCH = re.compile(r"^(@!?U?P\d+\s+)?BRA\s+(?:`?\(?\.?\w*\)?\s*)?(0x[0-9a-f]+)")


@dataclass(frozen=True)
class LoopStats:
    instructions: int
    chains: int
    instr_per_chain: float
    non_ffma_per_chain: float
    non_ffma_wait_to_issue: int
    s2r: int
    generic_ld_st: int
    r2ur: int
    mbarrier_waits: int
    wgmma_waits: int = 0
    local_ld_st: int = 0    # STL / LDL in the loop (spills)


@dataclass(frozen=True)
class KernelReport:
    kernel: str
    config: str
    registers: int
    spill_bytes: int
    loops: list[LoopStats]
    chains: int = 1   # 64-row chains per math warpgroup in the config

    @property
    def worst(self) -> LoopStats:
        return max(self.loops, key=lambda s: (s.non_ffma_per_chain, s.instr_per_chain))


def parse_sass(sass: str) -> list[tuple[int, str]]:
    """(address, instruction text without predicate comments) for every instruction."""
    out = []
    for line in sass.splitlines():
        m = _LINE.search(line)
        if m:
            out.append((int(m.group(1), 16), m.group(2).strip()))
    return out


def _opcode(text: str) -> str:
    parts = text.split()
    if parts and parts[0].startswith("@"):
        parts = parts[1:]
    return parts[0] if parts else ""


def main_loops(instrs: list[tuple[int, str]]) -> list[list[str]]:
    """Bodies of the innermost backward-branch loops that contain QGMMA."""
    index = {addr: i for i, (addr, _) in enumerate(instrs)}
    loops = []
    for i, (_, text) in enumerate(instrs):
        m = _BRANCH.match(text)
        if not m:
            continue
        target = int(m.group(2), 16)
        if target >= instrs[i][0] or target not in index:
            continue
        body = [t for _, t in instrs[index[target]:i + 1]]
        if any(_opcode(t).startswith("QGMMA") for t in body):
            loops.append((index[target], i, body))
    # keep the innermost: drop any loop whose range holds another loop's backward branch (the
    # tile loop holds the K loops; the mbarrier retry loops are placed out of line)
    return [b for s, e, b in loops if not any(s <= e2 < e for _, e2, _ in loops)]


def loop_stats(body: list[str]) -> LoopStats:
    ops = [_opcode(t) for t in body]
    qgmma = [i for i, op in enumerate(ops) if op.startswith("QGMMA")]
    chains = max(1, len(qgmma) // 4)
    ffma = sum(op.startswith("FFMA") for op in ops)
    waits = [i for i, op in enumerate(ops) if op.startswith("WARPGROUP.DEPBAR")]
    # An overlapped loop (narrow decode tiles) issues several K blocks' wgmma, then waits for them
    # one by one (DEPBAR.LE gsb0, n > 0): only its full wait (n = 0) is followed by a gap before
    # the next issue, and that gap is shared by the round's K blocks.
    overlapped = any(not body[i].rstrip().endswith("0x0") for i in waits)
    if overlapped:
        waits = [i for i in waits if body[i].rstrip().endswith("0x0")]
    worst_gap = 0
    for w in waits:  # cyclic: the loop runs again after its last instruction
        gap = 0
        for step in range(1, len(ops) + 1):
            op = ops[(w + step) % len(ops)]
            if op.startswith("QGMMA"):
                break
            if not op.startswith("FFMA") and op not in ("NOP",):
                gap += 1
        worst_gap = max(worst_gap, gap)
    if overlapped:
        worst_gap = -(-worst_gap // chains)
    real = [op for op in ops if op != "NOP"]
    return LoopStats(
        instructions=len(real),
        chains=chains,
        instr_per_chain=round(len(real) / chains, 1),
        non_ffma_per_chain=round((len(real) - ffma) / chains, 1),
        non_ffma_wait_to_issue=worst_gap,
        s2r=sum(op.startswith("S2R") for op in ops),
        generic_ld_st=sum(op.split(".")[0] in ("LD", "ST") for op in ops),
        r2ur=sum(op.startswith("R2UR") for op in ops),
        mbarrier_waits=sum("TRYWAIT" in t or "PHASECHK" in t for t in body),
        wgmma_waits=len([op for op in ops if op.startswith("WARPGROUP.DEPBAR")]),
        local_ld_st=sum(op.split(".")[0] in ("LDL", "STL") for op in ops),
    )


def report(config: GemmConfig) -> KernelReport:
    from fp8gemm.jit import tools
    from fp8gemm.jit.compiler import compile_cuda

    name = kernel_name(config)
    kernel = compile_cuda(kernel_source(config), name)
    bodies = main_loops(parse_sass(tools.sass(kernel.cubin)))
    res = kernel.resources
    return KernelReport(kernel=name, config=str(config), registers=res.registers,
                        spill_bytes=max(res.spill_stores, 0) + max(res.spill_loads, 0),
                        loops=[loop_stats(b) for b in bodies],
                        chains=config.block_m // 64 // (1 if config.block_m == 64 else 2))


def budget_violations(rep: KernelReport) -> list[str]:
    """What in `rep` exceeds BUDGETS (empty when within them)."""
    bad = []
    if not rep.loops:
        return ["no main K loop with QGMMA found"]
    if rep.spill_bytes > BUDGETS["spill_bytes"]:
        bad.append(f"spills {rep.spill_bytes} B")
    for s in rep.loops:
        checks = {
            "non_ffma_per_chain": (s.non_ffma_per_chain, BUDGETS["non_ffma_per_chain"][rep.chains]),
            "non_ffma_wait_to_issue": (s.non_ffma_wait_to_issue, BUDGETS["non_ffma_wait_to_issue"]),
            "s2r": (s.s2r, BUDGETS["s2r"]),
            "generic_ld_st": (s.generic_ld_st, BUDGETS["generic_ld_st"]),
            "r2ur": (s.r2ur, BUDGETS["r2ur"]),
            "mbarrier_waits": (s.mbarrier_waits / s.chains, BUDGETS["mbarrier_waits"]),
            "wgmma_waits": (s.wgmma_waits / s.chains, BUDGETS["wgmma_waits"]),
            "local_ld_st": (s.local_ld_st, BUDGETS["local_ld_st"]),
        }
        bad += [f"{key} {value} > {limit}" for key, (value, limit) in checks.items() if value > limit]
    return sorted(set(bad))


def shapes_configs(num_sms: int = 132) -> list[GemmConfig]:
    """Every distinct config the heuristics pick for the benchmark shapes."""
    from fp8gemm.shapes import load_shapes

    shapes = load_shapes()
    configs = [select_config("dense", s.m, s.n, s.k, 1, num_sms) for s in shapes.dense]
    configs += [select_config("contiguous", s.groups * s.m_per_group, s.n, s.k, s.groups, num_sms)
                for s in shapes.contiguous]
    configs += [select_config("masked", s.m_per_group, s.n, s.k, s.groups, num_sms) for s in shapes.masked]
    return list(dict.fromkeys(configs))


def format_row(rep: KernelReport) -> str:
    w = rep.worst
    return (f"{rep.config:95s} regs={rep.registers:3d} spill={rep.spill_bytes:3d} loops={len(rep.loops)} "
            f"instr/chain={w.instr_per_chain:6.1f} non-FFMA/chain={w.non_ffma_per_chain:5.1f} "
            f"wait->issue={w.non_ffma_wait_to_issue:3d} S2R={w.s2r} LD/ST={w.generic_ld_st} "
            f"R2UR={w.r2ur} mbar={w.mbarrier_waits}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("shape", nargs="*", help="layout m n k [groups]; default: every shapes.json config")
    p.add_argument("--json", type=Path, help="write the full report here")
    args = p.parse_args()
    if args.shape:
        layout, *nums = args.shape
        m, n, k, *g = (int(x) for x in nums)
        configs = [select_config(layout, m, n, k, g[0] if g else 1)]
    else:
        configs = shapes_configs()
    reports, failures = [], 0
    for config in configs:
        rep = report(config)
        reports.append(rep)
        bad = budget_violations(rep)
        failures += bool(bad)
        print(format_row(rep) + ("" if not bad else "  OVER BUDGET: " + "; ".join(bad)), flush=True)
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in reports], indent=1))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
