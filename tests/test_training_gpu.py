"""The training GEMMs and layers on an H200 against the CPU reference, at several shapes, including the
issue's k-grouped shapes (scaled down in tokens): 0-token groups, odd token counts, accumulation onto
a non-zero C, in place; NaN-poisoned outputs; rows/groups that must stay untouched.

CUDA runs the FP32-output kernel (fp8_gemm_fp32.cuh): the only allowed difference from the CPU
reference is the tensor cores' accumulation inside a 128-wide K block, which keeps about 14 bits
(DeepSeek-V3 report; a bound of 1e-5 of sum |terms| failed on the H200), and the fused promotion:
per element 2^-10 of sum |terms|. Also: another c with 0-token groups, a CUDA graph
replayed after the counts changed on the GPU, every tile shape the kernel allows.
"""

from __future__ import annotations

import random

import pytest
import torch

import fp8gemm
from fp8gemm import nn, reference
from fp8gemm.device import is_sm90_available
from fp8gemm.reference import calc_diff

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not is_sm90_available(), reason="needs an sm_90 (Hopper) GPU"),
]

DIFF_VS_REFERENCE = 1e-6
DIFF_VS_UNQUANTIZED = 1e-3
# Per element, relative to sum over k of |a sa| |b sb| (+ |c|): 4 k-steps of ~2^-13 each, with room.
ELEMENT_ERROR = 2.0**-10


def _close_to_cpu(d: torch.Tensor, want: torch.Tensor, bound: torch.Tensor) -> None:
    torch.cuda.synchronize()
    d = d.cpu()
    assert not d.isnan().any(), f"{int(d.isnan().sum())} outputs not written (still NaN)"
    err = (d.double() - want.double()).abs()
    assert (err <= bound.double() * ELEMENT_ERROR + want.double().abs() * 2.0**-20 + 1e-30).all()
    assert calc_diff(d, want) < DIFF_VS_REFERENCE


def _abs_bound(a, sa, b, sb) -> torch.Tensor:
    cols = torch.arange(a.shape[1]) // 128
    return (a.double().abs() * sa.double()[:, cols]) @ (b.double().abs() * sb.double()[:, cols]).T


@pytest.mark.parametrize("m,n,k", [(4096, 7168, 4096), (7168, 2048, 2048), (256, 512, 1008), (129, 4, 16),
                                   (2112, 7168, 8192)])
def test_dense_fp32_matches_cpu_reference(m: int, n: int, k: int) -> None:
    gen = torch.Generator().manual_seed(m + n + k)
    dy = torch.randn(k, m, generator=gen).bfloat16()
    x = torch.randn(k, n, generator=gen).bfloat16()
    a, sa = fp8gemm.per_channel_transpose_cast_to_fp8(dy)
    b, sb = fp8gemm.per_channel_transpose_cast_to_fp8(x)
    c = torch.randn(m, n, generator=gen) * 10
    want = reference.gemm_nt_fp32(a, sa, b, sb, c)
    cuda = [t.cuda() for t in (a, sa, b, sb)]
    cuda[1] = fp8gemm.get_col_major_tma_aligned_tensor(cuda[1])
    cuda[3] = fp8gemm.get_col_major_tma_aligned_tensor(cuda[3])
    d = torch.full((m, n), float("nan"), device="cuda")
    fp8gemm.fp8_gemm_nt((cuda[0], cuda[1]), (cuda[2], cuda[3]), d, c=c.cuda())
    _close_to_cpu(d, want, _abs_bound(a, sa, b, sb) + c.abs())
    in_place = c.cuda()
    fp8gemm.fp8_gemm_nt((cuda[0], cuda[1]), (cuda[2], cuda[3]), in_place, c=in_place)
    torch.cuda.synchronize()
    assert torch.equal(in_place, d)
    fp8gemm.fp8_gemm_nt((cuda[0], cuda[1]), (cuda[2], cuda[3]), d)
    assert calc_diff(d.cpu(), dy.float().T @ x.float()) < DIFF_VS_UNQUANTIZED


# The shapes (groups, m, n, tokens per group), tokens scaled down 8x to keep the run short,
# counts varying by +-30%, one group emptied, odd counts.
K_GROUPED = [(4, 4096, 7168, 1024), (4, 7168, 2048, 1024), (8, 4096, 7168, 512), (8, 7168, 2048, 512),
             (16, 4096, 7168, 256), (16, 7168, 2048, 256)]


@pytest.mark.parametrize(("groups", "m", "n", "tokens"), K_GROUPED,
                         ids=[f"{g}x{m}x{n}x{t}" for g, m, n, t in K_GROUPED])
