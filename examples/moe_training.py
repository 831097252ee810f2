"""Train a small MoE feed-forward block with FP8 GEMMs (fp8gemm.nn) next to the same block in BF16.

    python examples/moe_training.py                          # CPU, tiny: a few seconds
    python examples/moe_training.py --device cuda --steps 200 --hidden 1024 --inter 512 --tokens 2048

Both models start from the same weights and see the same batches; the script prints both loss curves
and fails (exit status 1) if the FP8 loss strays from BF16's by more than ``--tolerance`` (relative)
at the end. The block: router (plain BF16 linear, top-k with softmax weights), then per expert
``down(silu(up(x)))``, the experts as `fp8gemm.nn.FP8GroupedLinear` (FP8 forward, dgrad and wgrad;
the weight gradient is the k-grouped GEMM) against per-expert BF16 matmuls.

The task is a regression with an irreducible loss, as real training has: every step draws a fresh
batch ``x`` from a seeded generator, and the target is the output of a fixed random "teacher" block
plus Gaussian label noise whose standard deviation is ``--label-noise`` times the teacher output's
RMS (default 1: noise as large as the signal). The best any model can do is the noise variance (the
``floor`` in the result), so the loss settles near it instead of going to 0.

Why: an earlier version memorised 4 fixed batches. Its loss went towards 0 (0.0003 after 200
steps), where FP8's quantization noise, not the learning, set the value, and the relative gap
between FP8 and BF16 grew to 14% although both learned the same function. A relative comparison
only measures something when the loss has a floor of the size real data gives it. The comparison
stays honest: both models start from the same weights (one is a copy of the other), and the batch
stream is regenerated from the same seed for each, so both see identical inputs and label noise;
the end value compared is the mean over the last ``tail`` steps (the per-batch noise averages out,
and it is the same noise for both).

The learning rate: with Adam at 3e-3 this student-teacher task sits on a plateau (~0.0061 at
hidden 512) until about step 100 and then escapes it, and the step at which a run escapes is
chaotic: the two curves agree to 4 digits up to the plateau, then part by the escape's timing.
Measured on CPU (hidden 512, inter 256, 8 experts, 1024 tokens, 200 steps), the FP8-BF16 gap at
the end was +5.2%, -1.1% and +1.8% for seeds 0, 1, 2 (the H200 run of the issue's configuration:
+3.1%), i.e. noise of either sign, not a precision loss. At 1e-3 (the default) the same runs end
within 0.07% (seeds 0, 1, 2: 0.07%, 0.07%, 0.06%); the issue's configuration (hidden 1024, inter 512,
8 experts, 2048 tokens, 200 steps) on CPU ends at 0.57%, its loss leaving the plateau from about
step 140 on (the gap was 0.1% up to step 150). ``--lr 3e-3`` shows the plateau escape.

The routed (token, expert) pairs go to the padded grouped layout: sorted by expert, each expert's
rows starting at a multiple of 128 (`fp8gemm.nn.grouped_rows`), one fixed capacity so shapes stay
static.
"""

from __future__ import annotations

import argparse
import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from fp8gemm import nn as fp8nn


@dataclass(frozen=True)
class Config:
    hidden: int = 128
    inter: int = 128
    experts: int = 4
    top_k: int = 2
    tokens: int = 256
    steps: int = 40
    lr: float = 1e-3
    seed: int = 0
    label_noise: float = 1.0  # label-noise standard deviation / teacher output RMS
    tail: int = 10  # steps averaged for the end values


class BF16Grouped(torch.nn.Module):
    """The reference experts: one BF16 matmul per expert on the same padded layout."""

    def __init__(self, weight: torch.Tensor):
        super().__init__()
        self.weight = torch.nn.Parameter(weight.detach().clone())

    def forward(self, x: torch.Tensor, ks: torch.Tensor) -> torch.Tensor:
        m_indices = fp8nn.grouped_m_indices(ks, x.shape[0])
        out = x.new_zeros((x.shape[0], self.weight.shape[1]), dtype=torch.bfloat16)
        for e in range(self.weight.shape[0]):
            rows = (m_indices == e).nonzero().squeeze(1)
            out = out.index_copy(0, rows, x.index_select(0, rows).bfloat16() @ self.weight[e].bfloat16().T)
        return out


