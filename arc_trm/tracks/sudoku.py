"""The Sudoku-Extreme track: `arc_trm.data.sudoku` (CSV, tokens, augmentation, `SudokuSource`) as a
`PuzzleTrack`, whose validity is `valid_solution`: the prediction keeps every given and obeys the rules,
so it is right even when it is not the stored answer (a proper puzzle has one solution, but a scorer
should not assume it). `data.subsample` trains on a seeded subsample of the training file."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from arc_trm.data.generation import Puzzle
from arc_trm.data.sudoku import (
    VOCAB_SIZE,
    SudokuSource,
    grid_values,
    load_sudoku_csv,
    subsample,
    tokens_to_string,
    units_complete,
)
from arc_trm.tracks.puzzles import PuzzleTrack


def is_sudoku_solution(question: str, prediction: str) -> bool:
    """The prediction is a full valid grid that keeps every given of the question."""
    if len(prediction) != 81 or any(ch not in "123456789" for ch in prediction):
        return False
    digits = grid_values(prediction)
    if any(given and given != digit for given, digit in zip(grid_values(question), digits)):
        return False
    return bool(units_complete(np.array([digits], dtype=np.uint8))[0])


class SudokuTrack(PuzzleTrack):
    name = "sudoku"
    vocab_size = VOCAB_SIZE
    noun = "puzzles"
    prediction_charset = ".0123456789"
    validity = "valid_solution"

    def load(self, path: Path) -> list[Puzzle]:
        return load_sudoku_csv(path)

    def source(self, puzzles: Sequence[Puzzle], num_aug: int) -> SudokuSource:
        return SudokuSource(puzzles, num_aug=num_aug)

    def decode(self, tokens: np.ndarray) -> str:
        return tokens_to_string(tokens)

    def is_valid(self, question: str, prediction: str) -> bool:
        return is_sudoku_solution(question, prediction)

    def training_puzzles(self, puzzles: list[Puzzle], data: Any, seed: int) -> list[Puzzle]:
        return subsample(puzzles, data.subsample, seed) if data.subsample else puzzles


SUDOKU = SudokuTrack()
