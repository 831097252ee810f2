"""`python -m fp8gemm`: demo on the CPU path, check, and the bench/precompile dispatch."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
import torch

from fp8gemm.__main__ import main


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU fallback of the demo")
def test_demo_runs_on_cpu():
    result = subprocess.run([sys.executable, "-m", "fp8gemm", "demo"], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "No sm_90 (Hopper) GPU found" in result.stdout
    assert "m=64 n=512 k=1024" in result.stdout
    diff = float(re.search(r"diff vs FP32 product of the unquantized inputs: (\S+)", result.stdout).group(1))
    assert 0 < diff < 1e-3
    assert re.search(r"time \d+\.\d+ ms", result.stdout)


def test_check_prints_environment(capsys):
    assert main(["check"]) == 0
    text = capsys.readouterr().out
    assert f"torch {torch.__version__}" in text
    assert "sm_90 available:" in text and "NVRTC:" in text


@pytest.mark.parametrize("command", ["bench", "precompile"])
def test_missing_subcommand_module_is_reported(command, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, f"fp8gemm.{command}", None)  # makes the import fail
    assert main([command]) == 2
    assert f"fp8gemm.{command} is not part of this installation" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["bench", "precompile"])
def test_subcommand_dispatches_arguments(command, monkeypatch):
    seen = []
    fake = type(sys)(f"fp8gemm.{command}")
    fake.main = lambda argv: seen.append(argv) or 0
    monkeypatch.setitem(sys.modules, f"fp8gemm.{command}", fake)
    assert main([command, "--quick", "x"]) == 0
    assert seen == [["--quick", "x"]]


def test_unknown_command_exits_with_usage():
    with pytest.raises(SystemExit) as info:
        main(["nope"])
    assert info.value.code == 2
