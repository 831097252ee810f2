"""The kernel cache: hits and misses, what the key covers, corruption, fallback, many processes."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path

import pytest

from benchmarks.jit_selftest import PROBE_KERNEL, PROBE_SOURCE, roundtrip_source
from fp8gemm.jit import cache as jit_cache
from fp8gemm.jit import compile_cuda
from fp8gemm.jit.artifacts import CompiledKernel, PtxasResources

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def fresh_memory(monkeypatch):
    monkeypatch.delenv("FP8GEMM_COMPILER", raising=False)
    jit_cache.clear_memory()
    yield
    jit_cache.clear_memory()


def _fake_kernel(name: str = "k", payload: bytes = b"\x7fELF-not-really") -> CompiledKernel:
    return CompiledKernel(name=name, cubin=payload, resources=PtxasResources(1, 2, 0, 0, 0),
                          compile_seconds=0.5, compiler="test-1.0")


class Counter:
    """A compile function that counts its calls."""

    def __init__(self, payload: bytes = b"\x7fELF-payload"):
        self.calls = 0
        self.payload = payload

    def __call__(self, workdir: Path) -> CompiledKernel:
        self.calls += 1
        assert workdir.is_dir()
        return _fake_kernel(payload=self.payload)


def test_miss_then_memory_hit_then_disk_hit(tmp_path):
    build = Counter()
    first = jit_cache.get_or_compile("a" * 40, build, directory=tmp_path)
    assert build.calls == 1
    assert jit_cache.get_or_compile("a" * 40, build, directory=tmp_path) is first  # memory
    jit_cache.clear_memory()
    from_disk = jit_cache.get_or_compile("a" * 40, build, directory=tmp_path)
    assert build.calls == 1 and from_disk == first  # disk, resources and all
    assert len(jit_cache.entries(tmp_path)) == 1


def test_compile_cuda_uses_the_disk_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("FP8GEMM_CACHE_DIR", str(tmp_path))
    first = compile_cuda(PROBE_SOURCE, PROBE_KERNEL)
    jit_cache.clear_memory()
    t0 = time.perf_counter()
    second = compile_cuda(PROBE_SOURCE, PROBE_KERNEL)
    assert second == first  # compile_seconds is the stored one: nothing was recompiled
    assert time.perf_counter() - t0 < 0.5
    entry, = jit_cache.entries(tmp_path)
    assert (entry / "kernel.cu").read_text() == PROBE_SOURCE


def test_find_cached_reads_without_compiling(tmp_path, monkeypatch):
    from fp8gemm.jit.compiler import find_cached

    monkeypatch.setenv("FP8GEMM_CACHE_DIR", str(tmp_path))
    assert find_cached(PROBE_SOURCE, PROBE_KERNEL) is None
    assert not list(tmp_path.glob("kernels/*"))  # looking did not build anything
    built = compile_cuda(PROBE_SOURCE, PROBE_KERNEL)
    jit_cache.clear_memory()
    found = find_cached(PROBE_SOURCE, PROBE_KERNEL)  # from disk
    assert found is not None and found.cubin == built.cubin


def test_dg_cache_dir_name_is_read(tmp_path, monkeypatch):
    monkeypatch.delenv("FP8GEMM_CACHE_DIR", raising=False)
    monkeypatch.setenv("DG_JIT_CACHE_DIR", str(tmp_path / "dg"))
    compile_cuda(PROBE_SOURCE, PROBE_KERNEL)
    assert len(jit_cache.entries(tmp_path / "dg")) == 1


def _key(source: str, include: Path, **over) -> str:
    args = dict(flags=(), arch="sm_90a", compiler_id="nvrtc-13.5", include_dir=include)
    args.update(over)
    return jit_cache.entry_key(source, "k", **args)


def _make_include(root: Path) -> Path:
    (root / "fp8gemm" / "ptx").mkdir(parents=True)
    (root / "fp8gemm" / "a.cuh").write_text('#pragma once\n#include "ptx/b.cuh"\nint a;\n')
    (root / "fp8gemm" / "ptx" / "b.cuh").write_text("#pragma once\nint b;\n")
    (root / "fp8gemm" / "unrelated.cuh").write_text("int u;\n")
    return root


SOURCE = '#include <fp8gemm/a.cuh>\n#include <cuda_bf16.h>\nextern "C" __global__ void k() {}\n'


def test_key_follows_reachable_header_content(tmp_path):
    inc = _make_include(tmp_path / "inc")
    names = [rel for rel, _ in jit_cache.reachable_headers(SOURCE, inc)]
    assert names == ["fp8gemm/a.cuh", "fp8gemm/ptx/b.cuh"]  # system headers are not ours to hash
    before = _key(SOURCE, inc)
    (inc / "fp8gemm" / "unrelated.cuh").write_text("int changed;\n")
    assert _key(SOURCE, inc) == before  # not reachable: no effect
    b = inc / "fp8gemm" / "ptx" / "b.cuh"
    b.write_text("#pragma once\nint b2;\n")  # reached through a.cuh's quoted include
    os.utime(b, ns=(time.time_ns(), time.time_ns() + 10**9))  # make sure the mtime moves
    assert _key(SOURCE, inc) != before


def test_key_covers_flags_compiler_arch_source_but_not_paths(tmp_path):
    inc = _make_include(tmp_path / "one")
    base = _key(SOURCE, inc)
    assert _key(SOURCE, inc, flags=("-DX=1",)) != base
    assert _key(SOURCE, inc, flags=("-DX=1",)) != _key(SOURCE, inc, flags=("-DX=2",))
    assert _key(SOURCE, inc, compiler_id="nvrtc-13.0") != base
    assert _key(SOURCE, inc, compiler_id="nvcc-13.0.88") != base
    assert _key(SOURCE, inc, arch="sm_100a") != base
    assert _key(SOURCE + " ", inc) != base
    assert jit_cache.entry_key(SOURCE, "other", flags=(), arch="sm_90a", compiler_id="nvrtc-13.5",
                               include_dir=inc) != base
    # Same content in another place: same key (two installs share entries).
    other = _make_include(tmp_path / "two" / "deeper")
    assert _key(SOURCE, other) == base


def test_real_include_tree_is_hashed():
    names = [rel for rel, _ in jit_cache.reachable_headers(roundtrip_source(64, 128, 1))]
    assert "fp8gemm/ptx/tma.cuh" in names and "fp8gemm/ptx/common.cuh" in names
    assert "fp8gemm/ptx/mbarrier.cuh" in names and "fp8gemm/ptx/cluster.cuh" in names


@pytest.mark.parametrize("damage", ["truncate", "flip", "delete_cubin", "bad_json"])
def test_corrupt_entry_is_detected_and_rebuilt(tmp_path, damage):
    build = Counter(payload=bytes(range(256)) * 8)
    jit_cache.get_or_compile("b" * 40, build, directory=tmp_path)
    entry, = jit_cache.entries(tmp_path)
    cubin = entry / "kernel.cubin"
    if damage == "truncate":
        cubin.write_bytes(cubin.read_bytes()[:100])
    elif damage == "flip":
        data = bytearray(cubin.read_bytes())
        data[1000] ^= 0x40
        cubin.write_bytes(bytes(data))
    elif damage == "delete_cubin":
        cubin.unlink()
    else:
        (entry / "kernel.json").write_text("{not json")
    jit_cache.clear_memory()
    rebuilt = jit_cache.get_or_compile("b" * 40, build, directory=tmp_path)
    assert build.calls == 2
    assert rebuilt.cubin == build.payload
    assert hashlib.sha256(cubin.read_bytes()).hexdigest() == hashlib.sha256(build.payload).hexdigest()
    jit_cache.clear_memory()
    jit_cache.get_or_compile("b" * 40, build, directory=tmp_path)
    assert build.calls == 2  # and now the repaired entry is used


def test_unwritable_dir_falls_back_with_one_warning(tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("FP8GEMM_CACHE_DIR", str(blocker / "cache"))  # unwritable even for root
    with pytest.warns(RuntimeWarning, match="not writable") as record:
        kernel = compile_cuda(PROBE_SOURCE, PROBE_KERNEL)
    assert len([w for w in record if "not writable" in str(w.message)]) == 1
    assert kernel.cubin
    jit_cache.clear_memory()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no second warning
        assert compile_cuda(PROBE_SOURCE, PROBE_KERNEL) == kernel  # found in the fallback dir


def test_store_failure_does_not_fail_the_call(tmp_path, monkeypatch):
    def broken_write(entry, kernel):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(jit_cache, "_write_entry", broken_write)
    with pytest.warns(RuntimeWarning, match="could not store"):
        kernel = jit_cache.get_or_compile("c" * 40, Counter(), directory=tmp_path)
    assert kernel.cubin


_WORKER = textwrap.dedent("""
    import hashlib, os, sys, time
    from pathlib import Path
    go = Path(sys.argv[1])
    from benchmarks.jit_selftest import ROUNDTRIP_KERNEL, roundtrip_source
    from fp8gemm.jit import compile_cuda
    (go.parent / f"ready-{os.getpid()}").touch()
    while not go.exists():  # everyone imported: start together
        time.sleep(0.001)
    k = compile_cuda(roundtrip_source(64, 128, 1), ROUNDTRIP_KERNEL)
    print("SHA", hashlib.sha256(k.cubin).hexdigest())
