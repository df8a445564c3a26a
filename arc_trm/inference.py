"""Inference of a trained TRM: every supervision step, no halting, on augmented test inputs.

`queries` turns tasks into one query per (test input, augmentation the model knows); `predict_queries`
runs them in batches and keeps every step's decoded grid, mapped back to the original frame, as a
`Candidate`. `predict_puzzles` does the same for Sudoku / Maze test puzzles. The command line that
writes, votes and scores the candidates is `arc_trm.predict`; training's held-out evaluation
(`arc_trm.held_out`) uses the same functions.

Test-time compute (`TestTimeCompute`, docs/prediction-and-voting.md#test-time-compute): `steps` may
exceed the trained halt_max_steps (the recursion simply continues); each query may run as several
trajectories with seeded noise in its latent (PTRM, arXiv 2605.19943); a batch may stop once every row
has halted. `forward_passes` is the cost in model forward passes, `ForwardPasses` counts what ran.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, fields
from typing import Any, Iterable, Iterator, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from arc_trm.candidates import Candidate, CandidateTable, grid_key
from arc_trm.errors import ConfigError
from arc_trm.exported import PuzzleIndex, Version
from arc_trm.grids import Task
from arc_trm.model.losses import log_stablemax
from arc_trm.model.puzzle_embedding import RowSource
from arc_trm.model.trm import TRM, ModelConfig
from arc_trm.tokens import IGNORE_LABEL, decode_grid, encode_grid, labels_from_tokens
from arc_trm.vote import HALT_THRESHOLD, poe_candidates, vote

MAX_TRAJECTORIES = int(np.iinfo(CandidateTable.COLUMNS["trajectory"]).max)
"""The most the candidates' trajectory column holds (32767)."""


@dataclass(frozen=True)
class TestTimeCompute:
    """How much compute inference spends per query beyond one deterministic run (the number of
    supervision steps is the separate `steps`, which may exceed the trained halt_max_steps).

    `trajectories` runs of each query: trajectory 0 is the deterministic run, trajectories 1.. add
    `noise` * N(0, 1) to the latent z after each of its updates (T * n per supervision step), drawn
    from a generator seeded by (`noise_seed`, the query, the trajectory), so that a query's noise does not
    depend on the batch it is in. z has an RMS of about 1 (the blocks end in an RMSNorm), so `noise`
    is relative to that. With `early_exit`, a batch stops after the step by which every row has halted
    (its q_halt logit was > 0 at some step run so far).
    """

    __test__ = False  # pytest would collect a class named Test*

    trajectories: int = 1
    noise: float = 0.0
    noise_seed: int = 0
    early_exit: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.trajectories, bool) or not isinstance(self.trajectories, int) or not 1 <= self.trajectories <= MAX_TRAJECTORIES:
            raise ConfigError(f"trajectories={self.trajectories}: must be an integer from 1 to {MAX_TRAJECTORIES}")
        if not (isinstance(self.noise, (int, float)) and math.isfinite(self.noise) and self.noise >= 0):
            raise ConfigError(f"noise={self.noise}: must be a finite number >= 0")
        if self.trajectories > 1 and self.noise == 0:
            raise ConfigError(f"trajectories={self.trajectories} needs noise > 0: without noise every trajectory repeats the deterministic one")
        if self.trajectories == 1 and self.noise > 0:
            raise ConfigError(f"noise={self.noise} needs trajectories >= 2: trajectory 0 is the deterministic run, "
                              "the noisy ones are 1 .. trajectories-1")
        if isinstance(self.noise_seed, bool) or not isinstance(self.noise_seed, int):
            raise ConfigError(f"noise_seed={self.noise_seed!r}: must be an integer")

    @classmethod
    def of(cls, settings: Any) -> TestTimeCompute:
        """The fields of the same names of `settings` (predict's arguments, submissions.make's options)."""
        return cls(**{f.name: getattr(settings, f.name) for f in fields(cls)})

    def latent_noise(self, rows: Sequence[tuple[tuple, int]], device: torch.device) -> "LatentNoise | None":
        """The noise of a batch whose rows are (query key, trajectory); None when no row is noisy."""
        seeds = [None if trajectory == 0 else trajectory_seed(self.noise_seed, key, trajectory) for key, trajectory in rows]
        return None if all(seed is None for seed in seeds) else LatentNoise(self.noise, seeds, device)


def trajectory_seed(noise_seed: int, key: Sequence, trajectory: int) -> int:
    """The noise generator's seed of one trajectory of one query (`key`: what names the query, e.g. task,
    test input and augmentation): a hash, the same in every batch, process and run."""
    text = "\x1f".join(str(part) for part in (noise_seed, *key, trajectory))
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")


