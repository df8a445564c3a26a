"""The training job's data, from the `data` config section, by its track (`arc_trm.tracks`): what
`arc_trm.train` and its evaluation (`arc_trm.held_out`) read."""

from __future__ import annotations

from typing import Any

from arc_trm.config import DataConfig
from arc_trm.data.stream import ExampleSource
from arc_trm.exported import DataInfo
from arc_trm.tracks import track


def build_source(data: DataConfig, seed: int) -> ExampleSource:
    """The training examples."""
    return track(data.track).training_source(data, seed)


def build_test_source(data: DataConfig, seq_len: int) -> Any | None:
    """The held-out puzzles evaluated during training, for a model of `seq_len` tokens: Sudoku / Maze read
    `test.csv` of `data.path` (its first `data.max_test` puzzles when set); None for ARC, whose held-out
    test inputs are part of the training source."""
    return track(data.track).test_source(data, seq_len)


def describe(source: Any, data: DataConfig) -> DataInfo:
    """What prediction needs to rebuild the puzzle-id mapping of a trained model (its data.json)."""
    return track(data.track).model_info(source, data)


def data_inputs(data: DataConfig) -> dict[str, str | None]:
    """The files the `data` section names besides `data.path`, by key (the run folder must not lie on them)."""
    return track(data.track).data_inputs(data)
