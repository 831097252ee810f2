"""tools/ab_kernel.py routes the library's launches through a variant's compile flags, and back."""

from __future__ import annotations

import pytest
from repo_scripts import load

from fp8gemm import gemm, launch
from fp8gemm.config import max_stages

ab_kernel = load("tools/ab_kernel.py")


@pytest.fixture
def recorded(monkeypatch):
    calls: list[tuple[str, dict]] = []
    monkeypatch.setattr(launch, "_prepare", lambda *a, **kw: calls.append(("prepare", kw)))
    monkeypatch.setattr(launch, "run_fp32", lambda *a, **kw: calls.append(("run_fp32", kw)))
    return calls


def test_a_variants_flags_reach_both_kernels_and_restore_puts_the_launchers_back(recorded) -> None:
    flags = ("-DFP8GEMM_EXP_X", "-DFP8GEMM_EXP_Y")
    original = ab_kernel.with_flags(flags)
    launch._prepare("config")
    launch.run_fp32("config")
    ab_kernel.restore(original)
    launch._prepare("config")
    launch.run_fp32("config")
    assert recorded == [("prepare", {"flags": flags}), ("run_fp32", {"flags": flags}),
                        ("prepare", {}), ("run_fp32", {})]


def test_the_unchanged_variant_passes_no_flags(recorded) -> None:
    original = ab_kernel.with_flags(())
    launch._prepare("config")
    launch.run_fp32("config", flags=("-DKEPT",))
    ab_kernel.restore(original)
    assert recorded == [("prepare", {}), ("run_fp32", {"flags": ("-DKEPT",)})]


def test_switching_variants_forgets_every_prepared_launch(recorded, monkeypatch) -> None:
    # a prepared launch compiled with the last variant's flags must not serve the next variant
    monkeypatch.setitem(gemm._prepared, ("dense", 1), (0, lambda: None))
    monkeypatch.setitem(launch._fp32_launches, ("fp32", 1), lambda: None)
    original = ab_kernel.with_flags(("-DFP8GEMM_EXP_X",))
    assert not gemm._prepared and not launch._fp32_launches
    monkeypatch.setitem(gemm._prepared, ("dense", 2), (0, lambda: None))
    ab_kernel.restore(original)
    assert not gemm._prepared


@pytest.mark.parametrize("variant, flags, tiles", [
    ("none", (), None),
    ("FP8GEMM_EXP_X+FP8GEMM_EXP_Y", ("-DFP8GEMM_EXP_X", "-DFP8GEMM_EXP_Y"), None),
    ("none@128x192b", (), (128, 192, "b")),
    ("FP8GEMM_EXP_X@64x64n", ("-DFP8GEMM_EXP_X",), (64, 64, "none")),
    ("none@64x32n/12", (), (64, 32, "none", 12)),
    ("none@64x64n,ks2", (), (64, 64, "none", None, 2)),
    ("none@64x64n/8,ks2", (), (64, 64, "none", 8, 2)),
    ("none@128x128t", (), (128, 128, "tma")),
    ("FP8GEMM_EXP_X@128x160r/4", ("-DFP8GEMM_EXP_X",), (128, 160, "registers", 4)),
])
def test_a_variant_names_its_flags_and_its_tiles(variant, flags, tiles) -> None:
    assert ab_kernel.parse_variant(variant) == (flags, tiles)


@pytest.mark.parametrize("variant", ["none@128x128", "none@128x128x", "none@128x128q/4"])
def test_a_variant_whose_tiles_lack_a_known_letter_is_refused(variant) -> None:
    with pytest.raises(ValueError, match="tiles end in one of"):
        ab_kernel.parse_variant(variant)


@pytest.mark.parametrize(("tiles", "direct", "stages"), [((128, 160, "registers"), True, 6),
                                                         ((128, 128, "tma", 3), False, 3)])
def test_training_tiles_force_the_training_kernel_until_restored(recorded, tiles, direct, stages) -> None:
    picked_fp32, picked_forward = launch.select_fp32_config, launch.select_config
    original = ab_kernel.with_flags((), tiles)
    cfg = launch.select_fp32_config("k_grouped", 4096, 7168, 16, 132)
    assert launch.select_config is picked_forward   # the forward kernel keeps its picks
    ab_kernel.restore(original)
    assert (cfg.block_m, cfg.block_n, cfg.direct_epilogue, cfg.stages) == (tiles[0], tiles[1], direct, stages)
    assert launch.select_fp32_config is picked_fp32


def test_a_variant_with_tiles_forces_them_until_restored(recorded) -> None:
    picked = launch.select_config
    original = ab_kernel.with_flags((), (128, 192, "b"))
    cfg = launch.select_config("masked", 192, 6144, 7168, 32, 132)
    ab_kernel.restore(original)
    assert (cfg.block_m, cfg.block_n, cfg.multicast) == (128, 192, "b")
    assert cfg.stages == max_stages(128, 192)   # derived for the new tiles, not the pick's
    assert launch.select_config is picked


def test_a_variant_with_a_stage_count_keeps_the_picks_split_k_for_the_picks_tiles(recorded) -> None:
    picked = launch.select_config("dense", 64, 2112, 7168, 1, 132)
    assert picked.k_splits > 1
    original = ab_kernel.with_flags((), (picked.block_m, picked.block_n, picked.multicast, 6))
    same = launch.select_config("dense", 64, 2112, 7168, 1, 132)
    ab_kernel.restore(original)
    assert (same.k_splits, same.stages) == (picked.k_splits, 6)
    original = ab_kernel.with_flags((), (64, 64, "none", 5))
    other = launch.select_config("dense", 64, 2112, 7168, 1, 132)
    ab_kernel.restore(original)
    assert (other.block_n, other.k_splits, other.stages) == (64, 1, 5)


def test_grouped_specs_take_the_reference_rows_a_seed_or_the_group_count_as_seed() -> None:
    spread = ab_kernel.spread_sizes
    assert ab_kernel.grouped_sizes("masked", [4, 256, 4096, 7168], []) == spread(4, 256, seed=4)
    assert ab_kernel.grouped_sizes("masked", [4, 256, 4096, 7168], ["seed=201"]) == spread(4, 256, seed=201)
    assert ab_kernel.grouped_sizes("masked", [4, 256, 4096, 7168], ["seed=201"]) != spread(4, 256, seed=4)
    assert ab_kernel.grouped_sizes("masked", [4, 256, 4096, 7168], ["ref"]) == \
        ab_kernel.reference_sizes("masked", 4, 256, 4096, 7168)
    with pytest.raises(ValueError, match="seed=S"):
        ab_kernel.grouped_sizes("masked", [4, 256, 4096, 7168], ["seeds=3"])


def test_a_variant_with_split_k_forces_the_slices(recorded) -> None:
    original = ab_kernel.with_flags((), (64, 64, "none", None, 2))
    cfg = launch.select_config("dense", 128, 2112, 7168, 1, 132)
    ab_kernel.restore(original)
    assert (cfg.block_m, cfg.block_n, cfg.k_splits) == (64, 64, 2)
    assert cfg.stages == max_stages(64, 64, k_splits=2)
