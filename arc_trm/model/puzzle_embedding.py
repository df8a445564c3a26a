"""The puzzle-embedding table: one learned vector per (task, augmentation), trained sparsely.

The table is large (ARC-1: ~1M ids x 512 fp32, ~2 GB) and each step touches only the batch's
rows, so it stays outside the module that DDP / DeepSpeed wrap (a buffer there would be broadcast
or sharded every step). Each process holds the full table. Per step:

1. `rows(ids)` copies the batch's rows into a leaf tensor that requires grad; the model reads it.
2. after backward, `SparseSignSGD.step` gathers (ids, row gradients) from every process, sums the
   gradients per distinct id, and applies SignSGD with decoupled weight decay to those rows only:
   w <- w * (1 - lr * wd) - lr * sign(g). Every process applies the same update, so the copies
   stay identical without ever communicating the table.
"""

from __future__ import annotations

from typing import Callable

import torch

Gather = Callable[[torch.Tensor], torch.Tensor]


class PuzzleEmbedding:
    """Zero-initialised table (num_ids, dim); id 0 is the blank id used by padding rows."""

    def __init__(self, num_ids: int, dim: int, device: torch.device | str = "cpu"):
        self.weights = torch.zeros(num_ids, dim, device=device)

    @property
    def num_ids(self) -> int:
        return self.weights.shape[0]

    def rows(self, ids: torch.Tensor, requires_grad: bool) -> torch.Tensor:
        """The batch's rows as a fresh leaf tensor (B, dim)."""
        return self.weights[ids].clone().requires_grad_(requires_grad)

    def resized(self, num_ids: int) -> "PuzzleEmbedding":
        """A table with `num_ids` rows: existing rows kept, new rows set to the mean learned row.

        Used to add ids for unseen tasks before fine-tuning (the reference's load-time hook).
        """
        table = PuzzleEmbedding(num_ids, self.weights.shape[1], self.weights.device)
        keep = min(num_ids, self.num_ids)
        table.weights[:keep] = self.weights[:keep]
        if num_ids > self.num_ids:
            table.weights[self.num_ids :] = self.mean_row()
        return table

    def mean_row(self) -> torch.Tensor:
        """The mean learned embedding (the blank row 0 left out when there are others)."""
        learned = self.weights[1:] if self.num_ids > 1 else self.weights
        return learned.mean(dim=0)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"weights": self.weights}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        if state["weights"].shape != self.weights.shape:
            raise ValueError(
                f"puzzle table shape {tuple(state['weights'].shape)} does not match {tuple(self.weights.shape)}"
            )
        self.weights.copy_(state["weights"])


class SparseSignSGD:
    """SignSGD with decoupled weight decay on the rows a step touched."""

    def __init__(self, table: PuzzleEmbedding, weight_decay: float):
        self.table = table
        self.weight_decay = weight_decay

    @torch.no_grad()
    def step(self, ids: torch.Tensor, grads: torch.Tensor, lr: float, gather: Gather | None = None) -> None:
        """`ids` (B,) and `grads` (B, dim) of this process; `gather` concatenates them over processes."""
        if gather is not None:
            ids, grads = gather(ids), gather(grads)
        unique, inverse = ids.unique(return_inverse=True)
        summed = torch.zeros(unique.shape[0], grads.shape[1], dtype=grads.dtype, device=grads.device)
        summed.index_add_(0, inverse, grads)
        rows = self.table.weights[unique]
        rows.mul_(1.0 - lr * self.weight_decay).add_(summed.sign().to(rows.dtype), alpha=-lr)
        self.table.weights[unique] = rows
