"""tools/loop_floor.py on the CPU: every variant compiles for sm_90a without spills, and its SASS keeps
all of its wgmma. (Sums that nothing reads let ptxas drop a wgmma as dead: such a variant would time
less work than it claims.) The timing itself needs the H200."""

from __future__ import annotations

import re

import pytest
from repo_scripts import load

from fp8gemm import jit
from fp8gemm.jit.tools import find_tool

loop_floor = load("tools/loop_floor.py")

pytestmark = pytest.mark.skipif(find_tool("cuobjdump") is None, reason="cuobjdump (dev extra) not installed")


@pytest.mark.parametrize("name", list(loop_floor.VARIANTS))
def test_variant_keeps_its_wgmma(name: str) -> None:
    variant = loop_floor.VARIANTS[name]
    compiled = jit.compile_cuda(loop_floor.kernel_source(variant, writes=True), "loop_floor")
    assert compiled.resources.spill_stores == 0 and compiled.resources.spill_loads == 0
    sass = jit.sass(compiled.cubin)
    wgmma = len(re.findall(r"\bQGMMA\.", sass))
    assert wgmma > 0 and wgmma % variant.wgmma_per_k_block == 0, (name, wgmma)
    shape = "64x256x32" if name == "n256_no_promote" else "64x64x32" if name == "two_deep" else "64x128x32"
    assert f"QGMMA.{shape}" in sass


def test_variants_differ_in_source() -> None:
    variants = loop_floor.VARIANTS.values()
    sources = {loop_floor.kernel_source(v, writes=w) for v in variants for w in (True, False)}
    assert len(sources) == 2 * len(loop_floor.VARIANTS)


def test_unknown_variant_is_refused(monkeypatch, capsys) -> None:
    monkeypatch.setattr("sys.argv", ["loop_floor.py", "--variants", "promote,bogus"])
    with pytest.raises(SystemExit):
        loop_floor.main()
    assert "unknown variant 'bogus'" in capsys.readouterr().err
