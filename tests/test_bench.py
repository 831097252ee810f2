"""CPU checks of the benchmark's pieces: the cuBLASLt scale layouts, traffic counts, inputs, the table."""

from __future__ import annotations

import json

import pytest
import torch

from benchmarks import baselines, bench, testing
from fp8gemm.shapes import DEFAULT_SHAPES_PATH, load_shapes


def _ceil_div(x: int, y: int) -> int:
    return (x + y - 1) // y


def _size_stride_ok(scale: torch.Tensor, dim: int, size: int, stride: int) -> bool:
    # Mirrors check_size_stride in aten/src/ATen/native/cuda/ScaledBlas.cpp: size-1 dims skip the stride.
    return scale.size(dim) == size and (size <= 1 or scale.stride(dim) == stride)


def _is_1x128(t: torch.Tensor, scale: torch.Tensor) -> bool:
    # is_blockwise_1x128_scaling(t, scale)
    return (
        scale.dtype == torch.float32
        and scale.dim() == 2
        and _size_stride_ok(scale, 0, t.size(0), 1)
        and _size_stride_ok(scale, 1, _ceil_div(t.size(1), 128), t.size(0))
    )


def _is_128x128(t: torch.Tensor, scale: torch.Tensor, padded: bool) -> bool:
    # is_blockwise_128x128_scaling(t, scale) in both shipped variants: row stride kb or round_up(kb, 4).
    kb = _ceil_div(t.size(1), 128)
    row_stride = _ceil_div(kb, 4) * 4 if padded else kb
    return (
        scale.dtype == torch.float32
        and scale.dim() == 2
        and _size_stride_ok(scale, 0, _ceil_div(t.size(0), 128), row_stride)
        and _size_stride_ok(scale, 1, kb, 1)
    )


SHAPES = [(1, 128, 128), (64, 2112, 7168), (100, 256, 384), (4096, 7168, 2048), (3, 7168, 640)]


@pytest.mark.parametrize(("m", "n", "k"), SHAPES)
def test_cublas_scale_layouts_pass_torch_checks(m: int, n: int, k: int) -> None:
    a = torch.zeros((m, k), dtype=torch.float8_e4m3fn)
    b = torch.zeros((n, k), dtype=torch.float8_e4m3fn)
    sa = torch.rand(m, _ceil_div(k, 128))
    sb = torch.rand(_ceil_div(n, 128), _ceil_div(k, 128))
    scale_a = baselines.cublas_scale_a(sa)
    assert _is_1x128(a, scale_a)
    assert torch.equal(scale_a, sa)
    # get_joint_scaling checks (b.t(), scale_b.t()) where mat2 = b.t(): i.e. (b, scale_b.t()).
    for pad, padded in ((4, True), (1, False)):
        scale_b = baselines.cublas_scale_b(sb, pad)
        assert _is_128x128(b, scale_b.t(), padded)
        assert torch.equal(scale_b.t(), sb)
    mat2 = b.t()
    assert mat2.stride() == (1, k)  # column-major, as cuBLASLt's TN layout needs


@pytest.mark.parametrize(("m", "n", "k"), SHAPES)
def test_scaled_mm_meta_accepts_blockwise_call(m: int, n: int, k: int) -> None:
    """torch's own meta checks accept the exact call the benchmark makes (sizes; strides above)."""
    kb, nb = _ceil_div(k, 128), _ceil_div(n, 128)
    a = torch.empty((m, k), dtype=torch.float8_e4m3fn, device="meta")
    b = torch.empty((n, k), dtype=torch.float8_e4m3fn, device="meta")
    scale_a = torch.empty_strided((m, kb), (1, m), dtype=torch.float32, device="meta")
    scale_b = torch.empty_strided((kb, nb), (1, _ceil_div(kb, 4) * 4), dtype=torch.float32, device="meta")
    out = torch._scaled_mm(a, b.t(), scale_a, scale_b, out_dtype=torch.bfloat16)
    assert out.shape == (m, n) and out.dtype == torch.bfloat16


