"""What the puzzle tracks (Sudoku-Extreme, Maze-Hard) share: `PuzzleTrack`.

Their data is a folder (`data.path`) holding `train.csv` and `test.csv` (`arc_trm.data.generation.HEADER`
layout); the training source samples `train.csv`, evaluation during training and prediction read
`test.csv`. A track adds its CSV reader, its example source, its token decoding and its validity check.

Predictions file: CSV with the header `index,prediction`, one row per predicted puzzle.
- `index`: the puzzle's row number in the solutions `test.csv`, 0-based, header excluded (the
  `index` that `SudokuSource.test_examples` / `MazeSource.test_examples` yield);
- `prediction`: the whole predicted grid as one string, row-major, as long as the question:
  Sudoku 81 characters over `1-9` (`.` or `0` for a cell with no digit), Maze side*side characters
  over `# SGo` (`.` for a token that is no maze character). A track's `decode` turns predicted tokens
  into this string.
Each index at most once; rows may come in any order; a puzzle without a row counts as wrong.

Metrics (fractions of all puzzles in the solutions file):
- `exact_accuracy`: the prediction equals the answer;
- `cell_accuracy`: cells equal to the answer, over all cells (a missing puzzle has none right);
- the track's validity (`PuzzleTrack.validity`): Sudoku `valid_solution`, Maze `valid_optimal_path`
  (see `arc_trm.tracks.sudoku`, `arc_trm.tracks.maze`).

Scored from the repository root with

    python -m evaluation.score predictions.csv --solutions data/sudoku/test.csv --track sudoku [--json report.json]
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from arc_trm.data.generation import Puzzle
from arc_trm.data.stream import ExampleSource
from arc_trm.errors import ConfigError, DataError, UserError
from arc_trm.exported import DataInfo
from arc_trm.io import atomic_write_json, read_csv_rows, write_csv

PREDICTIONS_HEADER = ("index", "prediction")


class PuzzleTrack(ABC):
    """A track of CSV puzzles (Sudoku, Maze): the `Track` interface over a track's reader, source, decoding
    and validity check."""

    name: str
    vocab_size: int
    noun: str
    """What the training file holds, in its error messages: `puzzles`, `mazes`."""
    prediction_charset: str
    """Characters a prediction may hold."""
    validity: str
    """The report's name for the fraction of valid predictions (`is_valid`)."""

    # ------------------------------------------------------------------------------ per track

    @abstractmethod
    def load(self, path: Path) -> list[Puzzle]:
        """The puzzles of a CSV file, validated (`DataError` naming the file and line)."""

    @abstractmethod
    def source(self, puzzles: Sequence[Puzzle], num_aug: int) -> Any:
        """The example source of `puzzles`: augmented when `num_aug` > 0, as they are for 0 (a test source)."""

    @abstractmethod
    def decode(self, tokens: np.ndarray) -> str:
        """A prediction string (see the module docstring) of predicted tokens."""

    @abstractmethod
    def is_valid(self, question: str, prediction: str) -> bool:
        """Whether `prediction` solves `question`, whether or not it is the stored answer."""

    def training_puzzles(self, puzzles: list[Puzzle], data: Any, seed: int) -> list[Puzzle]:
        """The training file's puzzles to train on (all of them unless the track subsamples)."""
        return puzzles

    # ----------------------------------------------------------------------------------- data

    def check_data(self, data: Any) -> None:
        if not data.path:
            raise ConfigError(f"data.path must name a folder with train.csv/test.csv for track {self.name}")

    def data_inputs(self, data: Any) -> dict[str, str | None]:
        return {}  # data.path only

    def training_source(self, data: Any, seed: int) -> ExampleSource:
        csv = Path(data.path) / "train.csv"
        puzzles = self.load(csv)
        if not puzzles:
            raise DataError(f"{csv}: no {self.noun} to train on (only a header?)")
        return self.source(self.training_puzzles(puzzles, data, seed), data.num_aug)

    def test_source(self, data: Any, seq_len: int) -> Any:
        return self.load_test(data.path, seq_len, data.max_test)

    def load_test(self, path: str | Path, seq_len: int, max_test: int = 0) -> Any:
        """The puzzles of `path` (a CSV, or a folder holding `test.csv`) for a model of `seq_len` tokens,
        the first `max_test` of them when > 0, never augmented."""
        csv = Path(path)
        csv = csv / "test.csv" if csv.is_dir() else csv
        source = self.source(self.load(csv)[: max_test or None], num_aug=0)
        if len(source) == 0:
            raise DataError(f"{csv}: no puzzles to evaluate on (only a header?)")
        if source.seq_len != seq_len:
            raise DataError(f"{csv}: puzzles of {source.seq_len} cells, the model reads {seq_len}")
        return source

    def model_info(self, source: Any, data: Any) -> DataInfo:
        return DataInfo(track=self.name, num_puzzle_ids=source.num_puzzle_ids, seq_len=source.seq_len)

    # ------------------------------------------------------------------------ predictions, scores

    def metrics(self, question: str, answer: str, prediction: str) -> dict[str, float]:
        """`exact`, `cell_accuracy` and the track's validity (1.0 / 0.0 for the flags) of one prediction."""
        cells = sum(p == a for p, a in zip(prediction, answer)) / len(answer)
        return {"exact": float(prediction == answer), "cell_accuracy": cells, self.validity: float(self.is_valid(question, prediction))}

    def write_predictions(self, path: Path, rows: Iterable[tuple[int, str]]) -> Path:
        """The predictions file of (index, prediction string) rows, atomically."""
        return write_csv(path, PREDICTIONS_HEADER, rows)

    def read_predictions(self, path: Path, n: int, length: int) -> dict[int, str]:
        """index -> prediction of a predictions CSV, validated against `n` puzzles of `length` cells."""
        allowed = set(self.prediction_charset)
        predictions: dict[int, str] = {}
        for line, row in read_csv_rows(path, PREDICTIONS_HEADER, "predictions CSV"):
            try:
                index = int(row[0])
            except ValueError:
                raise DataError(f"{path}:{line}: index {row[0]!r} is not an integer") from None
            if not 0 <= index < n:
                raise DataError(f"{path}:{line}: index {index} is not a row of the solutions (0..{n - 1})")
            if index in predictions:
                raise DataError(f"{path}:{line}: index {index} predicted twice")
            prediction = row[1]
            if len(prediction) != length:
                raise DataError(f"{path}:{line}: prediction has {len(prediction)} characters, expected {length}")
            bad = next((ch for ch in prediction if ch not in allowed), None)
            if bad is not None:
                raise DataError(f"{path}:{line}: prediction has character {bad!r}, expected one of {''.join(sorted(allowed))!r}")
            predictions[index] = prediction
        return predictions

    def score_file(self, predictions: Path, solutions: Path) -> dict:
        """Score a predictions CSV against a solutions CSV (a `test.csv`, or a folder holding one).

        Returns {"track", "n", "predicted", "missing", "exact_accuracy", "cell_accuracy", validity};
        rows without a prediction count as wrong."""
        solutions = Path(solutions)
        if solutions.is_dir():
            solutions = solutions / "test.csv"
        puzzles = self.load(solutions)
        length = len(puzzles[0].question) if puzzles else 0
        predicted = self.read_predictions(Path(predictions), len(puzzles), length)
        totals = {"exact": 0.0, "cell_accuracy": 0.0, self.validity: 0.0}
        for index, prediction in predicted.items():
            for key, value in self.metrics(puzzles[index].question, puzzles[index].answer, prediction).items():
                totals[key] += value
        n = len(puzzles)
        return {
            "track": self.name,
            "n": n,
            "predicted": len(predicted),
            "missing": n - len(predicted),
            "exact_accuracy": totals["exact"] / max(n, 1),
            "cell_accuracy": totals["cell_accuracy"] / max(n, 1),
            self.validity: totals[self.validity] / max(n, 1),
        }

    def format_report(self, report: dict) -> str:
        """A short text table of a `score_file` report."""
        n = report["n"]
        lines = [
            f"track               {report['track']}",
            f"puzzles             {n}: {report['predicted']} predicted, {report['missing']} missing (counted wrong)",
            f"exact_accuracy      {report['exact_accuracy']:.4f}  ({round(report['exact_accuracy'] * n)}/{n} whole grids)",
            f"cell_accuracy       {report['cell_accuracy']:.4f}",
            f"{self.validity:<19} {report[self.validity]:.4f}  ({round(report[self.validity] * n)}/{n})",
        ]
        return "\n".join(lines)

    def score_files(
        self, predictions: Path, solutions: Path | None, split: str | None, json: Path | None = None, render: Path | None = None,
    ) -> str:
        if split is not None or render is not None:
            raise UserError(f"--track {self.name} takes --solutions (and --json), not --split or --render")
        report = self.score_file(predictions, solutions)
        if json is not None:
            atomic_write_json(json, report, indent=True)
        return self.format_report(report)
