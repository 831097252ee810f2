"""Tensor maps: the hardware rules are checked on the CPU; encoding itself needs the GPU driver."""

from __future__ import annotations

import pytest
import torch

from fp8gemm.jit import TensorMap, make_tensor_map
from fp8gemm.jit.tma import check_tensor_map_args

SM90 = torch.cuda.is_available() and torch.cuda.get_device_capability() == (9, 0)
gpu = [pytest.mark.gpu, pytest.mark.skipif(not SM90, reason="needs an sm_90 GPU")]


def _u8(rows: int, cols: int) -> torch.Tensor:
    return torch.zeros(rows, cols, dtype=torch.uint8)


@pytest.mark.parametrize("dtype,name", [
    (torch.uint8, "UINT8"), (torch.float8_e4m3fn, "UINT8"), (torch.bfloat16, "BFLOAT16"),
    (torch.float32, "FLOAT32"), (torch.int32, "INT32"),
])
def test_dtype_mapping(dtype, name):
    t = torch.zeros(64, 128, dtype=dtype)
    dtype_name, dims, strides, box = check_tensor_map_args(t, (16, 8))
    assert dtype_name == f"CU_TENSOR_MAP_DATA_TYPE_{name}"
    assert dims == (128, 64) and strides == (128 * t.element_size(),) and box == (16, 8)


def test_unsupported_dtype():
    with pytest.raises(ValueError, match="no TMA element type"):
        check_tensor_map_args(torch.zeros(16, 16, dtype=torch.int64), (16, 16))


def test_not_a_tensor():
    with pytest.raises(TypeError, match="torch.Tensor"):
        check_tensor_map_args([[1, 2]], (16, 16))


def test_misaligned_base():
    t = torch.zeros(64 * 256 + 16, dtype=torch.uint8)[1 : 1 + 64 * 256].view(64, 256)
    with pytest.raises(ValueError, match="16-byte aligned"):
        check_tensor_map_args(t, (128, 64))


def test_stride_not_multiple_of_16_bytes():
    with pytest.raises(ValueError, match="multiple of 16 bytes"):
        check_tensor_map_args(_u8(64, 100), (32, 64))
    with pytest.raises(ValueError, match="multiple of 16 bytes"):  # 4 floats = 16 B is fine, 5 is not
        check_tensor_map_args(torch.zeros(8, 5), (4, 8))


def test_stride_too_large():
    with pytest.raises(ValueError, match="2\\^40"):
        check_tensor_map_args(_u8(2, 16), (16, 1), dims=(16, 2), strides=(2**40,))


@pytest.mark.parametrize("box", [(257, 8), (16, 0), (16, 300)])
def test_box_limits(box):
    with pytest.raises(ValueError, match="outside 1..256"):
        check_tensor_map_args(_u8(512, 512), box)


def test_inner_box_bytes():
    with pytest.raises(ValueError, match="multiple of 16"):
        check_tensor_map_args(_u8(64, 128), (8, 8))
    with pytest.raises(ValueError, match="multiple of 16"):
        check_tensor_map_args(torch.zeros(64, 128, dtype=torch.bfloat16), (12, 8))


@pytest.mark.parametrize("dtype,box,swizzle", [
    (torch.uint8, (256, 64), 128),  # 256 B > 128 B: rejected by the driver on H200 too
    (torch.bfloat16, (128, 64), 128),
    (torch.uint8, (128, 8), 64),
    (torch.float32, (16, 8), 32),
])
def test_swizzle_span(dtype, box, swizzle):
    with pytest.raises(ValueError, match="swizzle span"):
        check_tensor_map_args(torch.zeros(256, 256, dtype=dtype), box, swizzle_bytes=swizzle)


def test_swizzle_value():
    with pytest.raises(ValueError, match="swizzle_bytes"):
        check_tensor_map_args(_u8(64, 128), (128, 8), swizzle_bytes=16)


def test_rank_and_box_length():
    with pytest.raises(ValueError, match="rank 1..5"):
        check_tensor_map_args(torch.zeros((2,) * 5 + (16,), dtype=torch.uint8), (16,) + (1,) * 5)
    with pytest.raises(ValueError, match="box must have 2 entries"):
        check_tensor_map_args(_u8(64, 128), (128,))


def test_inner_dim_must_be_contiguous_unless_explicit():
    scales = torch.zeros(8, 64).t()  # a column-major [64, 8] view
    with pytest.raises(ValueError, match="innermost dimension must be contiguous"):
        check_tensor_map_args(scales, (8, 4))
    # Column-major scale tensor: rows (m) innermost, explicit dims/strides in elements.
    _, dims, strides, _ = check_tensor_map_args(scales, (32, 1), dims=(64, 8), strides=(64,))
    assert dims == (64, 8) and strides == (256,)


def test_three_d_masked_layout():
    a = torch.zeros(4, 96, 256, dtype=torch.float8_e4m3fn)  # [groups, max_m, k]
    _, dims, strides, box = check_tensor_map_args(a, (128, 64, 1), swizzle_bytes=128)
    assert dims == (256, 96, 4) and strides == (256, 96 * 256)


def test_explicit_dims_must_stay_inside_storage():
    with pytest.raises(ValueError, match="storage has only"):
        check_tensor_map_args(_u8(64, 128), (128, 8), dims=(128, 65), strides=(128,))
    with pytest.raises(ValueError, match="strides given without dims"):
        check_tensor_map_args(_u8(64, 128), (128, 8), strides=(128,))


def test_cpu_tensor_is_refused_after_the_checks():
    with pytest.raises(ValueError, match="CUDA device"):
        make_tensor_map(_u8(64, 128), (128, 64), swizzle_bytes=128)
    with pytest.raises(ValueError, match="swizzle span"):  # geometry errors come first
        make_tensor_map(_u8(64, 256), (256, 64), swizzle_bytes=128)


@pytest.mark.gpu
@pytest.mark.skipif(not SM90, reason="needs an sm_90 GPU")
@pytest.mark.parametrize("dtype,box,swizzle", [
    (torch.float8_e4m3fn, (128, 64), 128),
    (torch.bfloat16, (64, 64), 128),
    (torch.float32, (32, 16), 0),
    (torch.int32, (4, 32), 0),
])
def test_encode_on_gpu(dtype, box, swizzle):
    t = torch.zeros(256, 512, dtype=torch.uint8, device="cuda").view(dtype)
    tm = make_tensor_map(t, box, swizzle_bytes=swizzle)
    assert isinstance(tm, TensorMap)
    assert tm.address % 128 == 0 and len(tm.data) == 128 and any(tm.data)
    assert tm.tensor is t and tm.box == box
    # The encoding depends on what was asked: another box gives other bytes.
    assert make_tensor_map(t, (box[0], box[1] // 2), swizzle_bytes=swizzle).data != tm.data


@pytest.mark.gpu
@pytest.mark.skipif(not SM90, reason="needs an sm_90 GPU")
def test_encode_3d_and_column_major_on_gpu():
    a = torch.zeros(4, 96, 256, dtype=torch.uint8, device="cuda")
    tm = make_tensor_map(a, (128, 64, 1), swizzle_bytes=128)
    assert tm.dims == (256, 96, 4) and len(tm.data) == 128
    m_aligned = 64
    scales = torch.zeros(8, m_aligned, device="cuda").t()  # column-major [64, 8]
    sm = make_tensor_map(scales, (32, 1), dims=(m_aligned, 8), strides=(m_aligned,))
    assert sm.strides_bytes == (256,)
