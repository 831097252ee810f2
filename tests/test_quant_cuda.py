"""The one-pass CUDA activation cast: compiles clean on CPU; on the GPU, bit-for-bit the torch version,
scales in the TMA-aligned layout (padding zeroed), every dtype, 2D and 3D, partial last blocks."""

from __future__ import annotations

import pytest
import torch

from fp8gemm import jit, quant_cuda
from fp8gemm.device import get_num_sms
from fp8gemm.layout import get_col_major_tma_aligned_tensor, get_tma_aligned_size, is_col_major_tma_aligned
from fp8gemm.quant import per_token_cast_to_fp8

DTYPES = [torch.bfloat16, torch.float16, torch.float32]


@pytest.mark.parametrize("dtype", DTYPES)
def test_kernel_compiles_for_sm90a_without_spills(dtype: torch.dtype) -> None:
    kernel = jit.compile_cuda(quant_cuda.kernel_source(dtype), quant_cuda.kernel_name(dtype))
    res = kernel.resources
    assert res.spill_stores == 0 and res.spill_loads == 0
    assert 0 < res.registers <= 64  # at least 4 CTAs of 256 threads per SM
    sass = jit.sass(kernel.cubin)
    loads = [line for line in sass.splitlines() if "LDG" in line]
    assert loads and all(".128" in line for line in loads)  # only 16-byte vector loads


def test_kernel_stays_lean() -> None:
    """The cast is bound by instruction issue at HBM rates: the coordinates of a thread's tasks are divided
    out once, then stepped, and each element's division is three floating-point operations. A
    regression (a division per task, a select per element) shows as instructions."""
    kernel = jit.compile_cuda(quant_cuda.kernel_source(torch.bfloat16, 4),
                              quant_cuda.kernel_name(torch.bfloat16, 4))
    sass = jit.sass(kernel.cubin).splitlines()
    instrs = [line for line in sass if line.strip().startswith("/*") and ";" in line]
    # NOTES: 720 instructions (slow paths included) at this commit, 880 before (3.3 TB/s).
    assert len(instrs) <= 760, len(instrs)
    # Two unsigned divisions for the first task's coordinates, none per task.
    assert sum("I2F.U32.RP" in line for line in instrs) == 2


def test_supports() -> None:
    assert not quant_cuda.supports(torch.zeros(4, 128))  # CPU
    meta = torch.empty(4, 128, device="meta")
    assert not quant_cuda.supports(meta)


def test_cast_if_supported_leaves_what_it_does_not_take_to_the_caller() -> None:
    assert quant_cuda.cast_if_supported(torch.zeros(4, 128)) is None  # CPU: the torch version runs


@pytest.mark.parametrize("shape", [(5, 256), (3, 7, 200), (1, 1, 16)])
def test_tma_aligned_scales_on_cpu(shape: tuple[int, ...], gen: torch.Generator) -> None:
    x = torch.randn(shape, generator=gen).to(torch.bfloat16)
    q, scale = per_token_cast_to_fp8(x, tma_aligned_scales=True)
    q_ref, scale_ref = per_token_cast_to_fp8(x)
    assert is_col_major_tma_aligned(scale)
    assert torch.equal(q.view(torch.uint8), q_ref.view(torch.uint8))
    assert torch.equal(scale, scale_ref)


def test_tma_aligned_scales_rejects_4d() -> None:
    with pytest.raises(ValueError, match="x: expected 2D"):
        per_token_cast_to_fp8(torch.zeros(2, 2, 2, 128), tma_aligned_scales=True)


def test_cuda_entry_rejects_unsupported_input() -> None:
    with pytest.raises(ValueError, match="k % 16"):
        quant_cuda.per_token_cast_to_fp8_cuda(torch.zeros(4, 128))


@pytest.mark.parametrize("unroll", [0, 9, 2.0, True, "2"])
def test_cuda_entry_rejects_a_bad_unroll(unroll: object) -> None:
    with pytest.raises(ValueError, match="^unroll: expected None or an int in 1..8"):
        quant_cuda.per_token_cast_to_fp8_cuda(torch.zeros(4, 128), unroll=unroll)


@pytest.mark.parametrize("unroll", [1, 4])
def test_other_unrolls_compile_without_spills(unroll: int) -> None:
    kernel = jit.compile_cuda(quant_cuda.kernel_source(torch.bfloat16, unroll),
                              quant_cuda.kernel_name(torch.bfloat16, unroll))
    res = kernel.resources
    assert res.spill_stores == 0 and res.spill_loads == 0 and res.stack_bytes == 0
    assert res.registers <= 64  # at least 4 blocks of 256 threads per SM
    assert "LDL" not in jit.sass(kernel.cubin)  # the tasks' arrays live in registers


