"""tools/ncu_stalls.py reads ncu's SASS source page (CSV) and ranks where the warps wait."""

from __future__ import annotations

from repo_scripts import load

ncu_stalls = load("tools/ncu_stalls.py")

HEADER = ('"Address","Source","Warp Stall Sampling (All Samples)","Warp Stall Sampling (Not-issued Samples)",'
          '"# Samples","Instructions Executed","stall_barrier","stall_long_sb","stall_wait",'
          '"stall_barrier (Not Issued)"')
CSV = "\n".join([
    '"Kernel Name","fp8gemm_dense_test",',
    HEADER,
    '"0x7f0000000010","      WARPGROUP.DEPBAR.LE gsb0, 0x0","60","60","60","1000","58","0","2","58"',
    '"0x7f0000000020","      @!P0  BRA 0x7f0000000100","30","30","30","1000","0","29","1","0"',
    '"0x7f0000000030","      FFMA R1, R2, R3, R1","1","1","1","64000","0","0","1","0"',
    '"0x7f0000000040","      UCGABAR_WAIT","109","109","109","12","109","0","0","109"',
])


def test_parse_reads_every_instruction_and_its_stall_reasons() -> None:
    instrs = ncu_stalls.parse(CSV)
    assert [i.address & 0xff for i in instrs] == [0x10, 0x20, 0x30, 0x40]
    depbar = instrs[0]
    assert depbar.source == "WARPGROUP.DEPBAR.LE gsb0, 0x0"
    assert (depbar.samples, depbar.executed) == (60, 1000)
    assert depbar.stalls == {"barrier": 58, "long_sb": 0, "wait": 2}  # "(Not Issued)" columns left out
    assert depbar.top_stalls(1) == [("barrier", 58)]


def test_report_ranks_shares_and_sets_idle_warps_apart() -> None:
    text = ncu_stalls.report(ncu_stalls.parse(CSV), min_share=0.02)
    lines = text.splitlines()
    assert lines[0].startswith("samples 200, idle warps 109 (54.5%)")
    assert len(lines) == 4  # the FFMA's 0.5% is under the threshold
    assert "30.0%  65.9%" in lines[1] and "barrier 58, wait 2" in lines[1]
    assert "15.0%  33.0%" in lines[2] and "long_sb 29" in lines[2]
    assert " idle " in lines[3] and "UCGABAR_WAIT" in lines[3]
