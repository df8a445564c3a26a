"""ARC scoring of a Kaggle `submission.json`, counted the way ARC Prize and Kaggle count: the library
behind `python -m evaluation.score` (its ARC track) and the reports of `arc_trm.predict`.

    from arc_trm.scoring import load_submission, score_submission, format_report
    report = score_submission(load_submission("submission.json"), tasks)
    print(format_report(report))

A submission maps task id -> list (one entry per test input, in order) of
`{"attempt_1": grid, "attempt_2": grid}`. Rules (docs/scoring.md):

- a test output is solved when attempt_1 or attempt_2 equals the truth exactly (shape and values);
  other keys (attempt_3, ...) never count;
- a task scores solved outputs / test outputs; `score` is the mean over tasks (macro, ARC Prize and
  TRM), `output_score` is solved outputs / all outputs (micro, Kaggle: a 2-output task weighs
  double), `strict_score` is the fraction of tasks with every output solved (ARC-AGI-2 README);
- a task missing from the submission scores 0 and is listed in `missing` (unlike ARC Prize's
  harness, which drops it from the denominator: Kaggle requires every task);
- a malformed attempt (not a list, ragged, empty, values outside 0..9, > 30 per side, missing key)
  is wrong, with a warning; a malformed *file* (not an object, a task value not a list, an entry
  not an object) is a `DataError`;
- tasks in the submission but not in the solutions are ignored and listed in `extra`.

The truth is a named split or a path (`load_truth`): a folder of task files, one task file, a Kaggle
challenges file (its `*_solutions.json` beside it is picked up) or a Kaggle solutions file (its
`*_challenges.json` beside it is picked up; without one the outputs are scored but cannot be drawn).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from arc_trm.errors import DataError, UserError
from arc_trm.grids import Grid, Pair, Task, grid_problem, load_challenges, load_solutions, load_tasks, solutions_beside
from arc_trm.io import atomic_write_json, read_json
from arc_trm.splits import resolve, split_inputs

ATTEMPT_KEYS = ("attempt_1", "attempt_2")
# Stands in for a test input that a solutions file alone does not give (see `outputs_only_tasks`).
NO_INPUT = np.zeros((0, 0), dtype=np.uint8)
MAX_LISTED = 20  # unsolved task ids shown by `format_report`
MAX_WARNINGS_SHOWN = 5

_JSON_TYPES = {dict: "an object", list: "a list", str: "a string", int: "a number", float: "a number",
               bool: "a boolean", type(None): "null"}


def _json_type(obj: Any) -> str:
    return _JSON_TYPES.get(type(obj), type(obj).__name__)


def check_submission(obj: Any, source: str) -> dict[str, list[dict]]:
    """Check the file-level structure of a submission; a violation is a `DataError` naming `source`.

    Attempts are not checked here: a malformed attempt is only a wrong answer.
    """
    if not isinstance(obj, dict):
        raise DataError(f"{source}: expected an object mapping task id -> list of attempts, got {_json_type(obj)}")
    for task_id, entries in obj.items():
        if not isinstance(entries, list):
            raise DataError(
                f"{source}: task {task_id}: expected a list of {{attempt_1, attempt_2}} objects "
                f"(one per test input), got {_json_type(entries)}"
            )
        for i, entry in enumerate(entries):
            if not isinstance(entry, dict):
                raise DataError(
                    f"{source}: task {task_id} entry [{i}]: expected an object with attempt_1 and attempt_2, "
                    f"got {_json_type(entry)}"
                )
    return obj


def load_submission(path: str | Path) -> dict[str, list[dict]]:
    """Read a Kaggle `submission.json`; a missing or malformed file is one `DataError` line."""
    path = Path(path)
    return check_submission(read_json(path), str(path))


def outputs_only_tasks(solutions: dict[str, list[Grid]]) -> list[Task]:
    """Tasks known only by their test outputs (a Kaggle solutions file without its challenges file).

    They can be scored, not drawn: no demonstrations, and every test input is `NO_INPUT`.
    """
    return [Task(task_id, (), tuple(Pair(NO_INPUT, output) for output in outputs))
            for task_id, outputs in solutions.items()]


def has_inputs(task: Task) -> bool:
    """False for a task from `outputs_only_tasks`, whose inputs are unknown."""
    return all(pair.input.size for pair in task.test)


def attempt_grid(attempt: Any) -> tuple[Grid | None, str | None]:
    """An attempt as a `Grid`, or `(None, why it is malformed)`. Numpy arrays are accepted too."""
    if isinstance(attempt, np.ndarray):
        attempt = attempt.tolist()
    problem = grid_problem(attempt)
    if problem is not None:
        return None, problem
    return np.array(attempt, dtype=np.uint8), None


def task_attempts(submission: dict[str, list[dict]], task: Task) -> list[list[Grid | None]]:
    """Per test input of `task`, its [attempt_1, attempt_2] as grids (None when missing or malformed)."""
    entries = submission.get(task.id, [])
    attempts = []
    for i in range(len(task.test)):
        entry = entries[i] if i < len(entries) else {}
        attempts.append([attempt_grid(entry[key])[0] if key in entry else None for key in ATTEMPT_KEYS])
    return attempts


def _output_solved(entry: dict, truth: Grid, where: str, warnings: list[str]) -> bool:
    """Whether either attempt of one submission entry equals `truth`; malformed attempts are warned about."""
    ignored = sorted(str(key) for key in entry if key not in ATTEMPT_KEYS)
    if ignored:
        warnings.append(f"{where}: ignored {', '.join(ignored)} (only attempt_1 and attempt_2 count)")
    solved = False
    for key in ATTEMPT_KEYS:
        if key not in entry:
            warnings.append(f"{where}: {key} is missing; counted wrong")
            continue
        grid, problem = attempt_grid(entry[key])
        if problem is not None:
            warnings.append(f"{where} {key}: {problem}; counted wrong")
        elif np.array_equal(grid, truth):
            solved = True
    return solved


def _task_outputs(task: Task, entries: list[dict], warnings: list[str]) -> list[bool]:
    """Solved flag per test output of `task`, given its submission entries."""
    n = len(task.test)
    if len(entries) < n:
        warnings.append(f"task {task.id}: {len(entries)} entries for {n} test inputs; the missing outputs count as wrong")
    elif len(entries) > n:
        warnings.append(f"task {task.id}: {len(entries)} entries for {n} test inputs; the extra entries are ignored")
    return [
        i < len(entries) and _output_solved(entries[i], pair.output, f"task {task.id} output {i}", warnings)
        for i, pair in enumerate(task.test)
    ]


def score_submission(submission: dict, tasks: list[Task], truth: str | None = None) -> dict:
    """Score `submission` against `tasks` (which must carry their test outputs); see the module rules.
    `truth` names where the tasks came from (a file, a split) in the errors about them.

    Returns `{"score", "output_score", "strict_score", "n_tasks", "n_outputs",
    "tasks": {id: {"score", "outputs": [bool, ...]}}, "missing", "extra", "warnings"}`.
    """
    submission = check_submission(submission, "submission")
    where = f"{truth}: " if truth else ""
    if not tasks:
        raise DataError(f"{where}no tasks to score")
    for task in tasks:
        if not task.has_solutions:
            raise DataError(
                f"{where}task {task.id} has no test outputs, so it cannot be scored "
                "(give a solutions file, or a challenges file with its *_solutions.json beside it)"
            )
    warnings: list[str] = []
    missing = [task.id for task in tasks if task.id not in submission]
    results = {}
    for task in tasks:
        if task.id in submission:
            outputs = _task_outputs(task, submission[task.id], warnings)
        else:
            outputs = [False] * len(task.test)
        results[task.id] = {"score": sum(outputs) / len(outputs), "outputs": outputs}
    known = {task.id for task in tasks}
    n_outputs = sum(len(result["outputs"]) for result in results.values())
    return {
        "score": sum(result["score"] for result in results.values()) / len(results),
        "output_score": sum(sum(result["outputs"]) for result in results.values()) / n_outputs,
        "strict_score": sum(all(result["outputs"]) for result in results.values()) / len(results),
        "n_tasks": len(results),
        "n_outputs": n_outputs,
        "tasks": results,
        "missing": missing,
        "extra": [task_id for task_id in submission if task_id not in known],
        "warnings": warnings,
    }


def _listed(items: list[str], limit: int) -> str:
    shown = " ".join(items[:limit])
    return shown + (f" (+{len(items) - limit} more)" if len(items) > limit else "")


def format_report(report: dict) -> str:
    """A short text table of a `score_submission` report: the three scores, counts, unsolved tasks."""
    tasks = report["tasks"]
    solved = sum(result["score"] == 1.0 for result in tasks.values())
    partly = sum(0.0 < result["score"] < 1.0 for result in tasks.values())
    solved_outputs = sum(sum(result["outputs"]) for result in tasks.values())
    missing = set(report["missing"])
    unsolved = [  # submitted but not fully solved; missing tasks get their own line
        task_id if result["score"] == 0.0 else f"{task_id}({result['score']:.2f})"
        for task_id, result in tasks.items() if result["score"] < 1.0 and task_id not in missing
    ]
    lines = [
        f"score         {report['score']:.4f}  mean task score (ARC Prize)",
        f"output_score  {report['output_score']:.4f}  solved outputs / outputs (Kaggle)",
        f"strict_score  {report['strict_score']:.4f}  tasks with every output solved",
        f"tasks         {report['n_tasks']}: {solved} solved, {partly} partly, "
        f"{report['n_tasks'] - solved - partly} unsolved ({len(report['missing'])} missing from the submission)",
        f"outputs       {report['n_outputs']}: {solved_outputs} solved",
    ]
    if unsolved:
        lines.append(f"wrong         {_listed(unsolved, MAX_LISTED)}")
    if report["missing"]:
        lines.append(f"missing       {_listed(report['missing'], MAX_LISTED)}")
    if report["extra"]:
        extra = _listed(report["extra"], MAX_LISTED)
        lines.append(f"extra         {len(report['extra'])} not in the solutions, ignored: {extra}")
    if report["warnings"]:
        lines.append(f"warnings      {len(report['warnings'])}")
        lines += [f"  {warning}" for warning in report["warnings"][:MAX_WARNINGS_SHOWN]]
        if len(report["warnings"]) > MAX_WARNINGS_SHOWN:
            lines.append(f"  ... (+{len(report['warnings']) - MAX_WARNINGS_SHOWN} more in the --json report)")
    return "\n".join(lines)


# ------------------------------------------------------------------------- files, pictures, the command


def _challenges_beside(solutions: Path) -> Path | None:
    if not solutions.name.endswith("_solutions.json"):
        return None
    candidate = solutions.with_name(solutions.name.replace("_solutions.json", "_challenges.json"))
    return candidate if candidate.exists() else None


def _is_solutions_map(obj: object) -> bool:
    """Kaggle solutions (id -> list of grids), as opposed to a task file or a challenges file (id -> task)."""
    return (isinstance(obj, dict) and not {"train", "test"} <= obj.keys()
            and not any(isinstance(value, dict) for value in obj.values()))


def load_truth(solutions: Path | None, split: str | None) -> list[Task]:
    """The tasks, with test outputs, that a submission is scored against (see the module docstring)."""
    if split is not None:
        return resolve(split)
    if not solutions.exists():
        raise DataError(f"{solutions}: no such file or folder")
    if solutions.is_dir():
        return load_tasks(solutions)
    challenges = _challenges_beside(solutions)
    if challenges is not None:
        return load_challenges(challenges, solutions)
    if _is_solutions_map(read_json(solutions)):
        return outputs_only_tasks(load_solutions(solutions))
    return load_tasks(solutions)


def truth_inputs(solutions: Path | None, split: str | None) -> dict[str, Path | None]:
    """Every file `load_truth` reads, with the Kaggle file found beside the one given."""
    if split is not None:
        return split_inputs(split)
    return {
        "the solutions": solutions,
        "the challenges file beside the solutions": _challenges_beside(solutions),
        "the solutions file beside the challenges": solutions_beside(solutions) if solutions.is_file() else None,
    }


def _file_name(task_id: str) -> str:
    """A task id made safe as a file name (ids from a challenges file are arbitrary strings)."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", task_id) + ".png"


