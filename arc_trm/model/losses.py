"""TRM's training loss: stablemax cross-entropy on the answer plus 0.5 x BCE on the halt logit.

Per sequence the cross-entropy is averaged over its supervised tokens; sequences are then summed
(the caller divides by the batch so that the sum over processes is the mean over the global batch).
The halt target is whether the whole sequence is predicted exactly.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from arc_trm.tokens import IGNORE_LABEL

HALT_LOSS_WEIGHT = 0.5


def log_stablemax(logits: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """log of s(x) / sum s(x) with s(x) = x + 1 for x >= 0 and 1 / (1 - x) below: no exp, no overflow."""
    s = torch.where(logits < 0, 1 / (1 - logits + 1e-30), logits + 1)
    return torch.log(s / s.sum(dim=dim, keepdim=True))


def stablemax_cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per-token loss (B, L) in float64 as the reference; 0 where the label is ignored."""
    logprobs = log_stablemax(logits.to(torch.float64))
    valid = labels != IGNORE_LABEL
    picked = logprobs.gather(-1, torch.where(valid, labels, 0).long().unsqueeze(-1)).squeeze(-1)
    return -torch.where(valid, picked, 0)


def act_loss(
    logits: torch.Tensor, q_halt: torch.Tensor, labels: torch.Tensor, halted: torch.Tensor
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Summed loss over the batch and metric sums over the sequences that halted this step.

    Metrics stay on the device (no host sync): count, token accuracy, exact accuracy,
    q_halt accuracy (q_halt > 0 iff exact), the losses.
    """
    valid = labels != IGNORE_LABEL
    counts = valid.sum(-1)
    correct = valid & (logits.argmax(-1) == labels)
    exact = correct.sum(-1) == counts
    lm_loss = (stablemax_cross_entropy(logits, labels).sum(-1) / counts.clamp_min(1)).sum()
    halt_loss = F.binary_cross_entropy_with_logits(q_halt, exact.to(q_halt.dtype), reduction="sum")
    scored = halted & (counts > 0)
    metrics = {
        "count": scored.sum(),
        "accuracy": torch.where(scored, correct.sum(-1) / counts.clamp_min(1), 0).sum(),
        "exact_accuracy": (scored & exact).sum(),
        "q_halt_accuracy": (scored & ((q_halt >= 0) == exact)).sum(),
        "lm_loss": lm_loss.detach(),
        "halt_loss": halt_loss.detach(),
    }
    return lm_loss + HALT_LOSS_WEIGHT * halt_loss, metrics
