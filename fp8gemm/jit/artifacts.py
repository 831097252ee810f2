"""What a compile produces (a cubin plus its resource usage) and how it fails."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class PtxasResources:
    """ptxas resource usage of one kernel; -1 where the compiler did not report a value."""

    registers: int
    shared_bytes: int
    spill_stores: int
    spill_loads: int
    stack_bytes: int

    def __str__(self) -> str:
        return (
            f"{self.registers} registers, {self.shared_bytes} B static smem, "
            f"{self.spill_stores} B spill stores, {self.spill_loads} B spill loads, "
            f"{self.stack_bytes} B stack"
        )


UNKNOWN_RESOURCES = PtxasResources(-1, -1, -1, -1, -1)


@dataclass(frozen=True)
class CompiledKernel:
    """A compiled kernel: the cubin for one arch and what ptxas said about it."""

    name: str
    cubin: bytes
    resources: PtxasResources
    compile_seconds: float
    compiler: str  # e.g. "nvrtc-13.5" or "nvcc-13.0.88"
    arch: str = "sm_90a"

    def __repr__(self) -> str:  # the cubin bytes are not worth printing
        return (
            f"CompiledKernel(name={self.name!r}, cubin=<{len(self.cubin)} bytes>, "
            f"resources={self.resources}, compile_seconds={self.compile_seconds:.3f}, "
            f"compiler={self.compiler!r}, arch={self.arch!r})"
        )


class CompileError(RuntimeError):
    """A failed compile: carries the compiler log, the command and where the source was written."""

    def __init__(self, message: str, *, log: str = "", source_path: Path | None = None, command: str = ""):
        self.log = log
        self.source_path = source_path
        self.command = command
        parts = [message]
        if source_path is not None:
            parts.append(f"source: {source_path}")
        if command:
            parts.append(f"command: {command}")
        if log:
            parts.append("log:\n" + log.rstrip())
        super().__init__("\n".join(parts))


# ptxas -v prints, per function:
#   ptxas info    : Compiling entry function 'k' for 'sm_90a'
#   ptxas info    : Function properties for k
#   ptxas         .     0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
#   ptxas info    : Used 10 registers, used 1 barriers, 1024 bytes smem, ...
_ENTRY = re.compile(r"Compiling entry function '([^']+)'")
_PROPS = re.compile(r"Function properties for (\S+)")
_FRAME = re.compile(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads")
_USED = re.compile(r"Used (\d+) registers")
_SMEM = re.compile(r"(\d+) bytes smem")


def parse_ptxas_log(log: str, kernel_name: str) -> PtxasResources | None:
    """Resources of `kernel_name` from ptxas -v output, or None if the log does not describe it."""
    current = None
    found = False
    regs = smem = stores = loads = stack = -1
    for line in log.splitlines():
        m = _ENTRY.search(line) or _PROPS.search(line)
        if m:
            current = m.group(1)
            continue
        if current != kernel_name:
            continue
        if m := _FRAME.search(line):
            stack, stores, loads = (int(g) for g in m.groups())
            found = True
        if m := _USED.search(line):
            regs = int(m.group(1))
            smem = int(s.group(1)) if (s := _SMEM.search(line)) else 0
            found = True
    if not found:
        return None
    return PtxasResources(regs, smem, stores, loads, stack)


# cuobjdump -res-usage prints: " Function k:\n  REG:10 STACK:0 SHARED:2048 LOCAL:0 ..."
_RES_USAGE = re.compile(r"Function ([^\s:]+):\s*\n\s*REG:(\d+)\s+STACK:(\d+)\s+SHARED:(\d+)\s+LOCAL:(\d+)")


def parse_res_usage(text: str, kernel_name: str) -> PtxasResources | None:
    """Resources from `cuobjdump -res-usage` (spills are unknown there; LOCAL>0 hints at them)."""
    for m in _RES_USAGE.finditer(text):
        if m.group(1) == kernel_name:
            regs, stack, shared, local = (int(g) for g in m.groups()[1:])
            spills = 0 if local == 0 else -1
            return PtxasResources(regs, shared, spills, spills, stack)
    return None
