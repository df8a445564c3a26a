"""The ladder's protocol (benchmarks/ladder.py): a stable split into halves, choices on the validation
half, means over seeds, bootstrap and paired intervals."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import ladder  # noqa: E402


def test_halves_are_a_fixed_rule_of_the_task_id(arc1_tasks):
    # fixed values: a change of the rule would silently move tasks between halves
    assert [ladder.half(t) for t in ("007bbfb7", "00d62c1b", "017c7c7b", "0520fde7", "05269061")] == [
        "test", "validation", "test", "validation", "validation"]
    training, evaluation = arc1_tasks
    halves = ladder.split_halves(t.id for t in evaluation)
    assert (len(halves["validation"]), len(halves["test"])) == (212, 188)
    # a task's half does not depend on which other tasks are held out
    subset = ladder.split_halves(t.id for t in evaluation[:50])
    assert set(subset["test"]) <= set(halves["test"]) and set(subset["validation"]) <= set(halves["validation"])


SCORES = {0: {"a": 1.0, "b": 0.0, "c": 0.5}, 1: {"a": 1.0, "b": 1.0, "c": 0.0}}


def test_figures_are_means_over_tasks_then_seeds():
    assert ladder.figure(SCORES, ["a", "b"]) == [0.5, 1.0]
    spread = ladder.spread(SCORES, ["a", "b", "c"])
    assert spread.mean == pytest.approx((0.5 + 2 / 3) / 2) and (spread.low, spread.high) == (0.5, pytest.approx(2 / 3))
    assert spread.interval[0] <= spread.mean <= spread.interval[1]
    assert ladder.spread(SCORES, []) is None


def test_bootstrap_interval_narrows_with_more_tasks():
    rng = np.random.default_rng(1)
    few, many = rng.integers(0, 2, 10).astype(float), rng.integers(0, 2, 1000).astype(float)
    (a, b), (c, d) = ladder.bootstrap_interval(few), ladder.bootstrap_interval(many)
    assert a <= few.mean() <= b and c <= many.mean() <= d
    assert d - c < (b - a) / 4
    assert ladder.bootstrap_interval(np.ones(5)) == (1.0, 1.0)


def test_choice_is_made_on_the_given_tasks_only():
    table = {"x": {0: {"v": 1.0, "t": 0.0}}, "y": {0: {"v": 0.0, "t": 1.0}}, "z": {0: {"v": 1.0, "t": 1.0}}}
    cost = {"x": 1, "y": 1, "z": 2}
    assert ladder.choose(table, ["v"], cost) == "x"  # z ties on the validation task but costs more
    assert ladder.choose(table, ["t"], cost) == "y"


def test_paired_difference():
    a = {0: {"p": 0.0, "q": 1.0, "r": 0.0, "s": 0.0}}
    b = {0: {"p": 1.0, "q": 1.0, "r": 1.0, "s": 1.0}}
    d = ladder.paired_difference(a, b, ["p", "q", "r", "s"])
    assert (d.a, d.b, d.difference, d.wins, d.losses) == (0.25, 1.0, 0.75, 3, 0)
    assert d.interval[0] > 0 and d.shown and d.verdict() == "B beats A"
    same = ladder.paired_difference(a, a, ["p", "q", "r", "s"])
    assert same.interval == (0.0, 0.0) and not same.shown and same.verdict().startswith("no difference")
    assert same.points() == "+0.0 points (+0.0 to +0.0)"
    assert d.points() == f"+75.0 points (+{100 * d.interval[0]:.1f} to +100.0)"
    assert d.row("training") == f"| training | 4 | 25.0% | 100.0% | {d.points()} | 3 / 0 | B beats A |"
    assert ladder.paired_difference(b, a, ["p", "q", "r", "s"]).verdict() == "A beats B"
    with pytest.raises(ValueError, match="different seeds"):
        ladder.paired_difference(a, {1: b[0]}, ["p"])
