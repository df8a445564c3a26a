"""Scoring: `python -m evaluation.score`, the command line over `arc_trm.scoring` (ARC submissions) and
the tracks' scoring (`arc_trm.tracks`: Sudoku / Maze predictions)."""
