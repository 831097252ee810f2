"""A small MoE feed-forward block on fp8gemm, checked and timed against the same block in BF16.

    python examples/moe_block.py            # on an H200: prefill + decode, accuracy and speed-up
    python examples/moe_block.py --tiny     # any machine: a tiny configuration (CPU: reference path)

The block: router (BF16 linear), top-k with softmax weights, then per expert ``down(silu(gate) * up)``.

* Prefill: the routed (token, expert) pairs are gathered per expert into the 128-aligned contiguous
  layout (padding rows have ``m_indices = -1``), cast once per 1x128 block, and both expert GEMMs run as
  one ``m_grouped_gemm_fp8_fp8_bf16_nt_contiguous`` each. Building the layout needs the per-expert counts
  on the host: one sync, fine for prefill.
* Decode: no host sync at all, so the whole step is captured once in a CUDA graph and replayed: the
  pairs go to ``[experts, max_m, hidden]`` (row = rank of the token within its expert), ``masked_m`` is
  the per-expert count, and both expert GEMMs are ``m_grouped_gemm_fp8_fp8_bf16_nt_masked``.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass

import torch
import torch.nn.functional as F

import fp8gemm
from fp8gemm.reference import calc_diff

ALIGN = 128
MAX_DIFF = 5e-3  # calc_diff vs BF16 after two FP8 GEMMs and two activation casts


@dataclass(frozen=True)
class MoEConfig:
    hidden: int = 4096
    inter: int = 1024  # per-expert intermediate size
    experts: int = 16
    top_k: int = 4
    prefill_tokens: int = 4096
    decode_tokens: int = 64


TINY = MoEConfig(hidden=256, inter=128, experts=4, top_k=2, prefill_tokens=40, decode_tokens=6)


class MoEWeights:
    """BF16 weights and their FP8 casts (128x128 blocks): ``w1 [E, 2*inter, hidden]`` (gate; up),
    ``w2 [E, hidden, inter]``, router ``[E, hidden]`` (kept BF16)."""

    def __init__(self, cfg: MoEConfig, device: str, seed: int = 0):
        g = torch.Generator(device=device).manual_seed(seed)

        def randn(*shape: int, scale: float) -> torch.Tensor:
            return (torch.randn(shape, generator=g, device=device) * scale).to(torch.bfloat16)

        self.cfg = cfg
        self.router = randn(cfg.experts, cfg.hidden, scale=cfg.hidden**-0.5)
        self.w1 = randn(cfg.experts, 2 * cfg.inter, cfg.hidden, scale=cfg.hidden**-0.5)
        self.w2 = randn(cfg.experts, cfg.hidden, cfg.inter, scale=cfg.inter**-0.5)
        self.w1_fp8 = fp8gemm.per_block_cast_to_fp8(self.w1)
        self.w2_fp8 = fp8gemm.per_block_cast_to_fp8(self.w2)


def route(x: torch.Tensor, w: MoEWeights) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-k experts of each token and their softmax weights (over the chosen k), both ``[T, k]``."""
    logits = (x @ w.router.t()).float()
    top, ids = logits.topk(w.cfg.top_k, dim=-1)
    return ids, top.softmax(dim=-1)


def _swiglu(h: torch.Tensor, inter: int) -> torch.Tensor:
    return (F.silu(h[..., :inter].float()) * h[..., inter:].float()).to(torch.bfloat16)


# ----------------------------------------------------------------------------------------- prefill


