"""Issue 13 on an H200: any contiguous layout computed right (``groups_aligned=False``), fuzzed with random,
unaligned group boundaries and -1 rows against the reference; the value checks of
FP8GEMM_CHECK_INPUTS=1; the any-layout path under CUDA-graph capture (it must not synchronize); the
newer names' keywords; and, on a machine with two GPUs, tensors on the device that is not current.

Run: ``pytest tests/test_contract_gpu.py -m gpu``.
"""

from __future__ import annotations

import pytest
import torch

import fp8gemm
from fp8gemm import env, reference
from fp8gemm.device import is_sm90_available

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not is_sm90_available(), reason="needs an sm_90 (Hopper) GPU"),
]

NAN = float("nan")
DIFF_VS_REFERENCE = 1e-5
MAX_ERR_VS_REFERENCE = 1e-2  # times max |reference|


def _calc_diff(x: torch.Tensor, y: torch.Tensor) -> float:
    x, y = x.double(), y.double()
    denominator = (x * x + y * y).sum()
    return float(1 - 2 * (x * y).sum() / denominator) if denominator else 0.0


def _inputs(m: int, groups: int, n: int, k: int, seed: int, device: str = "cuda"):
    gen = torch.Generator(device=device).manual_seed(seed)
    x = torch.randn(m, k, generator=gen, device=device).bfloat16()
    w = torch.randn(groups, n, k, generator=gen, device=device).bfloat16()
    a, sa = fp8gemm.per_token_cast_to_fp8(x, tma_aligned_scales=True)
    b, sb = fp8gemm.per_block_cast_to_fp8(w)
    return a, sa, b, sb


def _fragmented_layout(m: int, groups: int, seed: int, max_run: int) -> torch.Tensor:
    """Runs of random length (1..max_run) of random groups and of -1: group boundaries anywhere, the same
    group in several places, padding between rows of a group."""
    gen = torch.Generator().manual_seed(seed)
    ids: list[int] = []
    while len(ids) < m:
        group = int(torch.randint(-1, groups, (1,), generator=gen))
        ids += [group] * int(torch.randint(1, max_run + 1, (1,), generator=gen))
    return torch.tensor(ids[:m], dtype=torch.int32)


def _unaligned_sorted_layout(m: int, groups: int, seed: int) -> torch.Tensor:
    """Groups one after another (as a router's sort gives them) with no padding: every boundary unaligned."""
    gen = torch.Generator().manual_seed(seed)
    cuts = torch.sort(torch.randint(0, m + 1, (groups - 1,), generator=gen)).values.tolist()
    bounds = [0, *cuts, m]
    return torch.cat([torch.full((bounds[i + 1] - bounds[i],), i, dtype=torch.int32) for i in range(groups)])


def _check(out: torch.Tensor, want: torch.Tensor, layout: torch.Tensor) -> None:
    padding = (layout < 0).to(out.device)
    assert out[padding].isnan().all(), "rows marked -1 were written"
    ours, theirs = out[~padding], want[~padding]
    assert not ours.isnan().any(), f"{int(ours.isnan().sum())} outputs of rows with a group were not written"
    assert _calc_diff(ours, theirs) < DIFF_VS_REFERENCE
    scale = theirs.float().abs().max().clamp(min=1e-6)
    assert (ours.float() - theirs.float()).abs().max() <= MAX_ERR_VS_REFERENCE * scale


CASES = [  # (kind, M, groups, n, k, seed)
    *[("fragmented", 700 + 97 * s, 6, 512, 1024, s) for s in range(4)],
    ("fragmented-short-runs", 513, 9, 256, 512, 11),
    ("fragmented-long-runs", 3000, 4, 2112, 7168, 12),
    *[("sorted-unaligned", 1000 + 301 * s, 8, 4096, 7168, 20 + s) for s in range(2)],
    ("sorted-unaligned", 257, 32, 7168, 2048, 30),
    ("one-row", 1, 3, 256, 256, 31),
]


@pytest.mark.parametrize("kind,m,groups,n,k,seed", CASES,
                         ids=[f"{c[0]}-{c[1]}x{c[3]}x{c[4]}-g{c[2]}" for c in CASES])
def test_any_layout_fuzz_against_the_reference(kind: str, m: int, groups: int, n: int, k: int,
                                               seed: int) -> None:
    if kind.startswith("fragmented"):
        max_run = {"fragmented-short-runs": 3, "fragmented-long-runs": 400}.get(kind, 60)
        layout = _fragmented_layout(m, groups, seed, max_run)
    else:
        layout = _unaligned_sorted_layout(m, groups, seed)
    a, sa, b, sb = _inputs(m, groups, n, k, seed)
    m_indices = layout.cuda()
    out = torch.full((m, n), NAN, dtype=torch.bfloat16, device="cuda")
    fp8gemm.m_grouped_gemm_fp8_fp8_bf16_nt_contiguous((a, sa), (b, sb), out, m_indices, groups_aligned=False)
    torch.cuda.synchronize()
    want = torch.full_like(out, NAN)
    reference.m_grouped_contiguous_reference(a, sa, b, sb, want, m_indices)
    _check(out, want, layout)


