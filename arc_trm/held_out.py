"""Evaluation during training (`arc_trm.train`, every `run.eval_every` steps and at the end): the
held-out ARC test inputs (pass@1/2 of the default vote, halt_weighted, over `run.eval_aug` augmentations
and every supervision step, exact accuracy of the identity's last step; `eval/` for the evaluation
tasks, `eval_training/` for the training tasks held out by `data.hold_out_training_tests`) or the Sudoku / Maze test puzzles (exact and cell accuracy),
with the inference of `arc_trm.inference`. Each figure also on the validation half (`arc_trm.splits.half`
of the task id, or of a test puzzle's row number), as `.../validation_...`; with two ARC groups, also
both groups together as `eval_both/...`, whose validation figure is what `run.keep_best` selects by."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.utils import gather_object

from arc_trm.candidates import Candidate, CandidateTable
from arc_trm.config import Config
from arc_trm.data.sources import build_test_source
from arc_trm.exported import DataInfo, PuzzleIndex
from arc_trm.grids import Task
from arc_trm.inference import predict_puzzles, predict_queries, queries, shard
from arc_trm.model.puzzle_embedding import PuzzleEmbedding
from arc_trm.model.trm import TRM
from arc_trm.splits import half
from arc_trm.tokens import IGNORE_LABEL
from arc_trm.vote import DEFAULT_POLICY, pass_at_k, vote


def eval_batch_size(config: Config, accelerator: Accelerator) -> int:
    """Evaluation during training uses the training batch per process."""
    return max(1, config.train.global_batch // accelerator.num_processes)


def evaluate_puzzles(model: TRM, table: PuzzleEmbedding, test_source: Any, config: Config, accelerator: Accelerator) -> dict[str, float]:
    """Sudoku / Maze: exact and cell accuracy of the last step on the test puzzles (`data.max_test`)."""
    batch_size = eval_batch_size(config, accelerator)
    if table.sharded:  # batches differ between processes: every row on every process (Sudoku / Maze have one)
        table = table.subset(torch.arange(table.num_ids, device=accelerator.device))
    indices, predicted, labels = predict_puzzles(
        model, table, test_source, batch_size, config.model.halt_max_steps, accelerator.device,
        accelerator.process_index, accelerator.num_processes,
    )
    supervised = labels != IGNORE_LABEL
    correct = (predicted == labels) | ~supervised
    solved = correct.all(axis=1)
    validation = np.array([half(str(i)) == "validation" for i in indices.tolist()], dtype=bool)
    sums = torch.tensor(
        [float(solved.sum()), float((correct & supervised).sum()), float(supervised.sum()), float(len(labels)),
         float(solved[validation].sum()), float(validation.sum())],
        dtype=torch.float64, device=accelerator.device,
    )
    exact, cells, total_cells, n, exact_validation, n_validation = accelerator.reduce(sums, reduction="sum").tolist()
    return {"eval/exact_accuracy": exact / max(n, 1), "eval/cell_accuracy": cells / max(total_cells, 1),
            "eval/validation_exact_accuracy": exact_validation / max(n_validation, 1)}


def evaluate_held_out(
    model: TRM, table: PuzzleEmbedding, source: Any, config: Config, accelerator: Accelerator
) -> dict[str, float]:
    """ARC: held-out test inputs with `run.eval_aug` augmentations: pass@1/2 of the reference vote and
    the exact accuracy of the identity augmentation's last step. Sudoku / Maze: test-set accuracy."""
    was_training = model.training
    model.eval()
    try:
        test_source = build_test_source(config.data, model.config.seq_len)  # None: the held-out tasks are in `source`
        if test_source is not None:
            return evaluate_puzzles(model, table, test_source, config, accelerator)
        return evaluate_arc(model, table, source, config, accelerator)
    finally:
        model.train(was_training)


def evaluate_arc(model: TRM, table: PuzzleEmbedding, source: Any, config: Config, accelerator: Accelerator) -> dict[str, float]:
    held_out = [task for task in source.tasks if task.id in source.held_out and task.has_solutions]
    if not held_out:
        return {}
    index = PuzzleIndex.from_data(DataInfo.from_json(source.metadata()))
    items = list(queries(held_out, index, max_aug=config.run.eval_aug - 1))
    mine = shard(items, accelerator.process_index, accelerator.num_processes)
    batch_size = eval_batch_size(config, accelerator)
    if table.sharded:  # batches differ between processes: the rows of every query on every process
        table = table.subset(torch.tensor([q.version.puzzle_id for q in items], device=accelerator.device))
    candidates, _ = predict_queries(
        model, table, mine, batch_size, config.model.halt_max_steps, accelerator.device,
        pad_to=min(batch_size, len(items)) if config.train.compile else 0,
    )
    candidates = gather_object(candidates) if accelerator.num_processes > 1 else candidates
    training = getattr(source, "held_out_training", frozenset())
    groups = {"eval": [t for t in held_out if t.id not in training], "eval_training": [t for t in held_out if t.id in training]}
    if all(groups.values()):  # both together: their validation halves give a finer figure to select by than either
        groups["eval_both"] = held_out
    results = {}
    for prefix, group in groups.items():
        validation = [t for t in group if half(t.id) == "validation"]
        for tasks, name in ((group, f"{prefix}/"), (validation, f"{prefix}/validation_")):
            if tasks:
                ids = {t.id for t in tasks}
                mine = [c for c in candidates if c.task_id in ids]
                results.update({name + k: v for k, v in held_out_metrics(mine, tasks, config.model.halt_max_steps).items()})
    return results


def held_out_metrics(candidates: list[Candidate], held_out: Sequence[Task], last_step: int) -> dict[str, float]:
    """pass@1 and pass@2 of the default vote (what `arc_trm.predict` would submit), and the exact
    accuracy of the identity augmentation at the last step."""
    passes = pass_at_k(vote(CandidateTable.from_candidates(candidates), DEFAULT_POLICY), held_out, ks=(1, 2))
    truths = {(t.id, i): p.output for t in held_out for i, p in enumerate(t.test)}
    identity = [c for c in candidates if c.augmentation == 0 and c.step == last_step]
    exact = sum(c.grid is not None and np.array_equal(c.grid, truths[(c.task_id, c.test_index)]) for c in identity)
    return {"pass@1": passes[1], "pass@2": passes[2], "exact_accuracy": exact / max(len(identity), 1)}
