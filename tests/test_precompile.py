"""Precompile: the planning/dedupe logic with a fake planner, and (once `launch.plan` exists) every kernel
of shapes.json compiled for sm_90a on CPU: no spills, FP8 tensor-core instructions (QGMMA) in the SASS."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from fp8gemm import aot as precompile
from fp8gemm import launch
from fp8gemm.jit.artifacts import CompiledKernel, PtxasResources
from fp8gemm.shapes import DenseShape, GroupedShape, ShapeSet, load_shapes


@dataclass(frozen=True)
class _FakeConfig:
    block_n: int

    def __str__(self) -> str:
        return f"BLOCK_N={self.block_n}"


@dataclass(frozen=True)
class _FakePlan:
    config: _FakeConfig
    source: str
    kernel_name: str


def test_plan_requests_cover_every_layout() -> None:
    shapes = ShapeSet(
        dense=(DenseShape(64, 2112, 7168),),
        contiguous=(GroupedShape("contiguous", 4, 100, 4096, 7168),),
        masked=(GroupedShape("masked", 32, 20, 6144, 7168),),
    )
    requests = precompile.plan_requests(shapes)
    assert [(r.layout, r.m, r.num_groups) for r in requests] == [
        ("dense", 64, 1),
        ("contiguous", 4 * 128, 4),
        ("masked", 20, 32),
    ]
    assert [r.m for r in precompile.plan_requests(shapes, m_values=[1, 4096])][:2] == [1, 4096]


def test_precompile_dedupes_and_reports(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def fake_plan(layout, m, n, k, num_groups=1, num_sms=None):
        calls.append((layout, m, n, k, num_groups, num_sms))
        return _FakePlan(_FakeConfig(n // 16), f"// n={n} k={k}", f"kernel_{n}_{k}")

    compiled = []

    def fake_compile(source, kernel_name):
        compiled.append(kernel_name)
        spills = 8 if "4096" in kernel_name else 0
        return CompiledKernel(kernel_name, b"", PtxasResources(168, 0, spills, spills, 0), 0.5, "fake")

    monkeypatch.setattr(launch, "plan", fake_plan, raising=False)
    monkeypatch.setattr(precompile, "_compile_cuda", lambda: fake_compile)
    shapes = ShapeSet(
        dense=(DenseShape(64, 2112, 7168), DenseShape(128, 2112, 7168), DenseShape(64, 4096, 512))
    )
    results = precompile.precompile(shapes, num_sms=132, jobs=1, progress=False, cast=False)
    assert all(c[-1] == 132 for c in calls) and len(calls) == 3
    assert sorted(compiled) == ["kernel_2112_7168", "kernel_4096_512"]  # the shared kernel compiled once
    by_name = {r.kernel_name: r for r in results}
    assert len(by_name["kernel_2112_7168"].shapes) == 2
    assert by_name["kernel_4096_512"].has_spills and not by_name["kernel_2112_7168"].has_spills
    text = precompile.format_results(results)
    assert "BLOCK_N=132" in text and "SPILLS" in text and "168" in text


def test_compile_errors_are_reported_not_raised(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(source, kernel_name):
        raise RuntimeError("ptxas fatal: boom")

    monkeypatch.setattr(launch, "plan", lambda *a, **k: _FakePlan(_FakeConfig(8), "x", "k"), raising=False)
    monkeypatch.setattr(precompile, "_compile_cuda", lambda: broken)
    (result,) = precompile.precompile(ShapeSet(dense=(DenseShape(1, 128, 128),)), jobs=1, progress=False,
                                      cast=False)
    assert result.error == "RuntimeError: ptxas fatal: boom"
    assert "FAILED" in precompile.format_results([result])


@pytest.fixture(scope="module")
def all_kernels() -> list[precompile.PrecompileResult]:
    return precompile.precompile(load_shapes(), num_sms=132, progress=False)


def test_every_kernel_compiles_without_spills(all_kernels: list[precompile.PrecompileResult]) -> None:
    failed = {r.kernel_name: r.error for r in all_kernels if r.error}
    assert not failed
    spilled = {r.kernel_name: str(r.resources) for r in all_kernels if r.has_spills}
    assert not spilled
    for r in all_kernels:
        assert r.resources.spill_stores == 0 and r.resources.spill_loads == 0, r.kernel_name


def test_every_shape_is_planned(all_kernels: list[precompile.PrecompileResult]) -> None:
    planned = [shape for r in all_kernels if r.kind == "gemm" for shape in r.shapes]
    assert len(planned) == len(set(planned))  # each shape has one GEMM kernel
    assert planned and set(planned) == {str(r) for r in precompile.plan_requests(load_shapes())}


def test_split_k_configs_and_casts_are_compiled(all_kernels: list[precompile.PrecompileResult]) -> None:
    """Everything a shape launches is built ahead: split-K configs (one kernel, summed in a cluster) are
    among them, and the activation-cast kernels come along (one per input dtype)."""
    from fp8gemm import quant_cuda

    by_name = {r.kernel_name: r for r in all_kernels}
    assert any(r.kind == "gemm" and "k_splits=1 " not in r.config + " " for r in all_kernels)
    assert all(r.kind in ("gemm", "cast") for r in all_kernels)
    assert {quant_cuda.kernel_name(d) for d in quant_cuda.KINDS} <= set(by_name)
    assert all(r.error is None for r in all_kernels if r.kind != "gemm")


def test_kernels_use_fp8_wgmma(all_kernels: list[precompile.PrecompileResult]) -> None:
    """FP8 tensor-core instructions (QGMMA) in the SASS of one kernel per variant of the template
    (layout, tile rows, multicast, split-K): disassembling all of them took 20 s of CI. The main
    loop of every kernel shapes.json selects is checked by tests/test_sass_report.py, and
    ``python tools/sass_report.py`` reports all of them."""
    from fp8gemm.jit.tools import find_tool, sass

    if find_tool("cuobjdump") is None:
        pytest.skip("cuobjdump not installed (the dev extra: pip install nvidia-cuda-cuobjdump)")
    sample: dict[tuple, precompile.PrecompileResult] = {}
    for r in all_kernels:
        if r.kind == "gemm":  # r.config is str(GemmConfig): "dense n=.. k=.. g=..: BM=.. BN=.. ..."
            fields = dict(f.split("=", 1) for f in r.config.split(":", 1)[1].split() if "=" in f)
            variant = (r.config.split()[0], fields["BM"], fields["multicast"], fields["k_splits"] != "1")
            sample.setdefault(variant, r)
    assert {layout for layout, *_ in sample} == {"dense", "contiguous", "masked"}
    for r in sample.values():
        assert "QGMMA" in sass(r.kernel.cubin), f"{r.kernel_name}: no FP8 wgmma (QGMMA) in the SASS"
