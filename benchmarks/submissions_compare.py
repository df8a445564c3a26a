"""B - A in ARC Prize score between two sets of submissions on the same tasks, paired per task.

    python benchmarks/submissions_compare.py --solutions runs/kaggle8/arc-agi-1_evaluation_canvas8_solutions.json \\
        --a runs/ladder/RUNG/seed_0/predict/.../submission.json runs/ladder/RUNG/seed_1/... \\
        --b runs/flow_s0/submission.json runs/flow_s1/submission.json --a-name "the rung" --b-name "the Kaggle flow"

For what `accuracy.py compare` cannot train itself: the Kaggle flow (pretraining, then fine-tuning on
the unseen tasks' demos) against the rung, or one fine-tuning budget against another. Each list holds
one submission per seed, in seed order, and both lists as many. Each task's score (solved test outputs
/ test outputs, two attempts, as ARC Prize scores) is averaged over seeds, and B - A is resampled by
task, as the ladder does (benchmarks/ladder.py). A submission may hold other tasks too (a ladder
submission holds both held-out groups): only the solutions' tasks are scored, and a task it lacks
scores 0. The entry is printed and appended to RESULTS.md unless --no-record.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import ladder  # noqa: E402
from common import RESULTS, check_results, cpu_model, publish_entry  # noqa: E402

from arc_trm.errors import ArgumentParser, UserError, exit_on_user_error  # noqa: E402
from arc_trm.scoring import load_submission, load_truth, score_submission  # noqa: E402


def seed_scores(paths: list[Path], truth: list) -> ladder.Scores:
    """{seed: {task id: ARC Prize task score}}, the seed being each file's position in `paths`."""
    return {seed: {task: result["score"] for task, result in score_submission(load_submission(path), truth, "the solutions")["tasks"].items()}
            for seed, path in enumerate(paths)}


def solved(scores: ladder.Scores) -> str:
    """The tasks some seed scores, each with its seed-averaged score."""
    tasks = sorted({task for by_task in scores.values() for task, score in by_task.items() if score > 0})
    return ", ".join(f"{task} ({sum(by_task[task] for by_task in scores.values()) / len(scores):.2f})" for task in tasks) or "none"


def comparison_lines(names: tuple[str, str], paths: tuple[list[Path], list[Path]], solutions: Path) -> list[str]:
    """The entry's body: each side's files, B - A with its interval, and what each side solves."""
    truth = load_truth(solutions, None)
    a, b = (seed_scores(side, truth) for side in paths)
    d = ladder.paired_difference(a, b, [task.id for task in truth])
    return [*(f"- {label}: {name}; one submission per seed: {', '.join(f'`{p}`' for p in side)}"
              for label, name, side in zip("AB", names, paths)),
            f"- seeds: {d.seeds}", "",
            "| tasks | count | A score | B score | B - A (95% paired bootstrap interval) | tasks B better / worse | verdict |",
            "| --- | ---: | ---: | ---: | --- | --- | --- |", d.row(f"`{solutions.name}`"),
            "", f"Tasks scored, mean over seeds: A {solved(a)}; B {solved(b)}."]


@exit_on_user_error
def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--solutions", type=Path, required=True, help="the tasks' solutions (a Kaggle solutions file, a task file or folder)")
    parser.add_argument("--a", type=Path, nargs="+", required=True, help="arm A's submissions, one per seed")
    parser.add_argument("--b", type=Path, nargs="+", required=True, help="arm B's submissions, one per seed")
    parser.add_argument("--a-name", default="A")
    parser.add_argument("--b-name", default="B")
    parser.add_argument("--results", default=str(RESULTS), help="the results file to append to")
    parser.add_argument("--no-record", action="store_true", help="print only")
    args = parser.parse_args(argv)
    if len(args.a) != len(args.b):
        raise UserError(f"--a has {len(args.a)} submission(s) and --b {len(args.b)}: give one per seed on each side")
    if not args.no_record:
        check_results(parser, args.results, {"the solutions": args.solutions,
                                             **{f"submission {n + 1} of --{side}": path for side in "ab"
                                                for n, path in enumerate(getattr(args, side))}})
    body = comparison_lines((args.a_name, args.b_name), (args.a, args.b), args.solutions)
    publish_entry(__file__, args, argv, cpu_model(), "ARC Prize score of two arms' submissions on the same tasks and seeds, "
                  "and B - A with a per-task paired bootstrap interval (tasks resampled, each task's score averaged over seeds)", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