def contiguous_layout(ids: torch.Tensor, experts: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Rows of the contiguous layout: ``(src_pair, dst_row, m_indices)``. Pair p = (token p // k, slot)
    goes to row ``dst_row[p]``; each expert's rows start at a multiple of 128; padding rows get -1."""
    flat = ids.flatten()
    order = torch.argsort(flat, stable=True)
    counts = torch.bincount(flat, minlength=experts).tolist()  # the one host sync of prefill
    padded = [(c + ALIGN - 1) // ALIGN * ALIGN for c in counts]
    starts = [sum(padded[:e]) for e in range(experts)]
    rows = torch.cat([torch.arange(s, s + c) for s, c in zip(starts, counts, strict=True)]).to(ids.device)
    m_indices = torch.full((max(sum(padded), ALIGN),), -1, dtype=torch.int32)
    for e, (s, c) in enumerate(zip(starts, counts, strict=True)):
        m_indices[s : s + c] = e
    return order, rows, m_indices.to(ids.device)


def moe_prefill_fp8(x: torch.Tensor, w: MoEWeights) -> torch.Tensor:
    cfg = w.cfg
    ids, weights = route(x, w)
    order, rows, m_indices = contiguous_layout(ids, cfg.experts)
    total = m_indices.shape[0]
    gathered = x.new_zeros(total, cfg.hidden)
    gathered[rows] = x[order // cfg.top_k]
    a, sa = fp8gemm.per_token_cast_to_fp8(gathered, tma_aligned_scales=True)
    h = x.new_empty(total, 2 * cfg.inter)
    fp8gemm.m_grouped_gemm_fp8_fp8_bf16_nt_contiguous((a, sa), w.w1_fp8, h, m_indices)
    act = _swiglu(h, cfg.inter)
    act[m_indices < 0] = 0  # padding rows of h were never written
    a2, sa2 = fp8gemm.per_token_cast_to_fp8(act, tma_aligned_scales=True)
    y = x.new_empty(total, cfg.hidden)
    fp8gemm.m_grouped_gemm_fp8_fp8_bf16_nt_contiguous((a2, sa2), w.w2_fp8, y, m_indices)
    out = torch.zeros(x.shape[0], cfg.hidden, dtype=torch.float32, device=x.device)
    out.index_add_(0, order // cfg.top_k, y[rows].float() * weights.flatten()[order, None])
    return out.to(torch.bfloat16)


# ------------------------------------------------------------------------------------------ decode


class MaskedDecode:
    """Decode step on static buffers (CUDA-graph friendly: no host sync, fixed shapes and addresses)."""

    def __init__(self, w: MoEWeights, tokens: int, device: str):
        cfg = w.cfg
        self.w, self.tokens = w, tokens
        self.max_m = (tokens + 15) // 16 * 16  # an expert gets each token at most once
        self.x = torch.zeros(tokens, cfg.hidden, dtype=torch.bfloat16, device=device)
        self.a = torch.zeros(cfg.experts, self.max_m, cfg.hidden, dtype=torch.bfloat16, device=device)
        self.h = torch.zeros(cfg.experts, self.max_m, 2 * cfg.inter, dtype=torch.bfloat16, device=device)
        self.y = torch.zeros(cfg.experts, self.max_m, cfg.hidden, dtype=torch.bfloat16, device=device)
        self.masked_m = torch.zeros(cfg.experts, dtype=torch.int32, device=device)
        self.expected_m = max(1, tokens * cfg.top_k // cfg.experts)
        self.out = torch.zeros(tokens, cfg.hidden, dtype=torch.bfloat16, device=device)

    def dispatch(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Route the tokens in x and copy each (token, expert) pair to its expert's next row of a.

        Sets masked_m to the rows per expert; returns (order, gate weights, destination rows) for
        `combine`. Device ops only: no host sync, so it can be captured in a CUDA graph.
        """
        cfg = self.w.cfg
        ids, weights = route(self.x, self.w)
        flat = ids.flatten()
        order = torch.argsort(flat, stable=True)
        sorted_ids = flat[order]
        counts = torch.zeros(cfg.experts, dtype=torch.int64, device=flat.device)
        counts.scatter_add_(0, flat, torch.ones_like(flat))
        starts = counts.cumsum(0) - counts
        rank = torch.arange(flat.numel(), device=flat.device) - starts[sorted_ids]
        dst = sorted_ids * self.max_m + rank  # row in [E * max_m]
        self.masked_m.copy_(counts)
        self.a.view(-1, cfg.hidden)[dst] = self.x[order // cfg.top_k]
        return order, weights, dst

    def combine(self, y: torch.Tensor, order: torch.Tensor, weights: torch.Tensor,
                dst: torch.Tensor) -> torch.Tensor:
        """Sum each token's expert outputs (rows dst of y), weighted by its gates, into out."""
        cfg = self.w.cfg
        out = torch.zeros(self.tokens, cfg.hidden, dtype=torch.float32, device=y.device)
        picked = y.reshape(-1, cfg.hidden)[dst].float() * weights.flatten()[order, None]
        out.index_add_(0, order // cfg.top_k, picked)
        self.out.copy_(out)
        return self.out

    def step(self) -> torch.Tensor:
        cfg, w = self.w.cfg, self.w
        order, weights, dst = self.dispatch()
        a, sa = fp8gemm.per_token_cast_to_fp8(self.a, tma_aligned_scales=True)
        masked_gemm = fp8gemm.m_grouped_gemm_fp8_fp8_bf16_nt_masked
        masked_gemm((a, sa), w.w1_fp8, self.h, self.masked_m, self.expected_m)
        act = _swiglu(self.h, cfg.inter)  # rows past masked_m hold stale values: never read below
        a2, sa2 = fp8gemm.per_token_cast_to_fp8(act, tma_aligned_scales=True)
        masked_gemm((a2, sa2), w.w2_fp8, self.y, self.masked_m, self.expected_m)
        return self.combine(self.y, order, weights, dst)


# -------------------------------------------------------------------------------------------- BF16


def moe_bf16(x: torch.Tensor, w: MoEWeights) -> torch.Tensor:
    """The same block in BF16 (torch matmuls per expert), the accuracy and speed baseline."""
    cfg = w.cfg
    ids, weights = route(x, w)
    out = torch.zeros(x.shape[0], cfg.hidden, dtype=torch.float32, device=x.device)
    for e in range(cfg.experts):
        token, slot = (ids == e).nonzero(as_tuple=True)
        if token.numel() == 0:
            continue
        h = x[token] @ w.w1[e].t()
        y = _swiglu(h, cfg.inter) @ w.w2[e].t()
        out.index_add_(0, token, y.float() * weights[token, slot, None])
    return out.to(torch.bfloat16)


class MaskedDecodeBF16(MaskedDecode):
    """BF16 decode on the same static masked layout (batched matmuls), capturable like the FP8 one."""

    def step(self) -> torch.Tensor:
        cfg, w = self.w.cfg, self.w
        order, weights, dst = self.dispatch()
        h = torch.bmm(self.a, w.w1.transpose(1, 2))
        y = torch.bmm(_swiglu(h, cfg.inter), w.w2.transpose(1, 2))
        return self.combine(y, order, weights, dst)


# --------------------------------------------------------------------------------------------- run


def _capture(step) -> torch.cuda.CUDAGraph:
    for _ in range(2):  # build every kernel and warm the allocator outside capture
        step()
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        step()
    return graph


def _time_ms(fn, iters: int = 20) -> float:
    """Mean GPU time of ``fn()`` in milliseconds from CUDA events, calls back to back (L2 warm, as
    when a model runs its layers in a row)."""
    for _ in range(3):
        fn()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    torch.cuda.synchronize()
    start.record()
    for _ in range(iters):
        fn()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / iters


def run(cfg: MoEConfig, device: str, decode_steps: int = 3, timing: bool = True) -> dict:
    """Prefill and decode with FP8 and BF16; returns accuracy (calc_diff) and, on CUDA, times."""
    w = MoEWeights(cfg, device)
    g = torch.Generator(device=device).manual_seed(1)
    x = torch.randn(cfg.prefill_tokens, cfg.hidden, generator=g, device=device).to(torch.bfloat16)
    result: dict = {"config": cfg.__dict__, "device": device}
    result["prefill_diff"] = calc_diff(moe_prefill_fp8(x, w), moe_bf16(x, w))

    fp8, bf16 = MaskedDecode(w, cfg.decode_tokens, device), MaskedDecodeBF16(w, cfg.decode_tokens, device)
    on_gpu = device != "cpu"
    graphs = (_capture(fp8.step), _capture(bf16.step)) if on_gpu else None
    diffs = []
    for _ in range(decode_steps):  # new tokens every step; the graphs are replayed, not re-captured
        xs = torch.randn(cfg.decode_tokens, cfg.hidden, generator=g, device=device).to(torch.bfloat16)
        fp8.x.copy_(xs)
        bf16.x.copy_(xs)
        if graphs:
            graphs[0].replay()
            graphs[1].replay()
        else:
            fp8.step()
            bf16.step()
        eager = moe_bf16(xs, w)
        diffs.append(calc_diff(fp8.out, eager))
        result.setdefault("decode_bf16_graph_vs_eager_diff", calc_diff(bf16.out, eager))
    result["decode_diff"] = max(diffs)
    if on_gpu and timing:
        result["prefill_ms_fp8"] = _time_ms(lambda: moe_prefill_fp8(x, w))
        result["prefill_ms_bf16"] = _time_ms(lambda: moe_bf16(x, w))
        result["decode_ms_fp8"] = _time_ms(graphs[0].replay, iters=100)
        result["decode_ms_bf16"] = _time_ms(graphs[1].replay, iters=100)
        result["prefill_speedup"] = result["prefill_ms_bf16"] / result["prefill_ms_fp8"]
        result["decode_speedup"] = result["decode_ms_bf16"] / result["decode_ms_fp8"]
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="tiny configuration (runs on CPU too)")
    args = parser.parse_args(argv)
    device = "cuda" if fp8gemm.device.is_sm90_available() else "cpu"
    cfg = TINY if args.tiny or device == "cpu" else MoEConfig()
    result = run(cfg, device)
    print(json.dumps(result, indent=2))
    ok = result["prefill_diff"] < MAX_DIFF and result["decode_diff"] < MAX_DIFF
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
