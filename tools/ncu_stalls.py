"""Where a kernel's warps wait, per SASS instruction: a summary of ncu's source-counter samples.

On the GPU, profile one launch and export its SASS page as CSV, e.g. for a dense GEMM:

    PYTHONPATH=. ncu --clock-control none -k regex:fp8gemm_dense -s 1 -c 1 --section SourceCounters \
        --section WarpStateStats -o prof python tools/one_gemm.py 4096 32768 512
    ncu -i prof.ncu-rep --page source --csv --print-source sass > prof.csv

then, anywhere:

    python tools/ncu_stalls.py prof.csv [--min-share 0.004]

It prints the instructions that hold at least --min-share of the warp samples, in address order, with
their share, execution count and two largest stall reasons. Idle warps (the producer warpgroup's
three spare warps wait at the kernel's closing cluster barrier, UCGABAR_WAIT, for the whole run) hold
many samples that cost nothing; their share is printed apart, and the shares are given of all
samples and of the rest. docs/KERNEL.md ("Eighth session's measurements") has readings of it.
"""

from __future__ import annotations

import argparse
import csv
import io
from dataclasses import dataclass
from pathlib import Path

IDLE_OPCODES = ("UCGABAR_WAIT",)


@dataclass(frozen=True)
class Instruction:
    address: int
    source: str
    samples: int
    executed: int
    stalls: dict[str, int]

    @property
    def idle(self) -> bool:
        """A warp parked for the whole run (see the module's docstring), not a cost."""
        return self.source.split(" ")[0] in IDLE_OPCODES

    def top_stalls(self, n: int = 2) -> list[tuple[str, int]]:
        return sorted(self.stalls.items(), key=lambda kv: -kv[1])[:n]


def parse(text: str) -> list[Instruction]:
    """The instructions of ncu's `--page source --csv --print-source sass` output (one kernel)."""
    rows = list(csv.reader(io.StringIO(text)))
    header_at = next(i for i, row in enumerate(rows) if row and row[0] == "Address")
    header = rows[header_at]
    col = {name: i for i, name in enumerate(header)}
    stall_cols = {name[len("stall_"):]: i for name, i in col.items()
                  if name.startswith("stall_") and "Not Issued" not in name}
    out = []
    for row in rows[header_at + 1:]:
        if len(row) < len(header) or not row[0].startswith("0x"):
            continue
        out.append(Instruction(
            address=int(row[0], 16), source=row[col["Source"]].strip(),
            samples=int(row[col["Warp Stall Sampling (All Samples)"]]),
            executed=int(row[col["Instructions Executed"]]),
            stalls={name: int(row[i]) for name, i in stall_cols.items()}))
    return out


def report(instrs: list[Instruction], min_share: float = 0.004) -> str:
    total = sum(i.samples for i in instrs)
    idle = sum(i.samples for i in instrs if i.idle)
    busy = max(total - idle, 1)
    lines = [f"samples {total}, idle warps {idle} ({100 * idle / max(total, 1):.1f}%); shares below: "
             "of all / of the non-idle samples"]
    for i in instrs:
        if i.samples >= min_share * total:
            stalls = ", ".join(f"{name} {n}" for name, n in i.top_stalls() if n)
            busy_share = "  idle" if i.idle else f"{100 * i.samples / busy:5.1f}%"
            lines.append(f"{i.address & 0xfffff:05x} {100 * i.samples / max(total, 1):5.1f}% {busy_share} "
                         f"x{i.executed:<9d} {i.source[:60]:60s} {stalls}")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("csv", type=Path)
    p.add_argument("--min-share", type=float, default=0.004)
    args = p.parse_args()
    print(report(parse(args.csv.read_text()), args.min_share))


if __name__ == "__main__":
    main()
