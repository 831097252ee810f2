"""The SASS budget of the main K loop (tools/sass_report.py) for every kernel the heuristics pick
for shapes.json, compiled for sm_90a on this (CPU) machine. A regression in the math loop (a
generic load, an S2R, descriptors through R2UR, more non-FFMA work per chain) fails here."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from fp8gemm.jit.tools import find_tool

_PATH = Path(__file__).resolve().parents[1] / "tools" / "sass_report.py"
_spec = importlib.util.spec_from_file_location("sass_report", _PATH)
sass_report = importlib.util.module_from_spec(_spec)
sys.modules["sass_report"] = sass_report
_spec.loader.exec_module(sass_report)

pytestmark = pytest.mark.skipif(find_tool("cuobjdump") is None, reason="cuobjdump (dev extra) not installed")

CONFIGS = sass_report.shapes_configs()


@pytest.mark.parametrize("config", CONFIGS, ids=[sass_report.kernel_name(c) for c in CONFIGS])
def test_main_loop_within_budget(config) -> None:
    rep = sass_report.report(config)
    assert rep.loops, "no main K loop with QGMMA found"
    assert sass_report.budget_violations(rep) == [], sass_report.format_row(rep)
    # 4 wgmma per 64-row chain (ptxas may unroll a loop of small tiles twice).
    assert all(s.chains % rep.chains == 0 for s in rep.loops)


_TOY_SASS = """
        /*0000*/                   MOV R1, c[0x0][0x28] ;  /* 0x0 */
        /*0010*/                   SYNCS.PHASECHK.TRANS64.TRYWAIT P0, [UR4], R2 ;  /* 0x0 */
        /*0020*/                   QGMMA.64x128x32.F32.E4M3.E4M3 R24, gdesc[UR8], RZ, !UPT ;  /* 0x0 */
        /*0030*/                   QGMMA.64x128x32.F32.E4M3.E4M3 R24, gdesc[UR8], R24 ;  /* 0x0 */
        /*0040*/                   QGMMA.64x128x32.F32.E4M3.E4M3 R24, gdesc[UR8], R24 ;  /* 0x0 */
        /*0050*/                   QGMMA.64x128x32.F32.E4M3.E4M3 R24, gdesc[UR8], R24, gsb0 ;  /* 0x0 */
        /*0060*/                   WARPGROUP.DEPBAR.LE gsb0, 0x0 ;  /* 0x0 */
        /*0070*/                   S2R R3, SR_CgaCtaId ;  /* 0x0 */
        /*0080*/                   LD.E R4, [R2.64] ;  /* 0x0 */
        /*0090*/                   FFMA R5, R24, R4, R5 ;  /* 0x0 */
        /*00a0*/               @P1 BRA 0x10 ;  /* 0x0 */
        /*00b0*/                   EXIT ;  /* 0x0 */
"""


def test_loop_finder_and_counts_on_known_sass() -> None:
    (body,) = sass_report.main_loops(sass_report.parse_sass(_TOY_SASS))
    s = sass_report.loop_stats(body)
    assert (s.instructions, s.chains, s.s2r, s.generic_ld_st, s.mbarrier_waits) == (10, 1, 1, 1, 1)
    # after the wait: S2R, LD, (FFMA not counted), BRA, then around the loop TRYWAIT, then QGMMA
    assert s.non_ffma_per_chain == 9 and s.non_ffma_wait_to_issue == 4
