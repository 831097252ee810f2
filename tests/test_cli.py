"""`python -m fp8gemm`: demo on the CPU path, check, and the bench/precompile dispatch."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
import torch

import fp8gemm.__main__ as cli
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


def test_bench_outside_a_checkout_says_where_it_lives(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(cli, "_CHECKOUT", tmp_path)  # an installed package: no benchmarks/ beside it
    assert main(["bench", "--m", "1"]) == 2
    assert "benchmarks/bench.py of an fp8gemm checkout" in capsys.readouterr().err


@pytest.mark.parametrize("command,module",
                         [("bench", "benchmarks.bench"), ("precompile", "fp8gemm.aot")])
def test_subcommand_dispatches_arguments(command, module, monkeypatch):
    seen = []
    fake = type(sys)(module)
    fake.main = lambda argv: seen.append(argv) or 3
    monkeypatch.setitem(sys.modules, module, fake)
    assert main([command, "--quick", "x"]) == 3  # the verb's own exit status comes back
    assert seen == [["--quick", "x"]]


def test_bench_runs_from_the_checkout():
    # The real benchmarks/bench.py, reached through the verb: it parses its arguments (and refuses
    # a half-given shape before it needs a GPU).
    with pytest.raises(SystemExit) as info:
        main(["bench", "--m", "1"])
    assert info.value.code == 2


def test_unknown_command_exits_with_usage():
    with pytest.raises(SystemExit) as info:
        main(["nope"])
    assert info.value.code == 2