def test_any_layout_agrees_with_the_fast_path_on_aligned_layouts() -> None:
    counts = [100, 0, 300, 128, 5]
    layout = torch.cat([torch.tensor([g] * c + [-1] * (-c % 128), dtype=torch.int32)
                        for g, c in enumerate(counts)])
    a, sa, b, sb = _inputs(layout.numel(), len(counts), 512, 1024, seed=5)
    fast = torch.full((layout.numel(), 512), NAN, dtype=torch.bfloat16, device="cuda")
    fp8gemm.m_grouped_gemm_fp8_fp8_bf16_nt_contiguous((a, sa), (b, sb), fast, layout.cuda())
    regrouped = torch.full_like(fast, NAN)
    fp8gemm.m_grouped_gemm_fp8_fp8_bf16_nt_contiguous((a, sa), (b, sb), regrouped, layout.cuda(),
                                                      groups_aligned=False)
    torch.cuda.synchronize()
    assert torch.equal(fast.isnan(), regrouped.isnan())
    assert torch.equal(fast.nan_to_num(), regrouped.nan_to_num())  # same kernel, same rows: same bits


def test_out_of_range_ids_are_left_untouched_without_checks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FP8GEMM_CHECK_INPUTS", raising=False)
    layout = torch.tensor([0] * 128 + [7] * 128 + [1] * 128, dtype=torch.int32)
    a, sa, b, sb = _inputs(layout.numel(), 2, 256, 512, seed=6)
    for aligned in (True, False):
        out = torch.full((layout.numel(), 256), NAN, dtype=torch.bfloat16, device="cuda")
        fp8gemm.m_grouped_gemm_fp8_fp8_bf16_nt_contiguous((a, sa), (b, sb), out, layout.cuda(),
                                                          groups_aligned=aligned)
        torch.cuda.synchronize()
        assert out[128:256].isnan().all()
        assert not out[:128].isnan().any() and not out[256:].isnan().any()