class MoE(torch.nn.Module):
    def __init__(self, cfg: Config, device: str):
        super().__init__()
        self.cfg = cfg
        self.router = torch.nn.Linear(cfg.hidden, cfg.experts, bias=False, device=device)
        self.up = fp8nn.FP8GroupedLinear(cfg.experts, cfg.hidden, cfg.inter, device=device)
        self.down = fp8nn.FP8GroupedLinear(cfg.experts, cfg.inter, cfg.hidden, device=device)

    def bf16_copy(self) -> MoE:
        """The same block with BF16 experts and the same weights."""
        twin = copy.deepcopy(self)
        twin.up = BF16Grouped(self.up.weight)
        twin.down = BF16Grouped(self.down.weight)
        return twin

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        cfg = self.cfg
        tokens = x.shape[0]
        logits = F.linear(x.bfloat16(), self.router.weight.bfloat16()).float()
        weights, experts = logits.softmax(-1).topk(cfg.top_k, dim=-1)
        flat = experts.flatten()
        order = torch.argsort(flat, stable=True)
        token_of_pair = order // cfg.top_k
        pairs = tokens * cfg.top_k
        ks = torch.bincount(flat, minlength=cfg.experts).to(torch.int32)
        rows = fp8nn.grouped_rows(ks, pairs)
        capacity = fp8nn.grouped_capacity(pairs, cfg.experts)
        x_pad = x.new_zeros((capacity, cfg.hidden)).index_copy(0, rows, x.index_select(0, token_of_pair))
        h = F.silu(self.up(x_pad, ks))
        y_pad = self.down(h, ks)
        y_pairs = y_pad.index_select(0, rows).float() * weights.flatten()[order].unsqueeze(1)
        return x.new_zeros((tokens, cfg.hidden)).index_add(0, token_of_pair, y_pairs)


def batches(cfg: Config, teacher: torch.nn.Module, noise_std: float, device: str):
    """The training stream: a fresh batch every step and its noisy teacher target (seeded, so two
    calls give the same stream)."""
    gen = torch.Generator(device=device).manual_seed(cfg.seed + 1)
    for _ in range(cfg.steps):
        x = torch.randn(cfg.tokens, cfg.hidden, generator=gen, device=device)
        noise = torch.randn(cfg.tokens, cfg.hidden, generator=gen, device=device)
        with torch.no_grad():
            target = teacher(x) + noise_std * noise
        yield x, target


def teacher_rms(cfg: Config, teacher: torch.nn.Module, device: str) -> float:
    """RMS of the teacher's output over one probe batch (its own generator, not the training stream)."""
    gen = torch.Generator(device=device).manual_seed(cfg.seed + 2)
    with torch.no_grad():
        y = teacher(torch.randn(cfg.tokens, cfg.hidden, generator=gen, device=device))
    return float(y.float().pow(2).mean().sqrt())


def train(cfg: Config, device: str = "cpu") -> dict:
    torch.manual_seed(cfg.seed)
    fp8_model = MoE(cfg, device)
    bf16_model = fp8_model.bf16_copy()
    teacher = MoE(cfg, device).bf16_copy()
    noise_std = cfg.label_noise * teacher_rms(cfg, teacher, device)
    curves = {}
    for name, model in (("fp8", fp8_model), ("bf16", bf16_model)):
        opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
        losses = []
        for x, target in batches(cfg, teacher, noise_std, device):
            loss = F.mse_loss(model(x), target)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
        curves[name] = losses
    tail = min(cfg.tail, cfg.steps)
    fp8_end = sum(curves["fp8"][-tail:]) / tail
    bf16_end = sum(curves["bf16"][-tail:]) / tail
    return {"fp8": curves["fp8"], "bf16": curves["bf16"], "fp8_end": fp8_end, "bf16_end": bf16_end,
            "floor": noise_std**2, "relative_gap": abs(fp8_end - bf16_end) / bf16_end}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", type=int, default=Config.steps)
    parser.add_argument("--hidden", type=int, default=Config.hidden)
    parser.add_argument("--inter", type=int, default=Config.inter)
    parser.add_argument("--experts", type=int, default=Config.experts)
    parser.add_argument("--tokens", type=int, default=Config.tokens)
    parser.add_argument("--seed", type=int, default=Config.seed)
    parser.add_argument("--lr", type=float, default=Config.lr)
    parser.add_argument("--label-noise", type=float, default=Config.label_noise,
                        help="label-noise standard deviation relative to the teacher output's RMS")
    parser.add_argument("--tolerance", type=float, default=0.02, help="relative gap allowed at the end")
    args = parser.parse_args(argv)
    cfg = Config(hidden=args.hidden, inter=args.inter, experts=args.experts, tokens=args.tokens,
                 steps=args.steps, label_noise=args.label_noise, seed=args.seed, lr=args.lr)
    result = train(cfg, args.device)
    for step in range(0, cfg.steps, max(1, cfg.steps // 10)):
        print(f"step {step:4d}   fp8 {result['fp8'][step]:.5f}   bf16 {result['bf16'][step]:.5f}")
    print(f"end (mean of the last {min(cfg.tail, cfg.steps)} steps): fp8 {result['fp8_end']:.5f}  "
          f"bf16 {result['bf16_end']:.5f}  floor (label noise) {result['floor']:.5f}  "
          f"gap {100 * result['relative_gap']:.2f}%")
    return 0 if result["relative_gap"] <= args.tolerance else 1


if __name__ == "__main__":
    raise SystemExit(main())
