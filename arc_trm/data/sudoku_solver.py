"""Sudoku's exact solver, its frozen hardness rating and the exact canonical form (min-lex over the
symmetry group), on grids of 81 values 0..9 (0 = blank)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from operator import itemgetter
from typing import Iterable, Sequence

import numpy as np

CELLS = 81


# ----------------------------------------------------------------------------------- grids


def grid_values(grid: str | Sequence[int] | np.ndarray) -> list[int]:
    """81 values 0..9 (0 = blank) from a puzzle string (`.`/`0` blank) or a sequence of 81 ints."""
    if isinstance(grid, str):
        values = [0 if ch in ".0" else int(ch) for ch in grid]
    else:
        values = [int(v) for v in np.asarray(grid).reshape(-1)]
    if len(values) != CELLS or not all(0 <= v <= 9 for v in values):
        raise ValueError("a Sudoku grid is 81 values in 0..9 (0 = blank)")
    return values


def grid_string(values: Iterable[int], blank: str = ".") -> str:
    """The 81-character string of a grid, `blank` for 0."""
    return "".join(blank if v == 0 else str(int(v)) for v in values)


# -------------------------------------------------------------------------------- the solver
#
# Candidates are 9-bit masks per cell. Propagation = naked singles (a placed digit leaves its peers)
# and hidden singles (a digit with one place left in a unit goes there) to a fixpoint. Both rules only
# delete candidates and stay applicable as candidates shrink, so the fixpoint does not depend on the
# order they are applied in: the search tree, and hence the rating, is a property of the puzzle.
# Branching (MRV): the first cell in row-major order with the fewest candidates, digits ascending.
# This solver defines the `rating`; changing any rule above changes every rating, so it is frozen.

ALL = 0x1FF
_ROWS = [[r * 9 + c for c in range(9)] for r in range(9)]
_COLS = [[r * 9 + c for r in range(9)] for c in range(9)]
_BOXES = [[(br * 3 + i) * 9 + bc * 3 + j for i in range(3) for j in range(3)] for br in range(3) for bc in range(3)]
UNITS = tuple(tuple(unit) for unit in _ROWS + _COLS + _BOXES)
CELL_UNITS = tuple(tuple(u for u, unit in enumerate(UNITS) if cell in unit) for cell in range(CELLS))
PEERS = tuple(tuple(sorted({p for u in CELL_UNITS[c] for p in UNITS[u]} - {c})) for c in range(CELLS))
_UNIT_VALUES = tuple(itemgetter(*unit) for unit in UNITS)
_POPCOUNT = tuple(bin(mask).count("1") for mask in range(512))
_DIGIT = {1 << d: d + 1 for d in range(9)}


@dataclass(frozen=True)
class SearchResult:
    """Solutions found (at most the limit, as 81-digit strings), `rating` = branches taken until the
    first solution (-1 if none), `branches` = branches taken in the whole search."""

    solutions: list[str]
    rating: int
    branches: int


def _propagate(cand: list[int], todo: list[int], dirty: set[int]) -> bool:
    """Singles to a fixpoint, in place. `todo`: cells just fixed; `dirty`: units whose cells changed
    (only those can hold a new hidden single or lose a digit). False on a contradiction."""
    while True:
        while todo:
            cell = todo.pop()
            bit = cand[cell]
            for peer in PEERS[cell]:
                mask = cand[peer]
                if mask & bit:
                    mask ^= bit
                    if not mask:
                        return False
                    cand[peer] = mask
                    dirty.update(CELL_UNITS[peer])
                    if not mask & (mask - 1):
                        todo.append(peer)
        while dirty and not todo:
            unit = dirty.pop()
            once = twice = 0
            for mask in _UNIT_VALUES[unit](cand):
                twice |= once & mask
                once |= mask
            if once != ALL:
                return False  # a digit has no place left in this unit
            hidden = once & ~twice
            if hidden:
                for cell in UNITS[unit]:
                    mask = cand[cell] & hidden
                    if mask & (mask - 1):
                        return False  # two digits whose only place is this one cell
                    if mask and cand[cell] != mask:
                        cand[cell] = mask
                        dirty.update(CELL_UNITS[cell])
                        todo.append(cell)
        if not todo:
            return True


def _initial(values: list[int]) -> list[int] | None:
    cand = [ALL] * CELLS
    todo = []
    for cell, value in enumerate(values):
        if value:
            cand[cell] = 1 << (value - 1)
            todo.append(cell)
    return cand if _propagate(cand, todo, set(range(len(UNITS)))) else None


def _search(cand: list[int], limit: int, found: list[list[int]], stats: list[int]) -> None:
    """Depth-first search; stats = [branches so far, branches when the first solution was found]."""
    best, fewest = -1, 10
    for cell in range(CELLS):
        count = _POPCOUNT[cand[cell]]
        if 1 < count < fewest:
            best, fewest = cell, count
            if count == 2:
                break
    if best < 0:
        found.append(cand)
        if len(found) == 1:
            stats[1] = stats[0]
        return
    options = cand[best]
    while options:
        bit = options & -options
        options ^= bit
        stats[0] += 1
        child = cand[:]
        child[best] = bit
        if _propagate(child, [best], set(CELL_UNITS[best])):
            _search(child, limit, found, stats)
            if len(found) >= limit:
                return


def analyse(grid: str | Sequence[int] | np.ndarray, limit: int = 2) -> SearchResult:
    """Solve `grid` (string or 81 values, 0 = blank), stopping after `limit` solutions."""
    cand = _initial(grid_values(grid))
    found: list[list[int]] = []
    stats = [0, -1]
    if cand is not None:
        _search(cand, limit, found, stats)
    return SearchResult(["".join(str(_DIGIT[m]) for m in s) for s in found], stats[1], stats[0])


def solve(grid: str | Sequence[int] | np.ndarray, limit: int = 2) -> list[str]:
    """Up to `limit` solutions of `grid` as 81-digit strings: one for a proper puzzle, two shows it is not unique."""
    return analyse(grid, limit).solutions


def rate(grid: str | Sequence[int] | np.ndarray) -> int:
    """Hardness: guesses (branches taken at choice points) of the frozen singles + MRV solver until
    its first solution; 0 = solved by singles alone, -1 = no solution."""
    return analyse(grid, limit=1).rating


# ------------------------------------------------------------------------ the canonical form
#
# Exact min-lex form over the whole symmetry group: transpose x band/row permutations x stack/column
# permutations (2 * 6^8) x digit relabelling. For a fixed position transform the smallest relabelling
# numbers the digits in order of first appearance. Lex order is decided row by row, so all 2 * 9 * 1296
# (transpose, first row, column arrangement) candidates are scored on their first row, only the ties
# survive, and each survivor is extended by the rows its band structure allows: exact, ~5 ms a puzzle.

_P3 = list(itertools.permutations(range(3)))
_COL_ARRANGEMENTS = np.array(
    [[s * 3 + w for s, inner in zip(stacks, inners) for w in inner] for stacks in _P3 for inners in itertools.product(_P3, repeat=3)],
    dtype=np.intp,
)
_ROW_BAND = np.arange(9) // 3
_POW10 = 10 ** np.arange(8, -1, -1, dtype=np.int64)


def canonical_form(grid: str | Sequence[int] | np.ndarray) -> str:
    """The lexicographically smallest 81-digit string (0 = blank) among all symmetric versions of the
    grid: equal for two puzzles exactly when one is a relabelled, transposed, row/column-shuffled copy
    of the other."""
    board = np.array(grid_values(grid), dtype=np.int64).reshape(9, 9)
    boards = np.stack([board, board.T])
    n_cols = len(_COL_ARRANGEMENTS)
    flip = np.repeat([0, 1], 9 * n_cols)
    row = np.tile(np.repeat(np.arange(9), n_cols), 2)
    cols = np.tile(np.arange(n_cols), 18)
    labels = np.zeros((len(flip), 10), dtype=np.int64)  # old digit -> new label, 0 = not yet seen
    next_label = np.ones(len(flip), dtype=np.int64)
    used = np.zeros((len(flip), 9), dtype=bool)
    out_rows = []
    for level in range(9):
        if level:
            if level % 3 == 0:  # a new band: any row of a band not used yet
                allowed = ~used.reshape(-1, 3, 3).any(axis=2)[:, _ROW_BAND]
            else:  # the other rows of the current band
                allowed = (_ROW_BAND[None, :] == _ROW_BAND[row][:, None]) & ~used
            parent, row = np.nonzero(allowed)
            flip, cols, labels, next_label, used = flip[parent], cols[parent], labels[parent], next_label[parent], used[parent]
        used = used.copy()
        used[np.arange(len(row)), row] = True
        values = boards[flip[:, None], row[:, None], _COL_ARRANGEMENTS[cols]]
        every = np.arange(len(row))
        relabelled = np.empty_like(values)
        for j in range(9):
            digit = values[:, j]
            new = (digit > 0) & (labels[every, digit] == 0)
            labels[every[new], digit[new]] = next_label[new]
            next_label = next_label + new
            relabelled[:, j] = labels[every, digit]
        keys = relabelled @ _POW10
        keep = keys == keys.min()
        out_rows.append(relabelled[np.argmax(keep)])
        flip, row, cols, labels, next_label, used = flip[keep], row[keep], cols[keep], labels[keep], next_label[keep], used[keep]
    return "".join(str(v) for v in np.concatenate(out_rows).tolist())
