"""The launch layer on the CPU, with the kernel and the tensor maps replaced by recorders: the kernel
gets its config's grid, block, shared memory and arguments in order; each call prepares, launches
once and returns the prepared launch (`fp8gemm.gemm` keeps it: tests/test_prepared_calls.py)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from fp8gemm import device, launch
from fp8gemm.config import BLOCK_K, grid_size, select_config

M, N, K = 64, 2112, 7168


class FakeKernel:
    def __init__(self, log: list) -> None:
        self.log = log

    def launch(self, grid, block, smem, args, cluster=1):
        self.log.append(("launch", grid, block, smem, args, cluster))

    def prepare(self, grid, block, smem, args, cluster=1):
        self.log.append(("prepare", grid, block, smem, args, cluster))
        return lambda: self.log.append(("call", args))


@pytest.fixture
def log(monkeypatch: pytest.MonkeyPatch) -> list:
    records: list = []
    kernel = FakeKernel(records)
    monkeypatch.setattr(launch, "kernel_for", lambda config, flags=(): kernel)
    monkeypatch.setattr(launch, "_tensor_map", lambda t, dims, strides, box, swizzle: ("map", dims, box))
    monkeypatch.setattr(launch, "get_num_sms", lambda: 132)
    monkeypatch.setattr(device, "_num_sms_override", None)
    return records


def _dense(m: int = M):
    a = torch.zeros(m, K, dtype=torch.uint8)
    sa = torch.zeros(K // 128, m).t()
    b = torch.zeros(N, K, dtype=torch.uint8)
    sb = torch.zeros(N // 128 + 1, K // 128)
    out = torch.zeros(m, N, dtype=torch.bfloat16)
    return a, sa, b, sb, out


def _force(monkeypatch: pytest.MonkeyPatch, **changes) -> object:
    config = dataclasses.replace(select_config("dense", M, N, K, 1, 132), **changes)
    monkeypatch.setattr(launch, "select_config", lambda *args, **kwargs: config)
    return config


def test_dense_arguments_and_dimensions(log: list, monkeypatch: pytest.MonkeyPatch) -> None:
    config = _force(monkeypatch, k_splits=1, multicast="none")
    a, sa, b, sb, out = _dense()
    launch.gemm_dense(a, sa, b, sb, out)
    (kind, grid, block, smem, args, cluster), call = log
    assert kind == "prepare" and call[0] == "call"
    assert grid == grid_size(config, M, 132) and block == config.num_threads and smem == config.smem_bytes
    assert cluster == config.cluster_size == 1
    assert args[0] == ("map", (K, M), (BLOCK_K, config.block_m))
    assert args[1] == ("map", (K, N), (BLOCK_K, config.block_n))
    assert args[2] == ("map", (M, K // 128), (config.block_m, config.a_scale_chunk))
    assert args[3] == ("map", (N, M), (config.store_slab_cols, 64))
    assert args[4] is sb and args[6] is out
    assert args[5].value == 0  # no m_indices / masked_m
    assert len(args) == 8 and args[7].value == M


def test_multicast_halves_the_shared_operand_box(log: list, monkeypatch: pytest.MonkeyPatch) -> None:
    config = _force(monkeypatch, k_splits=1, multicast="b")
    launch.gemm_dense(*_dense())
    args, cluster = log[0][4], log[0][5]
    assert cluster == 2
    assert args[0][2] == (BLOCK_K, config.block_m) and args[1][2] == (BLOCK_K, config.block_n // 2)


def test_each_call_prepares_launches_once_and_returns_it(log: list, monkeypatch: pytest.MonkeyPatch) -> None:
    _force(monkeypatch, k_splits=1)
    a, sa, b, sb, out = _dense()
    prepared = launch.gemm_dense(a, sa, b, sb, out)
    assert [r[0] for r in log] == ["prepare", "call"]
    prepared()  # what a repeat call of the public function runs
    assert [r[0] for r in log] == ["prepare", "call", "call"]
    # Fewer rows in the same buffers (a view): the maps' sizes follow.
    launch.gemm_dense(a[:32], sa[:32], b, sb, out[:32])
    assert [r[0] for r in log[3:]] == ["prepare", "call"] and log[3][4][7].value == 32


def test_swapped_config_selector_is_used(log: list, monkeypatch: pytest.MonkeyPatch) -> None:
    tensors = _dense()
    _force(monkeypatch, k_splits=1)
    launch.gemm_dense(*tensors)
    config = _force(monkeypatch, k_splits=1, block_n=128)  # a tool forcing another config
    launch.gemm_dense(*tensors)
    assert log[2][0] == "prepare" and log[2][3] == config.smem_bytes


def test_split_k_is_one_launch_with_a_cluster_per_tile(log: list, monkeypatch: pytest.MonkeyPatch) -> None:
    """Split-K sums its slices inside the kernel: one prepared launch, no workspace, and the slices of a
    tile are the CTAs of one cluster."""
    config = _force(monkeypatch, k_splits=2, multicast="none")
    a, sa, b, sb, out = _dense()
    launch.gemm_dense(a, sa, b, sb, out)
    (kind, grid, block, smem, args, cluster), call = log
    assert kind == "prepare" and call[0] == "call"
    assert cluster == config.cluster_size == 2 and grid % 2 == 0 and grid == grid_size(config, M, 132)
    assert smem == config.smem_bytes and len(args) == 8 and args[6] is out


def test_masked_reads_sa_as_one_2d_map(log: list, monkeypatch: pytest.MonkeyPatch) -> None:
    g, max_m, n, k = 4, 96, 256, 512
    config = dataclasses.replace(select_config("masked", 32, n, k, g, 132), k_splits=1)
    monkeypatch.setattr(launch, "select_config", lambda *args, **kwargs: config)
    aligned = 96
    a = torch.zeros(g, max_m, k, dtype=torch.uint8)
    sa = torch.zeros(g, k // 128, aligned).transpose(1, 2)
    b = torch.zeros(g, n, k, dtype=torch.uint8)
    sb = torch.zeros(g, n // 128, k // 128)
    out = torch.zeros(g, max_m, n, dtype=torch.bfloat16)
    masked_m = torch.zeros(g, dtype=torch.int32)
    launch.gemm_masked(a, sa, b, sb, out, masked_m, 32)
    args = log[0][4]
    half = 2 if config.multicast == "a" else 1
    assert args[0] == ("map", (k, g * max_m), (BLOCK_K, config.block_m // half))
    assert args[2] == ("map", (max_m, g * (k // 128)), (config.block_m, config.a_scale_chunk))
    assert args[5] is masked_m and args[7].value == max_m
    assert log[0][1] == grid_size(config, g * max_m, 132)
