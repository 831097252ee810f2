"""Independent float64 computations and input makers for the tests (no fp8gemm code used in the maths)."""

from __future__ import annotations

import torch

BLOCK = 128


def ceil_div(x: int, y: int) -> int:
    return -(-x // y)


def random_fp8(shape: tuple[int, ...], gen: torch.Generator) -> torch.Tensor:
    """Random finite float8_e4m3fn values of magnitude up to about 4 (both signs)."""
    return (torch.randn(shape, generator=gen) * 1.5).clamp(-448, 448).to(torch.float8_e4m3fn)


def random_scales(shape: tuple[int, ...], gen: torch.Generator) -> torch.Tensor:
    """Positive float32 scales spread over two orders of magnitude, so a wrong index shows."""
    return torch.exp(torch.rand(shape, generator=gen) * 4.6 - 2.3).float()


def dequant_rows(a: torch.Tensor, sa: torch.Tensor) -> torch.Tensor:
    """float64 a[..., k] * sa[..., k // 128], by an explicit per-column index."""
    k = a.shape[-1]
    cols = torch.arange(k) // BLOCK
    return a.double() * sa.double()[..., cols]


def dequant_blocks(b: torch.Tensor, sb: torch.Tensor) -> torch.Tensor:
    """float64 b[..., n, k] * sb[..., n // 128, k // 128]."""
    n, k = b.shape[-2:]
    rows, cols = torch.arange(n) // BLOCK, torch.arange(k) // BLOCK
    return b.double() * sb.double()[..., rows[:, None], cols[None, :]]


def gemm_f64(a, sa, b, sb) -> torch.Tensor:
    """The GEMM in float64 from dequantized operands: [m, n] (or batched)."""
    return dequant_rows(a, sa) @ dequant_blocks(b, sb).transpose(-1, -2)


def gemm_f64_bound(a, sa, b, sb) -> torch.Tensor:
    """sum |terms|: scales the FP32 accumulation error allowed per element."""
    return dequant_rows(a, sa).abs() @ dequant_blocks(b, sb).abs().transpose(-1, -2)


def assert_close_to_f64(out: torch.Tensor, exact: torch.Tensor, bound: torch.Tensor) -> None:
    """BF16 rounding (half an ulp is 2^-9 relative; 2^-8 allowed) plus FP32 accumulation error
    (loose: 1e-5 of sum |terms|)."""
    err = (out.double() - exact).abs()
    allowed = exact.abs() * 2.0**-8 + bound * 1e-5 + 1e-30
    worst = (err / allowed).max().item() if err.numel() else 0.0
    assert worst <= 1.0, f"max error / allowed = {worst:.3f}"
