"""Every argument check of the training API (FP32 GEMMs, quantization helpers, fp8gemm.nn): the
error type, a message naming the argument, and nothing written before the error."""

from __future__ import annotations

import pytest
import torch

import fp8gemm
from fp8gemm import nn

E4M3 = torch.float8_e4m3fn
M, N, K = 8, 32, 256
KB = K // 128


def fp8(*shape: int, device: str = "cpu") -> torch.Tensor:
    return torch.zeros(shape, dtype=E4M3, device=device)


def f32(*shape: int, device: str = "cpu") -> torch.Tensor:
    return torch.ones(shape, dtype=torch.float32, device=device)


def col_major(rows: int, cols: int, stride: int) -> torch.Tensor:
    """[rows, cols] float32 with strides (1, stride)."""
    return torch.ones(cols, stride)[:, :rows].t()


def misaligned(*shape: int, dtype=E4M3) -> torch.Tensor:
    """A contiguous view that starts one element into its buffer: not 16-byte aligned."""
    numel = 1
    for s in shape:
        numel *= s
    return torch.zeros(numel + 16, dtype=torch.float32).to(dtype)[1 : 1 + numel].view(shape)


# ---------------------------------------------------------------------------------- dense FP32 GEMM
def dense(**override):
    args = dict(a=fp8(M, K), sa=f32(M, KB), b=fp8(N, K), sb=f32(N, KB), d=torch.zeros(M, N), c=None)
    args.update(override)
    return args


def call_dense(args, **kwargs):
    fp8gemm.fp8_gemm_nt((args["a"], args["sa"]), (args["b"], args["sb"]), args["d"], args["c"], **kwargs)


DENSE_BAD = [
    (dict(a=fp8(M, K).float()), TypeError, r"^a: expected dtype torch.float8_e4m3fn"),
    (dict(sa=f32(M, KB).double()), TypeError, r"^sa: expected dtype torch.float32"),
    (dict(b=fp8(N, K).to(torch.bfloat16)), TypeError, r"^b: expected dtype"),
    (dict(sb=f32(N, KB).half()), TypeError, r"^sb: expected dtype"),
    (dict(a=fp8(1, M, K)), ValueError, r"^a: expected 2 dimensions"),
    (dict(sa=f32(M * KB)), ValueError, r"^sa: expected 2 dimensions"),
    (dict(b=fp8(N * K)), ValueError, r"^b: expected 2 dimensions"),
    (dict(sb=f32(1, N, KB)), ValueError, r"^sb: expected 2 dimensions"),
    (dict(d=torch.zeros(1, M, N)), ValueError, r"^d: expected 2 dimensions"),
    (dict(b=fp8(N, K + 128), sb=f32(N, KB + 1)), ValueError, r"^b: expected K = 256"),
    (dict(a=fp8(M, 0), sa=f32(M, 0), b=fp8(N, 0), sb=f32(N, 0)), ValueError, r"^b: expected n > 0 and k > 0"),
    (dict(sa=f32(M, KB + 1)), ValueError, r"^sa: expected shape \[8, 2\]"),
    (dict(sb=f32(1, KB)), ValueError, r"^sb: expected shape \[32, 2\] \(rows of b, ceil\(k/128\): 1x128"),
    (dict(d=torch.zeros(M, N + 4)), ValueError, r"^d: expected shape \[8, 32\]"),
    (dict(a=fp8(K, M).t()), ValueError, r"^a: expected a contiguous \(K-major\)"),
    (dict(b=fp8(K, N).t()), ValueError, r"^b: expected a contiguous"),
    (dict(a=fp8(M, 8), sa=f32(M, 1), b=fp8(N, 8), sb=f32(N, 1)), ValueError, r"^a: expected a row stride"),
    (dict(sa=col_major(M, KB, 12)), ValueError, r"^sa: expected a row-major contiguous or TMA-aligned"),
    (dict(sb=col_major(N, KB, 36)), ValueError, r"^sb: expected a row-major contiguous or TMA-aligned"),
    (dict(d=torch.zeros(N, M).t()), ValueError, r"^d: expected a contiguous \(row-major\)"),
    (dict(b=fp8(6, K), sb=f32(6, KB), d=torch.zeros(M, 6)), ValueError, r"^d: expected a row stride"),
    (dict(a=misaligned(M, K)), ValueError, r"^a: expected a data pointer aligned"),
    (dict(b=misaligned(N, K)), ValueError, r"^b: expected a data pointer aligned"),
    (dict(d=misaligned(M, N, dtype=torch.float32)), ValueError, r"^d: expected a data pointer aligned"),
    (dict(c=torch.zeros(M, N, dtype=torch.bfloat16)), TypeError, r"^c: expected dtype torch.float32"),
    (dict(c=torch.zeros(M * N)), ValueError, r"^c: expected 2 dimensions"),
    (dict(c=torch.zeros(M, N + 4)), ValueError, r"^c: expected shape \[8, 32\]"),
    (dict(c=torch.zeros(N, M).t()), ValueError, r"^c: expected a contiguous tensor"),
    (dict(c=torch.zeros(M, N, device="meta")), ValueError, r"^c: expected device cpu"),
    (dict(c=[0.0]), TypeError, r"^c: expected a torch.Tensor"),
    (dict(sb=torch.tensor(1.0)), ValueError, r"^sb: expected 2 dimensions"),
]


