"""Voting: candidates -> distinct grids ranked best-first per (task, test input), and pass@K.

    rankings = vote(load_candidates("out/candidates.parquet"))            # reference policy
    rankings = vote(table, "poe", log_probs=load_log_probs("out/log_probs.parquet"), top_n=10)
    python -m arc_trm.vote out/candidates.parquet --split arc-agi-1/evaluation
    python -m arc_trm.vote out/candidates.parquet --split arc-agi-1/evaluation --log-probs out/log_probs.parquet

Rankings are keyed by (task_id, test_index), never by the test input's content: the reference keys
by a hash of the input grid, which merges two identical test inputs of one task. Every (task, test
input) present in the table has a key; its list may be empty when nothing decoded. Candidates
without a grid never rank. Each noisy trajectory of a version (test-time compute, `Candidate.trajectory`)
counts as one more augmentation wherever a policy takes one candidate per augmentation. Policies
(the `POLICIES` registry; details in docs/prediction-and-voting.md, section Voting):

- `reference`: the last step of each augmentation votes; rank by (votes, mean q_halt), then first
  appearance in the table (the reference's insertion order).
- `halt_weighted`: every step votes with weight q_halt; rank by (sum of q, votes, mean q, first).
- `first_halt`: per augmentation the first step with q_halt > 0.5, else its last step; then as reference.
- `q_select`: the halting head as verifier (PTRM, arXiv 2605.19943): rank by the highest q_halt any
  candidate of the grid reached, then (votes, mean q, first).
- `poe`: product of experts (ARChitects, arXiv 2505.07859): the reference pool rescored by the sum
  of the grid's log-probabilities under every augmentation.

A table holding several checkpoints is refused unless `pool_checkpoints=True`: the reference pools
every evaluated checkpoint silently (TRM issue #35), which makes a checkpoint's score an ensemble's.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from arc_trm.candidates import (
    NO_GRID,
    CandidateTable,
    LogProbs,
    grid_from_key,
    grid_key,
    load_candidates,
    load_log_probs,
)
from arc_trm.errors import ArgumentParser, ConfigError, DataError, UserError, exit_on_user_error, nonempty_path
from arc_trm.grids import Grid, Task
from arc_trm.io import refuse_output_on_input
from arc_trm.splits import resolve, split_inputs

DEFAULT_KS = (1, 2, 5, 10, 100, 1000)
HALT_THRESHOLD = 0.5  # sigmoid(q_halt) > 0.5 <=> halt logit > 0, the model's own halting decision


@dataclass(frozen=True, eq=False)
class Ranked:
    """One distinct grid for a test input: its policy score, how many candidates voted for it, and
    their mean sigmoid(q_halt)."""

    grid: Grid
    score: float
    votes: int
    mean_q: float

    @property
    def key(self) -> bytes:
        return grid_key(self.grid)


Rankings = dict[tuple[str, int], list[Ranked]]


class CandidateError(UserError, ValueError):
    """The candidates cannot be voted as given (mixed checkpoints, duplicate rows)."""


# ---------------------------------------------------------------------------------------------
# Row selection and tallying, shared by the policies


def _sort_and_group(columns: Sequence[np.ndarray], group_by: int) -> tuple[np.ndarray, np.ndarray]:
    """Sort rows by `columns` (first = most significant); return the order and, for each sorted row,
    the id of its group, a group being the rows equal in the first `group_by` columns."""
    order = np.lexsort(tuple(reversed(columns)))
    new_group = np.zeros(len(order), dtype=bool)
    new_group[:1] = True
    for column in columns[:group_by]:
        ordered = column[order]
        new_group[1:] |= ordered[1:] != ordered[:-1]
    return order, np.cumsum(new_group) - 1


def _group_starts(group: np.ndarray) -> np.ndarray:
    """Positions of the first element of each group in a sorted group-id array."""
    return np.flatnonzero(np.r_[True, group[1:] != group[:-1]]) if len(group) else group


def _group_ends(group: np.ndarray) -> np.ndarray:
    """Positions of the last element of each group in a sorted group-id array."""
    return np.flatnonzero(np.r_[group[1:] != group[:-1], True]) if len(group) else group


def _augmentation_steps(table: CandidateTable) -> tuple[np.ndarray, np.ndarray]:
    """Rows sorted by augmentation run then step, and each sorted row's augmentation-run id.

    An augmentation run is one (checkpoint, task, test input, augmentation, trajectory): when checkpoints
    are pooled, each one's run votes on its own, and each noisy trajectory of a version (test-time
    compute) votes as another augmentation would.
    """
    columns = [table.checkpoint, table.task, table.test_index, table.augmentation, table.trajectory, table.step]
    return _sort_and_group(columns, group_by=5)


def last_step_rows(table: CandidateTable) -> np.ndarray:
    """Row indices (ascending) of the highest step of each augmentation run."""
    order, run = _augmentation_steps(table)
    return np.sort(order[_group_ends(run)])


def first_halt_rows(table: CandidateTable, threshold: float = HALT_THRESHOLD) -> np.ndarray:
    """Row indices (ascending) of the first step with q_halt > threshold of each augmentation run,
    or of its last step when no step halts."""
    order, run = _augmentation_steps(table)
    chosen = order[_group_ends(run)]
    halted = np.flatnonzero(table.q_halt[order] > threshold)
    runs_that_halt, first = np.unique(run[halted], return_index=True)  # sorted: first = earliest step
    chosen[runs_that_halt] = order[halted[first]]
    return np.sort(chosen)


def tally(table: CandidateTable, rows: np.ndarray, weights: np.ndarray | None = None, highest: bool = False) -> Rankings:
    """Group the candidates at `rows` by (task, test input, grid) and rank each input's grids.

    Score = number of votes, or the sum of `weights` (per table row) when given, or their maximum with
    `highest`. Order: score, votes, mean q_halt (all descending), then first appearance in the table.
    Rows without a grid are dropped.
    """
    rankings: Rankings = {key: [] for key in _inputs(table)}
    rows = rows[table.grid[rows] != NO_GRID]
    order, group = _sort_and_group([table.task[rows], table.test_index[rows], table.grid[rows], rows], group_by=3)
    rows, starts = rows[order], _group_starts(group)
    votes = np.bincount(group, minlength=len(starts))
    q_mean = np.bincount(group, weights=table.q_halt[rows], minlength=len(starts)) / np.maximum(votes, 1)
    if weights is None:
        score = votes.astype(np.float64)
    elif highest:
        score = np.maximum.reduceat(weights[rows], starts) if len(starts) else np.zeros(0)
    else:
        score = np.bincount(group, weights=weights[rows], minlength=len(starts))
    first = rows[starts]  # rows are sorted by row index within a group, so this is its first appearance
    best_first = np.lexsort((first, -q_mean, -votes, -score, table.test_index[first], table.task[first]))
    for g in best_first.tolist():
        row = first[g]
        key = (table.task_ids[table.task[row]], int(table.test_index[row]))
        grid = grid_from_key(table.grids[table.grid[row]])
        rankings[key].append(Ranked(grid, float(score[g]), int(votes[g]), float(q_mean[g])))
    return rankings


def _inputs(table: CandidateTable) -> list[tuple[str, int]]:
    """Every (task_id, test_index) in the table, ordered by task code then index."""
    order, group = _sort_and_group([table.task, table.test_index], group_by=2)
    rows = order[_group_starts(group)]
    return [(table.task_ids[t], int(i)) for t, i in zip(table.task[rows], table.test_index[rows])]


# ---------------------------------------------------------------------------------------------
# Policies: (table, **options) -> Rankings, registered in POLICIES


def reference(table: CandidateTable) -> Rankings:
    """Majority vote of the last step of each augmentation; ties by mean q_halt, then first appearance."""
    return tally(table, last_step_rows(table))


def halt_weighted(table: CandidateTable) -> Rankings:
    """Every step of every augmentation votes with weight q_halt."""
    return tally(table, np.arange(len(table)), weights=table.q_halt)


def first_halt(table: CandidateTable, threshold: float = HALT_THRESHOLD) -> Rankings:
    """Majority vote of each augmentation's first halting step (its last step when none halts)."""
    return tally(table, first_halt_rows(table, threshold))


