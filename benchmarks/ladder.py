"""The accuracy ladder's protocol, as pure functions over per-task scores: which half a held-out task
belongs to, the choice of a setting on the validation half, means and spreads over seeds, and paired
bootstrap intervals. `accuracy.py` runs the chain and reads its figures through these.

A score table maps (setting, policy) -> seed -> task id -> the task's pass@K score (the fraction of its
test outputs solved within K attempts, as ARC Prize scores a task). A group's figure is the mean over
its tasks; over seeds, the mean of the seeds' figures.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Hashable, Iterable, Mapping, Sequence

import numpy as np

from arc_trm.splits import HALVES, half

BOOTSTRAP_SAMPLES = 10_000
CONFIDENCE = 0.95

Scores = Mapping[int, Mapping[str, float]]
"""seed -> task id -> score."""


def split_halves(task_ids: Iterable[str]) -> dict[str, list[str]]:
    """The ids of each half, sorted."""
    halves: dict[str, list[str]] = {name: [] for name in HALVES}
    for task_id in sorted(task_ids):
        halves[half(task_id)].append(task_id)
    return halves


def figure(scores: Scores, task_ids: Sequence[str]) -> list[float]:
    """Each seed's mean score over `task_ids` (seeds in ascending order); [] without tasks."""
    if not task_ids:
        return []
    return [sum(scores[seed][t] for t in task_ids) / len(task_ids) for seed in sorted(scores)]


@dataclass(frozen=True)
class Spread:
    """A figure over seeds: the mean, the lowest and highest seed, and a bootstrap interval over tasks."""

    mean: float
    low: float
    high: float
    seeds: int
    interval: tuple[float, float] | None = None

    def cell(self) -> str:
        """'23.1% (seeds 15.4-30.8%, 95% CI 9.1-38.5%)' in percent."""
        text = f"{100 * self.mean:.1f}%"
        notes = []
        if self.seeds > 1:
            notes.append(f"seeds {100 * self.low:.1f}-{100 * self.high:.1f}%")
        if self.interval is not None:
            notes.append(f"{CONFIDENCE:.0%} CI {100 * self.interval[0]:.1f}-{100 * self.interval[1]:.1f}%")
        return text + (f" ({', '.join(notes)})" if notes else "")


def task_means(scores: Scores, task_ids: Sequence[str]) -> np.ndarray:
    """Each task's score averaged over seeds, in `task_ids` order."""
    return np.array([statistics.fmean(scores[seed][t] for seed in scores) for t in task_ids], dtype=np.float64)


def bootstrap_interval(values: np.ndarray, samples: int = BOOTSTRAP_SAMPLES, seed: int = 0) -> tuple[float, float]:
    """Percentile interval of the mean of `values` (one per task), tasks resampled with replacement."""
    if len(values) == 0:
        return (float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), size=(samples, len(values)))].mean(axis=1)
    tail = (1 - CONFIDENCE) / 2
    return float(np.quantile(means, tail)), float(np.quantile(means, 1 - tail))


def spread(scores: Scores, task_ids: Sequence[str]) -> Spread | None:
    """The figure over `task_ids`: mean and range over seeds, bootstrap interval over tasks; None without tasks."""
    per_seed = figure(scores, task_ids)
    if not per_seed:
        return None
    return Spread(statistics.fmean(per_seed), min(per_seed), max(per_seed), len(per_seed),
                  bootstrap_interval(task_means(scores, task_ids)))


def choose(table: Mapping[Hashable, Scores], task_ids: Sequence[str], cost: Mapping[Hashable, float]) -> Hashable:
    """The cell of `table` with the highest mean score over `task_ids` (the validation half), the
    cheaper one (`cost`, e.g. candidates) on a tie, then the first in table order."""
    order = list(table)
    return max(order, key=lambda cell: (statistics.fmean(figure(table[cell], task_ids) or [0.0]), -cost[cell], -order.index(cell)))


@dataclass(frozen=True)
class Difference:
    """B minus A on the same tasks and seeds: the mean difference and its paired bootstrap interval."""

    a: float
    b: float
    difference: float
    interval: tuple[float, float]
    tasks: int
    seeds: int
    wins: int
    losses: int

    def points(self) -> str:
        """B - A and its interval, in points: "+1.0 points (+0.0 to +2.4)"."""
        return f"{100 * self.difference:+.1f} points ({100 * self.interval[0]:+.1f} to {100 * self.interval[1]:+.1f})"

    @property
    def shown(self) -> bool:
        """Whether the interval excludes 0: only then is one arm said to beat the other."""
        return self.interval[0] > 0 or self.interval[1] < 0

    def verdict(self) -> str:
        if not self.shown:
            return "no difference shown (the interval holds 0)"
        return "B beats A" if self.interval[0] > 0 else "A beats B"

    def row(self, name: str) -> str:
        """One row of a compare table: name, tasks, A, B, B - A, better / worse, verdict."""
        return (f"| {name} | {self.tasks} | {100 * self.a:.1f}% | {100 * self.b:.1f}% | {self.points()} | "
                f"{self.wins} / {self.losses} | {self.verdict()} |")


def paired_difference(a: Scores, b: Scores, task_ids: Sequence[str]) -> Difference:
    """Per-task paired bootstrap of B - A: each task's seed-averaged scores, differenced, tasks resampled
    together, so what both arms solve or both miss adds no noise."""
    if sorted(a) != sorted(b):
        raise ValueError(f"the arms ran different seeds: {sorted(a)} and {sorted(b)}")
    per_task = task_means(b, task_ids) - task_means(a, task_ids)
    return Difference(
        float(task_means(a, task_ids).mean()), float(task_means(b, task_ids).mean()), float(per_task.mean()),
        bootstrap_interval(per_task), len(task_ids), len(a), int((per_task > 0).sum()), int((per_task < 0).sum()),
    )
