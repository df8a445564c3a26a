"""The training stream: seeded, resumable, sharded global batches drawn group by group from a source.

A source (ARC, Sudoku, Maze) has groups (an ARC task with all its augmented versions); `sample` gives
one random version of a group, all its examples. The stream follows the reference loader:

- the group order is one permutation of the groups per epoch (seeded by (seed, epoch)), epochs
  concatenated, as the reference concatenates the permutations of the epochs of an iteration;
- a global batch is filled group by group: each visit draws a version and takes all its examples in a
  random order, with an rng seeded by (seed, epoch, position in the epoch); the group that overflows the
  batch is truncated and its remaining examples are dropped, so every batch starts at a group;
- rank r of `world` gets the contiguous slice [r, r + 1) * global_batch / world of each global batch.
  The slice layout follows from `group_size` alone, so a rank only samples the groups that reach its
  slice (a group straddling two ranks is sampled, identically, by both).

Unlike the reference (unseeded `np.random` for the versions), everything is seeded: two streams with
the same seed yield the same batches, and `state_dict` (epoch, cursor, batch count) resumes exactly.
The state is rank-agnostic: a run can resume with another world size and still see the same global
batches.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Protocol, TypeVar

import numpy as np

from arc_trm.errors import ConfigError

if TYPE_CHECKING:
    import torch


@dataclass
class Examples:
    inputs: np.ndarray  # int32 [n, seq_len]
    labels: np.ndarray  # int64 [n, seq_len], IGNORE_LABEL where not supervised
    puzzle_ids: np.ndarray  # int64 [n]

    def __len__(self) -> int:
        return len(self.puzzle_ids)

    def take(self, rows: np.ndarray) -> "Examples":
        return Examples(self.inputs[rows], self.labels[rows], self.puzzle_ids[rows])


class ExampleSource(Protocol):
    """Groups of examples; each visit of a group samples one of its (augmented) versions."""

    seq_len: int
    vocab_size: int
    num_puzzle_ids: int

    def __len__(self) -> int:
        """Number of groups."""

    def group_size(self, group: int) -> int:
        """How many examples the group yields (the same for every version)."""

    def sample(self, group: int, rng: np.random.Generator) -> Examples:
        """A random version of the group: all its examples."""


class TrainStream:
    """Infinite iterator of this rank's slice of each global batch, as torch tensors.

    `{"inputs": int32 [global_batch // world, L], "labels": int64 [...], "puzzle_ids": int64 [...]}`.
    """

    def __init__(self, source: ExampleSource, global_batch: int, rank: int = 0, world: int = 1, seed: int = 0):
        if world < 1 or not 0 <= rank < world:
            raise ConfigError(f"rank {rank} is not in 0..{world - 1}")
        if global_batch < 1 or global_batch % world != 0:
            raise ConfigError(f"global batch {global_batch} is not a positive multiple of the {world} processes")
        if len(source) == 0:
            raise ConfigError("the training source has no groups (no task fits the canvas?)")
        self.source = source
        self.global_batch = global_batch
        self.local_batch = global_batch // world
        self.rank = rank
        self.world = world
        self.seed = seed
        self._sizes = np.array([source.group_size(g) for g in range(len(source))], dtype=np.int64)
        if np.any(self._sizes < 1):
            raise ConfigError("every group of the training source must yield at least one example")
        self.epoch = 0
        self.cursor = 0
        self.batches = 0
        self._order_epoch = -1
        self._order = np.empty(0, dtype=np.int64)

    def __iter__(self) -> "TrainStream":
        return self

    def __next__(self) -> dict[str, torch.Tensor]:
        import torch  # only training draws batches: scoring imports this module through the tracks, without torch

        lo, hi = self.rank * self.local_batch, (self.rank + 1) * self.local_batch
        pieces: list[Examples] = []
        filled = 0
        while filled < self.global_batch:
            group = int(self._group_order()[self.cursor])
            take = min(int(self._sizes[group]), self.global_batch - filled)
            # Only the part of this visit that falls in [lo, hi) is ours.
            start, stop = max(lo, filled), min(hi, filled + take)
            if start < stop:
                rng = np.random.default_rng([self.seed, self.epoch, self.cursor])
                examples = self.source.sample(group, rng)
                shuffled = rng.permutation(len(examples))[:take]
                pieces.append(examples.take(shuffled[start - filled : stop - filled]))
            filled += take
            self._advance()
        self.batches += 1
        return {
            "inputs": torch.from_numpy(np.concatenate([p.inputs for p in pieces]).astype(np.int32, copy=False)),
            "labels": torch.from_numpy(np.concatenate([p.labels for p in pieces]).astype(np.int64, copy=False)),
            "puzzle_ids": torch.from_numpy(np.concatenate([p.puzzle_ids for p in pieces]).astype(np.int64, copy=False)),
        }

    def _group_order(self) -> np.ndarray:
        if self._order_epoch != self.epoch:
            self._order = np.random.default_rng([self.seed, self.epoch]).permutation(len(self._sizes))
            self._order_epoch = self.epoch
        return self._order

    def _advance(self) -> None:
        self.cursor += 1
        if self.cursor == len(self._sizes):
            self.epoch, self.cursor = self.epoch + 1, 0

    def state_dict(self) -> dict[str, int]:
        """Where the stream stands: the next group's epoch and position in it, and batches yielded."""
        return {"epoch": self.epoch, "cursor": self.cursor, "batches": self.batches}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue exactly where `state_dict` was taken (any rank, any world size)."""
        cursor = int(state["cursor"])
        if not 0 <= cursor < len(self._sizes):
            raise ConfigError(f"stream state cursor {cursor} does not fit a source of {len(self._sizes)} groups")
        self.epoch, self.cursor, self.batches = int(state["epoch"]), cursor, int(state["batches"])


T = TypeVar("T")


def batched(items: Iterable[T], batch_size: int) -> Iterator[list[T]]:
    """Consecutive lists of `batch_size` items (the last one shorter), e.g. for evaluation."""
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) == batch_size:
            yield batch
            batch = []
    if batch:
        yield batch