@pytest.mark.parametrize("override,error,message", DENSE_BAD)
def test_dense_fp32_bad_arguments(override, error, message) -> None:
    args = dense(**override)
    d_before = args["d"].clone()
    with pytest.raises(error, match=message):
        call_dense(args)
    assert torch.equal(args["d"], d_before)


def test_dense_fp32_c_overlapping_d() -> None:
    buffer = torch.zeros(M + 1, N)
    d, c = buffer[:M], buffer[1:]
    with pytest.raises(ValueError, match=r"^c: expected d itself \(in place\) or a tensor that does not"):
        call_dense(dense(d=d, c=c))
    call_dense(dense(d=d, c=d.view(M, N)))  # the same memory under another tensor object: in place


def test_dense_fp32_devices() -> None:
    with pytest.raises(ValueError, match=r"^a: expected a CPU or CUDA tensor, got device meta"):
        call_dense(dense(a=fp8(M, K, device="meta")))
    with pytest.raises(ValueError, match=r"^d: expected device cpu \(the device of a\), got meta"):
        call_dense(dense(d=torch.zeros(M, N, device="meta")))


@pytest.mark.parametrize("kwargs,error,message", [
    ({"recipe": (1, 128, 128)}, NotImplementedError, r"^recipe: with an FP32 d only \(1, 1, 128\)"),
    ({"recipe": "1x1x128"}, NotImplementedError, r"^recipe: with an FP32 d"),
    ({"compiled_dims": 1}, TypeError, r"^compiled_dims: expected a str"),
    ({"disable_ue8m0_cast": None}, TypeError, r"^disable_ue8m0_cast: expected a bool"),
])
def test_dense_fp32_keywords(kwargs, error, message) -> None:
    with pytest.raises(error, match=message):
        call_dense(dense(), **kwargs)


def test_dense_fp32_pairs_and_ue8m0() -> None:
    with pytest.raises(TypeError, match=r"^a: expected a pair"):
        fp8gemm.fp8_gemm_nt(fp8(M, K), (fp8(N, K), f32(N, KB)), torch.zeros(M, N))
    with pytest.raises(TypeError, match=r"^b\[1\]: expected a torch.Tensor"):
        fp8gemm.fp8_gemm_nt((fp8(M, K), f32(M, KB)), (fp8(N, K), 1.0), torch.zeros(M, N))
    with pytest.raises(NotImplementedError, match=r"^b\[1\]: int32 scales"):
        fp8gemm.fp8_gemm_nt((fp8(M, K), f32(M, KB)), (fp8(N, K), torch.zeros(N, 1, dtype=torch.int32)),
                            torch.zeros(M, N))
    # The older name names its own parameters.
    with pytest.raises(TypeError, match=r"^lhs: expected a pair"):
        fp8gemm.wgrad_gemm_fp8_fp8_fp32_nt(fp8(M, K), (fp8(N, K), f32(N, KB)), torch.zeros(M, N))
    with pytest.raises(TypeError, match=r"^out: expected dtype torch.float32"):
        fp8gemm.wgrad_gemm_fp8_fp8_fp32_nt((fp8(M, K), f32(M, KB)), (fp8(N, K), f32(N, KB)),
                                           torch.zeros(M, N, dtype=torch.bfloat16))
    with pytest.raises(ValueError, match=r"^out: expected shape \[8, 32\]"):
        fp8gemm.wgrad_gemm_fp8_fp8_fp32_nt((fp8(M, K), f32(M, KB)), (fp8(N, K), f32(N, KB)),
                                           torch.zeros(M, 4))


