"""Sudoku-Extreme: the CSV files, tokens and augmentation TRM trains on, an exact solver, a frozen
hardness rating, an exact canonical form, and a generator of hard puzzles with a unique solution.

This module holds the CSV format, the tokens, the augmentation and `SudokuSource`; the solver, rating
and canonical form live in `arc_trm.data.sudoku_solver`, the generator in `arc_trm.data.sudoku_generate`,
the row type `SudokuPuzzle` (which the generator makes too) in `arc_trm.data.generation`, and their public
names are importable from here too.

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
    python -m arc_trm.data.sudoku rate data/sudoku/train.csv   # rating distribution per source

`generate` writes `train.csv` and `test.csv` (same layout, source `arc_trm_generator`) atomically; no
two puzzles in them are equivalent under the Sudoku symmetries. The output depends on `--seed` only,
not on `--workers`.
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
from tqdm import tqdm

from arc_trm.data.generation import HEADER, SudokuPuzzle, split
from arc_trm.data.stream import Examples
from arc_trm.data.sudoku_generate import (  # noqa: F401 (re-exported)
    DEFAULT_MIN_RATING,
    DEFAULT_PATIENCE,
    GENERATED_SOURCE,
    attempt,
    dig,
    generate,
    harden,
    is_unique,
    random_full_grid,
)
from arc_trm.data.sudoku_solver import (  # noqa: F401 (re-exported)
    CELLS,
    SearchResult,
    analyse,
    canonical_form,
    grid_string,
    grid_values,
    rate,
    solve,
)
from arc_trm.errors import ArgumentParser, DataError, check_options, exit_on_user_error, nonempty_path
from arc_trm.io import ensure_folder, read_csv_rows, write_csv

SEQ_LEN = CELLS
VOCAB_SIZE = 11
BLANK_TOKEN = 1
DIGIT_OFFSET = 1  # token = digit + 1, so the blank (0) is token 1


# ----------------------------------------------------------------------------------- grids


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
    check_options(parser, args, {
        "--n": (args.n >= 1, ">= 1"), "--min-rating": (args.min_rating >= 0, ">= 0"), "--seed": (args.seed >= 0, ">= 0"),
        "--workers": (args.workers >= 1, ">= 1"), "--patience": (args.patience >= 1, ">= 1"),
        "--test-fraction": (0.0 <= args.test_fraction <= 1.0, "in [0, 1]"),
    })
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
