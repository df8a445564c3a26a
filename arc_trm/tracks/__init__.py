"""The tracks TRM trains on, ARC, Sudoku-Extreme and Maze-Hard: one `Track` interface, one module per
track, one table.

    from arc_trm.tracks import track
    source = track(config.data.track).training_source(config.data, seed=0)

Whatever depends on the track asks its `Track`: the `data` config section (`data.track`), an exported
model (the `track` of its data.json) and the scoring command (`--track`) all name one of `TRACKS`, and
no other code of the library or its commands compares track names (tests/test_layout.py). The data code itself stays under arc_trm/data/ (the
ARC tasks, the Sudoku and Maze CSV files, generators, solver); a track module is the thin adapter over
it. Sudoku and Maze share `PuzzleTrack` (puzzles.py): CSV puzzles, a test CSV evaluated during training
and after prediction, a predictions file scored by exact and cell accuracy and the track's own validity.

A new track: its data code under arc_trm/data/, a module here with its `Track`, one line in `TRACKS`,
and a YAML preset under arc_trm/presets/ that sets `data.track`.

`arc_trm.config` checks the `data` section with this table (`check_data`), so nothing here imports the
config: a track reads the section it is given (`data`, an `arc_trm.config.DataConfig`) by its fields.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from arc_trm.data.stream import ExampleSource
from arc_trm.errors import ConfigError
from arc_trm.exported import DataInfo
from arc_trm.tracks.arc import ARC
from arc_trm.tracks.maze import MAZE
from arc_trm.tracks.sudoku import SUDOKU


class Track(Protocol):
    name: str
    """`data.track`, the `track` an exported model's data.json records, `--track` of the scoring command."""
    vocab_size: int
    """Tokens of the track's sequences: the vocabulary of the models trained on it."""

    def check_data(self, data: Any) -> None:
        """A ConfigError when the `data` section cannot name this track's data (before any file is read)."""

    def data_inputs(self, data: Any) -> dict[str, str | None]:
        """The files the `data` section names besides `data.path`, by key: a run folder must not lie on them."""

    def training_source(self, data: Any, seed: int) -> ExampleSource:
        """The training examples the `data` section names."""

    def test_source(self, data: Any, seq_len: int) -> Any | None:
        """The held-out puzzles that evaluation during training predicts (they must fit a model of `seq_len`
        tokens), read apart from the training data; None when the training source holds them (ARC)."""

    def model_info(self, source: Any, data: Any) -> DataInfo:
        """What an exported model keeps of its training data (data.json): its track, and what prediction
        needs to rebuild the puzzle-id mapping."""

    def score_files(
        self, predictions: Path, solutions: Path | None, split: str | None, json: Path | None = None, render: Path | None = None,
    ) -> str:
        """`python -m evaluation.score --track NAME`: score a predictions file against the truth (`solutions`,
        or a named `split`), write the full report to `json` (and pictures under `render`) when given;
        return the table to print."""


TRACKS: dict[str, Track] = {t.name: t for t in (ARC, SUDOKU, MAZE)}


def known() -> str:
    """The track names as a sentence: `arc, sudoku or maze`."""
    *most, last = TRACKS
    return f"{', '.join(most)} or {last}" if most else last


def track(name: str) -> Track:
    """The track called `name`; a ConfigError naming the known ones for any other."""
    if name not in TRACKS:
        raise ConfigError(f"unknown track '{name}': must be {known()}")
    return TRACKS[name]


def check_data(data: Any) -> None:
    """The `data` config section's track rules: a known `data.track`, then what that track reads."""
    if data.track not in TRACKS:
        raise ConfigError(f"data.track must be {known()}")
    TRACKS[data.track].check_data(data)
