"""Quantization helpers: shapes, scale formula, round-trip error bounds, partial blocks, 3D, clamp."""

from __future__ import annotations

import pytest
import torch

from fp8gemm.quant import per_block_cast_to_fp8, per_token_cast_to_fp8

# e4m3: 3 mantissa bits, so rounding a normal value costs at most 2^-4 relative; below the smallest
# normal (2^-6) the step is 2^-9, so at most 2^-10 absolute (in units of the scale).
REL, ABS = 2.0**-4, 2.0**-10


def assert_round_trip(x: torch.Tensor, q: torch.Tensor, scale_per_element: torch.Tensor) -> None:
    x = x.double()
    back = q.double() * scale_per_element.double()
    allowed = torch.maximum(x.abs() * REL, scale_per_element.double() * ABS) * (1 + 1e-6)
    assert ((back - x).abs() <= allowed).all(), f"max excess {((back - x).abs() - allowed).max().item()}"


def token_scale_per_element(scale: torch.Tensor, k: int) -> torch.Tensor:
    return scale[..., torch.arange(k) // 128]


def block_scale_per_element(scale: torch.Tensor, n: int, k: int) -> torch.Tensor:
    rows, cols = torch.arange(n) // 128, torch.arange(k) // 128
    return scale[..., rows[:, None], cols[None, :]]


@pytest.mark.parametrize("shape", [(1, 128), (7, 256), (33, 300), (4, 1), (2, 5, 130), (3, 1, 1000)])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
def test_per_token_shapes_and_round_trip(shape, dtype, gen):
    x = (torch.randn(shape, generator=gen) * 3).to(dtype)
    q, scale = per_token_cast_to_fp8(x)
    k = shape[-1]
    assert q.dtype == torch.float8_e4m3fn and q.shape == x.shape and q.is_contiguous()
    assert scale.dtype == torch.float32 and scale.shape == (*shape[:-1], -(-k // 128))
    assert scale.is_contiguous()
    assert_round_trip(x, q, token_scale_per_element(scale, k))


def test_per_token_scale_is_block_amax_over_448(gen):
    x = torch.randn(5, 300, generator=gen)
    _, scale = per_token_cast_to_fp8(x)
    for kb, k0 in enumerate(range(0, 300, 128)):
        amax = x[:, k0 : k0 + 128].abs().amax(dim=1)  # the last block has 44 columns
        torch.testing.assert_close(scale[:, kb], amax / 448, rtol=0, atol=0)


def test_per_token_block_max_maps_to_448(gen):
    x = torch.randn(6, 384, generator=gen)
    q, _ = per_token_cast_to_fp8(x)
    assert torch.equal(q.float().abs().view(6, 3, 128).amax(-1), torch.full((6, 3), 448.0))


def test_per_token_blocks_are_independent(gen):
    x = torch.randn(2, 256, generator=gen)
    x[:, 128:] *= 1000  # a loud second block must not change the first block's scale
    q_loud, s_loud = per_token_cast_to_fp8(x)
    q_quiet, s_quiet = per_token_cast_to_fp8(x[:, :128].contiguous())
    assert torch.equal(s_loud[:, :1], s_quiet)
    assert torch.equal(q_loud[:, :128].float(), q_quiet.float())


@pytest.mark.parametrize("shape", [(128, 128), (200, 300), (1, 129), (3, 130, 260), (2, 64, 64)])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
def test_per_block_shapes_and_round_trip(shape, dtype, gen):
    x = (torch.randn(shape, generator=gen) * 0.1).to(dtype)
    q, scale = per_block_cast_to_fp8(x)
    n, k = shape[-2:]
    assert q.dtype == torch.float8_e4m3fn and q.shape == x.shape and q.is_contiguous()
    assert scale.dtype == torch.float32 and scale.shape == (*shape[:-2], -(-n // 128), -(-k // 128))
    assert_round_trip(x, q, block_scale_per_element(scale, n, k))


def test_per_block_scale_is_block_amax_over_448(gen):
    x = torch.randn(2, 200, 300, generator=gen)
    _, scale = per_block_cast_to_fp8(x)
    for g in range(2):
        for nb, n0 in enumerate(range(0, 200, 128)):
            for kb, k0 in enumerate(range(0, 300, 128)):
                amax = x[g, n0 : n0 + 128, k0 : k0 + 128].abs().max()
                assert scale[g, nb, kb].item() == (amax / 448).item()


@pytest.mark.parametrize("cast", [per_token_cast_to_fp8, per_block_cast_to_fp8])
def test_scale_clamped_for_zero_and_tiny_blocks(cast):
    x = torch.zeros(4, 256)
    x[:, 128:] = 1e-7  # amax below 1e-4
    q, scale = cast(x)
    assert torch.isfinite(scale).all()
    assert torch.allclose(scale, torch.full_like(scale, 1e-4 / 448))
    assert (q[:, :128].float() == 0).all()
    assert torch.isfinite(q.float()).all()


@pytest.mark.parametrize("cast", [per_token_cast_to_fp8, per_block_cast_to_fp8])
def test_large_values_do_not_overflow(cast, gen):
    x = torch.randn(8, 256, generator=gen) * 1e30
    q, scale = cast(x)
    assert torch.isfinite(q.float()).all() and q.float().abs().max().item() == 448.0


def test_per_token_3d_equals_2d_rows(gen):
    x = torch.randn(3, 5, 200, generator=gen)
    q3, s3 = per_token_cast_to_fp8(x)
    q2, s2 = per_token_cast_to_fp8(x.reshape(15, 200))
    assert torch.equal(q3.reshape(15, 200).float(), q2.float()) and torch.equal(s3.reshape(15, 2), s2)


def test_per_block_3d_equals_each_2d(gen):
    x = torch.randn(3, 130, 200, generator=gen)
    q3, s3 = per_block_cast_to_fp8(x)
    for g in range(3):
        q2, s2 = per_block_cast_to_fp8(x[g])
        assert torch.equal(q3[g].float(), q2.float()) and torch.equal(s3[g], s2)


@pytest.mark.parametrize("cast", [per_token_cast_to_fp8, per_block_cast_to_fp8])
def test_rejects_bad_input(cast):
    with pytest.raises(TypeError, match="x: expected dtype"):
        cast(torch.zeros(4, 128, dtype=torch.int32))
    with pytest.raises(ValueError, match="x: expected at least"):
        cast(torch.zeros(()))
