"""Every environment variable is read in `fp8gemm.env`, through one parser of on/off values."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from fp8gemm import env

FLAGS = {
    env.jit_debug: ("FP8GEMM_JIT_DEBUG", "DG_JIT_DEBUG"),
    env.ptxas_verbose: ("FP8GEMM_PTXAS_VERBOSE", "DG_JIT_PTXAS_VERBOSE"),
    env.print_configs: ("FP8GEMM_PRINT_CONFIGS", "DG_PRINT_CONFIGS"),
    env.check_inputs: ("FP8GEMM_CHECK_INPUTS", None),
}


@pytest.fixture(autouse=True)
def clean(monkeypatch: pytest.MonkeyPatch):
    for names in FLAGS.values():
        for name in names:
            if name:
                monkeypatch.delenv(name, raising=False)
    env.refresh()
    yield
    env.refresh()


@pytest.mark.parametrize("value", ["1", "true", "TRUE", "yes", "on", " On ", "2"])
def test_on_values(value: str) -> None:
    assert env.parse_flag("X", value) is True


@pytest.mark.parametrize("value", ["", "0", "false", "False", "no", "off", "00"])
def test_off_values(value: str) -> None:
    assert env.parse_flag("X", value) is False


def test_unknown_value_is_an_error_naming_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FP8GEMM_PRINT_CONFIGS", "maybe")
    with pytest.raises(ValueError, match="FP8GEMM_PRINT_CONFIGS: expected 1/0.*'maybe'"):
        env.print_configs()


@pytest.mark.parametrize("flag", list(FLAGS), ids=lambda f: f.__name__)
def test_each_flag_reads_false_as_off(flag, monkeypatch: pytest.MonkeyPatch) -> None:
    ours, dg = FLAGS[flag]

    def read() -> bool:
        env.refresh()  # check_inputs is kept after its first read
        return flag()

    assert read() is False
    monkeypatch.setenv(ours, "true")
    assert read() is True
    monkeypatch.setenv(ours, "false")
    assert read() is False
    if dg:
        monkeypatch.delenv(ours)
        monkeypatch.setenv(dg, "1")
        assert read() is True
        monkeypatch.setenv(ours, "false")  # ours wins, also to switch off
        assert read() is False


def test_check_inputs_is_read_once_until_refresh(monkeypatch: pytest.MonkeyPatch) -> None:
    """Asked on every grouped GEMM call, so kept after the first read: a change shows after refresh()."""
    assert env.check_inputs() is False
    monkeypatch.setenv("FP8GEMM_CHECK_INPUTS", "1")
    assert env.check_inputs() is False
    env.refresh()
    assert env.check_inputs() is True
    monkeypatch.setenv("FP8GEMM_CHECK_INPUTS", "maybe")
    assert env.check_inputs() is True
    env.refresh()
    with pytest.raises(ValueError, match="FP8GEMM_CHECK_INPUTS"):
        env.check_inputs()


def test_cuda_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("CUDA_HOME", raising=False)
    monkeypatch.setenv("CUDA_PATH", str(tmp_path))
    assert env.cuda_home() == tmp_path
    monkeypatch.setenv("CUDA_HOME", str(tmp_path / "h"))
    assert env.cuda_home() == tmp_path / "h"


def test_no_module_reads_the_environment_elsewhere() -> None:
    """os.environ / os.getenv appear only in fp8gemm/env.py (and in modules that hand the environment
    to a subprocess, which copy it but do not read settings from it)."""
    package = Path(env.__file__).resolve().parent
    readers = re.compile(r"os\.environ\.get|os\.getenv|os\.environ\[[^]]+\](?!\s*=)")
    offenders = []
    for path in package.rglob("*.py"):
        if path.name == "env.py" and path.parent == package:
            continue
        for line_no, line in enumerate(path.read_text().splitlines(), 1):
            if readers.search(line):
                offenders.append(f"{path.relative_to(package)}:{line_no}: {line.strip()}")
    assert not offenders
