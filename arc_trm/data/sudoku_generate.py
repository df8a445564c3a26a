"""The Sudoku generator: hard puzzles with a unique solution (random full grid, dig to a minimal
puzzle, harden by clue swaps until the rating reaches `min_rating`), pairwise inequivalent under the
Sudoku symmetries. Its CLI is `python -m arc_trm.data.sudoku generate`."""

from __future__ import annotations

import itertools
from typing import Sequence

import numpy as np
from tqdm import tqdm

from arc_trm.data.generation import SudokuPuzzle, in_task_order
from arc_trm.data.sudoku_solver import (
    _DIGIT,
    _POPCOUNT,
    CELL_UNITS,
    CELLS,
    _initial,
    _propagate,
    analyse,
    canonical_form,
    grid_string,
    solve,
)

DEFAULT_MIN_RATING = 100
DEFAULT_PATIENCE = 300
GENERATED_SOURCE = "arc_trm_generator"


def random_full_grid(rng: np.random.Generator) -> list[int]:
    """A random solved grid: randomized backtracking (MRV with random ties, digits in random order)."""
    cand = _initial([0] * CELLS)
    assert cand is not None
    solved = _random_fill(cand, rng)
    assert solved is not None  # the empty grid always has a solution
    return [_DIGIT[m] for m in solved]


def _random_fill(cand: list[int], rng: np.random.Generator) -> list[int] | None:
    open_cells = [c for c in range(CELLS) if _POPCOUNT[cand[c]] > 1]
    if not open_cells:
        return cand
    fewest = min(_POPCOUNT[cand[c]] for c in open_cells)
    ties = [c for c in open_cells if _POPCOUNT[cand[c]] == fewest]
    cell = ties[rng.integers(len(ties))]
    for digit in rng.permutation([d for d in range(9) if cand[cell] >> d & 1]).tolist():
        child = cand[:]
        child[cell] = 1 << digit
        if _propagate(child, [cell], set(CELL_UNITS[cell])):
            solved = _random_fill(child, rng)
            if solved is not None:
                return solved
    return None


def is_unique(values: Sequence[int]) -> bool:
    """Exactly one solution."""
    return len(analyse(values, limit=2).solutions) == 1


def dig(solution: Sequence[int], rng: np.random.Generator) -> list[int]:
    """A minimal puzzle of `solution`: visit the cells in random order, blank each one that keeps the solution unique."""
    clues = list(solution)
    for cell in rng.permutation(CELLS).tolist():
        value, clues[cell] = clues[cell], 0
        if not is_unique(clues):
            clues[cell] = value
    return clues


def harden(
    solution: Sequence[int], clues: list[int], min_rating: int, rng: np.random.Generator, patience: int = DEFAULT_PATIENCE
) -> tuple[list[int], int] | None:
    """Local search: swap a clue for another (-1/+1) while the solution stays unique and the rating
    does not drop, until the rating reaches `min_rating` (returns (clues, rating)) or `patience`
    moves in a row fail to raise it (returns None)."""
    rating = analyse(clues).rating
    target = grid_string(solution)
    stale = 0
    while rating < min_rating and stale < patience:
        stale += 1
        given = [c for c in range(CELLS) if clues[c]]
        removed = given[rng.integers(len(given))]
        trial = clues.copy()
        trial[removed] = 0
        # Adding a clue where a second solution differs from ours rules that solution out: a blank
        # picked blindly would mostly leave the puzzle ambiguous and waste a solver call. Two valid
        # grids differ in at least 4 cells, all blank here, so `choices` is never empty.
        other = next((s for s in solve(trial, limit=2) if s != target), None)
        choices = [c for c in range(CELLS) if c != removed and not trial[c] and (other is None or other[c] != target[c])]
        added = choices[rng.integers(len(choices))]
        trial[added] = solution[added]
        result = analyse(trial)
        if len(result.solutions) == 1 and result.rating >= rating:
            if result.rating > rating:
                stale = 0
            clues, rating = trial, result.rating
    return (clues, rating) if rating >= min_rating else None


def attempt(seed: int, task: int, min_rating: int, patience: int = DEFAULT_PATIENCE) -> SudokuPuzzle | None:
    """One generator attempt, a pure function of (seed, task): full grid, dig, harden; None if it stalled."""
    rng = np.random.default_rng([seed, 0, task])
    solution = random_full_grid(rng)
    hardened = harden(solution, dig(solution, rng), min_rating, rng, patience)
    if hardened is None:
        return None
    clues, rating = hardened
    return SudokuPuzzle(grid_string(clues), grid_string(solution), rating, GENERATED_SOURCE)


def _attempt_star(args: tuple[int, int, int, int]) -> SudokuPuzzle | None:
    return attempt(*args)

def generate(
    n: int, min_rating: int = DEFAULT_MIN_RATING, seed: int = 0, workers: int = 1,
    patience: int = DEFAULT_PATIENCE, progress: bool = True,
) -> list[SudokuPuzzle]:
    """`n` uniquely solvable puzzles rated >= `min_rating`, pairwise inequivalent under the symmetries."""
    if n <= 0:
        return []
    tasks = ((seed, task, min_rating, patience) for task in itertools.count())
    seen: set[str] = set()
    puzzles: list[SudokuPuzzle] = []
    bar = tqdm(total=n, desc=f"sudoku rating>={min_rating}", unit="puzzle", disable=not progress)
    attempts = 0
    for puzzle in in_task_order(_attempt_star, tasks, workers, round_size=max(8, 4 * workers)):
        attempts += 1
        bar.set_postfix(attempts=attempts, refresh=False)
        if puzzle is None:
            continue
        key = canonical_form(puzzle.question)
        if key not in seen:
            seen.add(key)
            puzzles.append(puzzle)
            bar.update(1)
            if len(puzzles) == n:
                break
    bar.close()
    return puzzles
