"""The training job's data: one `ExampleSource` per track, built from the `data` config section."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from arc_trm.config import DataConfig
from arc_trm.data.stream import ExampleSource
from arc_trm.datasets import resolve
from arc_trm.errors import ConfigError, DataError
from arc_trm.grids import Task

log = logging.getLogger(__name__)


def limit_tasks(tasks: list[Task], held_out: set[str], max_tasks: int, canvas: int) -> list[Task]:
    """The first `max_tasks` training and first `max_tasks` held-out tasks that fit the canvas."""
    if max_tasks <= 0:
        return tasks
    fitting = [t for t in tasks if t.fits(canvas)]
    trained = [t for t in fitting if t.id not in held_out][:max_tasks]
    evaluated = [t for t in fitting if t.id in held_out][:max_tasks]
    return trained + evaluated


def build_source(data: DataConfig, seed: int) -> ExampleSource:
    if data.track == "arc":
        from arc_trm.data.arc import PRESETS, ArcSource, arc_tasks, hold_out_every_test

        if data.path:
            return ArcSource.load(data.path)
        if data.tasks in PRESETS:
            tasks, held_out = arc_tasks(data.tasks, data.concept or None)
        elif Path(data.tasks).exists():
            tasks = resolve(data.tasks)
            held_out = {task.id for task in tasks}
        else:
            raise ConfigError(f"data.tasks: '{data.tasks}' is neither {' nor '.join(PRESETS)} nor an existing path")
        tasks = limit_tasks(tasks, held_out, data.max_tasks, data.canvas)
        held_out_training: set[str] = set()
        if data.hold_out_training_tests:
            tasks, dropped = hold_out_every_test(tasks)
            for line in dropped:
                log.warning("dropped a demo equal to a held-out test pair: %s", line)
            held_out_training = {t.id for t in tasks} - held_out
            held_out = {t.id for t in tasks}
        return ArcSource.from_tasks(tasks, held_out & {t.id for t in tasks}, num_aug=data.num_aug, seed=seed, canvas=data.canvas,
                                    translate=data.translate, held_out_training=held_out_training)
    if data.track == "sudoku":
        from arc_trm.data.sudoku import SudokuSource, load_sudoku_csv, subsample

        puzzles = load_sudoku_csv(Path(data.path) / "train.csv")
        if not puzzles:
            raise DataError(f"{Path(data.path) / 'train.csv'}: no puzzles to train on (only a header?)")
        if data.subsample:
            puzzles = subsample(puzzles, data.subsample, seed)
        return SudokuSource(puzzles, num_aug=data.num_aug)
    from arc_trm.data.maze import MazeSource, load_maze_csv

    mazes = load_maze_csv(Path(data.path) / "train.csv")
    if not mazes:
        raise DataError(f"{Path(data.path) / 'train.csv'}: no mazes to train on (only a header?)")
    return MazeSource(mazes, augment=data.num_aug > 0)


def build_test_source(data: DataConfig, seq_len: int, path: str | Path | None = None) -> Any:
    """Sudoku / Maze puzzles to evaluate a model of `seq_len` tokens on: `test.csv` of `data.path` (or
    `path`: a folder or a CSV), the first `data.max_test` of them when set, never augmented."""
    csv = Path(path or data.path)
    csv = csv / "test.csv" if csv.is_dir() else csv
    if data.track == "sudoku":
        from arc_trm.data.sudoku import SudokuSource, load_sudoku_csv

        source = SudokuSource(load_sudoku_csv(csv)[: data.max_test or None], num_aug=0)
    else:
        from arc_trm.data.maze import MazeSource, load_maze_csv

        source = MazeSource(load_maze_csv(csv)[: data.max_test or None], augment=False)
    if len(source) == 0:
        raise DataError(f"{csv}: no puzzles to evaluate on (only a header?)")
    if source.seq_len != seq_len:
        raise DataError(f"{csv}: puzzles of {source.seq_len} cells, the model reads {seq_len}")
    return source


def describe(source: Any, data: DataConfig) -> dict[str, Any]:
    """What prediction needs to rebuild the puzzle-id mapping of a trained model."""
    info: dict[str, Any] = {"track": data.track, "num_puzzle_ids": source.num_puzzle_ids, "seq_len": source.seq_len}
    if data.track == "arc":
        info.update(source.metadata())
    return info
