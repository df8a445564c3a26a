"""Sudoku-Extreme: the CSV files, tokens and augmentation TRM trains on, an exact solver, a frozen
hardness rating, an exact canonical form, and a generator of hard puzzles with a unique solution.

CSV layout (as `sapientinc/sudoku-extreme`): a header `source,question,answer,rating`, then one puzzle
per line; `question` is 81 characters row-major with `.` (or `0`) for a blank, `answer` the 81 digits
of the solution, `rating` an integer (tdoku backtracks in the real data, `rate` for generated data).

Tokens as the reference: PAD 0 (unused), blank 1, digit d -> d + 1; vocab 11, 81 cells, all supervised.
Augmentation as the reference's `shuffle_sudoku`, drawn on the fly: a digit permutation (blank fixed),
a transpose with p = 0.5, the 3 bands and the rows inside each band permuted, and likewise stacks and
columns; the same transform goes to the question and the answer.

Run from the repository root:

    python -m arc_trm.data.sudoku generate --n 1000 --out data/sudoku-gen [--min-rating 100] [--seed 0]
        [--test-fraction 0.5] [--workers 1] [--patience 300]
    python -m arc_trm.data.sudoku rate ../shared/data/sudoku/train.csv   # rating distribution per source

`generate` writes `train.csv` and `test.csv` (same layout, source `arc_trm_generator`) atomically; no
two puzzles in them are equivalent under the Sudoku symmetries. The output depends on `--seed` only,
not on `--workers`.
"""

from __future__ import annotations

import argparse
import itertools
import multiprocessing
import sys
from collections import defaultdict
from contextlib import nullcontext
from dataclasses import dataclass, replace
from operator import itemgetter
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence, TypeVar

import numpy as np
from tqdm import tqdm

from arc_trm.data.stream import Examples
from arc_trm.errors import ArgumentParser, DataError, exit_on_user_error, nonempty_path
from arc_trm.io import ensure_folder, read_csv_rows, write_csv

HEADER = ("source", "question", "answer", "rating")
CELLS = 81
SEQ_LEN = CELLS
VOCAB_SIZE = 11
BLANK_TOKEN = 1
DIGIT_OFFSET = 1  # token = digit + 1, so the blank (0) is token 1
DEFAULT_MIN_RATING = 100
DEFAULT_PATIENCE = 300
GENERATED_SOURCE = "arc_trm_generator"
T = TypeVar("T")
R = TypeVar("R")
P = TypeVar("P")  # a frozen dataclass with an `index` field: SudokuPuzzle or MazePuzzle


@dataclass(frozen=True)
class SudokuPuzzle:
    """One CSV row: `question` uses `.` for blanks, `answer` 81 digits; `index` = row number in its file (0-based, header excluded)."""

    question: str
    answer: str
    rating: int
    source: str
    index: int = 0


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


def tokens_to_string(tokens: np.ndarray) -> str:
    """Decode 81 predicted tokens to a prediction string: tokens 2..10 -> digits, anything else -> `.`."""
    values = np.asarray(tokens).reshape(-1).astype(np.int64) - DIGIT_OFFSET
    return "".join(str(v) if 1 <= v <= 9 else "." for v in values.tolist())


def _string_array(strings: Sequence[str]) -> np.ndarray:
    """uint8 [n, 81] of 81-character ASCII strings (validated lengths), `.` and `0` -> 0, digits -> value."""
    if not strings:
        return np.zeros((0, CELLS), dtype=np.uint8)
    raw = np.frombuffer("".join(strings).encode("ascii"), dtype=np.uint8).reshape(len(strings), CELLS)
    return np.where(raw == ord("."), 0, raw - ord("0")).astype(np.uint8)


def units_complete(values: np.ndarray) -> np.ndarray:
    """bool [n]: each row of uint8 [n, 81] (digits 1..9) holds every digit once per row, column and box."""
    bits = np.left_shift(1, values.astype(np.int32) - 1).reshape(-1, 9, 9)
    boxes = bits.reshape(-1, 3, 3, 3, 3).transpose(0, 1, 3, 2, 4).reshape(-1, 9, 9)
    full = np.ones(len(values), dtype=bool)
    for grouped in (bits, bits.transpose(0, 2, 1), boxes):  # rows, columns, boxes
        full &= (np.bitwise_or.reduce(grouped, axis=2) == 0x1FF).all(axis=1)
    return full


