"""What the puzzle files and their generators share (`arc_trm.data.sudoku`, `arc_trm.data.sudoku_generate`,
`arc_trm.data.maze`): the CSV layout of the puzzle files (header and row), generation attempts mapped over
worker processes in a fixed order, and the seeded train/test split."""

from __future__ import annotations

import itertools
import multiprocessing
import os
from contextlib import nullcontext
from dataclasses import dataclass, replace
from typing import Callable, Iterator, Sequence, TypeVar

import numpy as np

HEADER = ("source", "question", "answer", "rating")  # the Sudoku-Extreme and Maze-Hard CSV layout


@dataclass(frozen=True)
class Puzzle:
    """One row of a puzzle CSV (`HEADER`); `index` = its row number in its file (0-based, header excluded)."""

    question: str
    answer: str
    rating: int
    source: str
    index: int = 0


@dataclass(frozen=True)
class SudokuPuzzle(Puzzle):
    """A Sudoku-Extreme row: `question` uses `.` for blanks, `answer` 81 digits. Defined beside the layout
    because both the CSV reader (`arc_trm.data.sudoku`) and the generator (`arc_trm.data.sudoku_generate`) make them."""


T = TypeVar("T")
R = TypeVar("R")
P = TypeVar("P", bound=Puzzle)


def in_task_order(function: Callable[[T], R], args: Iterator[T], workers: int, round_size: int) -> Iterator[R]:
    """`map(function, args)` over an endless `args`, on `workers` processes, results in argument order.

    Arguments go out in rounds of `round_size` (a pool would otherwise drain an endless iterator), so
    the results, and hence the generated files, do not depend on the number of workers. At most one
    process per CPU starts: more add no speed, and a typo (`--workers 99999`) would start thousands."""
    workers = min(workers, os.cpu_count() or 1)
    with multiprocessing.Pool(workers) if workers > 1 else nullcontext() as pool:
        while True:
            chunk = list(itertools.islice(args, round_size))
            if not chunk:
                return
            yield from (pool.imap(function, chunk) if pool is not None else map(function, chunk))


def split(puzzles: Sequence[P], test_fraction: float, seed: int) -> tuple[list[P], list[P]]:
    """(train, test) of generated puzzles or mazes: a seeded random `test_fraction` of them is test,
    each file in generation order with `index` renumbered to its rows."""
    order = np.random.default_rng([seed, 1]).permutation(len(puzzles))
    n_test = int(round(len(puzzles) * test_fraction))
    return _renumbered(puzzles, order[n_test:]), _renumbered(puzzles, order[:n_test])


def _renumbered(puzzles: Sequence[P], chosen: np.ndarray) -> list[P]:
    """The chosen puzzles in generation order, `index` = their row in the new file."""
    return [replace(puzzles[i], index=row) for row, i in enumerate(np.sort(chosen).tolist())]