def test_default_unroll_is_1_where_a_thread_per_task_fits_in_one_wave() -> None:
    lanes, wave = 16, get_num_sms() * 2048  # 2-byte inputs; threads one wave holds
    assert quant_cuda.default_unroll(64 * 56, lanes) == quant_cuda.SMALL_UNROLL == 1  # [64, 7168]
    assert quant_cuda.default_unroll(wave // lanes, lanes) == 1
    assert quant_cuda.default_unroll(wave // lanes + 1, lanes) == quant_cuda.UNROLL == 4
    assert quant_cuda.default_unroll(4096 * 56, lanes) == 4  # [4096, 7168]


def test_supports_leaves_inputs_of_2_31_blocks_to_torch(monkeypatch: pytest.MonkeyPatch) -> None:
    """The kernel indexes 128-wide blocks with 32-bit arithmetic: past 2^31 of them, the torch version."""
    monkeypatch.setattr(torch.Tensor, "is_cuda", property(lambda self: True), raising=False)
    monkeypatch.setattr(quant_cuda, "is_sm90", lambda device: True)
    fits = torch.empty(3, 2**20, 2**16, dtype=torch.bfloat16, device="meta")  # 3 * 2^29 blocks
    too_many = torch.empty(4, 2**20, 2**16, dtype=torch.bfloat16, device="meta")  # 2^31 blocks
    assert quant_cuda._tasks(fits) == 3 * 2**29 and quant_cuda.supports(fits)
    assert quant_cuda._tasks(too_many) == 2**31 and not quant_cuda.supports(too_many)


# ---------------------------------------------------------------------------------------------- GPU


def _inputs(shape: tuple[int, ...], dtype: torch.dtype, seed: int = 0) -> torch.Tensor:
    g = torch.Generator(device="cuda").manual_seed(seed)
    x = torch.randn(shape, generator=g, device="cuda", dtype=torch.float32)
    # Rows at very different magnitudes, so scales cover a wide range (and hit the 1e-4 clamp).
    rows = torch.logspace(-8, 4, shape[-2], device="cuda").view(*([1] * (len(shape) - 2)), -1, 1)
    return (x * rows).to(dtype)


def _assert_same_bits(x: torch.Tensor, y: torch.Tensor, int_dtype: torch.dtype) -> None:
    """Equal bit patterns, except that a NaN only has to meet a NaN (payload and sign may differ)."""
    x_nan, y_nan = x.float().isnan(), y.float().isnan()
    assert torch.equal(x_nan, y_nan)
    assert torch.equal(x.view(int_dtype)[~x_nan], y.view(int_dtype)[~y_nan])


def _check_same(x: torch.Tensor) -> None:
    q, scale = per_token_cast_to_fp8(x, tma_aligned_scales=True)
    q_ref, scale_ref = per_token_cast_to_fp8(x)  # the torch computation, on the GPU
    assert q.dtype == torch.float8_e4m3fn and q.shape == x.shape and q.is_contiguous()
    assert is_col_major_tma_aligned(scale), scale.stride()
    _assert_same_bits(q, q_ref, torch.uint8)
    _assert_same_bits(scale, scale_ref.contiguous(), torch.int32)
    # The padding rows of the storage are zero (TMA reads them for partial tiles).
    m, kb = scale.shape[-2], scale.shape[-1]
    aligned = get_tma_aligned_size(m, 4)
    storage = torch.as_strided(scale, (*scale.shape[:-2], kb, aligned),
                               (*scale.stride()[:-2], aligned, 1))
    assert torch.all(storage[..., m:] == 0)


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1, 128), (7, 7168), (129, 4096), (333, 400), (4096, 7168), (64, 16)])
def test_bit_exact_2d(dtype: torch.dtype, shape: tuple[int, int]) -> None:
    _check_same(_inputs(shape, dtype))


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(4, 3, 256), (32, 20, 7168), (2, 130, 2112), (6, 128, 2048)])
def test_bit_exact_3d(dtype: torch.dtype, shape: tuple[int, int, int]) -> None:
    _check_same(_inputs(shape, dtype, seed=1))


@pytest.mark.gpu
@pytest.mark.parametrize("unroll", [1, 2, 4])
@pytest.mark.parametrize("dtype", DTYPES)
def test_every_unroll_is_bit_exact(unroll: int, dtype: torch.dtype) -> None:
    """Each unroll the tuning tool tries gives the torch version's bits, ragged tails of tasks included."""
    for shape in [(1, 128), (7, 7168), (3, 130, 2112), (333, 400), (4096, 7168)]:
        x = _inputs(shape, dtype, seed=2)
        q, scale = quant_cuda.per_token_cast_to_fp8_cuda(x, unroll=unroll)
        q_ref, scale_ref = per_token_cast_to_fp8(x)
        _assert_same_bits(q, q_ref, torch.uint8)
        _assert_same_bits(scale, scale_ref.contiguous(), torch.int32)
    x = torch.zeros(4, 384, device="cuda", dtype=dtype)
    x[1, 5], x[2, 200], x[3, :] = float("inf"), float("nan"), 1e-30
    q, scale = quant_cuda.per_token_cast_to_fp8_cuda(x, unroll=unroll)
    q_ref, scale_ref = per_token_cast_to_fp8(x)
    _assert_same_bits(q, q_ref, torch.uint8)
    _assert_same_bits(scale, scale_ref.contiguous(), torch.int32)


