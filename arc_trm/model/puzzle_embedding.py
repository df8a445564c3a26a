"""The puzzle-embedding table: one learned vector per (task, augmentation), trained sparsely.

The table is large (ARC-1: 800,801 ids x 512 fp32, 1.6 GB; ARC-2 with ConceptARC 2.6 GB) and each
step touches only the batch's rows, so it stays outside the module that DDP / DeepSpeed wrap (a
buffer there would be broadcast or sharded every step). It is either replicated (every process
holds every row) or sharded: process r of W holds the rows whose id = r (mod W), so each process
keeps 1/W of the table. Sharding changes no number: the same rows, the same updates. Per step:

1. `rows(ids)` returns the batch's rows as a leaf tensor that requires grad; the model reads it.
   Sharded, the processes first swap their ids and fill in the rows they own (one all-gather of
   ids, one all-reduce of world x batch rows).
2. after backward, `SparseSignSGD.step` gathers (ids, row gradients) from every process, sums the
   gradients per distinct id, and applies SignSGD with decoupled weight decay to the rows this
   process holds: w <- w * (1 - lr * wd) - lr * sign(g). Replicated, every process applies the same
   update, so the copies stay identical without ever communicating the table.

Both run without a host synchronisation, so the CPU can prepare the next batch while the GPU still
works: every shape is fixed by the batch (no `unique`, no boolean-mask indexing, whose result sizes
the host would have to wait for). Writes that must not land (slots of repeated ids, rows held by
another process) go to one scratch row kept after the table.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterable, Protocol

import torch
import torch.distributed as dist

Gather = Callable[[torch.Tensor], torch.Tensor]

# torch 2.13 renamed all_gather_into_tensor (and warns on the old name); torch >= 2.4 is supported
all_gather_single = getattr(dist, "all_gather_single", None) or dist.all_gather_into_tensor


class RowSource(Protocol):
    """What the model's callers need of a table: the rows of given ids."""

    def rows(self, ids: torch.Tensor, requires_grad: bool) -> torch.Tensor: ...


