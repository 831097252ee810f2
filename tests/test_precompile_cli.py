"""``python -m fp8gemm precompile`` on bad input: one line on stderr and exit status 2, never a traceback
or a silent success; on a warm run the table says what was compiled and what was already cached."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from fp8gemm import aot as precompile
from fp8gemm import launch
from fp8gemm.jit import compiler
from fp8gemm.jit.artifacts import CompiledKernel, PtxasResources


@dataclass(frozen=True)
class _Config:
    n: int
    k_splits: int = 1

    def __str__(self) -> str:
        return f"n={self.n} k_splits={self.k_splits}"


@dataclass(frozen=True)
class _Plan:
    config: _Config
    source: str
    kernel_name: str


class FakeToolchain:
    """launch.plan, the compiler and the cache lookup replaced: plans and compiles are recorded."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, k_splits: int = 1) -> None:
        self.planned: list[tuple] = []
        self.compiled: list[str] = []
        self.cache: dict[str, CompiledKernel] = {}

        def plan(layout, m, n, k, num_groups=1, num_sms=None):
            launch.check_supported_shape(n, k)
            self.planned.append((layout, m, n, k))
            return _Plan(_Config(n, k_splits), f"// {n} {k}", f"gemm_{n}_{k}")

        def compile_cuda(source, name):
            self.compiled.append(name)
            kernel = CompiledKernel(name, b"", PtxasResources(64, 0, 0, 0, 0), 0.25, "fake")
            self.cache[name] = kernel
            return kernel

        monkeypatch.setattr(launch, "plan", plan)
        monkeypatch.setattr(precompile, "_compile_cuda", lambda: compile_cuda)
        monkeypatch.setattr(compiler, "find_cached", lambda source, name: self.cache.get(name))


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeToolchain:
    return FakeToolchain(monkeypatch)


def _shapes_file(tmp_path: Path, content: object) -> Path:
    path = tmp_path / "shapes.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


def _run(argv: list[str], capsys) -> tuple[int, str, str]:
    try:
        code = precompile.main(argv)
    except SystemExit as exit_:
        code = exit_.code
    out, err = capsys.readouterr()
    return code, out, err


def _one_line_error(err: str, pattern: str) -> None:
    import re

    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("python -m fp8gemm precompile: error: "), err
    assert re.search(pattern, lines[0]), err


@pytest.mark.parametrize("content,pattern", [
    (None, r"no such shapes file"),
    ("{not json", r"not a JSON shapes file"),
    ("[1, 2]", r"expected a JSON object"),
    ({"dense": [[64, 2112, 7168]], "grouped_contigous": []}, r"unknown key 'grouped_contigous'"),
    ({"grouped_masked": [{"groups": 2, "m_per_grup": 8, "n": 128, "k": 128}]}, r"unknown key 'm_per_grup'"),
    ({"dense": [[64, 100, 7168]]}, r"dense m=64 n=100 k=7168: the CUDA kernel needs n to be a positive "
                                   r"multiple of 8"),
    ({"dense": [[64, 128, 100]]}, r"k=100: the CUDA kernel needs k"),
    ({"dense": [[0, 128, 128]]}, r"dense\[0\]: expected a positive int, got 0"),
    ({"about": "comments only"}, r"nothing to precompile"),
])
def test_bad_shapes_files(tmp_path, capsys, fake, content, pattern) -> None:
    path = tmp_path / "missing.json" if content is None else _shapes_file(tmp_path, content)
    code, out, err = _run(["--shapes", str(path), "--quiet"], capsys)
    assert code == 2 and out == ""
    _one_line_error(err, pattern)
    assert fake.compiled == []


@pytest.mark.parametrize("argv,pattern", [
    (["--num-sms", "-5"], r"--num-sms: expected a positive integer, got -5"),
    (["--m", "0"], r"--m: expected a positive integer, got 0"),
    (["--m", "1", "x"], r"--m: expected a positive integer, got 'x'"),
    (["--jobs", "0"], r"--jobs: expected a positive integer, got 0"),
    (["--max-m", "-1"], r"--max-m: expected a positive integer"),
    (["--bogus"], r"unrecognized arguments: --bogus"),
])
def test_bad_arguments(capsys, fake, argv, pattern) -> None:
    code, out, err = _run(argv, capsys)
    assert code == 2
    _one_line_error(err, pattern)
    assert fake.compiled == []


