"""`python -m evaluation.score`: score a submission the way ARC Prize and Kaggle do.

Run from the repository root:

    python -m evaluation.score submission.json --split arc-agi-1/evaluation
    python -m evaluation.score submission.json --solutions arc-agi_evaluation_solutions.json \\
        --json report.json --render pictures/
    python -m evaluation.score predictions.csv --solutions test.csv --track sudoku

`--solutions` takes a folder of task files, one task file, a Kaggle challenges file (its
`*_solutions.json` beside it is picked up) or a Kaggle solutions file (its `*_challenges.json`
beside it is picked up; without one the outputs are scored but cannot be drawn). `--split` takes a
named split (see `arc_trm.datasets`). Prints a short table; `--json` writes the full report,
`--render DIR` one PNG per task not fully solved. Bad input: one `error:` line, exit code 2, and no
report file.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from arc_trm.datasets import SPLITS, resolve, split_inputs
from arc_trm.errors import ArgumentParser, DataError, UserError, exit_on_user_error, nonempty_path
from arc_trm.grids import Task, load_challenges, load_solutions, load_tasks, solutions_beside
from arc_trm.io import atomic_write_json, read_json, refuse_output_on_input
from evaluation.arc import (
    format_report,
    has_inputs,
    load_submission,
    outputs_only_tasks,
    score_submission,
    task_attempts,
)

TRACKS = ("arc", "sudoku", "maze")


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(prog="python -m evaluation.score", description=__doc__.split("\n\n")[0])
    parser.add_argument("submission", type=Path, help="submission.json (Kaggle format), or track predictions")
    truth = parser.add_mutually_exclusive_group(required=True)
    truth.add_argument("--solutions", type=Path, metavar="PATH",
                       help="task folder, task file, Kaggle challenges file or Kaggle solutions file")
    truth.add_argument("--split", metavar="NAME", help=f"named split: {', '.join(SPLITS)}")
    parser.add_argument("--json", type=nonempty_path, metavar="REPORT", help="write the full report here (atomically)")
    parser.add_argument("--render", type=nonempty_path, metavar="DIR", help="write one PNG per task not fully solved")
    parser.add_argument("--track", choices=TRACKS, default="arc", help="what is scored (default: arc)")
    return parser


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


def score_arc(args: argparse.Namespace) -> str:
    """Score an ARC submission, write the requested files, return the table to print."""
    tasks = load_truth(args.solutions, args.split)
    submission = load_submission(args.submission)
    if args.render is not None and not all(has_inputs(task) for task in tasks):
        raise UserError(
            f"--render needs the task inputs, which the solutions file {args.solutions} alone does not hold; "
            "pass the challenges file (with *_solutions.json beside it) or a task folder"
        )
    truth = f"split {args.split}" if args.split is not None else str(args.solutions)
    report = score_submission(submission, tasks, truth)
    text = format_report(report)
    if args.render is not None:
        drawn = render_unsolved(report, submission, tasks, args.render)
        text += f"\npictures      {drawn} written to {args.render}"
    if args.json is not None:
        atomic_write_json(args.json, report, indent=True)
    return text


def score_track(args: argparse.Namespace) -> str:
    """Score Sudoku or Maze predictions with `evaluation.tracks`; return the table to print."""
    if args.split is not None or args.render is not None:
        raise UserError(f"--track {args.track} takes --solutions (and --json), not --split or --render")
    from evaluation.tracks import format_track_report, score_track_file

    report = score_track_file(args.submission, args.solutions, args.track)
    if args.json is not None:
        atomic_write_json(args.json, report, indent=True)
    return format_track_report(report)


def score_inputs(args: argparse.Namespace) -> dict[str, Path | None]:
    """Every file the command reads: the submission and the truth, with the Kaggle file found beside it."""
    if args.split is not None:
        return {"the submission": args.submission, **split_inputs(args.split)}
    solutions = args.solutions
    return {
        "the submission": args.submission, "the solutions": solutions,
        "the challenges file beside the solutions": _challenges_beside(solutions),
        "the solutions file beside the challenges": solutions_beside(solutions) if solutions.is_file() else None,
    }


@exit_on_user_error
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    inputs = score_inputs(args)
    if args.json is not None and args.render is not None and args.json.resolve() == args.render.resolve():
        raise UserError(f"--json {args.json} and --render {args.render}: the same path; the report is a file, the pictures a folder")
    for option in ("--json", "--render"):
        output = getattr(args, option[2:])
        if output is not None:
            refuse_output_on_input(output, inputs, option=option)
    text = score_arc(args) if args.track == "arc" else score_track(args)  # an unwritable --json: one line at the edge
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