# --------------------------------------------------------------------------------- the CSV


def row_problem(question: str, answer: str) -> str | None:
    """What is wrong with one (question, answer) pair, or None. The answer must be a valid full grid
    whose digits agree with every given."""
    if len(question) != CELLS:
        return f"question has {len(question)} characters, expected 81"
    if len(answer) != CELLS:
        return f"answer has {len(answer)} characters, expected 81"
    bad = next((ch for ch in question if ch not in ".0123456789"), None)
    if bad is not None:
        return f"question has character {bad!r}, expected '.', '0' or 1-9"
    bad = next((ch for ch in answer if ch not in "123456789"), None)
    if bad is not None:
        return f"answer has character {bad!r}, expected digits 1-9"
    clash = next((i for i, (q, a) in enumerate(zip(question, answer)) if q not in ".0" and q != a), None)
    if clash is not None:
        return f"answer {answer[clash]} contradicts the given {question[clash]} at row {clash // 9 + 1}, column {clash % 9 + 1}"
    if not units_complete(_string_array([answer]))[0]:
        return "answer is not a valid Sudoku (a row, column or box repeats a digit)"
    return None


def load_sudoku_csv(path: str | Path, min_rating: int | None = None) -> list[SudokuPuzzle]:
    """Read and validate a Sudoku-Extreme CSV file (`train.csv` or `test.csv`).

    Every row is checked (vectorised, so the 423k-row test file takes seconds); the first bad row
    raises `DataError` naming the file, line and problem. `min_rating` keeps rows with rating >= it,
    as the reference's `min_difficulty`. Blanks are normalised to `.`.
    """
    path = Path(path)
    rows = list(read_csv_rows(path, HEADER, "train.csv or test.csv"))
    questions = [row[1] for _, row in rows]
    answers = [row[2] for _, row in rows]
    for (line, _), question, answer in zip(rows, questions, answers):  # lengths first: arrays need them
        if len(question) != CELLS or len(answer) != CELLS or not (question + answer).isascii():
            raise DataError(f"{path}:{line}: {row_problem(question, answer) or 'non-ASCII characters'}")
    bad = _bad_rows(questions, answers)
    if bad.size:
        line = rows[bad[0]][0]
        raise DataError(f"{path}:{line}: {row_problem(questions[bad[0]], answers[bad[0]])}")
    puzzles = []
    for index, (line, (source, question, answer, rating)) in enumerate(rows):
        try:
            value = int(rating)
        except ValueError:
            raise DataError(f"{path}:{line}: rating {rating!r} is not an integer") from None
        if min_rating is None or value >= min_rating:
            puzzles.append(SudokuPuzzle(question.replace("0", "."), answer, value, source, index))
    return puzzles


def _bad_rows(questions: list[str], answers: list[str]) -> np.ndarray:
    """Indices of rows with a bad character, a given the answer contradicts, or an invalid answer."""
    raw_q = np.frombuffer("".join(questions).encode("ascii"), dtype=np.uint8).reshape(-1, CELLS)
    raw_a = np.frombuffer("".join(answers).encode("ascii"), dtype=np.uint8).reshape(-1, CELLS)
    q_ok = ((raw_q >= ord("0")) & (raw_q <= ord("9"))) | (raw_q == ord("."))
    a_ok = (raw_a >= ord("1")) & (raw_a <= ord("9"))
    bad = ~(q_ok.all(1) & a_ok.all(1))
    q, a = _string_array(questions), np.clip(raw_a.astype(np.int32) - ord("0"), 1, 9)
    bad |= ((q != 0) & (q != a)).any(1)
    bad |= ~units_complete(a)
    return np.flatnonzero(bad)


def write_sudoku_csv(path: str | Path, puzzles: Sequence[SudokuPuzzle]) -> Path:
    """Write puzzles in the 4-column layout, atomically."""
    return write_csv(path, HEADER, ((p.source, p.question, p.answer, p.rating) for p in puzzles))