def test_compulsory_bytes() -> None:
    m, n, k = 64, 256, 512
    expected = m * k + n * k + m * 4 * 4 + 2 * 4 * 4 + m * n * 2
    assert bench.compulsory_bytes(m, n, k) == expected
    assert bench.compulsory_bytes(m, n, k, groups=3) == expected + 2 * (n * k + 2 * 4 * 4)


def test_geomean() -> None:
    assert bench.geomean([2.0, 8.0]) == pytest.approx(4.0)
    assert bench.geomean([None, 0.0]) is None


def test_masked_counts_are_seeded_and_bounded() -> None:
    counts, max_m = testing.masked_counts(32, 20, 0.3, seed=1)
    assert counts == testing.masked_counts(32, 20, 0.3, seed=1)[0]
    assert all(14 <= c <= 26 for c in counts) and max_m == 128
    assert testing.masked_counts(4, 256, 0.0) == ([256] * 4, 256)


def test_contiguous_inputs_layout() -> None:
    x = testing.make_contiguous_inputs([3, 0, 130], 128, 256, device="cpu")
    assert x.rows == [(0, 3), (128, 0), (128, 130)]
    assert x.a.shape == (384, 256) and x.m_indices.shape == (384,)
    assert (x.m_indices[:3] == 0).all() and (x.m_indices[3:128] == -1).all()
    assert (x.m_indices[128:258] == 2).all() and (x.m_indices[258:] == -1).all()
    assert x.b.shape == (3, 128, 256) and x.sb.shape == (3, 1, 2)
    assert x.valid_rows == 133


def test_dense_inputs_and_reference_on_cpu() -> None:
    x = testing.make_dense_inputs(5, 128, 256, device="cpu")
    assert x.sa_tma.stride() == (1, 8)
    out = testing.reference_dense(x.a, x.sa, x.b, x.sb)
    assert testing.calc_diff(out, testing.unquantized_product(x.a_bf16, x.b_bf16)) < 1e-3


def test_table_shows_errors_and_geomean(tmp_path) -> None:
    ok = bench.BenchRow("dense", "64x2112x7168", 64, 2112, 7168, flops=2.0 * 64 * 2112 * 7168, bytes=1e9)
    ok.ours_us, ok.scaled_mm_us, ok.bf16_us = 10.0, 20.0, 40.0
    ok.ours_event_us, ok.decode_step_us = 13.5, 17.25
    bad = bench.BenchRow("dense", "128x2112x7168", 128, 2112, 7168, ours_error="NotImplementedError: x")
    bad.scaled_mm_us = 5.0
    bad.decode_step_error = "RuntimeError: not capturable"
    table = bench.format_table([ok, bad])
    assert "2.00x" in table and "4.00x" in table and "ours error: NotImplementedError" in table
    ok_line = next(line for line in table.splitlines() if line.startswith("dense 64x2112x7168"))
    assert ok_line.split()[-2:] == ["13.5", "17.2"]  # the events and decode-step columns (no config)
    assert "decode_step error: RuntimeError" in table
    assert "(dense, 1/2 shapes): 2.000x" in table
    assert ok.gbps == pytest.approx(1e5)
    json.dumps([ok.to_json(), bad.to_json()])
    assert bench.plot([ok, bad], tmp_path / "p.png") in (True, False)


def test_select_shapes() -> None:
    args = bench.parse_args(["--only", "masked"])
    shapes = bench.select_shapes(args)
    assert not shapes.dense and len(shapes.masked) == len(load_shapes(DEFAULT_SHAPES_PATH).masked)
    one = bench.select_shapes(bench.parse_args(["--m", "7", "--n", "256", "--k", "512"]))
    assert [str(s) for s in one.dense] == ["7x256x512"]


def test_default_shapes_file() -> None:
    shapes = load_shapes()
    assert len(shapes.dense) == 18 and len(shapes.contiguous) == 4 and len(shapes.masked) == 8


def test_recorded_commit_can_be_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FP8GEMM_BENCH_COMMIT", "abc1234")
    assert bench._git_commit() == "abc1234"
    monkeypatch.delenv("FP8GEMM_BENCH_COMMIT")
    assert bench._git_commit() != "abc1234"  # the checkout's own commit (or None without git)