""")


def test_concurrent_processes_one_entry(tmp_path):
    # Four processes (CI has two cores: more only queue up on imports) start compiling the same
    # kernel at the same moment, once all of them have imported.
    cache_dir = tmp_path / "shared-cache"  # does not exist yet: empty
    go = tmp_path / "go"
    env = dict(os.environ, FP8GEMM_CACHE_DIR=str(cache_dir), FP8GEMM_JIT_DEBUG="1",
               PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("FP8GEMM_COMPILER", None)
    procs = [subprocess.Popen([sys.executable, "-c", _WORKER, str(go)], cwd=REPO, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(4)]
    deadline = time.monotonic() + 120
    while len(list(tmp_path.glob("ready-*"))) < len(procs) and time.monotonic() < deadline:
        if any(p.poll() is not None for p in procs):
            break  # one failed at import: its error is reported below
        time.sleep(0.01)
    go.touch()
    results = [p.communicate(timeout=300) for p in procs]
    for p, (_out, err) in zip(procs, results, strict=True):
        assert p.returncode == 0, err
    shas = {line.split()[1] for out, _ in results for line in out.splitlines() if line.startswith("SHA")}
    assert len(shas) == 1
    assert len(jit_cache.entries(cache_dir)) == 1
    assert len(list((cache_dir / "kernels").iterdir())) == 1
    compiles = sum(err.count("compiling") for _, err in results)
    assert compiles == 1, "exactly one process compiled; the others waited and read its entry"
    leftovers = [p for p in (cache_dir / "kernels").rglob("*") if p.name.endswith(".tmp")]
    assert leftovers == []
