"""examples/moe_block.py: its plumbing on CPU (reference path), the full run with CUDA graphs on the GPU."""

from __future__ import annotations

import pytest
import torch
from repo_scripts import load


def _example():
    return load("examples/moe_block.py")


def test_contiguous_layout_is_128_aligned() -> None:
    moe = _example()
    ids = torch.tensor([[0, 2], [2, 1], [0, 2]])
    order, rows, m_indices = moe.contiguous_layout(ids, 4)
    assert m_indices.shape[0] % 128 == 0
    for pair, row in zip(order.tolist(), rows.tolist(), strict=True):
        assert m_indices[row] == ids.flatten()[pair]  # each pair lands in its expert's rows
    starts = [int((m_indices == e).nonzero()[0]) for e in (0, 1, 2)]
    assert all(s % 128 == 0 for s in starts)
    assert int((m_indices == -1).sum()) == m_indices.shape[0] - 6


def test_tiny_block_on_cpu_matches_bf16() -> None:
    moe = _example()
    result = moe.run(moe.TINY, "cpu", decode_steps=2)
    assert 0 < result["prefill_diff"] < moe.MAX_DIFF
    assert 0 < result["decode_diff"] < moe.MAX_DIFF
    assert result["decode_bf16_graph_vs_eager_diff"] < 1e-5


@pytest.mark.gpu
def test_block_on_gpu_with_cuda_graphs() -> None:
    moe = _example()
    cfg = moe.MoEConfig(hidden=1024, inter=512, experts=8, top_k=2, prefill_tokens=600, decode_tokens=24)
    result = moe.run(cfg, "cuda", decode_steps=4, timing=False)
    assert result["prefill_diff"] < moe.MAX_DIFF
    assert result["decode_diff"] < moe.MAX_DIFF  # every replay, with new tokens and new masked_m
    assert result["decode_bf16_graph_vs_eager_diff"] < 1e-3


@pytest.mark.gpu
def test_main_on_gpu() -> None:
    assert _example().main([]) == 0