@pytest.fixture
def check_inputs(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("FP8GEMM_CHECK_INPUTS", "1")
    env.refresh()  # the setting is read once per process
    yield
    monkeypatch.delenv("FP8GEMM_CHECK_INPUTS")
    env.refresh()


def test_check_inputs_raises_on_cuda(check_inputs: None) -> None:
    a, sa, b, sb = _inputs(256, 2, 256, 512, seed=7)
    out = torch.full((256, 256), NAN, dtype=torch.bfloat16, device="cuda")
    unaligned = torch.tensor([0] * 100 + [1] * 156, dtype=torch.int32, device="cuda")
    with pytest.raises(ValueError, match="row 100 belongs to group 1"):
        fp8gemm.m_grouped_gemm_fp8_fp8_bf16_nt_contiguous((a, sa), (b, sb), out, unaligned)
    fp8gemm.m_grouped_gemm_fp8_fp8_bf16_nt_contiguous((a, sa), (b, sb), out, unaligned, groups_aligned=False)
    out_of_range = torch.tensor([0] * 128 + [2] * 128, dtype=torch.int32, device="cuda")
    with pytest.raises(ValueError, match=r"got 2 at row 128"):
        fp8gemm.m_grouped_gemm_fp8_fp8_bf16_nt_contiguous((a, sa), (b, sb), out, out_of_range)


def test_any_layout_path_captures_in_a_cuda_graph() -> None:
    """The regrouping reads nothing on the host: it captures, and replays with new m_indices values."""
    m, groups, n, k = 640, 5, 512, 1024
    a, sa, b, sb = _inputs(m, groups, n, k, seed=8)
    m_indices = _fragmented_layout(m, groups, 8, 50).cuda()
    out = torch.full((m, n), NAN, dtype=torch.bfloat16, device="cuda")

    def step() -> None:
        fp8gemm.m_grouped_gemm_fp8_fp8_bf16_nt_contiguous((a, sa), (b, sb), out, m_indices,
                                                          groups_aligned=False)

    step()  # builds and loads the kernels outside the capture
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        step()
    for seed in (9, 10, 11):
        layout = _fragmented_layout(m, groups, seed, 50)
        m_indices.copy_(layout.cuda())
        out.fill_(NAN)
        graph.replay()
        torch.cuda.synchronize()
        want = torch.full_like(out, NAN)
        reference.m_grouped_contiguous_reference(a, sa, b, sb, want, m_indices)
        _check(out, want, layout)


def test_newer_names_with_keywords_on_the_gpu() -> None:
    a, sa, b, sb = _inputs(96, 1, 512, 1024, seed=12)
    d = torch.empty(96, 512, dtype=torch.bfloat16, device="cuda")
    fp8gemm.fp8_gemm_nt(a=(a, sa), b=(b[0], sb[0]), d=d, c=None, recipe=(1, 128, 128), compiled_dims="nk",
                        disable_ue8m0_cast=True)
    want = reference.gemm_nt(a, sa, b[0], sb[0])
    torch.cuda.synchronize()
    assert _calc_diff(d, want) < DIFF_VS_REFERENCE


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two GPUs")
def test_tensors_on_the_device_that_is_not_current() -> None:
    """cuda:1 tensors while cuda:0 is current: the launch goes to cuda:1 (its context, its current stream)."""
    a, sa, b, sb = _inputs(256, 1, 512, 1024, seed=13, device="cuda:1")
    for name, run in {
        "dense": lambda out: fp8gemm.gemm_fp8_fp8_bf16_nt((a, sa), (b[0], sb[0]), out),
        "contiguous": lambda out: fp8gemm.m_grouped_gemm_fp8_fp8_bf16_nt_contiguous(
            (a, sa), (b, sb), out, torch.zeros(256, dtype=torch.int32, device="cuda:1")),
    }.items():
        out = torch.full((256, 512), NAN, dtype=torch.bfloat16, device="cuda:1")
        with torch.cuda.device(0):
            side = torch.cuda.Stream(device="cuda:1")
            with torch.cuda.stream(side):  # cuda:1's current stream is `side`
                run(out)
            side.synchronize()  # the work was queued on `side`: after this it is done
            assert torch.cuda.current_device() == 0
        want = reference.gemm_nt(a, sa, b[0], sb[0])
        assert _calc_diff(out, want) < DIFF_VS_REFERENCE, name


def test_repeat_calls_through_the_prepared_call_cache() -> None:
    """A repeat call runs the launch prepared on the first one (fp8gemm.gemm._prepared): new values in the
    same buffers are read; fewer rows in the same buffers and a row-major sa make launches of their own."""
    fp8gemm.gemm.clear_prepared()
    m, n, k = 256, 512, 1024
    a, sa, b, sb = _inputs(m, 2, n, k, seed=14)
    out = torch.full((m, n), NAN, dtype=torch.bfloat16, device="cuda")
    out_c = torch.full_like(out, NAN)
    out_m = torch.full((2, 128, n), NAN, dtype=torch.bfloat16, device="cuda")
    layout = torch.tensor([0] * 128 + [1] * 128, dtype=torch.int32, device="cuda")
    masked_m = torch.tensor([100, 7], dtype=torch.int32, device="cuda")
    a3, sa3 = fp8gemm.per_token_cast_to_fp8(torch.zeros(2, 128, k, device="cuda"), tma_aligned_scales=True)
    for seed in (15, 16):  # the second round finds every call prepared
        for buffer, value in zip((a, sa, b, sb), _inputs(m, 2, n, k, seed=seed), strict=True):
            buffer.copy_(value)
        gen = torch.Generator(device="cuda").manual_seed(seed)
        for buffer, value in zip((a3, sa3), fp8gemm.per_token_cast_to_fp8(
                torch.randn(2, 128, k, generator=gen, device="cuda"), tma_aligned_scales=True), strict=True):
            buffer.copy_(value)
        fp8gemm.gemm_fp8_fp8_bf16_nt((a, sa), (b[0], sb[0]), out)
        fp8gemm.m_grouped_gemm_fp8_fp8_bf16_nt_contiguous((a, sa), (b, sb), out_c, layout)
        fp8gemm.m_grouped_gemm_fp8_fp8_bf16_nt_masked((a3, sa3), (b, sb), out_m, masked_m, 64)
        torch.cuda.synchronize()
        assert _calc_diff(out, reference.gemm_nt(a, sa, b[0], sb[0])) < DIFF_VS_REFERENCE
        want_c = torch.full_like(out_c, NAN)
        reference.m_grouped_contiguous_reference(a, sa, b, sb, want_c, layout)
        _check(out_c, want_c, layout.cpu())
        want_m = torch.full_like(out_m, NAN)
        reference.m_grouped_masked_reference(a3, sa3, b, sb, want_m, masked_m)
        for g, rows in enumerate((100, 7)):
            assert _calc_diff(out_m[g, :rows], want_m[g, :rows]) < DIFF_VS_REFERENCE
            assert out_m[g, rows:].isnan().all()
    half = torch.full((m // 2, n), NAN, dtype=torch.bfloat16, device="cuda")
    fp8gemm.gemm_fp8_fp8_bf16_nt((a[: m // 2], fp8gemm.get_col_major_tma_aligned_tensor(sa[: m // 2])),
                                 (b[0], sb[0]), half)
    out.fill_(NAN)
    fp8gemm.gemm_fp8_fp8_bf16_nt((a, sa.contiguous()), (b[0], sb[0]), out)  # row-major sa: converted
    torch.cuda.synchronize()
    want = reference.gemm_nt(a, sa, b[0], sb[0])
    assert _calc_diff(out, want) < DIFF_VS_REFERENCE
    assert _calc_diff(half, want[: m // 2]) < DIFF_VS_REFERENCE
