"""tools/decode_sweep.py's candidate list (CPU: the sweep itself needs a GPU)."""

from __future__ import annotations

from repo_scripts import load

decode_sweep = load("tools/decode_sweep.py")


def test_128x64_tiles_are_candidates() -> None:
    cands = decode_sweep.candidates(128, 7168, 2048, 132)
    assert (128, 64, 1, "none") in cands


def test_b_sharing_64_row_tiles_only_with_two_m_blocks_unsplit() -> None:
    assert (64, 64, 1, "b") in decode_sweep.candidates(100, 4096, 7168, 132)
    assert not [c for c in decode_sweep.candidates(64, 4096, 7168, 132) if c[3] != "none"]
    shared = [c for c in decode_sweep.candidates(128, 4096, 7168, 132) if c[3] == "b"]
    assert shared and all(c[0] == 64 and c[2] == 1 for c in shared)


def test_split_candidates_fit_one_wave() -> None:
    for bm, bn, ks, _ in decode_sweep.candidates(128, 2112, 7168, 132):
        if ks > 1:
            assert -(-128 // bm) * -(-2112 // bn) * ks <= 132


def test_every_tile_width_the_heuristics_may_pick_is_swept() -> None:
    widths = {c[1] for c in decode_sweep.candidates(128, 4096, 7168, 132)}
    assert {80, 112, 144, 192} <= widths


def test_mid_size_m_sweeps_the_prefill_tiles_and_their_multicast() -> None:
    from fp8gemm.config import select_config

    for m, n, k in [(256, 7168, 2048), (512, 4096, 7168), (384, 2112, 7168), (192, 24576, 1536)]:
        cands = decode_sweep.candidates(m, n, k, 132)
        assert all(ks == 1 for _, _, ks, _ in cands)       # split-K stays a decode tool
        assert all(-(-n // bn) % 2 == 0 for _, bn, _, mc in cands if mc == "a")
        assert {256, 128} <= {bm for bm, *_ in cands}
        pick = select_config("dense", m, n, k, 1, 132)     # the pick is among the candidates
        assert (pick.block_m, pick.block_n, pick.k_splits, pick.multicast) in cands, (m, n, k)


def test_near_model_keeps_the_models_best_and_the_pick() -> None:
    from fp8gemm.config import select_config, tile_cost_us

    m, n, k = 1024, 32768, 512
    cands = decode_sweep.candidates(m, n, k, 132, max_waves=10**6)
    assert (128, 192, 1, "none") not in decode_sweep.candidates(m, n, k, 132)   # 11 waves: past the default
    near = decode_sweep.near_model(m, n, k, cands, 0.1, 132)
    assert 0 < len(near) < len(cands) and set(near) <= set(cands)
    costs = {c: tile_cost_us("dense", m, n, k, c[0], c[1], 1, 132, k_splits=c[2]) for c in cands}
    best = min(costs.values())
    assert all(costs[c] <= best * 1.1 for c in near) and min(cands, key=costs.get) in near
    pick = select_config("dense", m, n, k, 1, 132)
    assert (pick.block_m, pick.block_n, pick.k_splits, pick.multicast) in near
    # within 0 of the best: only tiles tied with it, and the pick
    assert len(decode_sweep.near_model(m, n, k, cands, 0.0, 132)) <= len(near)