@pytest.mark.parametrize("kwargs,error", [
    ({"num_sms": -5}, ValueError), ({"num_sms": 1.5}, TypeError), ({"jobs": 0}, ValueError),
    ({"m_values": [1, 0]}, ValueError), ({"max_m": 0}, ValueError), ({"m_values": [True]}, TypeError),
])
def test_bad_arguments_from_python(fake, kwargs, error) -> None:
    with pytest.raises(error, match=next(iter(kwargs))):
        precompile.precompile([(128, 128)], progress=False, **kwargs)


def test_several_m_values_after_one_flag(tmp_path, capsys, fake) -> None:
    path = _shapes_file(tmp_path, {"dense": [[64, 256, 512]]})
    code, out, err = _run(["--shapes", str(path), "--m", "1", "64", "4096", "--m", "8", "--quiet"], capsys)
    assert code == 0, err
    assert [m for _, m, _, _ in fake.planned] == [1, 64, 4096, 8]


def test_unwritable_cache_dir_is_an_error_and_leaves_nothing_behind(tmp_path, capsys, fake,
                                                                   monkeypatch) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("FP8GEMM_CACHE_DIR", str(blocker / "cache"))
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr("tempfile.tempdir", str(scratch))
    code, out, err = _run(["--quiet", "--m", "1"], capsys)
    assert code == 2
    _one_line_error(err, r"cache directory .*a-file/cache is not writable")
    assert fake.compiled == [] and list(scratch.iterdir()) == []


def test_warm_run_shows_what_was_cached(tmp_path, capsys, fake) -> None:
    path = _shapes_file(tmp_path, {"dense": [[64, 256, 512], [64, 512, 256]]})
    code, cold, _ = _run(["--shapes", str(path), "--quiet", "--jobs", "1"], capsys)
    assert code == 0
    assert "5 kernels in" in cold and "5 compiled, 0 already cached" in cold  # 2 GEMMs + 3 casts
    assert "cached" not in cold.split("\n5 kernels")[0]
    code, warm, _ = _run(["--shapes", str(path), "--quiet"], capsys)
    assert code == 0
    assert "0 compiled, 5 already cached" in warm
    table = [line for line in warm.splitlines() if line.strip().startswith("64 ")]
    assert len(table) == 5 and all(" cached  " in line for line in table)
    assert "0.25" not in warm  # the old compile times are not shown as if they were this run's


def test_split_k_plan_compiles_one_kernel(monkeypatch, tmp_path) -> None:
    fake = FakeToolchain(monkeypatch, k_splits=2)
    results = precompile.precompile([(64, 256, 512)], jobs=1, progress=False, cast=False)
    assert [r.kind for r in results] == ["gemm"]
    assert fake.compiled == ["gemm_256_512"]


def test_plan_that_lists_its_kernels_is_taken_at_its_word(monkeypatch) -> None:
    @dataclass(frozen=True)
    class Listed(_Plan):
        kernels: tuple = (("// a", "first"), ("// b", "second"))

    compiled = []
    monkeypatch.setattr(launch, "plan", lambda *a, **k: Listed(_Config(8, 4), "// a", "first"))
    def compile_cuda(source, name):
        compiled.append(name)
        return CompiledKernel(name, b"", PtxasResources(1, 0, 0, 0, 0), 0.1, "fake")

    monkeypatch.setattr(precompile, "_compile_cuda", lambda: compile_cuda)
    monkeypatch.setattr(compiler, "find_cached", lambda source, name: None)
    precompile.precompile([(1, 128, 128)], jobs=1, progress=False, cast=False)
    assert compiled == ["first", "second"]


def test_cli_as_a_process_exits_2_without_a_traceback(tmp_path) -> None:
    path = _shapes_file(tmp_path, {"dense": [[64, 2112, 7168]], "dense_shapes": []})
    result = subprocess.run([sys.executable, "-m", "fp8gemm", "precompile", "--shapes", str(path)],
                            capture_output=True, text=True, timeout=300, env=dict(os.environ))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().endswith("unknown key 'dense_shapes' (expected dense, grouped_contiguous, "
                                          "grouped_masked; \"about\" and keys starting with _ are comments)")
