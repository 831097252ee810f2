"""The JIT compiler on the CPU: NVRTC (and nvcc where present) build sm_90a cubins of the test kernel."""

from __future__ import annotations

import os
import shutil

import pytest

from benchmarks.jit_selftest import PROBE_KERNEL, PROBE_SOURCE, ROUNDTRIP_KERNEL, roundtrip_source
from fp8gemm.jit import CompileError, compile_cuda, sass
from fp8gemm.jit import cache as jit_cache
from fp8gemm.jit.artifacts import parse_ptxas_log, parse_res_usage
from fp8gemm.jit.tools import find_nvcc, find_tool, res_usage

HAVE_CUOBJDUMP = find_tool("cuobjdump") is not None
needs_cuobjdump = pytest.mark.skipif(not HAVE_CUOBJDUMP, reason="cuobjdump not found")


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("FP8GEMM_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("FP8GEMM_COMPILER", raising=False)
    jit_cache.clear_memory()
    yield
    jit_cache.clear_memory()


def _check_roundtrip_cubin(kernel) -> None:
    assert kernel.name == ROUNDTRIP_KERNEL
    assert kernel.cubin[:4] == b"\x7fELF"
    assert kernel.arch == "sm_90a"
    assert kernel.resources.registers > 0
    assert kernel.resources.spill_stores == 0 and kernel.resources.spill_loads == 0
    if HAVE_CUOBJDUMP:
        text = sass(kernel.cubin)
        assert "sm_90a" in text
        assert "UTMALDG.2D.MULTICAST" in text  # the multicast TMA load
        assert "UTMASTG" in text  # the TMA store
        assert "UTMACCTL.PF" in text  # the descriptor prefetch
        assert "SYNCS" in text  # mbarrier operations


@pytest.mark.parametrize("rows,cols,elem", [(64, 128, 1), (32, 64, 2), (32, 32, 4)])
def test_nvrtc_compiles_roundtrip(rows, cols, elem):
    kernel = compile_cuda(roundtrip_source(rows, cols, elem), ROUNDTRIP_KERNEL)
    assert kernel.compiler.startswith("nvrtc-")
    _check_roundtrip_cubin(kernel)


@pytest.mark.skipif(find_nvcc() is None, reason="nvcc not found")
def test_nvcc_compiles_roundtrip(monkeypatch):
    monkeypatch.setenv("FP8GEMM_COMPILER", "nvcc")
    kernel = compile_cuda(roundtrip_source(64, 128, 1), ROUNDTRIP_KERNEL)
    assert kernel.compiler.startswith("nvcc-")
    _check_roundtrip_cubin(kernel)


def test_dg_nvcc_name_is_read(monkeypatch, tmp_path):
    monkeypatch.setenv("FP8GEMM_COMPILER", "nvcc")
    monkeypatch.delenv("FP8GEMM_NVCC", raising=False)
    monkeypatch.setenv("DG_NVCC_COMPILER", str(tmp_path / "no-such-nvcc"))
    with pytest.raises((CompileError, OSError, RuntimeError)):
        compile_cuda(PROBE_SOURCE, PROBE_KERNEL)


def test_probe_kernel_compiles():
    kernel = compile_cuda(PROBE_SOURCE, PROBE_KERNEL)
    assert kernel.resources.spill_stores == 0


def test_compile_error_carries_log_and_source():
    source = 'extern "C" __global__ void broken(int* x) { x[0] = undeclared_name; }\n'
    with pytest.raises(CompileError) as info:
        compile_cuda(source, "broken")
    err = info.value
    assert "undeclared_name" in err.log
    assert err.source_path is not None and err.source_path.is_file()
    assert err.source_path.read_text() == source
    assert str(err.source_path) in str(err)


@pytest.mark.skipif(find_nvcc() is None, reason="nvcc not found")
def test_nvcc_compile_error_carries_log(monkeypatch):
    monkeypatch.setenv("FP8GEMM_COMPILER", "nvcc")
    with pytest.raises(CompileError) as info:
        compile_cuda('extern "C" __global__ void broken() { int x = ; }\n', "broken")
    assert "error" in info.value.log and info.value.source_path.is_file()


def test_missing_kernel_name_is_an_error():
    with pytest.raises(CompileError, match="not in the cubin"):
        compile_cuda('extern "C" __global__ void present() {}\n', "absent")


def test_flags_reach_the_compiler():
    source = 'extern "C" __global__ void k(int* x) { x[0] = VALUE; }\n'
    with pytest.raises(CompileError):
        compile_cuda(source, "k")
    assert compile_cuda(source, "k", flags=("-DVALUE=3",)).cubin


def test_uncached_compile_leaves_no_entry(tmp_path):
    compile_cuda(PROBE_SOURCE, PROBE_KERNEL, use_cache=False)
    assert jit_cache.entries(tmp_path / "cache") == []


def test_ptxas_verbose_prints_resources(monkeypatch, capsys):
    monkeypatch.setenv("FP8GEMM_PTXAS_VERBOSE", "1")
    compile_cuda(PROBE_SOURCE, PROBE_KERNEL)
    assert "registers" in capsys.readouterr().err


def test_jit_debug_prints_commands(monkeypatch, capsys):
    monkeypatch.setenv("DG_JIT_DEBUG", "1")
    compile_cuda(PROBE_SOURCE, PROBE_KERNEL)
    err = capsys.readouterr().err
    assert "-arch=sm_90a" in err and "cache: miss" in err


def test_parse_ptxas_log():
    log = """ptxas info    : 0 bytes gmem
ptxas info    : Compiling entry function 'helper' for 'sm_90a'
ptxas info    : Function properties for helper
ptxas         .     8 bytes stack frame, 4 bytes spill stores, 4 bytes spill loads
ptxas info    : Used 40 registers, used 0 barriers
ptxas info    : Compiling entry function 'k' for 'sm_90a'
ptxas info    : Function properties for k
ptxas         .     16 bytes stack frame, 12 bytes spill stores, 20 bytes spill loads
ptxas info    : Used 168 registers, used 1 barriers, 2048 bytes smem, 400 bytes cmem[0]
"""
    res = parse_ptxas_log(log, "k")
    assert (res.registers, res.shared_bytes, res.spill_stores, res.spill_loads, res.stack_bytes) == (
        168, 2048, 12, 20, 16)
    assert parse_ptxas_log(log, "other") is None


@needs_cuobjdump
def test_res_usage_fallback_agrees():
    kernel = compile_cuda(roundtrip_source(64, 128, 1), ROUNDTRIP_KERNEL)
    res = parse_res_usage(res_usage(kernel.cubin), ROUNDTRIP_KERNEL)
    assert res is not None and res.registers == kernel.resources.registers


def test_no_toolkit_headers_needed(monkeypatch):
    # The device headers are self-contained: compiling must not depend on the cudart header wheel.
    from fp8gemm.jit import compiler

    monkeypatch.setattr(compiler, "_include_flags", lambda: [f"-I{compiler.INCLUDE_DIR}"])
    assert compile_cuda(roundtrip_source(32, 64, 2), ROUNDTRIP_KERNEL, use_cache=False).cubin


def test_cuobjdump_is_found_in_wheel_or_path():
    path = find_tool("cuobjdump")
    if path is None:
        pytest.skip("no cuobjdump")
    assert os.access(path, os.X_OK) or shutil.which(path)
