"""Inference of a trained TRM: every supervision step, no halting, on augmented test inputs.

`queries` turns tasks into one query per (test input, augmentation the model knows); `predict_queries`
runs them in batches and keeps every step's decoded grid, mapped back to the original frame, as a
`Candidate`. `predict_puzzles` does the same for Sudoku / Maze test puzzles. The command line that
writes, votes and scores the candidates is `arc_trm.predict`; training's held-out evaluation
(`arc_trm.evaluate`) uses the same functions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from arc_trm.augment import Augmentation, sample_augmentation
from arc_trm.candidates import Candidate, CandidateTable, grid_key
from arc_trm.data.arc import puzzle_id
from arc_trm.grids import Task
from arc_trm.model.losses import log_stablemax
from arc_trm.model.puzzle_embedding import RowSource
from arc_trm.model.trm import TRM
from arc_trm.tokens import IGNORE_LABEL, decode_grid, encode_grid, labels_from_tokens
from arc_trm.vote import poe_candidates, vote


@torch.no_grad()
def run_steps(
    model: TRM, table: RowSource, inputs: torch.Tensor, puzzle_ids: torch.Tensor, steps: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """All supervision steps from (y_init, z_init), no halting.

    Returns predicted tokens (steps, B, L), sigmoid(q_halt) (steps, B) and the last step's
    log-probabilities (B, L, vocab) under stablemax, the distribution the model is trained on.
    """
    # dense copies of the broadcast start: a compiled model then sees the same strides at every step
    y, z = (start.contiguous() for start in model.initial_state(inputs.shape[0], inputs.device))
    rows = table.rows(puzzle_ids, requires_grad=False)
    predictions, confidences = [], []
    for _ in range(steps):
        out = model(y, z, inputs, rows)
        y, z = out.y, out.z
        predictions.append(out.logits.argmax(-1).to(torch.uint8))
        confidences.append(torch.sigmoid(out.q_halt))
    return torch.stack(predictions), torch.stack(confidences), log_stablemax(out.logits.float())


@dataclass(frozen=True)
class Version:
    """One augmented version of a task the model knows: its augmentation and its puzzle id."""

    k: int
    puzzle_id: int
    augmentation: Augmentation


@dataclass
class PuzzleIndex:
    """Which puzzle ids (and augmentations) a trained model has for each task."""

    versions: dict[str, list[Version]] = field(default_factory=dict)
    canvas: int = 30

    @classmethod
    def from_data_info(cls, info: dict[str, Any]) -> "PuzzleIndex":
        """Our exported models: ids follow `arc_trm.data.arc.puzzle_id`.
        Imported reference models list their versions explicitly (import_reference.py)."""
        if "versions" in info:
            versions = {
                task_id: [Version(k, pid, Augmentation(d, tuple(int(c) for c in colors))) for k, (pid, d, colors) in enumerate(rows)]
                for task_id, rows in info["versions"].items()
            }
            return cls(versions, info["canvas"])
        num_aug, seed = info["num_aug"], info["seed"]
        versions = {}
        for t, task_id in enumerate(info["task_ids"]):
            ks = info.get("distinct_versions", {}).get(task_id) or range(num_aug + 1)
            versions[task_id] = [Version(k, puzzle_id(t, k, num_aug), sample_augmentation(seed, t, k)) for k in ks]
        return cls(versions, info["canvas"])

    def for_task(self, task_id: str, max_aug: int | None) -> list[Version]:
        """The task's versions, identity first; unknown tasks get the blank id and the identity only."""
        known = self.versions.get(task_id)
        if not known:
            return [Version(0, 0, Augmentation.identity())]
        chosen = [v for v in known if max_aug is None or v.k <= max_aug]
        return sorted(chosen, key=lambda v: (not v.augmentation.is_identity, v.k))


@dataclass(frozen=True)
class Query:
    task_id: str
    test_index: int
    version: Version
    inputs: np.ndarray  # (L,) tokens in the augmented frame


def count_queries(tasks: Iterable[Task], index: PuzzleIndex, max_aug: int | None) -> int:
    """How many queries `queries` yields, without building them."""
    return sum(len(task.test) * len(index.for_task(task.id, max_aug)) for task in tasks)


def queries(tasks: Iterable[Task], index: PuzzleIndex, max_aug: int | None) -> Iterator[Query]:
    for task in tasks:
        for test_index, pair in enumerate(task.test):
            for version in index.for_task(task.id, max_aug):
                grid = version.augmentation.apply(pair.input)
                yield Query(task.id, test_index, version, encode_grid(grid, index.canvas).astype(np.int32))


