"""Scoring: `python -m evaluation.score` (ARC submissions, Sudoku/Maze tracks) and the functions behind it."""