class LatentNoise:
    """`scale` * N(0, 1) for the latent z of each batch row, from the row's own generator (seed None:
    a deterministic row, which gets zeros). The model calls it once per latent update, so a row's draws
    follow its own updates whatever else is in the batch."""

    def __init__(self, scale: float, seeds: Sequence[int | None], device: torch.device) -> None:
        self.scale = scale
        self.generators = [None if seed is None else torch.Generator(device).manual_seed(seed) for seed in seeds]

    def __call__(self, z: torch.Tensor) -> torch.Tensor:
        eps = torch.zeros(z.shape, dtype=torch.float32, device=z.device)
        for row, generator in enumerate(self.generators):
            if generator is not None:
                eps[row].normal_(generator=generator)
        return (self.scale * eps).to(z.dtype)


@dataclass
class ForwardPasses:
    """Model forward passes (supervision steps) run, summed over rows: queries x trajectories x the
    steps each batch ran (padding rows not counted). Each one applies the network f T * (n + 1) times
    (`recursions_per_pass`)."""

    count: int = 0

    def add(self, rows: int, steps: int) -> None:
        self.count += rows * steps


def forward_passes(queries: int, steps: int, compute: TestTimeCompute = TestTimeCompute()) -> int:
    """Forward passes that `queries` queries cost at `steps` supervision steps: queries x trajectories x
    steps; early exit can only lower it (`ForwardPasses` counts what ran)."""
    return queries * compute.trajectories * steps


def recursions_per_pass(config: ModelConfig) -> int:
    """Applications of the network f in one forward pass: T cycles of n z-updates and one y-update."""
    return config.T * (config.n + 1)


