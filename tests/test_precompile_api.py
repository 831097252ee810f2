"""``fp8gemm.precompile(...)`` from Python: callable from the package, shapes from tuples or a model."""

from __future__ import annotations

import pytest
import torch

import fp8gemm
from fp8gemm import aot as precompile_module
from fp8gemm.shapes import DenseShape, ShapeSet


def test_package_attribute_is_the_callable_module() -> None:
    assert fp8gemm.precompile is precompile_module.precompile  # a plain function, no callable module
    assert callable(fp8gemm.precompile)


def test_shapes_of_a_module_uses_its_linear_layers() -> None:
    model = torch.nn.Sequential(
        torch.nn.Linear(512, 256), torch.nn.GELU(), torch.nn.Linear(256, 512), torch.nn.Linear(512, 256),
        torch.nn.Linear(100, 30),  # not runnable by the kernel: dropped
    )
    shapes, m_values = precompile_module.shapes_of(model, [1, 4096])
    assert m_values is None
    assert shapes.dense == (
        DenseShape(1, 256, 512), DenseShape(4096, 256, 512),
        DenseShape(1, 512, 256), DenseShape(4096, 512, 256),
    )


def test_shapes_of_tuples() -> None:
    shapes, _ = precompile_module.shapes_of([(64, 2112, 7168), (4096, 512)], None, max_m=512)
    assert shapes.dense[0] == DenseShape(64, 2112, 7168)
    assert [s.m for s in shapes.dense[1:]] == list(precompile_module.covering_m_values(4096, 512, 132, 512))
    with pytest.raises(ValueError, match="shapes: expected"):
        precompile_module.shapes_of([(1, 2, 3, 4)], None)
    with pytest.raises(ValueError, match="tuples of ints"):
        precompile_module.shapes_of([(1.5, 256)], None)


def test_covering_m_values_cover_every_m() -> None:
    """Planning the covering M values compiles the config of every M up to the bound."""
    from fp8gemm.config import select_config

    n, k, max_m = 2112, 7168, 2048
    covering = precompile_module.covering_m_values(n, k, 132, max_m)
    planned = {select_config("dense", m, n, k, 1, 132) for m in covering}
    assert len(planned) == len(covering) > 3  # one M per config, and the heuristics do change with M
    assert covering[0] == 1 and list(covering) == sorted(covering)
    for m in range(1, max_m + 1):
        assert select_config.__wrapped__("dense", m, n, k, 1, 132) in planned, m


def test_shapes_of_passes_sets_and_paths_through() -> None:
    shape_set = ShapeSet(dense=(DenseShape(1, 256, 256),))
    assert precompile_module.shapes_of(shape_set, [8]) == (shape_set, [8])
    loaded, _ = precompile_module.shapes_of(None, None)
    assert len(loaded.dense) > 0


def test_precompile_a_model_compiles_each_kernel_once(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("FP8GEMM_CACHE_DIR", str(tmp_path))
    model = torch.nn.Sequential(torch.nn.Linear(256, 128), torch.nn.Linear(256, 128))
    results = fp8gemm.precompile(model, m_values=[1, 2], jobs=1, progress=False)
    assert results and all(r.error is None for r in results)
    names = [r.kernel_name for r in results]
    assert len(names) == len(set(names))
    assert sum(len(r.shapes) for r in results if r.kind == "gemm") == 2  # (n, k) deduped, two M values
    assert sum(r.kind == "cast" for r in results) == 3
    again = fp8gemm.precompile(model, m_values=[1, 2], jobs=1, progress=False)
    assert [r.kernel_name for r in again] == names and all(r.cached for r in again)
