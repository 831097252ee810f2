"""The JIT's environment variables: FP8GEMM_ names, DG_ aliases, and which one wins."""

from __future__ import annotations

from pathlib import Path

import pytest

from fp8gemm.jit import env

NAMES = ["FP8GEMM_CACHE_DIR", "DG_JIT_CACHE_DIR", "FP8GEMM_COMPILER", "FP8GEMM_NVCC", "DG_NVCC_COMPILER",
         "FP8GEMM_JIT_DEBUG", "DG_JIT_DEBUG", "FP8GEMM_PTXAS_VERBOSE", "DG_JIT_PTXAS_VERBOSE"]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for name in NAMES:
        monkeypatch.delenv(name, raising=False)


def test_defaults():
    assert env.cache_dir() == Path.home() / ".cache" / "fp8gemm"
    assert env.compiler_kind() == "nvrtc"
    assert env.nvcc_override() is None
    assert not env.jit_debug() and not env.ptxas_verbose()


def test_dg_names_and_precedence(monkeypatch, tmp_path):
    monkeypatch.setenv("DG_JIT_CACHE_DIR", str(tmp_path / "dg"))
    assert env.cache_dir() == tmp_path / "dg"
    monkeypatch.setenv("FP8GEMM_CACHE_DIR", str(tmp_path / "ours"))
    assert env.cache_dir() == tmp_path / "ours"
    monkeypatch.setenv("DG_NVCC_COMPILER", "/opt/dg/nvcc")
    assert env.nvcc_override() == "/opt/dg/nvcc"
    monkeypatch.setenv("FP8GEMM_NVCC", "/opt/ours/nvcc")
    assert env.nvcc_override() == "/opt/ours/nvcc"
    monkeypatch.setenv("DG_JIT_DEBUG", "1")
    assert env.jit_debug()
    monkeypatch.setenv("FP8GEMM_JIT_DEBUG", "0")  # ours wins, even to switch it off
    assert not env.jit_debug()
    monkeypatch.setenv("DG_JIT_PTXAS_VERBOSE", "true")
    assert env.ptxas_verbose()


def test_compiler_choice(monkeypatch):
    monkeypatch.setenv("FP8GEMM_COMPILER", "NVCC")
    assert env.compiler_kind() == "nvcc"
    monkeypatch.setenv("FP8GEMM_COMPILER", "clang")
    with pytest.raises(ValueError, match="nvrtc' or 'nvcc"):
        env.compiler_kind()