def predict_queries(
    model: TRM, table: RowSource, items: Sequence[Query], batch_size: int, steps: int, device: torch.device,
    checkpoint: str = "", poe_top_n: int = 0, progress: bool = False, pad_to: int = 0,
) -> tuple[list[Candidate], dict[tuple[str, int, bytes], list[float]]]:
    """Candidates of every step for every query (grids in the original frame), and, when
    `poe_top_n` > 0, the log-probabilities of each test input's top candidates under every
    augmentation (product of experts). `items` must hold whole test inputs (all their versions).

    `pad_to` (a compiled model): every batch shorter than that is padded to it with copies of its first
    query, whose outputs are dropped, so that the model sees one batch shape and compiles once. Give
    the same value to every call of a run: min(batch_size, the most queries of any call)."""
    canvas = int(round(len(items[0].inputs) ** 0.5)) if items else 0
    candidates: list[Candidate] = []
    last_logprobs: list[torch.Tensor] = []
    for start in tqdm(range(0, len(items), batch_size), disable=not progress, desc="predict", unit="batch"):
        batch = items[start : start + batch_size]
        padded = list(batch) + [batch[0]] * (pad_to - len(batch)) if pad_to > len(batch) else batch
        inputs = torch.from_numpy(np.stack([q.inputs for q in padded])).to(device)
        ids = torch.tensor([q.version.puzzle_id for q in padded], device=device)
        tokens, confidences, logprobs = run_steps(model, table, inputs, ids, steps)
        tokens, confidences = tokens.cpu().numpy(), confidences.float().cpu().numpy()
        if poe_top_n:
            last_logprobs.extend(logprobs[: len(batch)].to(torch.float16).cpu())
        for step in range(steps):
            for i, query in enumerate(batch):
                grid = decode_grid(tokens[step, i], canvas)
                if grid is not None:
                    grid = query.version.augmentation.invert(grid)
                candidates.append(
                    Candidate(query.task_id, query.test_index, query.version.k, step + 1, float(confidences[step, i]), grid, checkpoint)
                )
    log_probs = expert_log_probs(candidates, items, last_logprobs, canvas, poe_top_n) if poe_top_n else {}
    return candidates, log_probs


def expert_log_probs(
    candidates: list[Candidate], items: Sequence[Query], logprobs: list[torch.Tensor], canvas: int, top_n: int
) -> dict[tuple[str, int, bytes], list[float]]:
    """Score each test input's top-N reference-vote grids under every augmentation's distribution:
    the grid is mapped into that augmentation's frame, tokenised, and its token log-probs summed."""
    rankings = vote(CandidateTable.from_candidates(candidates), "reference")
    by_input: dict[tuple[str, int], list[int]] = {}
    for row, query in enumerate(items):
        by_input.setdefault((query.task_id, query.test_index), []).append(row)
    scores: dict[tuple[str, int, bytes], list[float]] = {}
    for task_id, test_index, grid in poe_candidates(rankings, top_n):
        per_expert = []
        for row in by_input.get((task_id, test_index), []):
            augmented = items[row].version.augmentation.apply(grid)
            if max(augmented.shape) > canvas:
                continue
            labels = torch.from_numpy(labels_from_tokens(encode_grid(augmented, canvas)))
            valid = labels != IGNORE_LABEL
            picked = logprobs[row].float().gather(-1, torch.where(valid, labels, 0).unsqueeze(-1)).squeeze(-1)
            per_expert.append(float(picked[valid].sum()))
        scores[(task_id, test_index, grid_key(grid))] = per_expert
    return scores


def shard(items: Sequence, rank: int, world: int) -> list:
    return list(items[rank::world])


@torch.no_grad()
def predict_puzzles(
    model: TRM, table: RowSource, test_source: Any, batch_size: int, steps: int, device: torch.device,
    rank: int = 0, world: int = 1,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sudoku / Maze: (CSV row indices, last-step predicted tokens, labels) of this process's batches."""
    indices, predictions, labels = [], [], []
    for b, (index, examples) in enumerate(test_source.test_examples(batch_size)):
        if b % world != rank:
            continue
        inputs = torch.from_numpy(examples.inputs).to(device)
        ids = torch.from_numpy(examples.puzzle_ids).to(device)
        tokens, _, _ = run_steps(model, table, inputs, ids, steps)
        indices.append(index)
        predictions.append(tokens[-1].cpu().numpy())
        labels.append(examples.labels)
    if not indices:
        return np.zeros(0, np.int64), np.zeros((0, 0), np.uint8), np.zeros((0, 0), np.int64)
    return np.concatenate(indices), np.concatenate(predictions), np.concatenate(labels)