def render_unsolved(report: dict, submission: dict, tasks: list[Task], folder: Path) -> int:
    """One PNG per task not fully solved; returns how many were written."""
    from arc_trm.render import render_task_result  # matplotlib is slow to import: only when drawing

    unsolved = [task for task in tasks if report["tasks"][task.id]["score"] < 1.0]
    for task in unsolved:
        render_task_result(task, task_attempts(submission, task), folder / _file_name(task.id))
    return len(unsolved)


def score_files(
    submission_path: Path, solutions: Path | None, split: str | None, json: Path | None = None, render: Path | None = None,
) -> str:
    """Score a `submission.json` against the truth (`solutions` or `split`), write the full report to
    `json` and one PNG per task not fully solved under `render` when given; return the table to print."""
    tasks = load_truth(solutions, split)
    submission = load_submission(submission_path)
    if render is not None and not all(has_inputs(task) for task in tasks):
        raise UserError(
            f"--render needs the task inputs, which the solutions file {solutions} alone does not hold; "
            "pass the challenges file (with *_solutions.json beside it) or a task folder"
        )
    truth = f"split {split}" if split is not None else str(solutions)
    report = score_submission(submission, tasks, truth)
    text = format_report(report)
    if render is not None:
        drawn = render_unsolved(report, submission, tasks, render)
        text += f"\npictures      {drawn} written to {render}"
    if json is not None:
        atomic_write_json(json, report, indent=True)
    return text
