"""The custom ops: schema, fake tensors, opcheck and torch.compile(fullgraph=True) on CPU through the
reference path; on the GPU, compiled modules give eager's results with no graph break, and a stride a
compiler might change is an error."""

from __future__ import annotations

import pytest
import torch

import fp8gemm
from fp8gemm import ops
from fp8gemm.layout import get_col_major_tma_aligned_tensor


def _dense(m: int, n: int, k: int, device: str = "cpu", seed: int = 0):
    g = torch.Generator(device=device).manual_seed(seed)
    x = torch.randn(m, k, generator=g, device=device).to(torch.bfloat16)
    w = torch.randn(n, k, generator=g, device=device).to(torch.bfloat16)
    a, sa = fp8gemm.per_token_cast_to_fp8(x, tma_aligned_scales=True)
    b, sb = fp8gemm.per_block_cast_to_fp8(w)
    return a, sa, b, sb


def _masked(groups: int, max_m: int, n: int, k: int, device: str = "cpu", seed: int = 0):
    g = torch.Generator(device=device).manual_seed(seed)
    x = torch.randn(groups, max_m, k, generator=g, device=device).to(torch.bfloat16)
    w = torch.randn(groups, n, k, generator=g, device=device).to(torch.bfloat16)
    a, sa = fp8gemm.per_token_cast_to_fp8(x, tma_aligned_scales=True)
    b, sb = fp8gemm.per_block_cast_to_fp8(w)
    return a, sa, b, sb


