"""ARC grids, pairs and tasks, their validation, and loaders for every ARC file format.

A `Grid` is a 2-D uint8 numpy array with 1..30 rows and columns and values 0..9. A `Task` keeps its
id, its demonstration pairs (`train`) and its test pairs (`test`, whose outputs are None when the
solutions are unknown). Formats:

- one task file: `{"train": [{"input", "output"}...], "test": [{"input"[, "output"]}...]}`
- a folder of such files (the ARC-AGI-1/2 repositories), the id is the file stem
- Kaggle: `*_challenges.json` mapping id -> task (test pairs without outputs) and optionally
  `*_solutions.json` mapping id -> list of output grids, one per test input

Any violation raises `DataError` with one line naming the file, the task id and the problem.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from arc_trm.errors import DataError
from arc_trm.io import atomic_write_json, read_json

Grid = np.ndarray
MAX_SIDE = 30
NUM_COLORS = 10


@dataclass(frozen=True)
class Pair:
    input: Grid
    output: Grid | None = None


@dataclass(frozen=True)
class Task:
    id: str
    train: tuple[Pair, ...]
    test: tuple[Pair, ...]

    @property
    def has_solutions(self) -> bool:
        return all(pair.output is not None for pair in self.test)

    @property
    def test_outputs(self) -> list[Grid | None]:
        return [pair.output for pair in self.test]

    def content_hash(self) -> str:
        """Hash of the demonstration pairs and test inputs: equal for the same puzzle under another id."""
        digest = hashlib.sha256()
        for grid in self.content_grids():
            digest.update(np.asarray(grid.shape, dtype=np.int32).tobytes())
            digest.update(grid.tobytes())
        return digest.hexdigest()[:32]

    def content_grids(self) -> Iterable[Grid]:
        for pair in self.train:
            yield pair.input
            yield pair.output
        for pair in self.test:
            yield pair.input

    def fits(self, canvas: int) -> bool:
        """Every grid of the task (test outputs included when known) fits a canvas x canvas board."""
        grids = [g for pair in self.train + self.test for g in (pair.input, pair.output) if g is not None]
        return all(g.shape[0] <= canvas and g.shape[1] <= canvas for g in grids)

    def with_test_outputs(self, outputs: list[Grid]) -> "Task":
        test = tuple(Pair(pair.input, output) for pair, output in zip(self.test, outputs, strict=True))
        return Task(self.id, self.train, test)


def grid_problem(obj: Any) -> str | None:
    """Why `obj` is not a valid grid (list of equal-length lists of ints 0..9, 1..30 per side), else None."""
    if not isinstance(obj, list) or not obj:
        return "grid must be a non-empty list of rows"
    width = None
    for row in obj:
        if not isinstance(row, list) or not row:
            return "every row must be a non-empty list"
        if width is None:
            width = len(row)
        elif len(row) != width:
            return f"rows have different lengths ({width} and {len(row)})"
        for value in row:
            if type(value) is not int or not 0 <= value < NUM_COLORS:
                return f"value {value!r} is not an integer 0..9"
    if len(obj) > MAX_SIDE or width > MAX_SIDE:
        return f"grid is {len(obj)}x{width}, larger than {MAX_SIDE}x{MAX_SIDE}"
    return None


def parse_grid(obj: Any, where: str) -> Grid:
    """Validate a JSON grid and return it as a uint8 array; `where` prefixes the error message."""
    problem = grid_problem(obj)
    if problem is not None:
        raise DataError(f"{where}: {problem}")
    return np.array(obj, dtype=np.uint8)


def grid_to_list(grid: Grid) -> list[list[int]]:
    return np.asarray(grid).tolist()


def parse_task(
    task_id: str, obj: Any, source: str | Path, solutions: list[Any] | None = None, solutions_source: str | Path | None = None
) -> Task:
    """Build a validated `Task` from its JSON object; `solutions` (Kaggle) supplies test outputs.

    Errors name `source`, or `solutions_source` for a problem in the solutions."""
    where = f"{source}: task {task_id}"
    solutions_where = f"{solutions_source or source}: task {task_id}"
    if not isinstance(obj, dict):
        raise DataError(f"{where}: expected an object with 'train' and 'test'")
    for key in ("train", "test"):
        if not isinstance(obj.get(key), list) or not obj[key]:
            raise DataError(f"{where}: '{key}' must be a non-empty list of pairs")
    if solutions is not None and (not isinstance(solutions, list) or len(solutions) != len(obj["test"])):
        count = len(solutions) if isinstance(solutions, list) else "no list of"
        raise DataError(f"{solutions_where}: solutions give {count} outputs for {len(obj['test'])} test inputs")
    train = tuple(_parse_pair(p, f"{where} train[{i}]", need_output=True) for i, p in enumerate(obj["train"]))
    test = []
    for i, pair_obj in enumerate(obj["test"]):
        pair = _parse_pair(pair_obj, f"{where} test[{i}]", need_output=False)
        if solutions is not None:
            pair = Pair(pair.input, parse_grid(solutions[i], f"{solutions_where} solution[{i}]"))
        test.append(pair)
    return Task(task_id, train, tuple(test))


def _parse_pair(obj: Any, where: str, need_output: bool) -> Pair:
    if not isinstance(obj, dict) or "input" not in obj:
        raise DataError(f"{where}: expected an object with 'input'")
    if need_output and "output" not in obj:
        raise DataError(f"{where}: demonstration pair has no 'output'")
    output = obj.get("output")
    return Pair(
        parse_grid(obj["input"], f"{where} input"),
        None if output is None else parse_grid(output, f"{where} output"),
    )


def load_task_file(path: str | Path) -> Task:
    """One task in the ARC repository format; its id is the file name without `.json`."""
    path = Path(path)
    return parse_task(path.stem, read_json(path), path)


def load_task_folder(path: str | Path) -> list[Task]:
    """Every `*.json` task file in a folder, sorted by id."""
    path = Path(path)
    files = sorted(path.glob("*.json"))
    if not files:
        raise DataError(f"{path}: folder holds no .json task files")
    return [load_task_file(file) for file in files]


def load_solutions(path: str | Path) -> dict[str, list[Grid]]:
    """A Kaggle solutions file: task id -> list of output grids, one per test input."""
    path = Path(path)
    obj = read_json(path)
    if not isinstance(obj, dict):
        raise DataError(f"{path}: expected an object mapping task id -> list of output grids")
    solutions = {}
    for task_id, outputs in obj.items():
        if not isinstance(outputs, list) or not outputs:
            raise DataError(f"{path}: task {task_id}: expected a non-empty list of output grids")
        solutions[task_id] = [parse_grid(g, f"{path}: task {task_id} solution[{i}]") for i, g in enumerate(outputs)]
    return solutions


def kaggle_challenges(tasks: Sequence[Task]) -> dict[str, Any]:
    """Tasks as a Kaggle challenges object (demo pairs and test inputs, no test outputs)."""
    return {
        task.id: {
            "train": [{"input": grid_to_list(p.input), "output": grid_to_list(p.output)} for p in task.train],
            "test": [{"input": grid_to_list(p.input)} for p in task.test],
        }
        for task in tasks
    }


def kaggle_solutions(tasks: Sequence[Task]) -> dict[str, list[list[list[int]]]]:
    """The test outputs of tasks that have them, as a Kaggle solutions object."""
    return {task.id: [grid_to_list(p.output) for p in task.test] for task in tasks}


def write_kaggle_pair(tasks: Sequence[Task], folder: str | Path, name: str = "") -> tuple[Path, Path]:
    """`tasks` as FOLDER/NAME_challenges.json + FOLDER/NAME_solutions.json (challenges.json +
    solutions.json without a name), written atomically; returns (challenges, solutions)."""
    prefix = f"{name}_" if name else ""
    challenges, solutions = Path(folder) / f"{prefix}challenges.json", Path(folder) / f"{prefix}solutions.json"
    atomic_write_json(solutions, kaggle_solutions(tasks))  # first: a challenges file alone reads as unsolved
    atomic_write_json(challenges, kaggle_challenges(tasks))
    return challenges, solutions


def load_challenges(path: str | Path, solutions: str | Path | None = None) -> list[Task]:
    """A Kaggle challenges file, with test outputs from `solutions` when given."""
    path = Path(path)
    return _challenges(read_json(path), path, solutions)


def _challenges(obj: Any, path: Path, solutions: str | Path | None) -> list[Task]:
    if not isinstance(obj, dict) or not obj:
        raise DataError(f"{path}: expected a non-empty object mapping task id -> task")
    answers = read_json(solutions) if solutions is not None else {}
    if not isinstance(answers, dict):
        raise DataError(f"{solutions}: expected an object mapping task id -> list of output grids")
    missing = sorted(set(answers) - set(obj))
    if missing:
        raise DataError(f"{solutions}: task {missing[0]} is not in {path.name}")
    return [parse_task(task_id, task, path, answers.get(task_id), solutions) for task_id, task in obj.items()]


def solutions_beside(challenges: Path) -> Path | None:
    """`x_solutions.json` next to `x_challenges.json`, if it exists."""
    if not challenges.name.endswith("_challenges.json"):
        return None
    candidate = challenges.with_name(challenges.name.replace("_challenges.json", "_solutions.json"))
    return candidate if candidate.exists() else None


def load_tasks(path: str | Path, solutions: str | Path | None = None) -> list[Task]:
    """Tasks from a folder, a single task file or a Kaggle challenges file (auto-detected).

    For a challenges file, `solutions` defaults to the `*_solutions.json` beside it when present.
    """
    path = Path(path)
    if path.is_dir():
        refuse_solutions(solutions, f"the task folder {path}")
        return load_task_folder(path)
    obj = read_json(path)
    if isinstance(obj, dict) and ("test" in obj or isinstance(obj.get("train"), list)):
        refuse_solutions(solutions, f"the task file {path}")
        return [parse_task(path.stem, obj, path)]  # a task file (a missing key is reported as such)
    return _challenges(obj, path, solutions if solutions is not None else solutions_beside(path))


def refuse_solutions(solutions: str | Path | None, tasks: str) -> None:
    """Task folders, task files and named splits carry their own outputs: a solutions file given with
    them would be ignored, so it is refused."""
    if solutions is not None:
        raise DataError(f"{solutions}: a solutions file goes with a challenges file, not with {tasks}")