def test_bf16_d_keeps_its_rules() -> None:
    d = torch.zeros(M, N, dtype=torch.bfloat16)
    with pytest.raises(NotImplementedError, match=r"^c: an FP32 accumulator .* needs an FP32 d"):
        fp8gemm.fp8_gemm_nt((fp8(M, K), f32(M, KB)), (fp8(N, K), f32(1, KB)), d, c=torch.zeros(M, N))
    with pytest.raises(NotImplementedError, match=r"^recipe: only \(1, 128, 128\).*with a BF16 d"):
        fp8gemm.fp8_gemm_nt((fp8(M, K), f32(M, KB)), (fp8(N, K), f32(1, KB)), d, recipe=(1, 1, 128))
    with pytest.raises(ValueError, match=r"^sb: expected shape \[1, 2\]"):  # 1x128 sb with a BF16 d
        fp8gemm.fp8_gemm_nt((fp8(M, K), f32(M, KB)), (fp8(N, K), f32(N, KB)), d)


# ------------------------------------------------------------------------------- k-grouped GEMM
G = 3
BK = 512  # K of the k-grouped layout: room for the counts below


def grouped(**override):
    args = dict(a=fp8(M, BK), sa=f32(M, BK // 128), b=fp8(N, BK), sb=f32(N, BK // 128),
                d=torch.zeros(G, M, N), ks=[100, 0, 128],
                ks_tensor=torch.tensor([100, 0, 128], dtype=torch.int32),
                c=None)
    args.update(override)
    return args


def call_grouped(args, **kwargs):
    fp8gemm.k_grouped_fp8_gemm_nt_contiguous((args["a"], args["sa"]), (args["b"], args["sb"]), args["d"],
                                             args["ks"], args["ks_tensor"], args["c"], **kwargs)


def _nonzero_padding(rows: int) -> torch.Tensor:
    x = fp8(rows, BK)
    x[0, 100] = 1.0  # group 0 has 100 tokens: column 100 is padding
    return x


GROUPED_BAD = [
    (dict(a=fp8(M, BK).float()), TypeError, r"^a: expected dtype"),
    (dict(sa=f32(M, 4).double()), TypeError, r"^sa: expected dtype"),
    (dict(b=fp8(N, BK).half()), TypeError, r"^b: expected dtype"),
    (dict(sb=f32(N, 4).double()), TypeError, r"^sb: expected dtype"),
    (dict(d=torch.zeros(G, M, N).double()), TypeError, r"^d: expected dtype torch.float32"),
    (dict(ks_tensor=torch.tensor([100, 0, 128])), TypeError, r"^ks_tensor: expected dtype torch.int32"),
    (dict(a=fp8(1, M, BK)), ValueError, r"^a: expected 2 dimensions"),
    (dict(d=torch.zeros(M, N)), ValueError, r"^d: expected 3 dimensions"),
    (dict(ks_tensor=torch.zeros(1, G, dtype=torch.int32)), ValueError, r"^ks_tensor: expected 1 dimensions"),
    (dict(ks_tensor=torch.zeros(G, dtype=torch.int32, device="meta")), ValueError,
     r"^ks_tensor: expected device cpu"),
    (dict(b=fp8(N, BK + 128), sb=f32(N, 5)), ValueError, r"^b: expected K = 512"),
    (dict(a=fp8(M, 272), sa=f32(M, 3), b=fp8(N, 272), sb=f32(N, 3)), ValueError,
     r"^a: expected K .* multiple of 128"),
    (dict(a=fp8(0, BK), sa=f32(0, 4), d=torch.zeros(G, 0, N)), ValueError, r"^d: expected m > 0 and n > 0"),
    (dict(d=torch.zeros(0, M, N), ks=[], ks_tensor=torch.zeros(0, dtype=torch.int32)), ValueError,
     r"^d: expected at least one group"),
    (dict(sa=f32(M, 5)), ValueError, r"^sa: expected shape \[8, 4\]"),
    (dict(sb=f32(1, 4)), ValueError, r"^sb: expected shape \[32, 4\]"),
    (dict(d=torch.zeros(G, M, N + 4)), ValueError, r"^d: expected shape \[3, 8, 32\]"),
    (dict(ks_tensor=torch.zeros(G + 1, dtype=torch.int32)), ValueError, r"^ks_tensor: expected shape \[3\]"),
    (dict(ks_tensor=torch.zeros(2 * G, dtype=torch.int32)[::2]), ValueError,
     r"^ks_tensor: expected a contiguous"),
    (dict(a=fp8(BK, M).t()), ValueError, r"^a: expected a contiguous \(K-major\)"),
    (dict(sa=col_major(M, 4, 12)), ValueError, r"^sa: expected a row-major contiguous or TMA-aligned"),
    (dict(sb=col_major(N, 4, 36)), ValueError, r"^sb: expected a row-major contiguous or TMA-aligned"),
    (dict(d=torch.zeros(G, N, M).transpose(1, 2)), ValueError, r"^d: expected a contiguous"),
    (dict(b=fp8(6, BK), sb=f32(6, 4), d=torch.zeros(G, M, 6)), ValueError, r"^d: expected a row stride"),
    (dict(a=misaligned(M, BK)), ValueError, r"^a: expected a data pointer aligned"),
    (dict(c=torch.zeros(G, M, N, dtype=torch.bfloat16)), TypeError, r"^c: expected dtype"),
    (dict(c=torch.zeros(G, M, N + 4)), ValueError, r"^c: expected shape \[3, 8, 32\]"),
    (dict(ks=torch.tensor([100, 0, 128])), TypeError, r"^ks: expected None or a list of 3 host ints"),
    (dict(ks="abc"), TypeError, r"^ks: expected None or a list"),
    (dict(ks=[100, 0]), ValueError, r"^ks: expected 3 counts"),
    (dict(ks=[100, 0.0, 128]), TypeError, r"^ks\[1\]: expected a positive int"),
    (dict(ks=[100, True, 128]), TypeError, r"^ks\[1\]: expected a positive int, got bool"),
    (dict(ks=[100, -1, 128]), ValueError, r"^ks\[1\]: expected a non-negative token count"),
    (dict(ks=[300, 0, 129]), ValueError, r"^ks: expected the groups, each padded to a multiple of 128"),
    (dict(ks=None, ks_tensor=torch.tensor([100, -1, 128], dtype=torch.int32)), ValueError,
     r"^ks_tensor: expected non-negative token counts, got -1 for group 1"),
    (dict(ks=[100, 0, 127]), ValueError, r"^ks: expected the values of ks_tensor \(\[100, 0, 128\]\)"),
    (dict(ks=None, ks_tensor=torch.tensor([300, 0, 129], dtype=torch.int32)), ValueError,
     r"^ks_tensor: expected the groups, each padded"),
    (dict(a=_nonzero_padding(M)), ValueError,
     r"^a: expected zeros in the padding of group 0 \(columns 100-127"),
    (dict(b=_nonzero_padding(N)), ValueError,
     r"^b: expected zeros in the padding of group 0 .* at \[0, 100\]"),
]


@pytest.mark.parametrize("override,error,message", GROUPED_BAD)
def test_k_grouped_bad_arguments(override, error, message) -> None:
    args = grouped(**override)
    d_before = args["d"].clone()
    with pytest.raises(error, match=message):
        call_grouped(args)
    assert torch.equal(args["d"], d_before)


def test_k_grouped_pairs_and_keywords() -> None:
    args = grouped()
    with pytest.raises(TypeError, match=r"^a: expected a pair"):
        fp8gemm.k_grouped_fp8_gemm_nt_contiguous(args["a"], (args["b"], args["sb"]), args["d"], None,
                                                 args["ks_tensor"])
    with pytest.raises(NotImplementedError, match=r"^recipe: with an FP32 d only \(1, 1, 128\)"):
        call_grouped(args, recipe=(1, 128, 128))
    with pytest.raises(TypeError, match=r"^compiled_dims: expected a str"):
        call_grouped(args, compiled_dims=None)
    buffer = torch.zeros(G + 1, M, N)
    with pytest.raises(ValueError, match=r"^c: expected d itself"):
        call_grouped(grouped(d=buffer[:G], c=buffer[1:]))
    padding_is_negative_zero = fp8(M, BK)
    padding_is_negative_zero[:, 100:128] = -0.0
    call_grouped(grouped(a=padding_is_negative_zero))  # -0 is zero


# ------------------------------------------------------------------------------------ quantization
X = torch.randn(40, 32)
kcast = fp8gemm.k_grouped_per_channel_transpose_cast_to_fp8
tcast = fp8gemm.per_channel_transpose_cast_to_fp8
tblock = fp8gemm.transpose_per_block_fp8
I32 = torch.int32


@pytest.mark.parametrize("call,error,message", [
    (lambda: tcast(X.numpy()), TypeError, r"^x: expected a torch.Tensor"),
    (lambda: tcast(X.int()), TypeError, r"^x: expected dtype"),
    (lambda: tcast(X[0]), ValueError, r"^x: expected at least 2"),
    (lambda: tcast(X.view(2, 20, 32)), ValueError, r"^x: expected 2D"),
    (lambda: kcast(X.view(2, 20, 32), [20, 20]), ValueError,
     r"^x: expected 2D"),
    (lambda: kcast(X, 40), TypeError, r"^ks: expected a list"),
    (lambda: kcast(X, torch.tensor([40.0])), TypeError,
     r"^ks: expected a 1D integer tensor"),
    (lambda: kcast(X, [20, 20.0]), TypeError,
     r"^ks\[1\]: expected an int"),
    (lambda: kcast(X, [True, 39]), TypeError,
     r"^ks\[0\]: expected an int, got bool"),
    (lambda: kcast(X, [50, -10]), ValueError,
     r"^ks\[1\]: expected a non-negative"),
    (lambda: kcast(X, [20, 21]), ValueError,
     r"^ks: expected counts that add up to the 40 rows"),
    (lambda: kcast(X, [40], capacity=256.0), TypeError,
     r"^capacity: expected an int"),
    (lambda: kcast(X, [20, 20], capacity=128), ValueError,
     r"^capacity: expected a multiple of 128 that is at least 256"),
    (lambda: kcast(X, [40], capacity=200), ValueError,
     r"^capacity: expected a multiple of 128"),
    (lambda: tblock(X, f32(1, 1)), TypeError, r"^q: expected dtype"),
    (lambda: tblock(None, f32(1, 1)), TypeError, r"^q: expected a torch.Tensor"),
    (lambda: tblock(fp8(40, 32), None), TypeError, r"^scale: expected a torch.Tensor"),
    (lambda: tblock(fp8(40, 32), f32(1, 1).double()), TypeError, r"^scale: expected dtype"),
    (lambda: tblock(fp8(40), f32(1)), ValueError, r"^q: expected 2D \[n, k\] or 3D"),
    (lambda: tblock(fp8(200, 32), f32(1, 1)), ValueError,
     r"^scale: expected shape \[2, 1\]"),
    (lambda: tblock(fp8(40, 32), f32(1, 1, device="meta")), ValueError,
     r"^scale: expected device cpu"),
])
def test_quantization_helpers_bad_arguments(call, error, message) -> None:
    with pytest.raises(error, match=message):
        call()


# --------------------------------------------------------------------------------------------- nn
@pytest.mark.parametrize("call,error,message", [
    (lambda: nn.FP8Linear(100, 32), ValueError, r"^in_features: expected a positive multiple of 16, got 100"),
    (lambda: nn.FP8Linear(32, 0), ValueError, r"^out_features: expected a positive multiple of 16"),
    (lambda: nn.FP8Linear(32.0, 32), TypeError, r"^in_features: expected an int"),
    (lambda: nn.FP8Linear(32, 32, dtype=torch.float16), TypeError, r"^dtype: expected torch.float32 or"),
    (lambda: nn.FP8Linear(32, 32)(torch.randn(4, 48)), ValueError, r"^x: expected last dim 32"),
    (lambda: nn.FP8GroupedLinear(0, 32, 32), ValueError, r"^num_experts: expected a positive int"),
    (lambda: nn.FP8GroupedLinear(True, 32, 32), ValueError, r"^num_experts: expected a positive int"),
    (lambda: nn.FP8GroupedLinear(2, 33, 32), ValueError, r"^in_features: expected a positive multiple of 16"),
    (lambda: nn.FP8GroupedLinear(2, 32, 32, dtype=I32), TypeError, r"^dtype: expected"),
    (lambda: nn.FP8GroupedLinear(2, 32, 32)(torch.randn(100, 32), torch.zeros(2, dtype=I32)), ValueError,
     r"^x: expected 2D \[rows, in\] with rows a multiple of 128"),
    (lambda: nn.fp8_grouped_linear(torch.randn(128, 32), torch.randn(2, 16, 48), torch.zeros(2, dtype=I32)),
     ValueError, r"^weight: expected \[groups, out, 32\]"),
    (lambda: nn.FP8GroupedLinear(2, 32, 32)(torch.randn(128, 32), torch.zeros(2)), ValueError,
     r"^ks_tensor: expected int32 \[2\]"),
    (lambda: nn.FP8GroupedLinear(2, 32, 32)(torch.randn(128, 32), torch.zeros(3, dtype=I32)), ValueError,
     r"^ks_tensor: expected int32 \[2\]"),
])
def test_nn_bad_arguments(call, error, message) -> None:
    with pytest.raises(error, match=message):
        call()