def _contiguous(sizes: list[int], n: int, k: int, device: str = "cpu", seed: int = 0):
    rows = sum((s + 127) // 128 * 128 for s in sizes)
    m_indices = torch.full((rows,), -1, dtype=torch.int32)
    start = 0
    for i, s in enumerate(sizes):
        m_indices[start : start + s] = i
        start += (s + 127) // 128 * 128
    a, sa, _, _ = _dense(rows, n, k, device, seed)
    gen = torch.Generator(device=device).manual_seed(seed + 1)
    w = torch.randn(len(sizes), n, k, generator=gen, device=device).to(torch.bfloat16)
    b, sb = fp8gemm.per_block_cast_to_fp8(w)
    return a, sa, b, sb, m_indices.to(device)


def test_ops_are_registered_at_import() -> None:
    for name in ("gemm_nt", "m_grouped_gemm_nt_contiguous", "m_grouped_gemm_nt_masked"):
        op = getattr(torch.ops.fp8gemm, name).default
        schema = op._schema
        assert [a.name for a in schema.arguments if a.alias_info and a.alias_info.is_write] == ["out"]
        assert len(schema.returns) == 0


_NO_CUDA_AT_IMPORT = """
import sys, torch
def touched(*args, **kwargs):
    raise AssertionError("CUDA was queried at import")
for name in ("_lazy_init", "init", "is_available", "device_count", "current_device", "set_device",
             "get_device_properties", "get_device_capability", "get_device_name", "current_stream",
             "synchronize"):
    setattr(torch.cuda, name, touched)
import fp8gemm
print(torch.ops.fp8gemm.gemm_nt.default, torch.ops.fp8gemm.m_grouped_gemm_nt_masked.default)
loaded = [m for m in ("fp8gemm.launch", "fp8gemm.jit.runtime", "fp8gemm.jit.compiler") if m in sys.modules]
assert not loaded, f"imported at import time: {loaded}"  # the JIT loads on the first CUDA call
"""


def test_import_touches_no_cuda_state() -> None:
    # Every CUDA query torch offers is made to fail before the import, so the test fails on a
    # machine without a GPU too (where torch.cuda.is_initialized() would be False regardless).
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-c", _NO_CUDA_AT_IMPORT], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "fp8gemm.gemm_nt.default" in result.stdout


def test_op_matches_the_public_function_on_cpu() -> None:
    a, sa, b, sb = _dense(40, 256, 384)
    out = torch.empty(40, 256, dtype=torch.bfloat16)
    ref = torch.empty_like(out)
    torch.ops.fp8gemm.gemm_nt(a, sa, b, sb, out)
    fp8gemm.gemm_fp8_fp8_bf16_nt((a, sa), (b, sb), ref)
    assert torch.equal(out, ref)
    assert torch.equal(ops.gemm_nt(a, sa, b, sb), ref)


# test_schema is left out: it compares inputs with arithmetic torch lacks for float8 on the CPU.
_OPCHECK = ("test_autograd_registration", "test_faketensor", "test_aot_dispatch_dynamic")


def test_opcheck_dense() -> None:
    a, sa, b, sb = _dense(8, 128, 256)
    out = torch.empty(8, 128, dtype=torch.bfloat16)
    torch.library.opcheck(torch.ops.fp8gemm.gemm_nt.default, (a, sa, b, sb, out), test_utils=_OPCHECK)


def test_opcheck_grouped() -> None:
    a, sa, b, sb = _masked(2, 8, 128, 256)
    masked_m = torch.tensor([3, 8], dtype=torch.int32)
    out = torch.zeros(2, 8, 128, dtype=torch.bfloat16)
    masked_op = torch.ops.fp8gemm.m_grouped_gemm_nt_masked.default
    torch.library.opcheck(masked_op, (a, sa, b, sb, out, masked_m, 4), test_utils=_OPCHECK)
    a, sa, b, sb, m_indices = _contiguous([5, 130], 128, 256)
    out = torch.zeros(a.shape[0], 128, dtype=torch.bfloat16)
    contiguous_op = torch.ops.fp8gemm.m_grouped_gemm_nt_contiguous.default
    torch.library.opcheck(contiguous_op, (a, sa, b, sb, out, m_indices), test_utils=_OPCHECK)


@pytest.mark.parametrize("shape", [(5, 300), (3, 9, 256)])
def test_opcheck_quant(shape: tuple[int, ...]) -> None:
    x = torch.randn(shape).to(torch.bfloat16)
    torch.library.opcheck(torch.ops.fp8gemm.per_token_cast_to_fp8_tma.default, (x,), test_utils=_OPCHECK)


def test_fake_tensors_validate() -> None:
    from torch._subclasses.fake_tensor import FakeTensorMode

    with FakeTensorMode():
        a = torch.empty(16, 256, dtype=torch.float8_e4m3fn)
        sa = torch.empty(16, 2)
        b = torch.empty(128, 256, dtype=torch.float8_e4m3fn)
        sb = torch.empty(1, 2)
        out = torch.empty(16, 128, dtype=torch.bfloat16)
        torch.ops.fp8gemm.gemm_nt(a, sa, b, sb, out)  # fine
        with pytest.raises(ValueError, match="sa: expected a row-major"):
            torch.ops.fp8gemm.gemm_nt(a, torch.empty(16, 4)[:, ::2], b, sb, out)  # strides (4, 2)
        with pytest.raises(ValueError, match="out: expected shape"):
            torch.ops.fp8gemm.gemm_nt(a, sa, b, sb, torch.empty(16, 64, dtype=torch.bfloat16))


def test_bad_scale_strides_raise_in_the_op() -> None:
    a, sa, b, sb = _dense(16, 128, 256)
    out = torch.empty(16, 128, dtype=torch.bfloat16)
    bad = torch.empty(2, 32).t()[:16]  # [16, 2] column-major with strides (1, 32): not the aligned (1, 16)
    bad.copy_(sa)
    with pytest.raises(ValueError, match="sa: expected"):
        torch.ops.fp8gemm.gemm_nt(a, bad, b, sb, out)


class _Dense(torch.nn.Module):
    def __init__(self, b: torch.Tensor, sb: torch.Tensor):
        super().__init__()
        self.b, self.sb = b, sb

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, sa = fp8gemm.per_token_cast_to_fp8(x, tma_aligned_scales=True)
        out = torch.empty(x.shape[0], self.b.shape[0], dtype=torch.bfloat16, device=x.device)
        torch.ops.fp8gemm.gemm_nt(a, sa, self.b, self.sb, out)
        return torch.relu(out) * 2


class _Masked(torch.nn.Module):
    def forward(self, a, sa, b, sb, masked_m, out):
        torch.ops.fp8gemm.m_grouped_gemm_nt_masked(a, sa, b, sb, out, masked_m, 4)
        return out.float().sum(-1)


def _graph_breaks(fn, *args) -> int:
    import torch._dynamo

    torch._dynamo.reset()
    explanation = torch._dynamo.explain(fn)(*args)
    return explanation.graph_break_count


def test_compile_fullgraph_on_cpu() -> None:
    """The whole flow (quantize, op, elementwise) traces as one graph; compiled equals eager."""
    _, _, b, sb = _dense(8, 128, 256)
    module = _Dense(b, sb)
    x = torch.randn(24, 256).to(torch.bfloat16)
    eager = module(x)
    compiled = torch.compile(module, fullgraph=True, backend="aot_eager")(x)
    assert torch.equal(compiled, eager)
    assert _graph_breaks(module, x) == 0


def test_cast_is_one_op_when_compiled_and_direct_when_eager(monkeypatch: pytest.MonkeyPatch) -> None:
    """torch.compile sees the cast as the custom op (one opaque node); eager calls skip the op's
    dispatch (host time) and run the same body."""
    import torch._dynamo

    x = torch.randn(24, 256).to(torch.bfloat16)
    torch._dynamo.reset()
    def cast(t):
        return fp8gemm.per_token_cast_to_fp8(t, tma_aligned_scales=True)

    graphs = torch._dynamo.explain(cast)(x).graphs
    targets = [node.target for g in graphs for node in g.graph.nodes if node.op == "call_function"]
    assert torch.ops.fp8gemm.per_token_cast_to_fp8_tma.default in targets or \
        torch.ops.fp8gemm.per_token_cast_to_fp8_tma in targets
    calls = []
    monkeypatch.setattr(torch.ops.fp8gemm, "per_token_cast_to_fp8_tma", lambda t: calls.append(t))
    q, s = fp8gemm.per_token_cast_to_fp8(x, tma_aligned_scales=True)
    assert calls == [] and q.shape == x.shape and s.shape == (24, 2)


def test_compile_masked_keeps_untouched_rows_on_cpu() -> None:
    a, sa, b, sb = _masked(2, 8, 128, 256)
    masked_m = torch.tensor([3, 8], dtype=torch.int32)
    out_eager = torch.full((2, 8, 128), 7.0, dtype=torch.bfloat16)
    out_compiled = out_eager.clone()
    eager = _Masked()(a, sa, b, sb, masked_m, out_eager)
    compiled = torch.compile(_Masked(), fullgraph=True, backend="aot_eager")(
        a, sa, b, sb, masked_m, out_compiled
    )
    assert torch.equal(compiled, eager)
    assert torch.equal(out_compiled, out_eager)  # the mutation reached the caller's tensor
    assert torch.all(out_compiled[0, 3:] == 7.0)


# ---------------------------------------------------------------------------------------------- GPU


@pytest.mark.gpu
@pytest.mark.parametrize("m", [1, 100, 512])
def test_compile_fullgraph_dense_gpu(m: int) -> None:
    _, _, b, sb = _dense(8, 1024, 2048, "cuda")
    module = _Dense(b, sb)
    x = torch.randn(m, 2048, device="cuda").to(torch.bfloat16)
    eager = module(x)
    compiled = torch.compile(module, fullgraph=True)(x)  # Inductor
    torch.cuda.synchronize()
    assert torch.equal(compiled, eager)
    assert _graph_breaks(module, x) == 0


@pytest.mark.gpu
def test_compile_fullgraph_grouped_gpu() -> None:
    a, sa, b, sb = _masked(4, 64, 512, 1024, "cuda")
    masked_m = torch.tensor([0, 5, 64, 33], dtype=torch.int32, device="cuda")
    out_eager = torch.full((4, 64, 512), 3.0, dtype=torch.bfloat16, device="cuda")
    out_compiled = out_eager.clone()
    eager = _Masked()(a, sa, b, sb, masked_m, out_eager)
    compiled = torch.compile(_Masked(), fullgraph=True)(a, sa, b, sb, masked_m, out_compiled)
    torch.cuda.synchronize()
    assert torch.equal(out_compiled, out_eager)
    # The row sums are reductions by Inductor vs ATen: the same values, summed in another order.
    torch.testing.assert_close(compiled, eager, rtol=1e-5, atol=1e-3)

    a, sa, b, sb, m_indices = _contiguous([100, 0, 256], 512, 1024, "cuda")

    def contiguous(a, sa, b, sb, m_indices):
        return ops.m_grouped_gemm_nt_contiguous(a, sa, b, sb, m_indices) * 0.5

    eager = contiguous(a, sa, b, sb, m_indices)
    compiled = torch.compile(contiguous, fullgraph=True)(a, sa, b, sb, m_indices)
    torch.cuda.synchronize()
    assert torch.equal(compiled, eager)


@pytest.mark.gpu
def test_compiled_op_rejects_changed_strides_gpu() -> None:
    a, sa, b, sb = _dense(64, 256, 512, "cuda")
    bad = torch.empty(8, 64, device="cuda").t()[:, ::2]  # [64, 4] with strides (1, 128): not TMA-aligned
    bad.copy_(sa)
    out = torch.empty(64, 256, dtype=torch.bfloat16, device="cuda")
    with pytest.raises(Exception, match="sa: expected"):
        torch.compile(lambda *t: torch.ops.fp8gemm.gemm_nt(*t), fullgraph=True)(a, bad, b, sb, out)


@pytest.mark.gpu
def test_functional_helpers_gpu() -> None:
    a, sa, b, sb = _dense(77, 256, 512, "cuda")
    ref = torch.empty(77, 256, dtype=torch.bfloat16, device="cuda")
    fp8gemm.gemm_fp8_fp8_bf16_nt((a, get_col_major_tma_aligned_tensor(sa)), (b, sb), ref)
    assert torch.equal(ops.gemm_nt(a, sa, b, sb), ref)


@pytest.mark.gpu
def test_cuda_graph_masked_gemm_replay_with_new_inputs_and_masked_m() -> None:
    """The README's decode pattern: static buffers, capture quant + masked GEMM once, replay."""
    groups, max_m, n, k = 4, 64, 512, 1024
    x = torch.zeros(groups, max_m, k, dtype=torch.bfloat16, device="cuda")
    masked_m = torch.zeros(groups, dtype=torch.int32, device="cuda")
    out = torch.zeros(groups, max_m, n, dtype=torch.bfloat16, device="cuda")
    w = torch.randn(groups, n, k, device="cuda").to(torch.bfloat16)
    b, sb = fp8gemm.per_block_cast_to_fp8(w)

    def step() -> None:
        a, sa = fp8gemm.per_token_cast_to_fp8(x, tma_aligned_scales=True)
        fp8gemm.m_grouped_gemm_fp8_fp8_bf16_nt_masked((a, sa), (b, sb), out, masked_m, 16)

    step()  # builds and loads both kernels outside capture
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        step()
    for seed, counts in enumerate([[0, 5, 64, 17], [64, 1, 0, 33], [3, 3, 3, 3]]):
        gen = torch.Generator(device="cuda").manual_seed(seed)
        x.copy_(torch.randn(x.shape, generator=gen, device="cuda"))
        masked_m.copy_(torch.tensor(counts, dtype=torch.int32))
        out.fill_(float("nan"))
        graph.replay()
        a, sa = fp8gemm.per_token_cast_to_fp8(x)
        ref = torch.full_like(out, float("nan"))
        fp8gemm.m_grouped_gemm_fp8_fp8_bf16_nt_masked(
            (a, get_col_major_tma_aligned_tensor(sa)), (b, sb), ref, masked_m, 16
        )
        torch.cuda.synchronize()
        for g, count in enumerate(counts):
            assert torch.equal(out[g, :count], ref[g, :count])
            assert torch.all(out[g, count:].isnan())  # rows past masked_m untouched
