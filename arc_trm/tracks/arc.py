"""The ARC track: tasks of a preset (`data.tasks=arc1|arc2`, ConceptARC optional), of a path or of a
built data folder (`data.path`), trained as `arc_trm.data.arc.ArcSource`; the held-out test inputs
are part of that source; prediction votes into a Kaggle `submission.json`, scored by `arc_trm.scoring`."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from arc_trm import scoring
from arc_trm.data.arc import PRESETS, ArcSource, arc_tasks, hold_out_every_test
from arc_trm.errors import ConfigError
from arc_trm.exported import DataInfo
from arc_trm.grids import Task
from arc_trm.splits import resolve
from arc_trm.tokens import ARC_VOCAB

log = logging.getLogger(__name__)


def limit_tasks(tasks: list[Task], held_out: set[str], max_tasks: int, canvas: int) -> list[Task]:
    """The first `max_tasks` training and first `max_tasks` held-out tasks that fit the canvas."""
    if max_tasks <= 0:
        return tasks
    fitting = [t for t in tasks if t.fits(canvas)]
    trained = [t for t in fitting if t.id not in held_out][:max_tasks]
    evaluated = [t for t in fitting if t.id in held_out][:max_tasks]
    return trained + evaluated


class ArcTrack:
    name = "arc"
    vocab_size = ARC_VOCAB

    def check_data(self, data: Any) -> None:
        if not data.path and not data.tasks.strip():
            raise ConfigError(f"data.tasks must be {', '.join(PRESETS)} or a path")
        if data.path and data.hold_out_training_tests:  # a built folder's held-out tasks were fixed when it was built
            raise ConfigError("data.hold_out_training_tests works with data.tasks, not with a built data.path folder; "
                              "set data.hold_out_training_tests=false")

    def data_inputs(self, data: Any) -> dict[str, str | None]:
        built = bool(data.path.strip())  # a built data folder replaces data.tasks and data.concept
        return {
            "data.tasks": data.tasks if not built and data.tasks not in PRESETS else None,
            "data.concept": data.concept.strip() or None if not built else None,
        }

    def training_source(self, data: Any, seed: int) -> ArcSource:
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

    def test_source(self, data: Any, seq_len: int) -> None:
        """None: the held-out test inputs are tasks of the training source (`ArcSource.held_out`)."""
        return None

    def model_info(self, source: ArcSource, data: Any) -> DataInfo:
        return DataInfo.from_json({"track": self.name, **source.metadata()})

    def score_files(
        self, predictions: Path, solutions: Path | None, split: str | None, json: Path | None = None, render: Path | None = None,
    ) -> str:
        return scoring.score_files(predictions, solutions, split, json, render)


ARC = ArcTrack()