@pytest.mark.gpu
def test_special_values() -> None:
    x = torch.zeros(8, 384, device="cuda", dtype=torch.float32)
    x[1, :] = 1e-30  # below the clamp
    x[2, 5] = -448.0 * 3
    x[3, 7] = float("inf")
    x[4, 9] = float("nan")
    x[5, 128:256] = torch.linspace(-1, 1, 128, device="cuda")
    x[6, :] = -0.0
    x[7, 300] = 3e38
    _check_same(x)


@pytest.mark.gpu
def test_non_contiguous_and_misaligned_inputs() -> None:
    base = _inputs((64, 1024 + 8), torch.bfloat16)
    _check_same(base[:, 8:])  # rows not contiguous, start not 16-byte aligned
    _check_same(_inputs((256, 64), torch.bfloat16).t())  # transposed


@pytest.mark.gpu
def test_empty_rows() -> None:
    q, scale = per_token_cast_to_fp8(torch.empty(0, 256, device="cuda", dtype=torch.bfloat16),
                                     tma_aligned_scales=True)
    assert q.shape == (0, 256) and scale.shape == (0, 2)


@pytest.mark.gpu
def test_feeds_the_gemm() -> None:
    """The kernel's outputs go straight into the GEMM and give the same result as the torch path."""
    import fp8gemm

    x = _inputs((200, 2048), torch.bfloat16)
    w = torch.randn(512, 2048, device="cuda", dtype=torch.bfloat16)
    b, sb = fp8gemm.per_block_cast_to_fp8(w)
    a, sa = per_token_cast_to_fp8(x, tma_aligned_scales=True)
    a_ref, sa_ref = per_token_cast_to_fp8(x)
    out = torch.empty(200, 512, device="cuda", dtype=torch.bfloat16)
    ref = torch.empty_like(out)
    fp8gemm.gemm_fp8_fp8_bf16_nt((a, sa), (b, sb), out)
    fp8gemm.gemm_fp8_fp8_bf16_nt((a_ref, get_col_major_tma_aligned_tensor(sa_ref)), (b, sb), ref)
    assert torch.equal(out, ref)


@pytest.mark.gpu
def test_cuda_graph_replay() -> None:
    x = torch.zeros(3, 64, 512, device="cuda", dtype=torch.bfloat16)
    per_token_cast_to_fp8(x, tma_aligned_scales=True)  # build and load the kernel outside capture
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        q, scale = per_token_cast_to_fp8(x, tma_aligned_scales=True)
    for seed in range(3):
        x.copy_(_inputs(tuple(x.shape), torch.bfloat16, seed=seed))
        graph.replay()
        q_ref, scale_ref = per_token_cast_to_fp8(x)
        torch.cuda.synchronize()
        assert torch.equal(q.view(torch.uint8), q_ref.view(torch.uint8))
        assert torch.equal(scale, scale_ref)


@pytest.mark.gpu
def test_public_cast_on_cuda_still_checks_what_the_kernel_does_not_take() -> None:
    # The public function tries the kernel's plan cache before its own checks (the decode-step fast
    # path); what the kernel does not take must still meet the checks or the torch computation.
    with pytest.raises(TypeError, match="expected dtype bfloat16, float16 or float32"):
        per_token_cast_to_fp8(torch.zeros(4, 128, dtype=torch.int32, device="cuda"), tma_aligned_scales=True)
    with pytest.raises(ValueError, match="2D"):
        per_token_cast_to_fp8(torch.zeros(2, 2, 4, 128, dtype=torch.bfloat16, device="cuda"),
                              tma_aligned_scales=True)
    x = _inputs((8, 200), torch.bfloat16)  # k % 16 != 0: the torch computation, then the layout
    q, scale = per_token_cast_to_fp8(x, tma_aligned_scales=True)
    q_ref, scale_ref = per_token_cast_to_fp8(x)
    _assert_same_bits(q, q_ref, torch.uint8)
    assert is_col_major_tma_aligned(scale) and torch.equal(scale, scale_ref)
    p = torch.nn.Parameter(_inputs((64, 256), torch.bfloat16), requires_grad=False)  # a subclass
    _check_same(p)
