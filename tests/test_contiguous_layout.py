"""The contiguous layout's contract: which ``m_indices`` the fast path computes right, the check that
says so, and the regrouping that makes any layout right (``groups_aligned=False``).

The GPU kernel is modelled here in plain torch (`fast_path_model`: a tile takes its group from its
first row, a warpgroup stores its 64 rows whole when its last row is of the tile's group, else row by
row): the real kernel is tested against the same cases by tests/test_gemm_grouped_gpu.py.
"""

from __future__ import annotations

import pytest
import torch

import fp8gemm
from fp8gemm import contiguous, env, reference, validate

N, K, G = 128, 256, 5


def _inputs(m: int, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(m, K, generator=gen).bfloat16()
    w = torch.randn(G, N, K, generator=gen).bfloat16()
    a, sa = fp8gemm.per_token_cast_to_fp8(x)
    b, sb = fp8gemm.per_block_cast_to_fp8(w)
    return a, fp8gemm.get_col_major_tma_aligned_tensor(sa), b, sb


def fast_path_model(block_m: int):
    """What the CUDA kernel's contiguous path computes, for tiles of `block_m` rows."""

    def run(a, sa, b, sb, out, m_indices):
        idx = m_indices.tolist()
        m = len(idx)
        for start in range(0, m, block_m):
            g = idx[start]
            if not 0 <= g < b.shape[0]:
                continue  # a tile whose first row is padding (or out of range) is skipped
            for wg in range(start, min(start + block_m, m), 64):
                rows = list(range(wg, min(wg + 64, m)))
                whole = idx[min(wg + 63, m - 1)] == g
                rows = rows if whole else [r for r in rows if idx[r] == g]
                if rows:
                    sel = torch.tensor(rows)
                    out[sel] = reference.gemm_nt(a[sel], sa[sel], b[g], sb[g])

    return run


def _aligned_layout(counts: list[int], align: int = 128) -> torch.Tensor:
    parts = [torch.tensor([g] * c + [-1] * (-c % align), dtype=torch.int32) for g, c in enumerate(counts)]
    return torch.cat(parts)


def _random_layout(m: int, seed: int, run_max: int = 40) -> torch.Tensor:
    """Fragmented: runs of random groups (and -1, and repeats of a group) of random lengths."""
    gen = torch.Generator().manual_seed(seed)
    ids = []
    while len(ids) < m:
        group = int(torch.randint(-1, G, (1,), generator=gen))
        ids += [group] * int(torch.randint(1, run_max, (1,), generator=gen))
    return torch.tensor(ids[:m], dtype=torch.int32)


UNALIGNED = {
    "boundary_inside_a_block": torch.tensor([0] * 100 + [1] * 156, dtype=torch.int32),
    "block_starts_with_padding": torch.tensor([0] * 128 + [-1] * 10 + [1] * 118, dtype=torch.int32),
    "padding_between_rows_of_a_group": torch.tensor([0] * 30 + [-1] * 40 + [0] * 58, dtype=torch.int32),
    "fragmented": _random_layout(384, seed=3),
}


# ------------------------------------------------------------------------------------------ the check
def test_aligned_layouts_pass_the_check() -> None:
    for counts in ([128, 5, 0, 300, 1], [1], [0, 0, 0, 0, 129]):
        validate.check_contiguous_layout(_aligned_layout(counts), G)
    validate.check_contiguous_layout(torch.full((300,), -1, dtype=torch.int32), G)
    validate.check_contiguous_layout(torch.tensor([2] * 70, dtype=torch.int32), G)  # M not a multiple


@pytest.mark.parametrize("name", sorted(UNALIGNED))
def test_unaligned_layouts_fail_the_check_with_the_row(name: str) -> None:
    with pytest.raises(ValueError, match=r"m_indices: .*row \d+.*groups_aligned=False"):
        fp8gemm.check_contiguous_layout(UNALIGNED[name], G)
    fp8gemm.check_contiguous_layout(UNALIGNED[name], G, require_aligned=False)  # ids in range: fine


def test_check_names_the_first_bad_row() -> None:
    with pytest.raises(ValueError, match=r"row 100 belongs to group 1, but its block starts with group 0"):
        validate.check_contiguous_layout(UNALIGNED["boundary_inside_a_block"], G)
    with pytest.raises(ValueError, match=r"row 70 \(group 0\) comes after a padding row"):
        validate.check_contiguous_layout(UNALIGNED["padding_between_rows_of_a_group"], G)


@pytest.mark.parametrize("bad", [G, G + 7, -2])
def test_out_of_range_ids_fail_the_check(bad: int) -> None:
    layout = _aligned_layout([128, 3])
    layout[5] = bad
    for require_aligned in (True, False):
        expected = rf"m_indices: expected values in \[-1, {G}\).*got {bad} at row 5"
        with pytest.raises(ValueError, match=expected):
            validate.check_contiguous_layout(layout, G, require_aligned=require_aligned)


def test_check_rejects_bad_arguments() -> None:
    with pytest.raises(TypeError, match="m_indices: expected dtype torch.int32"):
        validate.check_contiguous_layout(torch.zeros(4, dtype=torch.int64), G)
    with pytest.raises(TypeError, match="num_groups"):
        validate.check_contiguous_layout(torch.zeros(4, dtype=torch.int32), 2.0)


# -------------------------------------------------------------- the check matches the fast path
@pytest.mark.parametrize("block_m", [64, 128])
@pytest.mark.parametrize("seed", range(6))
def test_the_fast_path_is_right_whenever_the_check_passes(block_m: int, seed: int) -> None:
    """Random layouts, some aligned, some not: whenever the check passes, the modelled kernel equals
    the reference (and leaves -1 rows untouched); the unaligned examples are really computed wrong."""
    m = 256 + 37 * seed
    cases = [_aligned_layout([seed * 20 + 1, 128, 0, 7 * seed]), _random_layout(m, seed, run_max=300),
             *UNALIGNED.values()]
    for layout in cases:
        a, sa, b, sb = _inputs(layout.numel(), seed)
        got = torch.full((layout.numel(), N), float("nan"), dtype=torch.bfloat16)
        fast_path_model(block_m)(a, sa, b, sb, got, layout)
        want = torch.full_like(got, float("nan"))
        reference.m_grouped_contiguous_reference(a, sa, b, sb, want, layout)
        same = torch.equal(got.isnan(), want.isnan()) and torch.equal(got.nan_to_num(), want.nan_to_num())
        if validate.contiguous_layout_problem(layout, G) is None:
            assert same
    # and the hazard is real: a boundary inside a block leaves rows unwritten
    layout = UNALIGNED["boundary_inside_a_block"]
    a, sa, b, sb = _inputs(layout.numel())
    got = torch.full((layout.numel(), N), float("nan"), dtype=torch.bfloat16)
    fast_path_model(128)(a, sa, b, sb, got, layout)
    assert got[100:128].isnan().all()


# ------------------------------------------------------------------------------------ regrouping
@pytest.mark.parametrize("seed", range(8))
def test_regroup_gives_an_aligned_layout_of_the_same_rows(seed: int) -> None:
    layout = _random_layout(200 + 50 * seed, seed)
    layout[::17] = G + 3  # out of range: treated like padding
    plan = contiguous.regroup(layout, G)
    assert plan.m_indices.shape == (plan.rows + 1,) and plan.rows == contiguous.regrouped_rows_bound(
        layout.numel(), G)
    assert validate.contiguous_layout_problem(plan.m_indices, G) is None  # aligned
    valid = (layout >= 0) & (layout < G)
    assert torch.equal(plan.valid, valid)
    dest = plan.dest[valid]
    assert dest.unique().numel() == dest.numel()  # one row each
    assert torch.equal(plan.m_indices[dest], layout[valid])  # each lands in its group
    assert (plan.dest[~valid] == plan.rows).all() and plan.m_indices[plan.rows] == -1
    for g in range(G):  # stable: a group's rows keep their order
        assert torch.equal(plan.dest[layout == g], plan.dest[layout == g].sort().values)


@pytest.mark.parametrize("block_m", [64, 128])
@pytest.mark.parametrize("name", sorted(UNALIGNED) + ["random0", "random1", "random2"])
def test_any_layout_through_the_fast_path_model_equals_the_reference(block_m: int, name: str) -> None:
    layout = UNALIGNED.get(name)
    if layout is None:
        layout = _random_layout(300 + 11 * int(name[-1]), seed=10 + int(name[-1]))
    a, sa, b, sb = _inputs(layout.numel(), seed=len(name))
    got = torch.full((layout.numel(), N), float("nan"), dtype=torch.bfloat16)
    contiguous.gemm_any_layout(a, sa, b, sb, got, layout, fast_path_model(block_m))
    want = torch.full_like(got, float("nan"))
    reference.m_grouped_contiguous_reference(a, sa, b, sb, want, layout)
    padding = layout == -1
    assert got[padding].isnan().all(), "rows marked -1 were written"
    assert torch.equal(got[~padding], want[~padding])


# ------------------------------------------------------------------------- the public function
def test_public_function_on_cpu_refuses_an_unaligned_layout_passed_as_aligned() -> None:
    layout = UNALIGNED["boundary_inside_a_block"]
    a, sa, b, sb = _inputs(layout.numel())
    out = torch.zeros(layout.numel(), N, dtype=torch.bfloat16)
    with pytest.raises(ValueError, match="row 100 belongs to group 1"):
        fp8gemm.m_grouped_gemm_fp8_fp8_bf16_nt_contiguous((a, sa), (b, sb), out, layout)
    assert (out == 0).all()  # nothing computed before the error


@pytest.mark.parametrize("name", sorted(UNALIGNED))
def test_public_function_on_cpu_computes_any_layout_when_told(name: str) -> None:
    layout = UNALIGNED[name]
    a, sa, b, sb = _inputs(layout.numel())
    out = torch.full((layout.numel(), N), 7.0, dtype=torch.bfloat16)
    fp8gemm.m_grouped_gemm_fp8_fp8_bf16_nt_contiguous((a, sa), (b, sb), out, layout, groups_aligned=False)
    want = torch.full_like(out, 7.0)
    reference.m_grouped_contiguous_reference(a, sa, b, sb, want, layout)
    assert torch.equal(out, want)
    assert (out[layout == -1] == 7.0).all()


def test_public_function_on_cpu_refuses_out_of_range_ids() -> None:
    layout = _aligned_layout([128, 3])
    layout[130] = G
    a, sa, b, sb = _inputs(layout.numel())
    out = torch.zeros(layout.numel(), N, dtype=torch.bfloat16)
    for aligned in (True, False):
        with pytest.raises(ValueError, match=rf"got {G} at row 130"):
            fp8gemm.m_grouped_gemm_fp8_fp8_bf16_nt_contiguous((a, sa), (b, sb), out, layout,
                                                              groups_aligned=aligned)


def test_groups_aligned_must_be_a_bool() -> None:
    layout = _aligned_layout([3])
    a, sa, b, sb = _inputs(layout.numel())
    out = torch.zeros(layout.numel(), N, dtype=torch.bfloat16)
    with pytest.raises(TypeError, match="groups_aligned: expected a bool, got str"):
        fp8gemm.m_grouped_gemm_fp8_fp8_bf16_nt_contiguous((a, sa), (b, sb), out, layout, groups_aligned="no")


def test_cuda_tensors_are_not_read_on_the_host_unless_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without FP8GEMM_CHECK_INPUTS the CUDA path never calls the value check (which would synchronize);
    with it, it does, before anything is launched. Checked with the launch replaced (no GPU here)."""
    from fp8gemm import gemm

    checked, launched = [], []
    monkeypatch.setattr(validate, "check_contiguous_layout",
                        lambda m, g, require_aligned: checked.append(require_aligned))
    monkeypatch.setattr(gemm, "_cuda", lambda name, device, *args: launched.append(name))
    layout = _aligned_layout([3])
    a, sa, b, sb = _inputs(layout.numel())
    out = torch.zeros(layout.numel(), N, dtype=torch.bfloat16)

    monkeypatch.setattr(torch.Tensor, "device", property(lambda self: torch.device("cuda", 0)), raising=False)
    monkeypatch.setattr(torch.Tensor, "is_cuda", property(lambda self: True), raising=False)
    monkeypatch.setattr(torch.Tensor, "get_device", lambda self: 0, raising=False)
    monkeypatch.setattr(validate, "check_contiguous", lambda *args: (a, sa, b, sb))
    monkeypatch.delenv("FP8GEMM_CHECK_INPUTS", raising=False)
    env.refresh()
    gemm.m_grouped_gemm_fp8_fp8_bf16_nt_contiguous((a, sa), (b, sb), out, layout)
    assert checked == [] and launched == ["gemm_contiguous"]
    monkeypatch.setenv("FP8GEMM_CHECK_INPUTS", "1")
    env.refresh()  # the setting is read once per process
    try:
        gemm.m_grouped_gemm_fp8_fp8_bf16_nt_contiguous((a, sa), (b, sb), out, layout)
    finally:
        monkeypatch.delenv("FP8GEMM_CHECK_INPUTS")
        env.refresh()
    assert checked == [True] and launched == ["gemm_contiguous"] * 2
