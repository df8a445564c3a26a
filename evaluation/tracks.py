"""Scoring of the Sudoku-Extreme and Maze-Hard tracks.

Predictions file: CSV with the header `index,prediction`, one row per predicted puzzle.
- `index`: the puzzle's row number in the solutions `test.csv`, 0-based, header excluded (the
  `index` that `SudokuSource.test_examples` / `MazeSource.test_examples` yield);
- `prediction`: the whole predicted grid as one string, row-major, as long as the question:
  Sudoku 81 characters over `1-9` (`.` or `0` for a cell with no digit), Maze side*side characters
  over `# SGo` (`.` for a token that is no maze character). `tokens_to_string` in
  `arc_trm.data.sudoku` / `arc_trm.data.maze` turns predicted tokens into this string.
Each index at most once; rows may come in any order; a puzzle without a row counts as wrong.

Metrics (fractions of all puzzles in the solutions file):
- `exact_accuracy`: the prediction equals the answer;
- `cell_accuracy`: cells equal to the answer, over all cells (a missing puzzle has none right);
- Sudoku `valid_solution`: the prediction keeps every given and obeys the rules, so it is right even
  when it is not the stored answer (a proper puzzle has one solution, but a scorer should not assume it);
- Maze `valid_optimal_path`: the `o` cells with the question's S and G form a 4-connected S->G path
  through open cells, of the shortest length; random-wall mazes have many shortest paths and the
  answer marks one by a tie-break, so this is what a solver can be held to.

Run from the repository root (via the scoring CLI):

    python -m evaluation.score predictions.csv --solutions data/sudoku/test.csv --track sudoku [--json report.json]
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from arc_trm.data.maze import CHARSET as MAZE_CHARSET
from arc_trm.data.maze import PATH, bfs, load_maze_csv, parse_maze
from arc_trm.data.sudoku import grid_values, load_sudoku_csv, units_complete
from arc_trm.errors import DataError
from arc_trm.io import read_csv_rows

PREDICTIONS_HEADER = ("index", "prediction")
TRACK_CHARSETS = {"sudoku": ".0123456789", "maze": MAZE_CHARSET + "."}
VALIDITY_METRIC = {"sudoku": "valid_solution", "maze": "valid_optimal_path"}


def sudoku_metrics(question: str, answer: str, prediction: str) -> dict[str, float]:
    """`exact`, `cell_accuracy` and `valid_solution` (1.0 / 0.0 for the flags) of one Sudoku prediction;
    strings of 81 characters, `.` or `0` for a blank."""
    cells = sum(p == a for p, a in zip(prediction, answer)) / len(answer)
    return {"exact": float(prediction == answer), "cell_accuracy": cells, "valid_solution": float(is_sudoku_solution(question, prediction))}


def is_sudoku_solution(question: str, prediction: str) -> bool:
    """The prediction is a full valid grid that keeps every given of the question."""
    if len(prediction) != 81 or any(ch not in "123456789" for ch in prediction):
        return False
    digits = grid_values(prediction)
    if any(given and given != digit for given, digit in zip(grid_values(question), digits)):
        return False
    return bool(units_complete(np.array([digits], dtype=np.uint8))[0])


def maze_metrics(question: str, answer: str, prediction: str) -> dict[str, float]:
    """`exact`, `cell_accuracy` and `valid_optimal_path` (1.0 / 0.0 for the flags) of one maze prediction."""
    cells = sum(p == a for p, a in zip(prediction, answer)) / len(answer)
    return {"exact": float(prediction == answer), "cell_accuracy": cells, "valid_optimal_path": float(is_optimal_path(question, prediction))}


def is_optimal_path(question: str, prediction: str) -> bool:
    """The prediction's `o` cells plus the question's S and G are exactly one shortest wall-free S->G path.

    A 4-connected set holding S and G whose size is the shortest path length in cells contains an S->G
    path of at least that many cells, so it is that path: connected + right size is the whole check."""
    if len(prediction) != len(question):
        return False
    free, side, start, goal = parse_maze(question)
    marked = [ch == PATH for ch in prediction]
    marked[start] = marked[goal] = True
    if any(m and not f for m, f in zip(marked, free)):
        return False  # a path cell on a wall
    shortest = bfs(free, side, start)[goal]
    within = bfs(marked, side, start)  # BFS confined to the marked cells
    return shortest >= 0 and within[goal] >= 0 and sum(marked) == shortest + 1


def read_predictions(path: Path, n: int, length: int, track: str) -> dict[int, str]:
    """index -> prediction of a predictions CSV, validated against `n` puzzles of `length` cells."""
    allowed = set(TRACK_CHARSETS[track])
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


def score_track_file(predictions: Path, solutions: Path, track: str) -> dict:
    """Score a predictions CSV against a Sudoku or Maze solutions CSV (a `test.csv`, or a folder holding one).

    Returns {"track", "n", "predicted", "missing", "exact_accuracy", "cell_accuracy",
    "valid_solution" | "valid_optimal_path"}; rows without a prediction count as wrong."""
    if track not in VALIDITY_METRIC:
        raise DataError(f"track {track!r} is not one of {', '.join(VALIDITY_METRIC)}")
    solutions = Path(solutions)
    if solutions.is_dir():
        solutions = solutions / "test.csv"
    puzzles = load_sudoku_csv(solutions) if track == "sudoku" else load_maze_csv(solutions)
    length = len(puzzles[0].question) if puzzles else 0
    predicted = read_predictions(Path(predictions), len(puzzles), length, track)
    metrics = sudoku_metrics if track == "sudoku" else maze_metrics
    validity = VALIDITY_METRIC[track]
    totals = {"exact": 0.0, "cell_accuracy": 0.0, validity: 0.0}
    for index, prediction in predicted.items():
        for key, value in metrics(puzzles[index].question, puzzles[index].answer, prediction).items():
            totals[key] += value
    n = len(puzzles)
    return {
        "track": track,
        "n": n,
        "predicted": len(predicted),
        "missing": n - len(predicted),
        "exact_accuracy": totals["exact"] / max(n, 1),
        "cell_accuracy": totals["cell_accuracy"] / max(n, 1),
        validity: totals[validity] / max(n, 1),
    }


def format_track_report(report: dict) -> str:
    """A short text table of a `score_track_file` report."""
    validity = VALIDITY_METRIC[report["track"]]
    n = report["n"]
    lines = [
        f"track               {report['track']}",
        f"puzzles             {n}: {report['predicted']} predicted, {report['missing']} missing (counted wrong)",
        f"exact_accuracy      {report['exact_accuracy']:.4f}  ({round(report['exact_accuracy'] * n)}/{n} whole grids)",
        f"cell_accuracy       {report['cell_accuracy']:.4f}",
        f"{validity:<19} {report[validity]:.4f}  ({round(report[validity] * n)}/{n})",
    ]
    return "\n".join(lines)