def q_select(table: CandidateTable) -> Rankings:
    """The halting head as verifier (PTRM, arXiv 2605.19943): each grid scores the highest q_halt any of
    its candidates reached (every step, augmentation and trajectory); ties by votes, mean q_halt, first
    appearance."""
    return tally(table, np.arange(len(table)), weights=table.q_halt, highest=True)


def poe(table: CandidateTable, log_probs: LogProbs | None = None, top_n: int | None = None) -> Rankings:
    """Product of experts: the reference pool (its `top_n` grids per input, all when None) rescored
    by the grid's log-probabilities under each augmentation.

    Score = sum of the log-probs; when the grids of one test input have different numbers of
    log-probs, every grid of that input is scored by the mean instead, so that a grid is not
    penalised for being rescored under more augmentations. Grids without log-probs get -inf and
    follow the scored ones. Ties keep the reference order (votes, mean q_halt, first appearance).
    """
    if log_probs is None:
        raise ValueError("the 'poe' policy needs log_probs: (task_id, test_index, grid_key) -> log-probabilities")
    pool = reference(table)
    return {key: _rescore(key, ranked[:top_n], log_probs) for key, ranked in pool.items()}


def _rescore(key: tuple[str, int], ranked: list[Ranked], log_probs: LogProbs) -> list[Ranked]:
    found = [np.asarray(log_probs.get((*key, r.key), ()), dtype=np.float64) for r in ranked]
    reduce = np.sum if len({len(v) for v in found if len(v)}) <= 1 else np.mean
    scored = [replace(r, score=float(reduce(v)) if len(v) else -math.inf) for r, v in zip(ranked, found)]
    return sorted(scored, key=lambda r: -r.score)  # stable: ties keep the reference order


