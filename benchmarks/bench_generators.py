"""Benchmark: the Sudoku and Maze generators, and the Sudoku solver on the shipped test.csv.

Run from the repository root:

    python benchmarks/bench_generators.py                    # appends to benchmarks/RESULTS.md
    python benchmarks/bench_generators.py --sudoku-n 20 --no-record
    ARC_TRM_SHARED_DATA=/path/to/data python benchmarks/bench_generators.py

Figures (one run each, single process): Sudoku puzzles/s at the default min-rating and at a low one
(`generate`, seed 0: full grid, dig, local search, canonical dedup), mazes/s (`generate`, 30x30, path
> 110 cells, seed 0), solver puzzles/s on the shipped test.csv with the uniqueness check (limit 2)
and for the rating alone (limit 1), and the canonical form per puzzle.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from arc_trm.data import maze, sudoku

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/common.py, however the script is started
from common import DEFAULT_DATA, command_line, describe_device, entry, missing_data, publish, timed  # noqa: E402


def run(data: Path, sudoku_n: int, low_rating: int, low_n: int, maze_n: int) -> list[tuple[str, str, str]]:
    """The figures as (what, rate, detail)."""
    figures = []
    for rating, n in ((sudoku.DEFAULT_MIN_RATING, sudoku_n), (low_rating, low_n)):
        seconds, puzzles = timed(lambda: sudoku.generate(n, min_rating=rating, seed=0, progress=False))
        ratings = [p.rating for p in puzzles]
        figures.append((f"sudoku generate, min-rating {rating} ({n} puzzles)", f"{n / seconds:.3f} puzzles/s",
                        f"{seconds / n:.2f} s/puzzle; ratings median {np.median(ratings):.0f}, max {max(ratings)}"))
    seconds, mazes = timed(lambda: maze.generate(maze_n, seed=0, progress=False))
    lengths = [m.rating for m in mazes]
    figures.append((f"maze generate, 30x30, path > 110 cells ({maze_n} mazes)", f"{maze_n / seconds:.2f} mazes/s",
                    f"{seconds / maze_n * 1000:.0f} ms/maze; path cells {min(lengths)}-{max(lengths)}"))

    test = sudoku.load_sudoku_csv(data / "sudoku" / "test.csv")
    seconds, solutions = timed(lambda: [sudoku.solve(p.question, limit=2) for p in test])
    assert all(s == [p.answer] for s, p in zip(solutions, test)), "the solver disagrees with test.csv"
    figures.append((f"sudoku solve + uniqueness (limit 2), shipped test.csv ({len(test)})", f"{len(test) / seconds:.1f} puzzles/s",
                    f"{seconds / len(test) * 1000:.1f} ms/puzzle, all unique and equal to the answers"))
    seconds, _ = timed(lambda: [sudoku.rate(p.question) for p in test])
    figures.append((f"sudoku rate (limit 1), shipped test.csv ({len(test)})", f"{len(test) / seconds:.1f} puzzles/s",
                    f"{seconds / len(test) * 1000:.1f} ms/puzzle"))
    sample = test[:200]
    seconds, _ = timed(lambda: [sudoku.canonical_form(p.question) for p in sample])
    figures.append((f"sudoku canonical form ({len(sample)} test puzzles)", f"{len(sample) / seconds:.0f} puzzles/s",
                    f"{seconds / len(sample) * 1000:.1f} ms/puzzle"))
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="shared data folder (holds sudoku/test.csv)")
    parser.add_argument("--sudoku-n", type=int, default=5, help="puzzles at the default min-rating")
    parser.add_argument("--low-rating", type=int, default=20)
    parser.add_argument("--low-n", type=int, default=20, help="puzzles at --low-rating")
    parser.add_argument("--maze-n", type=int, default=50)
    parser.add_argument("--no-record", action="store_true", help="print only, do not append to RESULTS.md")
    args = parser.parse_args(argv)
    if message := missing_data(args.data, ["sudoku/test.csv"]):
        parser.error(message)
    figures = run(args.data, args.sudoku_n, args.low_rating, args.low_n, args.maze_n)
    table = ["| what | rate | detail |", "| --- | ---: | --- |",
             *(f"| {what} | {rate} | {detail} |" for what, rate, detail in figures)]
    text = entry(__file__, describe_device(), command_line(__file__, argv), "one run each", table)
    publish(text, args.no_record)
    return 0


if __name__ == "__main__":
    sys.exit(main())
