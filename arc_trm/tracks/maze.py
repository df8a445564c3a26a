"""The Maze-Hard track: `arc_trm.data.maze` (CSV, tokens, dihedral augmentation, `MazeSource`) as a
`PuzzleTrack`, whose validity is `valid_optimal_path`: the `o` cells with the question's S and G form a
4-connected S->G path through open cells, of the shortest length. Random-wall mazes have many shortest
paths and the answer marks one by a tie-break, so this is what a solver can be held to. Augmentation is
on or off: on when `data.num_aug` > 0."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from arc_trm.data.generation import Puzzle
from arc_trm.data.maze import CHARSET, PATH, VOCAB_SIZE, MazeSource, bfs, load_maze_csv, parse_maze, tokens_to_string
from arc_trm.tracks.puzzles import PuzzleTrack


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


class MazeTrack(PuzzleTrack):
    name = "maze"
    vocab_size = VOCAB_SIZE
    noun = "mazes"
    prediction_charset = CHARSET + "."
    validity = "valid_optimal_path"

    def load(self, path: Path) -> list[Puzzle]:
        return load_maze_csv(path)

    def source(self, puzzles: Sequence[Puzzle], num_aug: int) -> MazeSource:
        return MazeSource(puzzles, augment=num_aug > 0)

    def decode(self, tokens: np.ndarray) -> str:
        return tokens_to_string(tokens)

    def is_valid(self, question: str, prediction: str) -> bool:
        return is_optimal_path(question, prediction)


MAZE = MazeTrack()