POLICIES: dict[str, Callable[..., Rankings]] = {
    "reference": reference,
    "halt_weighted": halt_weighted,
    "first_halt": first_halt,
    "q_select": q_select,
    "poe": poe,
}
DEFAULT_POLICY = "halt_weighted"
"""The policy of predict, submissions.make and in-training evaluation: the best measured with every
augmentation and every supervision step (docs/benchmarks.md#accuracy-on-a-cpu)."""
COMPARED_BY_DEFAULT = ("reference", "halt_weighted", "first_halt", "poe")
"""What `compare_policies` (and `python -m arc_trm.vote`) ranks unless told: `q_select` is made for
candidates of several noisy trajectories, so it is compared when named (`--policies ...,q_select`)."""


def vote(table: CandidateTable, policy: str = DEFAULT_POLICY, *, pool_checkpoints: bool = False, **options) -> Rankings:
    """Rank each test input's distinct grids, best first, with a policy from `POLICIES`.

    `options` go to the policy (`poe`: log_probs, top_n; `first_halt`: threshold). Raises
    `CandidateError` (a ValueError) for several checkpoints unless `pool_checkpoints`, and for
    duplicate rows (the same checkpoint, task, test input, augmentation and step twice).
    """
    if policy not in POLICIES:
        raise ConfigError(f"unknown voting policy '{policy}' (known: {', '.join(POLICIES)})")
    check_candidates(table, pool_checkpoints)
    return POLICIES[policy](table, **options)


def check_candidates(table: CandidateTable, pool_checkpoints: bool = False) -> None:
    """Refuse tables that would vote wrongly: mixed checkpoints (unless pooled) and duplicate rows."""
    used = np.unique(table.checkpoint)
    if len(used) > 1 and not pool_checkpoints:
        names = ", ".join(repr(table.checkpoints[c]) for c in used[:4])
        raise CandidateError(
            f"candidates come from {len(used)} checkpoints ({names}...); vote one checkpoint at a time "
            "or pass pool_checkpoints=True (--pool-checkpoints) to ensemble them"
        )
    order, group = _sort_and_group(
        [table.checkpoint, table.task, table.test_index, table.augmentation, table.trajectory, table.step], group_by=6
    )
    if len(group) and group[-1] + 1 < len(group):
        row = order[np.flatnonzero(group[1:] == group[:-1])[0]]
        c = table.row(int(row))
        trajectory = f" trajectory {c.trajectory}" if c.trajectory else ""
        raise CandidateError(
            f"duplicate candidate: task {c.task_id} test {c.test_index} augmentation {c.augmentation}{trajectory} "
            f"step {c.step} checkpoint {c.checkpoint!r} appears more than once (tables concatenated twice?)"
        )