@torch.no_grad()
def run_steps(
    model: TRM, table: RowSource, inputs: torch.Tensor, puzzle_ids: torch.Tensor, steps: int,
    *, noise: LatentNoise | None = None, early_exit: bool = False,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """`steps` supervision steps from (y_init, z_init), no halting; past the trained halt_max_steps the
    recursion simply continues. `noise` perturbs every latent update (`LatentNoise`). With `early_exit`
    the loop stops after the step by which every row has halted (q_halt logit > 0 at some step), so
    fewer than `steps` steps may come back.

    Returns predicted tokens (steps run, B, L), sigmoid(q_halt) (steps run, B) and the last step's
    log-probabilities (B, L, vocab) under stablemax, the distribution the model is trained on.
    """
    if steps < 1:
        raise ValueError(f"run_steps needs steps >= 1, not {steps}")
    # dense copies of the broadcast start: a compiled model then sees the same strides at every step
    y, z = (start.contiguous() for start in model.initial_state(inputs.shape[0], inputs.device))
    rows = table.rows(puzzle_ids, requires_grad=False)
    predictions, confidences = [], []
    halted = torch.zeros(inputs.shape[0], dtype=torch.bool, device=inputs.device)
    for _ in range(steps):
        out = model(y, z, inputs, rows) if noise is None else model(y, z, inputs, rows, noise=noise)
        y, z = out.y, out.z
        predictions.append(out.logits.argmax(-1).to(torch.uint8))
        confidences.append(torch.sigmoid(out.q_halt))
        if early_exit:  # sigmoid(q_halt) > 0.5 (halt logit > 0): the model's rule, as first_halt reads it
            halted |= confidences[-1] > HALT_THRESHOLD
            if bool(halted.all()):
                break
    return torch.stack(predictions), torch.stack(confidences), log_stablemax(out.logits.float())


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


def query_key(query: Query) -> tuple[str, int, int]:
    """What names a query for its noise: task, test input, augmentation."""
    return query.task_id, query.test_index, query.version.k


def predict_queries(
    model: TRM, table: RowSource, items: Sequence[Query], batch_size: int, steps: int, device: torch.device,
    checkpoint: str = "", poe_top_n: int = 0, progress: bool = False, pad_to: int = 0,
    *, compute: TestTimeCompute = TestTimeCompute(), spent: ForwardPasses | None = None,
) -> tuple[list[Candidate], dict[tuple[str, int, bytes], list[float]]]:
    """Candidates of every step run for every query and trajectory (grids in the original frame), and,
    when `poe_top_n` > 0, the log-probabilities of each test input's top candidates under every
    augmentation and trajectory (product of experts). `items` must hold whole test inputs (all their
    versions). A batch holds `batch_size` rows, a row being one trajectory of one query (`compute`);
    `spent` (when given) counts the forward passes run.

    `pad_to` (a compiled model): every batch shorter than that is padded to it with copies of its first
    row, whose outputs are dropped, so that the model sees one batch shape and compiles once. Give
    the same value to every call of a run: min(batch_size, the most rows (queries x trajectories) of any call)."""
    canvas = int(round(len(items[0].inputs) ** 0.5)) if items else 0
    rows = [(query, trajectory) for query in items for trajectory in range(compute.trajectories)]
    candidates: list[Candidate] = []
    last_logprobs: list[torch.Tensor] = []
    for start in tqdm(range(0, len(rows), batch_size), disable=not progress, desc="predict", unit="batch"):
        batch = rows[start : start + batch_size]
        padded = batch + [batch[0]] * (pad_to - len(batch)) if pad_to > len(batch) else batch
        inputs = torch.from_numpy(np.stack([q.inputs for q, _ in padded])).to(device)
        ids = torch.tensor([q.version.puzzle_id for q, _ in padded], device=device)
        noise = compute.latent_noise([(query_key(q), trajectory) for q, trajectory in padded], device)
        tokens, confidences, logprobs = run_steps(model, table, inputs, ids, steps, noise=noise, early_exit=compute.early_exit)
        tokens, confidences = tokens.cpu().numpy(), confidences.float().cpu().numpy()
        if spent is not None:
            spent.add(len(batch), len(tokens))
        if poe_top_n:
            last_logprobs.extend(logprobs[: len(batch)].to(torch.float16).cpu())
        for step in range(len(tokens)):
            for i, (query, trajectory) in enumerate(batch):
                grid = decode_grid(tokens[step, i], canvas)
                if grid is not None:
                    grid = query.version.augmentation.invert(grid)
                candidates.append(Candidate(query.task_id, query.test_index, query.version.k, step + 1,
                                            float(confidences[step, i]), grid, checkpoint, trajectory))
    experts = [query for query, _ in rows]  # one distribution per row: each trajectory is an expert too
    log_probs = expert_log_probs(candidates, experts, last_logprobs, canvas, poe_top_n) if poe_top_n else {}
    return candidates, log_probs


def expert_log_probs(
    candidates: list[Candidate], items: Sequence[Query], logprobs: list[torch.Tensor], canvas: int, top_n: int
) -> dict[tuple[str, int, bytes], list[float]]:
    """Score each test input's top-N reference-vote grids under every augmentation's distribution
    (`items[i]` is the query of `logprobs[i]`): the grid is mapped into that augmentation's frame,
    tokenised, and its token log-probs summed."""
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
    rank: int = 0, world: int = 1, *, compute: TestTimeCompute = TestTimeCompute(), spent: ForwardPasses | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sudoku / Maze: (CSV row indices, predicted tokens, labels) of this process's batches. The
    prediction is the last step run; with several trajectories (`compute`, noise keyed by the CSV row),
    that of the trajectory whose last step has the highest q_halt, as PTRM selects (ties: the lowest
    trajectory). `spent` (when given) counts the forward passes run."""
    indices, predictions, labels = [], [], []
    for b, (index, examples) in enumerate(test_source.test_examples(batch_size)):
        if b % world != rank:
            continue
        indices.append(index)
        predictions.append(_select_trajectories(model, table, index, examples, batch_size, steps, device, compute, spent))
        labels.append(examples.labels)
    if not indices:
        return np.zeros(0, np.int64), np.zeros((0, 0), np.uint8), np.zeros((0, 0), np.int64)
    return np.concatenate(indices), np.concatenate(predictions), np.concatenate(labels)


def _select_trajectories(
    model: TRM, table: RowSource, index: np.ndarray, examples: Any, batch_size: int, steps: int,
    device: torch.device, compute: TestTimeCompute, spent: ForwardPasses | None,
) -> np.ndarray:
    """Each puzzle's last-step tokens from its trajectory of highest last-step q_halt, running the
    puzzles x trajectories rows `batch_size` at a time."""
    rows = [(i, trajectory) for i in range(len(index)) for trajectory in range(compute.trajectories)]
    last_tokens, last_q = [], []
    for start in range(0, len(rows), batch_size):
        batch = rows[start : start + batch_size]
        puzzles = [i for i, _ in batch]
        inputs = torch.from_numpy(examples.inputs[puzzles]).to(device)
        ids = torch.from_numpy(examples.puzzle_ids[puzzles]).to(device)
        noise = compute.latent_noise([((int(index[i]),), trajectory) for i, trajectory in batch], device)
        tokens, confidences, _ = run_steps(model, table, inputs, ids, steps, noise=noise, early_exit=compute.early_exit)
        if spent is not None:
            spent.add(len(batch), len(tokens))
        last_tokens.append(tokens[-1].cpu().numpy())
        last_q.append(confidences[-1].float().cpu().numpy())
    tokens = np.concatenate(last_tokens).reshape(len(index), compute.trajectories, -1)
    chosen = np.concatenate(last_q).reshape(len(index), compute.trajectories).argmax(axis=1)  # first of equals
    return tokens[np.arange(len(index)), chosen]