def subsample(puzzles: Sequence[SudokuPuzzle], n: int, seed: int) -> list[SudokuPuzzle]:
    """`n` puzzles drawn without replacement (seeded; all of them when n >= len), kept in file order."""
    if n >= len(puzzles):
        return list(puzzles)
    chosen = np.sort(np.random.default_rng(seed).choice(len(puzzles), size=n, replace=False))
    return [puzzles[i] for i in chosen]


# ---------------------------------------------------------------------------- augmentation


def shuffle_sudoku(question: np.ndarray, answer: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The reference's validity-preserving shuffle of two [81] value grids (0 = blank), drawn from `rng`:
    new cell (i, j) = old cell (row_perm[i], col_perm[j]) after the optional transpose, digits remapped."""
    digit_map = np.concatenate([[0], rng.permutation(np.arange(1, 10))])
    transpose = rng.random() < 0.5
    row_perm = np.concatenate([band * 3 + rng.permutation(3) for band in rng.permutation(3)])
    col_perm = np.concatenate([stack * 3 + rng.permutation(3) for stack in rng.permutation(3)])

    def apply(values: np.ndarray) -> np.ndarray:
        board = values.reshape(9, 9)
        board = board.T if transpose else board
        return digit_map[board[row_perm][:, col_perm]].reshape(CELLS).astype(values.dtype)

    return apply(question), apply(answer)


def examples_from_values(questions: np.ndarray, answers: np.ndarray) -> Examples:
    """Token examples from value grids [n, 81]: inputs blank 1 / digits 2..10, labels the answer tokens."""
    return Examples(
        inputs=(questions.astype(np.int32) + DIGIT_OFFSET),
        labels=(answers.astype(np.int64) + DIGIT_OFFSET),
        puzzle_ids=np.zeros(len(questions), dtype=np.int64),
    )


class SudokuSource:
    """Example source (the `arc_trm.data.stream.ExampleSource` protocol): one group per puzzle.

    A visit of a group yields 1 example: the puzzle as is with probability 1 / (num_aug + 1), else a
    fresh `shuffle_sudoku` of it; the reference stores the original plus num_aug fixed shuffles and
    samples one of them uniformly. Puzzle ids are all 0.
    """

    seq_len = SEQ_LEN
    vocab_size = VOCAB_SIZE
    num_puzzle_ids = 1

    def __init__(self, puzzles: Sequence[SudokuPuzzle], num_aug: int = 1000):
        if num_aug < 0:
            raise ValueError(f"num_aug must be >= 0, got {num_aug}")
        self.puzzles = list(puzzles)
        self.num_aug = num_aug
        self._questions = _string_array([p.question for p in self.puzzles])
        self._answers = _string_array([p.answer for p in self.puzzles])

    def __len__(self) -> int:
        return len(self.puzzles)

    def group_size(self, group: int) -> int:
        return 1

    def sample(self, group: int, rng: np.random.Generator) -> Examples:
        question, answer = self._questions[group], self._answers[group]
        if rng.random() >= 1.0 / (self.num_aug + 1):
            question, answer = shuffle_sudoku(question, answer, rng)
        return examples_from_values(question[None], answer[None])

    def test_examples(self, batch_size: int = 1024) -> Iterator[tuple[np.ndarray, Examples]]:
        """The puzzles as they are, in batches: (row index in the CSV, int64 [b]; their examples)."""
        indices = np.array([p.index for p in self.puzzles], dtype=np.int64)
        for start in range(0, len(self.puzzles), batch_size):
            stop = start + batch_size
            yield indices[start:stop], examples_from_values(self._questions[start:stop], self._answers[start:stop])


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


# ----------------------------------------------------------------------------- the generator


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


def in_task_order(function: Callable[[T], R], args: Iterator[T], workers: int, round_size: int) -> Iterator[R]:
    """`map(function, args)` over an endless `args`, on `workers` processes, results in argument order.

    Arguments go out in rounds of `round_size` (a pool would otherwise drain an endless iterator), so
    the results, and hence the generated files, do not depend on the number of workers."""
    with multiprocessing.Pool(workers) if workers > 1 else nullcontext() as pool:
        while True:
            chunk = list(itertools.islice(args, round_size))
            if not chunk:
                return
            yield from (pool.imap(function, chunk) if pool is not None else map(function, chunk))


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


def split(puzzles: Sequence[P], test_fraction: float, seed: int) -> tuple[list[P], list[P]]:
    """(train, test) of generated puzzles or mazes: a seeded random `test_fraction` of them is test,
    each file in generation order with `index` renumbered to its rows."""
    order = np.random.default_rng([seed, 1]).permutation(len(puzzles))
    n_test = int(round(len(puzzles) * test_fraction))
    return _renumbered(puzzles, order[n_test:]), _renumbered(puzzles, order[:n_test])


def _renumbered(puzzles: Sequence[P], chosen: np.ndarray) -> list[P]:
    """The chosen puzzles in generation order, `index` = their row in the new file."""
    return [replace(puzzles[i], index=row) for row, i in enumerate(np.sort(chosen).tolist())]


# ------------------------------------------------------------------------------------- CLI


def rating_table(puzzles: Sequence[SudokuPuzzle]) -> str:
    """Per source: count and quantiles of `rate` next to the file's own rating column."""
    by_source: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for puzzle in tqdm(puzzles, desc="rating", unit="puzzle"):
        by_source[puzzle.source].append((rate(puzzle.question), puzzle.rating))
    lines = [f"{'source':<34} {'n':>5}  {'rate: mean  p10  p25  p50  p75  p90   max':<42}  file rating median"]
    for source, pairs in sorted(by_source.items(), key=lambda item: -np.median([r for r, _ in item[1]])):
        ours = np.array([r for r, _ in pairs])
        q = np.percentile(ours, [10, 25, 50, 75, 90]).round().astype(int)
        lines.append(
            f"{source:<34} {len(ours):>5}  {ours.mean():>10.1f} {q[0]:>4} {q[1]:>4} {q[2]:>4} {q[3]:>4} {q[4]:>4} {ours.max():>5}"
            f"  {np.median([f for _, f in pairs]):>18.0f}"
        )
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(prog="python -m arc_trm.data.sudoku", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    gen = commands.add_parser("generate", help="generate hard puzzles into DIR/train.csv and DIR/test.csv")
    gen.add_argument("--n", type=int, required=True, help="puzzles in total (train + test)")
    gen.add_argument("--out", type=nonempty_path, required=True, help="output folder")
    gen.add_argument("--min-rating", type=int, default=DEFAULT_MIN_RATING, help=f"keep rating >= this (default {DEFAULT_MIN_RATING})")
    gen.add_argument("--seed", type=int, default=0)
    gen.add_argument("--test-fraction", type=float, default=0.5)
    gen.add_argument("--workers", type=int, default=1, help="processes (the output does not depend on it)")
    gen.add_argument("--patience", type=int, default=DEFAULT_PATIENCE, help="failed moves in a row before an attempt restarts")
    rate_cmd = commands.add_parser("rate", help="print the rating distribution of a CSV file per source")
    rate_cmd.add_argument("csv", type=Path)
    return parser


@exit_on_user_error
def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "rate":
        print(rating_table(load_sudoku_csv(args.csv)))
        return 0
    if args.n < 1 or not 0.0 <= args.test_fraction <= 1.0 or args.workers < 1 or args.patience < 1:
        parser.error("--n, --workers and --patience must be >= 1 and --test-fraction in [0, 1]")
    ensure_folder(args.out)
    puzzles = generate(args.n, args.min_rating, args.seed, args.workers, args.patience)
    train, test = split(puzzles, args.test_fraction, args.seed)
    write_sudoku_csv(args.out / "train.csv", train)
    write_sudoku_csv(args.out / "test.csv", test)
    ratings = np.array([p.rating for p in puzzles])
    print(f"wrote {len(train)} train + {len(test)} test puzzles to {args.out} (rating median {np.median(ratings):.0f}, max {ratings.max()})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