def poe_candidates(rankings: Rankings, top_n: int | None = None) -> list[tuple[str, int, Grid]]:
    """The grids the predictor must rescore for `poe`: the `top_n` (all when None) of each input of
    the reference `rankings`, as (task_id, test_index, grid)."""
    return [(task, test, r.grid) for (task, test), ranked in rankings.items() for r in ranked[:top_n]]


# ---------------------------------------------------------------------------------------------
# Measuring policies


def rank_of(ranked: Sequence[Ranked], truth: Grid) -> int | None:
    """0-based position of `truth` in `ranked`, None when absent."""
    key = grid_key(truth)
    return next((i for i, r in enumerate(ranked) if r.key == key), None)


def task_pass_at_k(rankings: Rankings, tasks: Sequence[Task], k: int) -> dict[str, float]:
    """Each task's pass@K score: the fraction of its test inputs whose truth is among their first K grids
    (a task without rankings scores 0)."""
    scores = {}
    for task in tasks:
        if not task.has_solutions:
            raise DataError(f"task {task.id}: no test outputs; pass@K needs the solutions")
        ranks = [rank_of(rankings.get((task.id, i), []), pair.output) for i, pair in enumerate(task.test)]
        scores[task.id] = float(np.mean([rank is not None and rank < k for rank in ranks]))
    return scores


def pass_at_k(rankings: Rankings, tasks: Sequence[Task], ks: Iterable[int] = DEFAULT_KS) -> dict[int, float]:
    """Fraction solved within the top K, as the reference: a test input is solved when its truth is
    among its first K grids; a task scores its fraction of solved inputs; the result is the mean over
    `tasks` (every task counts, with or without rankings)."""
    if not tasks:
        raise ValueError("pass_at_k needs at least one task")
    return {k: float(np.mean(list(task_pass_at_k(rankings, tasks, k).values()))) for k in ks}


def compare_policies(
    table: CandidateTable,
    tasks: Sequence[Task],
    policies: Sequence[str] | None = None,
    log_probs: LogProbs | None = None,
    ks: Iterable[int] = DEFAULT_KS,
    pool_checkpoints: bool = False,
    source: str = "candidates",
) -> list[dict]:
    """pass@K of each policy: rows `{"policy": name, "pass@1": float, ...}`.

    Default policies (`COMPARED_BY_DEFAULT`): reference, halt_weighted, first_halt, and poe when
    `log_probs` is given. `source` names the candidates (their file) in the errors about tasks the split lacks.
    """
    if policies is None:
        policies = [name for name in COMPARED_BY_DEFAULT if name != "poe" or log_probs is not None]
    if "poe" in policies and log_probs is None:
        raise ConfigError("policy 'poe' needs log-probabilities (--log-probs FILE)")
    _check_tasks_known(table, tasks, source)
    try:
        check_candidates(table, pool_checkpoints)
    except CandidateError as error:
        raise CandidateError(f"{source}: {error}") from None
    ks = tuple(ks)
    rows = []
    for name in policies:
        options = {"log_probs": log_probs} if name == "poe" else {}
        rankings = vote(table, name, pool_checkpoints=pool_checkpoints, **options)
        rows.append({"policy": name, **{f"pass@{k}": v for k, v in pass_at_k(rankings, tasks, ks).items()}})
    return rows


def _check_tasks_known(table: CandidateTable, tasks: Sequence[Task], source: str) -> None:
    """Candidates for tasks outside the split mean the wrong split (or file) was given."""
    known = {task.id: len(task.test) for task in tasks}
    unknown = sorted({table.task_ids[t] for t in np.unique(table.task)} - set(known))
    if unknown:
        raise DataError(f"{source}: names {len(unknown)} task(s) not in the split, e.g. {unknown[0]}")
    inputs = np.array([known[table.task_ids[t]] for t in table.task], dtype=np.int64)
    outside = np.flatnonzero((table.test_index < 0) | (table.test_index >= inputs))
    if outside.size:
        row = int(outside[0])
        raise DataError(f"{source}: names test input {int(table.test_index[row])} of task {table.task_ids[table.task[row]]}, "
                        f"which has {inputs[row]} test input(s)")


