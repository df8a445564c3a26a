"""Dense-weight optimizer and learning-rate schedule.

AdamATan2 (Everett et al., 2024) exactly as the reference's `adam-atan2` kernel computes it: after
decoupled weight decay p <- p * (1 - lr * wd) and the usual moment updates,

    p -= (lr / (1 - beta1^t)) * atan2(m, sqrt(v) / sqrt(1 - beta2^t))

The first bias correction scales the step outside atan2, not m inside it: atan2 does not scale with its
first argument alone, so the two forms differ while the corrections are large (a constant gradient moves
the first step 0.997 lr here, 0.785 lr with atan2(m_hat, sqrt(v_hat))). Bounded and eps-free like its name. A small readable class rather than the CUDA-only
`adam-atan2` package (whose build breaks, TRM issue #34) or `adam-atan2-pytorch` (which asserts lr > 0,
so the reference's warmup from 0 fails with it, HRM issue #41).
"""

from __future__ import annotations

import math

import torch


class AdamATan2(torch.optim.Optimizer):
    def __init__(self, params, lr: float = 1e-4, betas: tuple[float, float] = (0.9, 0.95), weight_decay: float = 0.0):
        if lr < 0:
            raise ValueError(f"lr must be >= 0, not {lr}")
        super().__init__(params, {"lr": lr, "betas": betas, "weight_decay": weight_decay})

    @torch.no_grad()
    def step(self, closure=None):
        loss = None if closure is None else closure()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            beta1, beta2 = group["betas"]
            lr, wd = group["lr"], group["weight_decay"]
            for p in params:
                state = self.state[p]
                if not state:
                    state["step"] = torch.tensor(0.0)
                    state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            states = [self.state[p] for p in params]
            grads = [p.grad for p in params]
            exp_avgs = [s["exp_avg"] for s in states]
            exp_avg_sqs = [s["exp_avg_sq"] for s in states]
            for s in states:
                s["step"] += 1
            step = states[0]["step"].item()
            bias1, bias2 = 1 - beta1**step, 1 - beta2**step

            torch._foreach_mul_(params, 1 - lr * wd)
            torch._foreach_lerp_(exp_avgs, grads, 1 - beta1)
            torch._foreach_mul_(exp_avg_sqs, beta2)
            torch._foreach_addcmul_(exp_avg_sqs, grads, grads, value=1 - beta2)
            for p, m, v in zip(params, exp_avgs, exp_avg_sqs):
                p.add_(torch.atan2(m, v.sqrt() / math.sqrt(bias2)), alpha=-lr / bias1)
        return loss


def learning_rate(step: int, base_lr: float, warmup_steps: int, min_ratio: float = 1.0, total_steps: int = 0) -> float:
    """Linear warmup from 0, then cosine decay to `min_ratio * base_lr` (min_ratio 1.0 = constant, the reference)."""
    if step < warmup_steps:
        return base_lr * step / warmup_steps
    if min_ratio >= 1.0 or total_steps <= warmup_steps:
        return base_lr
    progress = min(1.0, (step - warmup_steps) / (total_steps - warmup_steps))
    return base_lr * (min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))