class PuzzleEmbedding:
    """Zero-initialised table of `num_ids` rows of `dim`; id 0 is the blank id used by padding rows.

    This process holds the ids `rank, rank + world, rank + 2 * world, ...` (all of them when world
    is 1), in `weights`, one row per held id in id order."""

    def __init__(self, num_ids: int, dim: int, device: torch.device | str = "cpu", rank: int = 0, world: int = 1):
        self.num_ids, self.rank, self.world = num_ids, rank, world
        held = len(range(rank, num_ids, world))
        self.storage = torch.zeros(held + 1, dim, device=device)  # the held rows, then the scratch row
        self.weights = self.storage[:held]
        self.scratch = held

    @property
    def sharded(self) -> bool:
        return self.world > 1

    def held(self, ids: torch.Tensor) -> torch.Tensor:
        """Which of `ids` this process holds."""
        return (ids - self.rank) % self.world == 0

    def local(self, ids: torch.Tensor) -> torch.Tensor:
        """Row indices in `weights` of held ids."""
        return torch.div(ids - self.rank, self.world, rounding_mode="floor")

    def targets(self, ids: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
        """Row indices in `storage`: the held ids' rows; the scratch row for ids held elsewhere and
        where `keep` is False."""
        keep = self.held(ids) if keep is None else keep & self.held(ids)
        return torch.where(keep, self.local(ids), self.scratch)

    def rows(self, ids: torch.Tensor, requires_grad: bool) -> torch.Tensor:
        """The batch's rows as a fresh leaf tensor (B, dim). Sharded, every process must call it
        together with a batch of the same size."""
        if not self.sharded:
            return self.weights[ids].clone().requires_grad_(requires_grad)
        everyone = torch.empty(self.world * ids.shape[0], dtype=ids.dtype, device=ids.device)
        all_gather_single(everyone, ids.contiguous())
        mine = slice(self.rank * ids.shape[0], (self.rank + 1) * ids.shape[0])
        return self._filled(everyone)[mine].requires_grad_(requires_grad)

    def subset(self, ids: torch.Tensor) -> "RowSubset":
        """The rows of `ids` on every process, as a small replicated table. Sharded, every process must
        call it together with the same ids (for evaluation, whose batches differ between processes)."""
        ids = ids.unique()
        return RowSubset(ids, self._filled(ids) if self.sharded else self.weights[ids].clone())

    def _filled(self, ids: torch.Tensor) -> torch.Tensor:
        """Rows of `ids` (the same on every process): each process fills the rows it holds, the sum fills all."""
        out = self.storage[self.targets(ids)] * self.held(ids)[:, None]
        dist.all_reduce(out)
        return out

    def full(self) -> torch.Tensor | None:
        """The whole table on the CPU of process 0 (None elsewhere), one shard in flight at a time.
        Sharded, every process must call it."""
        if not self.sharded:
            return self.weights.cpu()
        table = torch.empty(self.num_ids, self.weights.shape[1]) if self.rank == 0 else None
        for owner in range(self.world):
            shard = self.weights if owner == self.rank else torch.empty(
                len(range(owner, self.num_ids, self.world)), self.weights.shape[1], device=self.weights.device
            )
            dist.broadcast(shard, src=owner)
            if table is not None:
                table[owner :: self.world] = shard.cpu()
        return table

    def resized(self, num_ids: int) -> "PuzzleEmbedding":
        """A table with `num_ids` rows: existing rows kept, new rows set to the mean learned row.

        Used to add ids for unseen tasks before fine-tuning (the reference's load-time hook)."""
        assert not self.sharded, "resize a whole (exported) table"
        table = PuzzleEmbedding(num_ids, self.weights.shape[1], self.weights.device)
        keep = min(num_ids, self.num_ids)
        table.weights[:keep] = self.weights[:keep]
        if num_ids > self.num_ids:
            table.weights[self.num_ids :] = self.mean_row()
        return table

    def mean_row(self) -> torch.Tensor:
        """The mean learned embedding (the blank row 0 left out when there are others)."""
        assert not self.sharded, "the mean of a whole (exported) table"
        learned = self.weights[1:] if self.num_ids > 1 else self.weights
        return learned.mean(dim=0)

    def state_dict(self) -> dict[str, torch.Tensor | int]:
        return {"weights": self.weights, "rank": self.rank, "world": self.world, "num_ids": self.num_ids}

    def load_shards(self, paths: Iterable[Path]) -> None:
        """Fill the held rows from saved shards (`state_dict`s), whatever the world size that saved them."""
        filled = 0
        for path in paths:
            state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
            if state["num_ids"] != self.num_ids or state["weights"].shape[1] != self.weights.shape[1]:
                raise ValueError(
                    f"{path}: puzzle table of {state['num_ids']} x {state['weights'].shape[1]} does not match "
                    f"{self.num_ids} x {self.weights.shape[1]}"
                )
            ids = torch.arange(state["rank"], self.num_ids, state["world"])
            held = self.held(ids)
            self.weights[self.local(ids[held])] = state["weights"][held].to(self.weights)
            filled += int(held.sum())
        if filled != self.weights.shape[0]:
            raise ValueError(f"puzzle table shards fill {filled} of this process's {self.weights.shape[0]} rows")


class RowSubset:
    """A few rows of a table, held whole on every process: `rows` of any of `ids`, no communication."""

    def __init__(self, ids: torch.Tensor, weights: torch.Tensor):
        self.ids, self.weights = ids, weights  # ids sorted and distinct

    def rows(self, ids: torch.Tensor, requires_grad: bool) -> torch.Tensor:
        return self.weights[torch.searchsorted(self.ids, ids)].clone().requires_grad_(requires_grad)


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
        # group repeated ids with fixed shapes: sort (stably: on the CPU each id's gradients then add in
        # batch order), then one slot per distinct id, in id order; slots past the last one are unused
        order = ids.argsort(stable=True)
        ids = ids[order]
        starts = torch.ones_like(ids, dtype=torch.bool)
        starts[1:] = ids[1:] != ids[:-1]
        slot = starts.cumsum(0) - 1
        summed = torch.zeros_like(grads).index_add_(0, slot, grads[order])
        slot_ids = torch.zeros_like(ids).scatter_(0, slot, ids)
        used = torch.arange(ids.shape[0], device=ids.device) <= slot[-1]
        storage, targets = self.table.storage, self.table.targets(slot_ids, keep=used)
        rows = storage[targets] * (1.0 - lr * self.weight_decay) - lr * summed.sign().to(storage.dtype)
        storage[targets] = rows  # repeated targets are the scratch row only