def format_comparison(rows: Sequence[dict]) -> str:
    """A text table: one line per policy, pass@K in percent."""
    if not rows:
        return "(no policies)"
    columns = [name for name in rows[0] if name != "policy"]
    width = max(len("policy"), *(len(row["policy"]) for row in rows))
    lines = ["policy".ljust(width) + "".join(f"{c:>10}" for c in columns)]
    for row in rows:
        lines.append(row["policy"].ljust(width) + "".join(f"{100 * row[c]:>9.2f}%" for c in columns))
    return "\n".join(lines)


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = ArgumentParser(
        prog="python -m arc_trm.vote", description="Compare voting policies by pass@K on a split with solutions."
    )
    parser.add_argument("candidates", help="candidates Parquet file written by arc_trm.predict")
    parser.add_argument("--split", required=True, help="split name (e.g. arc-agi-1/evaluation) or task path")
    parser.add_argument("--solutions", default=None,
                        help="Kaggle solutions file for a --split that is a challenges file (refused with any other --split)")
    parser.add_argument("--policies", default=None, help=f"comma-separated, from {', '.join(POLICIES)}")
    parser.add_argument("--log-probs", default=None, help="log-probabilities Parquet file, enables 'poe'")
    parser.add_argument("--pool-checkpoints", action="store_true", help="vote across several checkpoints")
    parser.add_argument("--render", default=None, metavar="DIR", type=nonempty_path,
                        help="write DIR/<task>_<test>.png: each test input with its top candidates under the first policy")
    parser.add_argument("--top", type=int, default=6, help="candidates per picture with --render")
    return parser.parse_args(argv)


def render_rankings(rankings: Rankings, tasks: Sequence[Task], folder: str, top: int, policy: str) -> int:
    """One PNG per test input: the input, its truth when known, and the `top` ranked grids with their votes."""
    from arc_trm.render import render_candidates  # matplotlib: loaded only when pictures are asked for

    by_id = {task.id: task for task in tasks}
    written = 0
    for (task_id, test_index), ranked in sorted(rankings.items()):
        shown = [(r.grid, r.votes, f"#{rank + 1} {policy}") for rank, r in enumerate(ranked[:top])]
        render_candidates(by_id[task_id], test_index, shown, Path(folder) / f"{task_id}_{test_index}.png")
        written += 1
    return written


@exit_on_user_error
def main(argv: Sequence[str] | None = None) -> None:
    args = _parse_args(argv)
    if args.top < 1:
        raise ConfigError(f"--top {args.top}: must be an integer >= 1")
    policies = None if args.policies is None else list(dict.fromkeys(p.strip() for p in args.policies.split(",") if p.strip()))
    if policies == []:
        raise ConfigError(f"--policies {args.policies!r}: names no policy (known: {', '.join(POLICIES)})")
    for name in policies or ():
        if name not in POLICIES:
            raise ConfigError(f"unknown voting policy '{name}' (known: {', '.join(POLICIES)})")
    if args.render:
        inputs = {"the candidates file": args.candidates, "the log-probabilities file": args.log_probs}
        refuse_output_on_input(args.render, {**inputs, **split_inputs(args.split, args.solutions)}, option="--render")
    table = load_candidates(args.candidates)
    tasks = resolve(args.split, args.solutions)
    log_probs = None if args.log_probs is None else load_log_probs(args.log_probs)
    rows = compare_policies(table, tasks, policies, log_probs, pool_checkpoints=args.pool_checkpoints, source=args.candidates)
    print(f"{len(table)} candidates, {len(tasks)} tasks")
    print(format_comparison(rows))
    if args.render:
        policy = (policies or ["reference"])[0]
        options = {"log_probs": log_probs} if policy == "poe" else {}
        rankings = vote(table, policy, pool_checkpoints=args.pool_checkpoints, **options)
        count = render_rankings(rankings, tasks, args.render, args.top, policy)
        print(f"wrote {count} pictures to {args.render}")


if __name__ == "__main__":
    main()