def test_k_grouped_matches_cpu_reference(groups: int, m: int, n: int, tokens: int) -> None:
    rng = random.Random(groups * m + n)
    ks = [int(tokens * rng.uniform(0.7, 1.3)) | 1 for _ in range(groups)]  # odd counts
    ks[rng.randrange(groups)] = 0
    gen = torch.Generator().manual_seed(groups + m + n)
    dy = torch.randn(sum(ks), m, generator=gen).bfloat16()
    x = torch.randn(sum(ks), n, generator=gen).bfloat16()
    a, sa = fp8gemm.k_grouped_per_channel_transpose_cast_to_fp8(dy, ks)
    b, sb = fp8gemm.k_grouped_per_channel_transpose_cast_to_fp8(x, ks)
    c = torch.randn(groups, m, n, generator=gen) * 32
    want = reference.k_grouped_contiguous(a, sa, b, sb, ks, c)
    d = c.cuda()
    ks_tensor = torch.tensor(ks, dtype=torch.int32, device="cuda")
    cm = fp8gemm.get_col_major_tma_aligned_tensor
    fp8gemm.k_grouped_fp8_gemm_nt_contiguous((a.cuda(), cm(sa.cuda())), (b.cuda(), cm(sb.cuda())), d, ks,
                                             ks_tensor, c=d)
    offsets = reference.k_grouped_offsets(ks)
    for g, count in enumerate(ks):
        if count == 0:
            assert torch.equal(d[g].cpu(), c[g])  # untouched
            continue
        k0, kb0 = offsets[g], offsets[g] // 128
        kb1 = kb0 + -(-count // 128)
        bound = _abs_bound(a[:, k0 : k0 + count], sa[:, kb0:kb1], b[:, k0 : k0 + count], sb[:, kb0:kb1])
        _close_to_cpu(d[g], want[g], bound + c[g].abs())


def test_k_grouped_leaves_empty_groups_untouched_without_c() -> None:
    ks = [0, 300, 0]
    a, sa = fp8gemm.k_grouped_per_channel_transpose_cast_to_fp8(torch.randn(300, 256), ks)
    b, sb = fp8gemm.k_grouped_per_channel_transpose_cast_to_fp8(torch.randn(300, 512), ks)
    d = torch.full((3, 256, 512), float("nan"), device="cuda")
    fp8gemm.k_grouped_fp8_gemm_nt_contiguous((a.cuda(), sa.cuda()), (b.cuda(), sb.cuda()), d, None,
                                             torch.tensor(ks, dtype=torch.int32, device="cuda"))
    torch.cuda.synchronize()
    assert d[0].isnan().all() and d[2].isnan().all() and not d[1].isnan().any()
    assert calc_diff(d[1].cpu(), reference.k_grouped_contiguous(a, sa, b, sb, ks)[1]) < DIFF_VS_REFERENCE


def test_layers_on_gpu_match_cpu() -> None:
    torch.manual_seed(0)
    layer = nn.FP8Linear(1024, 2048)
    x = torch.randn(300, 1024)
    cpu_dx = x.clone().requires_grad_()
    layer(cpu_dx).float().square().sum().backward()
    cpu_dw = layer.weight.grad.clone()
    layer.weight.grad = None
    layer.cuda()
    gpu_dx = x.cuda().requires_grad_()
    layer(gpu_dx).float().square().sum().backward()
    assert calc_diff(gpu_dx.grad.cpu(), cpu_dx.grad) < 1e-4
    assert calc_diff(layer.weight.grad.cpu(), cpu_dw) < 1e-4

    grouped = nn.FP8GroupedLinear(4, 512, 1024)
    ks = torch.tensor([100, 0, 300, 37], dtype=torch.int32)
    x = torch.randn(nn.grouped_capacity(437, 4), 512)
    outs = []
    for device in ("cpu", "cuda"):
        grouped.to(device)
        grouped.weight.grad = None
        # A fresh leaf on each device. NOTES: x.to("cpu") is x itself, so requires_grad_() on it made x
        # require grad, and x.to("cuda") was then a non-leaf whose .grad stays None: most likely the
        # "no input gradient on CUDA" of this test's first H200 run (the layers' CUDA code path gives
        # one: tests/test_nn.py, test_layers_give_input_gradients_on_the_cuda_code_path).
        xd = x.detach().to(device).requires_grad_()
        grouped(xd, ks.to(device)).float().square().sum().backward()
        # Copies: on CPU .cpu() is the grad itself, and the next grouped.to("cuda") moves a
        # parameter's grad in place (param.grad.data = ...), which would make it a CUDA tensor here.
        outs.append((xd.grad.cpu().clone(), grouped.weight.grad.cpu().clone()))
    assert calc_diff(outs[0][0], outs[1][0]) < 1e-4
    assert calc_diff(outs[0][1], outs[1][1]) < 1e-4


def _k_grouped_cuda(ks: list[int], m: int, n: int, seed: int):
    gen = torch.Generator().manual_seed(seed)
    a, sa = fp8gemm.k_grouped_per_channel_transpose_cast_to_fp8(torch.randn(sum(ks), m, generator=gen), ks)
    b, sb = fp8gemm.k_grouped_per_channel_transpose_cast_to_fp8(torch.randn(sum(ks), n, generator=gen), ks)
    return (a, sa, b, sb), (a.cuda(), fp8gemm.get_col_major_tma_aligned_tensor(sa.cuda()), b.cuda(),
                            fp8gemm.get_col_major_tma_aligned_tensor(sb.cuda()))


def test_k_grouped_with_another_c_leaves_empty_groups_untouched() -> None:
    ks = [129, 0, 511, 0]
    (a, sa, b, sb), (ca, csa, cb, csb) = _k_grouped_cuda(ks, 200, 328, 1)
    c = torch.randn(4, 200, 328) * 4
    d = torch.full((4, 200, 328), float("nan"), device="cuda")
    fp8gemm.k_grouped_fp8_gemm_nt_contiguous((ca, csa), (cb, csb), d, ks,
                                             torch.tensor(ks, dtype=torch.int32, device="cuda"), c=c.cuda())
    torch.cuda.synchronize()
    assert d[1].isnan().all() and d[3].isnan().all()
    want = reference.k_grouped_contiguous(a, sa, b, sb, ks, c)
    assert calc_diff(d[[0, 2]].cpu(), want[[0, 2]]) < DIFF_VS_REFERENCE


def test_k_grouped_replays_in_a_cuda_graph_with_new_counts() -> None:
    """The counts are read on the GPU: a graph captured with some counts computes with the new ones."""
    g, m, n, capacity = 3, 256, 384, 1536
    ks_tensor = torch.tensor([300, 0, 129], dtype=torch.int32, device="cuda")
    a = torch.zeros(m, capacity, dtype=torch.float8_e4m3fn, device="cuda")
    b = torch.zeros(n, capacity, dtype=torch.float8_e4m3fn, device="cuda")
    cm = fp8gemm.get_col_major_tma_aligned_tensor
    sa = cm(torch.ones(m, capacity // 128, device="cuda"))
    sb = cm(torch.ones(n, capacity // 128, device="cuda"))
    d = torch.zeros(g, m, n, device="cuda")
    fp8gemm.k_grouped_fp8_gemm_nt_contiguous((a, sa), (b, sb), d, None, ks_tensor, c=d)  # compile, prepare
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        fp8gemm.k_grouped_fp8_gemm_nt_contiguous((a, sa), (b, sb), d, None, ks_tensor, c=d)
    ks = [0, 77, 700]
    (qa, qsa, qb, qsb), _ = _k_grouped_cuda(ks, m, n, 2)
    a[:, : qa.shape[1]] = qa.cuda()
    b[:, : qb.shape[1]] = qb.cuda()
    sa[:, : qsa.shape[1]] = qsa.cuda()
    sb[:, : qsb.shape[1]] = qsb.cuda()
    ks_tensor.copy_(torch.tensor(ks, dtype=torch.int32))
    d.fill_(1.0)
    graph.replay()
    torch.cuda.synchronize()
    want = reference.k_grouped_contiguous(qa, qsa, qb, qsb, ks) + 1.0
    assert torch.equal(d[0].cpu(), torch.ones(m, n))
    assert calc_diff(d[1:].cpu(), want[1:]) < DIFF_VS_REFERENCE


@pytest.mark.parametrize(("bm", "bn", "direct"), [
    (64, 32, True), (64, 128, False), (128, 32, False), (128, 64, True), (128, 96, False), (128, 128, True),
    (128, 128, False),
    (128, 144, True), (128, 160, True), (128, 160, False), (64, 160, True)])
def test_forced_tiles(bm: int, bn: int, direct: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """Tile shapes and both epilogues (from registers or through TMA) on ragged shapes (M, N, K not
    multiples of the tiles)."""
    from fp8gemm import config_fp32, launch

    original = launch.select_fp32_config
    monkeypatch.setattr(launch, "select_fp32_config", lambda layout, m, n, groups=1, num_sms=132:
                        config_fp32.with_fp32_tiles(original(layout, m, n, groups, num_sms), bm, bn,
                                               direct_epilogue=direct))
    m, n, k = 200, 328, 1008
    gen = torch.Generator().manual_seed(bm + bn)
    a, sa = fp8gemm.per_channel_transpose_cast_to_fp8(torch.randn(k, m, generator=gen))
    b, sb = fp8gemm.per_channel_transpose_cast_to_fp8(torch.randn(k, n, generator=gen))
    c = torch.randn(m, n, generator=gen)
    d = c.cuda()
    fp8gemm.fp8_gemm_nt((a.cuda(), sa.cuda()), (b.cuda(), sb.cuda()), d, c=d)
    _close_to_cpu(d, reference.gemm_nt_fp32(a, sa, b, sb, c), _abs_bound(a, sa, b, sb) + c.abs())
    ks = [130, 0, 257]
    (ga, gsa, gb, gsb), cuda = _k_grouped_cuda(ks, m, n, 3)
    d = torch.full((3, m, n), float("nan"), device="cuda")
    fp8gemm.k_grouped_fp8_gemm_nt_contiguous(cuda[:2], cuda[2:], d, ks,
                                             torch.tensor(ks, dtype=torch.int32, device="cuda"))
    torch.cuda.synchronize()
    assert d[1].isnan().all()
    want = reference.k_grouped_contiguous(ga, gsa, gb, gsb, ks)
    assert calc_diff(d[[0, 2]].cpu(), want[[0, 2]]) < DIFF_VS_REFERENCE
