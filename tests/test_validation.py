"""Every argument check of the public GEMMs: the error type, and a message naming the argument."""

from __future__ import annotations

import pytest
import torch

import fp8gemm

E4M3 = torch.float8_e4m3fn
M, N, K, G = 8, 128, 256, 2
KB, NB = K // 128, N // 128


def fp8(*shape: int, device: str = "cpu") -> torch.Tensor:
    return torch.zeros(shape, dtype=E4M3, device=device)


def f32(*shape: int, device: str = "cpu") -> torch.Tensor:
    return torch.ones(shape, dtype=torch.float32, device=device)


def bf16(*shape: int, device: str = "cpu") -> torch.Tensor:
    return torch.zeros(shape, dtype=torch.bfloat16, device=device)


def strided(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Same shape and dtype as x, but every other element of a buffer twice as long along ``dim``."""
    dim %= x.dim()
    shape = list(x.shape)
    shape[dim] *= 2
    every_other = (slice(None),) * dim + (slice(None, None, 2),)
    y = torch.zeros(shape, dtype=x.dtype)[every_other]
    assert y.shape == x.shape and not y.is_contiguous()
    return y


def dense_args(m=M, n=N, k=K, **override):
    kb, nb = -(-k // 128), -(-n // 128)
    args = dict(a=fp8(m, k), sa=f32(m, kb), b=fp8(n, k), sb=f32(nb, kb), out=bf16(m, n))
    args.update(override)
    return args


def contiguous_args(m=M * 16, n=N, k=K, g=G, **override):
    kb, nb = -(-k // 128), -(-n // 128)
    args = dict(a=fp8(m, k), sa=f32(m, kb), b=fp8(g, n, k), sb=f32(g, nb, kb), out=bf16(m, n),
                m_indices=torch.zeros(m, dtype=torch.int32))
    args.update(override)
    return args


def masked_args(g=G, max_m=M, n=N, k=K, **override):
    kb, nb = -(-k // 128), -(-n // 128)
    args = dict(a=fp8(g, max_m, k), sa=f32(g, max_m, kb), b=fp8(g, n, k), sb=f32(g, nb, kb),
                out=bf16(g, max_m, n), masked_m=torch.full((g,), max_m, dtype=torch.int32), expected_m=max_m)
    args.update(override)
    return args


def call_dense(args):
    fp8gemm.gemm_fp8_fp8_bf16_nt(args.get("lhs", (args["a"], args["sa"])),
                                 args.get("rhs", (args["b"], args["sb"])), args["out"])


def call_contiguous(args):
    fp8gemm.m_grouped_gemm_fp8_fp8_bf16_nt_contiguous(
        args.get("lhs", (args["a"], args["sa"])), args.get("rhs", (args["b"], args["sb"])),
        args["out"], args["m_indices"])


def call_masked(args):
    fp8gemm.m_grouped_gemm_fp8_fp8_bf16_nt_masked(
        args.get("lhs", (args["a"], args["sa"])), args.get("rhs", (args["b"], args["sb"])),
        args["out"], args["masked_m"], args["expected_m"])


# (id, arguments, error type, regex the message must match: argument name, expectation, what came)
DENSE_CASES = [
    ("lhs-not-pair", dense_args(lhs=fp8(M, K)), TypeError, r"lhs: expected a pair .* got Tensor"),
    ("lhs-triple", dense_args(lhs=(fp8(M, K), f32(M, KB), f32(1))), TypeError, r"lhs: .*length 3"),
    ("rhs-scale-not-tensor", dense_args(rhs=(fp8(N, K), 1.0)),
     TypeError, r"rhs\[1\]: expected a torch.Tensor"),
    ("a-dtype-bf16", dense_args(a=bf16(M, K)),
     TypeError, r"a: expected dtype torch.float8_e4m3fn, got torch.bfl"),
    ("a-dtype-e5m2", dense_args(a=fp8(M, K).to(torch.float8_e5m2)), TypeError, r"a: .*got torch.float8_e5m2"),
    ("sa-dtype", dense_args(sa=f32(M, KB).bfloat16()), TypeError, r"sa: expected dtype torch.float32"),
    ("b-dtype", dense_args(b=torch.zeros(N, K, dtype=torch.int8)), TypeError, r"b: expected dtype .*int8"),
    ("sb-dtype", dense_args(sb=f32(NB, KB).double()), TypeError, r"sb: expected dtype torch.float32"),
    ("out-dtype", dense_args(out=f32(M, N)),
     TypeError, r"out: expected dtype torch.bfloat16, got torch.float32"),
    ("a-rank", dense_args(a=fp8(1, M, K)), ValueError, r"a: expected 2 dimensions, got shape \(1, 8, 256\)"),
    ("sa-rank", dense_args(sa=f32(M * KB)), ValueError, r"sa: expected 2 dimensions"),
    ("b-rank", dense_args(b=fp8(1, N, K)), ValueError, r"b: expected 2 dimensions"),
    ("sb-rank", dense_args(sb=f32(1, NB, KB)), ValueError, r"sb: expected 2 dimensions"),
    ("out-rank", dense_args(out=bf16(M * N)), ValueError, r"out: expected 2 dimensions"),
    ("k-mismatch", dense_args(b=fp8(N, K + 128)),
     ValueError, r"b: expected K = 256 .*got shape \[128, 384\]"),
    ("n-zero", dense_args(b=fp8(0, K), sb=f32(0, KB), out=bf16(M, 0)), ValueError, r"b: expected n > 0"),
    ("sa-kb", dense_args(sa=f32(M, KB + 1)), ValueError, r"sa: expected shape \[8, 2\] .*got \[8, 3\]"),
    ("sa-rows", dense_args(sa=f32(M + 1, KB)), ValueError, r"sa: expected shape \[8, 2\]"),
    ("sb-nb", dense_args(sb=f32(NB + 1, KB)), ValueError, r"sb: expected shape \[1, 2\] .*got \[2, 2\]"),
    ("sb-kb", dense_args(sb=f32(NB, KB - 1)), ValueError, r"sb: expected shape \[1, 2\]"),
    ("out-n", dense_args(out=bf16(M, N + 8)), ValueError, r"out: expected shape \[8, 128\] .*got \[8, 136\]"),
    ("out-m", dense_args(out=bf16(M + 1, N)), ValueError, r"out: expected shape \[8, 128\]"),
    ("a-strided", dense_args(a=strided(fp8(M, K))), ValueError, r"a: expected a contiguous \(K-major\)"),
    ("a-transposed", dense_args(a=fp8(K, M).t()), ValueError, r"a: expected a contiguous .*strides \(1, 8\)"),
    ("b-strided", dense_args(b=strided(fp8(N, K), 0)), ValueError, r"b: expected a contiguous"),
    ("k-unaligned", dense_args(k=200),
     ValueError, r"a: expected a row stride that is a multiple of 16 bytes"),
    ("out-unaligned", dense_args(n=132), ValueError, r"out: expected a row stride .*264 bytes"),
    ("sa-layout", dense_args(sa=strided(f32(M, KB))), ValueError, r"sa: expected a row-major .*column-major"),
    ("sa-unaligned-col", dense_args(m=6, sa=f32(KB, 6).t()), ValueError, r"sa: .*strides \(1, 6\)"),
    ("sb-strided", dense_args(sb=strided(f32(NB, KB))), ValueError, r"sb: expected a contiguous tensor"),
    ("out-strided", dense_args(out=strided(bf16(M, N), 0)), ValueError,
     r"out: expected a contiguous \(row-major\)"),
    ("device-mix", dense_args(sb=f32(NB, KB, device="meta")), ValueError,
     r"sb: expected device cpu \(the device of a\), got meta"),
    ("device-unsupported", dense_args(a=fp8(M, K, device="meta"), sa=f32(M, KB, device="meta"),
                                      b=fp8(N, K, device="meta"), sb=f32(NB, KB, device="meta"),
                                      out=bf16(M, N, device="meta")),
     ValueError, r"a: expected a CPU or CUDA tensor, got device meta"),
]

CONTIGUOUS_CASES = [
    ("m_indices-dtype", contiguous_args(m_indices=torch.zeros(M * 16, dtype=torch.int64)), TypeError,
     r"m_indices: expected dtype torch.int32, got torch.int64"),
    ("m_indices-list", contiguous_args(m_indices=[0] * M * 16), TypeError,
     r"m_indices: expected a torch.Tensor, got list"),
    ("m_indices-rank", contiguous_args(m_indices=torch.zeros(M * 16, 1, dtype=torch.int32)), ValueError,
     r"m_indices: expected 1 dimensions"),
    ("m_indices-length", contiguous_args(m_indices=torch.zeros(M * 16 + 1, dtype=torch.int32)), ValueError,
     r"m_indices: expected shape \[128\] .*got \[129\]"),
    ("m_indices-strided", contiguous_args(m_indices=strided(torch.zeros(M * 16, dtype=torch.int32))),
     ValueError, r"m_indices: expected a contiguous"),
    ("m_indices-device", contiguous_args(m_indices=torch.zeros(M * 16, dtype=torch.int32, device="meta")),
     ValueError, r"m_indices: expected device cpu"),
    ("b-rank", contiguous_args(b=fp8(N, K)), ValueError, r"b: expected 3 dimensions"),
    ("sb-rank", contiguous_args(sb=f32(NB, KB)), ValueError, r"sb: expected 3 dimensions"),
    ("a-rank", contiguous_args(a=fp8(1, M * 16, K)), ValueError, r"a: expected 2 dimensions"),
    ("sb-groups", contiguous_args(sb=f32(G + 1, NB, KB)), ValueError, r"sb: expected shape \[2, 1, 2\]"),
    ("b-no-groups", contiguous_args(g=0), ValueError, r"b: expected at least one group"),
    ("b-k", contiguous_args(b=fp8(G, N, K + 16)), ValueError, r"b: expected K = 256"),
    ("out-rows", contiguous_args(out=bf16(M * 16 - 1, N)), ValueError, r"out: expected shape \[128, 128\]"),
    ("sa-layout", contiguous_args(sa=strided(f32(M * 16, KB))), ValueError, r"sa: expected a row-major"),
    ("a-dtype", contiguous_args(a=bf16(M * 16, K)), TypeError, r"a: expected dtype torch.float8_e4m3fn"),
]

MASKED_CASES = [
    ("masked_m-dtype", masked_args(masked_m=torch.zeros(G, dtype=torch.int64)), TypeError,
     r"masked_m: expected dtype torch.int32, got torch.int64"),
    ("masked_m-length", masked_args(masked_m=torch.zeros(G + 1, dtype=torch.int32)), ValueError,
     r"masked_m: expected shape \[2\] .*got \[3\]"),
    ("masked_m-rank", masked_args(masked_m=torch.zeros(G, 1, dtype=torch.int32)), ValueError,
     r"masked_m: expected 1 dimensions"),
    ("masked_m-strided", masked_args(masked_m=strided(torch.zeros(G, dtype=torch.int32))), ValueError,
     r"masked_m: expected a contiguous"),
    ("masked_m-device", masked_args(masked_m=torch.zeros(G, dtype=torch.int32, device="meta")), ValueError,
     r"masked_m: expected device cpu"),
    ("expected_m-zero", masked_args(expected_m=0), ValueError, r"expected_m: expected a positive int, got 0"),
    ("expected_m-negative", masked_args(expected_m=-3), ValueError, r"expected_m: .*got -3"),
    ("expected_m-float", masked_args(expected_m=8.0),
     TypeError, r"expected_m: expected a positive int, got float"),
    ("expected_m-bool", masked_args(expected_m=True), TypeError, r"expected_m: .*got bool"),
    ("expected_m-tensor", masked_args(expected_m=torch.tensor(8)), TypeError, r"expected_m: .*got Tensor"),
    ("b-groups", masked_args(b=fp8(G + 1, N, K), sb=f32(G + 1, NB, KB)), ValueError,
     r"b: expected 2 groups \(the first dim of a\), got shape \[3, 128, 256\]"),
    ("sa-groups", masked_args(sa=f32(G + 1, M, KB)), ValueError, r"sa: expected shape \[2, 8, 2\]"),
    ("sb-groups", masked_args(sb=f32(G + 1, NB, KB)), ValueError, r"sb: expected shape \[2, 1, 2\]"),
    ("out-groups", masked_args(out=bf16(G + 1, M, N)), ValueError, r"out: expected shape \[2, 8, 128\]"),
    ("a-rank", masked_args(a=fp8(G * M, K)), ValueError, r"a: expected 3 dimensions"),
    ("sa-rank", masked_args(sa=f32(G * M, KB)), ValueError, r"sa: expected 3 dimensions"),
    ("out-rank", masked_args(out=bf16(G * M, N)), ValueError, r"out: expected 3 dimensions"),
    ("sa-layout", masked_args(sa=strided(f32(G, M, KB))), ValueError, r"sa: expected a row-major"),
    ("a-strided", masked_args(a=strided(fp8(G, M, K), 0)), ValueError, r"a: expected a contiguous"),
    ("b-no-groups", masked_args(g=0), ValueError, r"b: expected at least one group"),
]


def _ids(cases):
    return [case[0] for case in cases]


@pytest.mark.parametrize("name,args,error,message", DENSE_CASES, ids=_ids(DENSE_CASES))
def test_dense_rejects(name, args, error, message):
    with pytest.raises(error, match=message):
        call_dense(args)


@pytest.mark.parametrize("name,args,error,message", CONTIGUOUS_CASES, ids=_ids(CONTIGUOUS_CASES))
def test_contiguous_rejects(name, args, error, message):
    with pytest.raises(error, match=message):
        call_contiguous(args)


@pytest.mark.parametrize("name,args,error,message", MASKED_CASES, ids=_ids(MASKED_CASES))
def test_masked_rejects(name, args, error, message):
    with pytest.raises(error, match=message):
        call_masked(args)


@pytest.mark.parametrize("call,make", [(call_dense, dense_args), (call_contiguous, contiguous_args),
                                       (call_masked, masked_args)])
def test_valid_arguments_pass(call, make):
    """The baseline the cases above mutate is itself accepted (so each case fails for its own reason)."""
    call(make())


@pytest.mark.parametrize("case", ["row-major", "col-major"])
def test_both_sa_layouts_accepted(case):
    sa = f32(6, KB)
    if case == "col-major":
        sa = fp8gemm.get_col_major_tma_aligned_tensor(sa)
        assert sa.stride() == (1, 8)
    call_dense(dense_args(m=6, sa=sa))


def test_checks_run_before_any_write():
    args = dense_args(sb=f32(NB + 1, KB))
    args["out"].fill_(7.0)
    with pytest.raises(ValueError):
        call_dense(args)
    assert (args["out"] == 7.0).all()
