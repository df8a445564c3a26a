"""The depth curriculum (`train.depth_curriculum`): fewer recursions early in training, the model's own
T x n at the end. CGAR (arXiv 2511.08653) trains TRM on Sudoku-Extreme with (T, n) = (1, 2) -> (2, 4) ->
(3, 6) from 30% and 60% of training: 1.71x faster for -0.6 points. The weights do not depend on T or n,
so a stage change is only a change of how often the same block is applied.

    "0:1x2,0.3:2x4,0.6:3x6"     from fraction 0 of train.steps T=1 n=2, from 0.3 T=2 n=4, from 0.6 T=3 n=6
"""

from __future__ import annotations

from dataclasses import dataclass

from arc_trm.errors import ConfigError

KEY = "train.depth_curriculum"


@dataclass(frozen=True)
class Stage:
    """From `start` (a fraction of train.steps) on, T recursion cycles of n z-updates each."""

    start: float
    T: int
    n: int


def parse_curriculum(text: str) -> tuple[Stage, ...]:
    """'0:1x2,0.3:2x4,0.6:3x6' -> its stages; () for ''. A ConfigError naming the key for anything else:
    the first stage starts at 0, starts increase and stay below 1, T and n are whole numbers >= 1."""
    if not text.strip():
        return ()
    stages = []
    for item in (part.strip() for part in text.split(",")):
        start, colon, depth = item.partition(":")
        T, x, n = depth.partition("x")
        try:
            stage = Stage(float(start), int(T), int(n))
        except ValueError:
            raise ConfigError(f"{KEY}: {item!r} is not FRACTION:TxN (as in 0.3:2x4)") from None
        if not colon or not x or stage.T < 1 or stage.n < 1:
            raise ConfigError(f"{KEY}: {item!r} is not FRACTION:TxN with T and n >= 1 (as in 0.3:2x4)")
        if not 0 <= stage.start < 1 or (stages and stage.start <= stages[-1].start):
            raise ConfigError(f"{KEY}: {item!r}: stages start at fractions of train.steps that increase from 0 and stay below 1")
        stages.append(stage)
    if stages[0].start != 0:
        raise ConfigError(f"{KEY}: the first stage starts at 0 (it is {stages[0].start:g})")
    return tuple(stages)


def check_final_depth(stages: tuple[Stage, ...], T: int, n: int) -> None:
    """The last stage is the model's own depth: the exported config and prediction use it."""
    if stages and (stages[-1].T, stages[-1].n) != (T, n):
        raise ConfigError(f"{KEY}: the last stage is {stages[-1].T}x{stages[-1].n}, the model's T x n is {T}x{n}; "
                          "end the curriculum at the model's depth")


def stage_at(stages: tuple[Stage, ...], step: int, steps: int) -> Stage:
    """The stage of optimizer step `step` (0-based) of `steps`: the last one started by then."""
    return [stage for stage in stages if step >= stage.start * steps][-1]
