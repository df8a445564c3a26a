"""Held-out accuracy of the whole chain: train within a wall-clock budget, predict with test-time
augmentation, vote with every policy, score, and record it.

    python benchmarks/accuracy.py preset=arc1_8x8_cpu --minutes 60          # this machine's CPU preset
    python benchmarks/accuracy.py preset=arc1 --minutes 600 \\
        --launch "accelerate launch --config_file accelerate_configs/multi_gpu.yaml"   # GPUs, the real preset

1. Trains `python -m arc_trm.train PRESET run.dir=RUN train.max_minutes=...` (or under `--launch`).
   The budget is the total over re-runs: a re-run resumes the run and trains for what is left of it
   (`RUN/accuracy_budget.json` keeps the minutes spent; a killed run's unfinished minutes are not counted).
2. Writes the run's held-out tasks (those whose test outputs training never saw) as a Kaggle
   challenges + solutions pair under `RUN/held_out/`.
3. Predicts them with `python -m arc_trm.predict` once per (augmentations, supervision steps) setting,
   under `RUN/predict/step_N/`, keeping each test input's top-10 log-probabilities for `poe`.
4. Votes with every policy and measures pass@1 / pass@2 of each setting; scores the best setting's
   `submission.json` with `evaluation.score` (the same number, as ARC Prize computes it).
5. Draws `RUN/learning_curve.png` (held-out pass@2 and training exact accuracy against example-steps,
   from the run's periodic evaluations in `RUN/metrics.jsonl`) and appends an entry to RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/common.py, however the script is started
from common import REPO, RESULTS, command_line, describe_device, entry, record  # noqa: E402

POLICY_ORDER = ("reference", "halt_weighted", "first_halt", "poe")


@dataclass(frozen=True)
class Setting:
    """One prediction setting: versions per test input (identity included) and supervision steps."""

    versions: int
    steps: int

    @property
    def name(self) -> str:
        return f"aug{self.versions}_steps{self.steps}"


def parse_args(argv: list[str] | None) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(
        prog="python benchmarks/accuracy.py",
        description="Train within a budget, predict the held-out test inputs with TTA, vote with every policy, "
        "score, and append an entry to benchmarks/RESULTS.md. Other arguments are training overrides "
        "(preset=NAME, section.key=value) passed to arc_trm.train.",
    )
    parser.add_argument("--minutes", type=float, default=60.0, help="training budget over all re-runs (default 60)")
    parser.add_argument("--run-dir", default=None, help="run directory (default runs/accuracy_PRESET)")
    parser.add_argument("--versions", default="1,8,32,all",
                        help="versions per test input to compare, identity included ('all' = every trained one)")
    parser.add_argument("--steps", default="1,all", help="supervision steps to compare ('all' = the model's halt_max_steps)")
    parser.add_argument("--launch", default="", help="launcher for training and prediction, e.g. 'accelerate launch'")
    parser.add_argument("--batch-size", type=int, default=256, help="prediction batch size")
    parser.add_argument("--results", default=str(RESULTS), help="where to append the entry")
    parser.add_argument("--no-record", action="store_true", help="print the entry without appending it")
    args, overrides = parser.parse_known_args(argv)
    unknown = [a for a in overrides if "=" not in a or a.startswith("-")]
    if unknown:
        parser.error(f"unrecognised arguments: {' '.join(unknown)}")
    if args.minutes <= 0:
        parser.error("--minutes must be > 0")
    return args, overrides


def preset_of(overrides: list[str]) -> str:
    return next((a.split("=", 1)[1] for a in overrides if a.startswith("preset=")), "tiny")


def launcher(args: argparse.Namespace) -> list[str]:
    return shlex.split(args.launch) if args.launch else [sys.executable]


def run(command: list[str]) -> None:
    """A stage as a child process, its output (progress bars included) passed through."""
    print("$ " + " ".join(shlex.quote(c) for c in command), flush=True)
    done = subprocess.run(command, cwd=REPO)
    if done.returncode != 0:
        sys.exit(f"error: stage failed with exit code {done.returncode}: {' '.join(command)}")


# ------------------------------------------------------------------------------------------ training


def train(args: argparse.Namespace, overrides: list[str], run_dir: Path) -> float:
    """Train for what is left of the budget; returns the minutes spent over all runs."""
    from arc_trm.io import atomic_write_json, read_json

    budget_file = run_dir / "accuracy_budget.json"
    spent = read_json(budget_file)["spent_minutes"] if budget_file.exists() else 0.0
    left = args.minutes - spent
    if left <= 0 and (run_dir / "model").exists():
        print(f"training budget of {args.minutes} min already spent ({spent:.1f} min): predicting with {run_dir / 'model'}")
        return spent
    # train.max_minutes=0 would mean no limit; a spent budget with no exported model only exports it
    left = max(left, 0.05)
    started = time.monotonic()
    run([*launcher(args), "-m", "arc_trm.train", *overrides, f"run.dir={run_dir}", f"train.max_minutes={left:.4f}"])
    spent += (time.monotonic() - started) / 60
    atomic_write_json(budget_file, {"budget_minutes": args.minutes, "spent_minutes": spent}, indent=True)
    return spent


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    path = run_dir / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def learning_curve(metrics: list[dict[str, Any]], global_batch: int, path: Path) -> None:
    """Held-out pass@2 (periodic evaluations) and training exact accuracy against example-steps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train = [(m["step"] * global_batch, m["train/exact_accuracy"]) for m in metrics if "train/exact_accuracy" in m]
    held = [(m["step"] * global_batch, m["eval/pass@2"]) for m in metrics if "eval/pass@2" in m]
    figure, axis = plt.subplots(figsize=(7, 4), dpi=110)
    if train:
        axis.plot(*zip(*train), color="tab:gray", linewidth=1, label="training exact accuracy (ACT steps)")
    if held:
        axis.plot(*zip(*held), color="tab:red", marker="o", label="held-out pass@2 (periodic evaluation)")
    axis.set_xlabel("example-steps (optimizer steps x global batch)")
    axis.set_ylabel("fraction")
    axis.set_ylim(0, 1)
    axis.grid(alpha=0.3)
    axis.legend(loc="upper left")
    axis.set_title(path.parent.name)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.png")
    figure.savefig(tmp)
    plt.close(figure)
    tmp.replace(path)


def still_rising(metrics: list[dict[str, Any]]) -> str:
    """Whether the last periodic evaluations still went up (held-out pass@2, else training exact accuracy)."""
    held = [m["eval/pass@2"] for m in metrics if "eval/pass@2" in m]
    train = [m["train/exact_accuracy"] for m in metrics if "train/exact_accuracy" in m]
    if len(held) >= 3 and max(held[-2:]) > max(held[:-2]):
        return "yes: held-out pass@2 reached a new high in its last two evaluations"
    tail = max(1, len(train) // 5)
    if len(train) >= 10 and sum(train[-tail:]) / tail > sum(train[-2 * tail : -tail]) / tail:
        return "held-out pass@2 flat at the end; training exact accuracy still rising over the last fifth"
    return "no: flat over the last evaluations"


# ---------------------------------------------------------------------------------------- prediction


def write_held_out(run_dir: Path) -> tuple[Path, list]:
    """The held-out tasks of the run's data as RUN/held_out/challenges.json + solutions.json."""
    from arc_trm.checkpoint import model_dir_of
    from arc_trm.config import load_config_file
    from arc_trm.data.arc import PRESETS, arc_tasks
    from arc_trm.datasets import resolve
    from arc_trm.grids import write_kaggle_pair
    from arc_trm.io import read_json

    info = read_json(model_dir_of(run_dir) / "data.json")
    config = load_config_file(run_dir / "config.yaml")
    tasks = arc_tasks(config.data.tasks)[0] if config.data.tasks in PRESETS else resolve(config.data.tasks)
    held = set(info["held_out"])
    chosen = [t for t in tasks if t.id in held and t.has_solutions]
    return write_kaggle_pair(chosen, run_dir / "held_out")[0], chosen


def settings(args: argparse.Namespace, trained_versions: int, halt_max_steps: int) -> list[Setting]:
    def numbers(text: str, top: int) -> list[int]:
        values = {top if item.strip() == "all" else min(int(item), top) for item in text.split(",") if item.strip()}
        return sorted(v for v in values if v >= 1)

    return [Setting(v, s) for v in numbers(args.versions, trained_versions) for s in numbers(args.steps, halt_max_steps)]


def predict(args: argparse.Namespace, run_dir: Path, challenges: Path, setting: Setting, step: int) -> Path:
    out = run_dir / "predict" / f"step_{step}" / setting.name
    if not (out / "candidates.parquet").exists():
        run([
            *launcher(args), "-m", "arc_trm.predict", f"checkpoint={run_dir / 'model'}", f"split={challenges}",
            f"out={out}", f"num_aug={setting.versions - 1}", f"steps={setting.steps}", "policy=poe", "poe_top_n=10",
            f"batch_size={args.batch_size}",
        ])
    return out


def measure(out: Path, tasks: list) -> tuple[list[dict[str, Any]], dict[str, list[str]], int]:
    """pass@1/2 of every policy on one prediction, the tasks each solves (pass@2), and the candidate count."""
    from arc_trm.candidates import load_candidates, load_log_probs
    from arc_trm.vote import compare_policies, rank_of, vote

    table = load_candidates(out / "candidates.parquet")
    log_probs = load_log_probs(out / "log_probs.parquet")
    rows = compare_policies(table, tasks, list(POLICY_ORDER), log_probs, ks=(1, 2))
    solved = {}
    for policy in POLICY_ORDER:
        rankings = vote(table, policy, **({"log_probs": log_probs} if policy == "poe" else {}))
        solved[policy] = sorted(
            t.id for t in tasks
            if any((rank := rank_of(rankings.get((t.id, i), []), p.output)) is not None and rank < 2 for i, p in enumerate(t.test))
        )
    return rows, solved, len(table)


def score_with_evaluation(out: Path, challenges: Path, policy: str) -> dict[str, Any]:
    """`python -m evaluation.score` on the setting's votes under `policy` (submission written by this script)."""
    from arc_trm.candidates import load_candidates, load_log_probs
    from arc_trm.datasets import resolve
    from arc_trm.submission import attempts_from_rankings, write_submission
    from arc_trm.vote import vote

    tasks = resolve(challenges)
    table = load_candidates(out / "candidates.parquet")
    options = {"log_probs": load_log_probs(out / "log_probs.parquet")} if policy == "poe" else {}
    submission = out / f"submission_{policy}.json"
    write_submission(attempts_from_rankings(vote(table, policy, **options), tasks), submission, tasks)
    report = out / f"score_{policy}.json"
    run([sys.executable, "-m", "evaluation.score", str(submission), "--solutions", str(challenges.with_name("solutions.json")),
         "--json", str(report)])
    return json.loads(report.read_text())


# -------------------------------------------------------------------------------------------- report


def format_entry(args, overrides, run_dir, spent, metrics, config, results, best, score, curve) -> str:
    last = metrics[-1]["step"] if metrics else 0
    lines = [
        f"- preset: `{preset_of(overrides)}` ({', '.join(overrides) or 'no overrides'}); run dir `{run_dir}`",
        f"- budget: {args.minutes:g} min of training (spent {spent:.1f} min, loading, periodic evaluation and "
        f"checkpoints included); {last:,} optimizer steps = {last * config.train.global_batch:,} example-steps "
        f"(global batch {config.train.global_batch})",
        f"- model: hidden {config.model.hidden}, heads {config.model.heads}, layers {config.model.layers}, "
        f"T {config.model.T}, n {config.model.n}, halt_max_steps {config.model.halt_max_steps}, "
        f"puzzle_emb_len {config.model.puzzle_emb_len}; data: canvas {config.data.canvas}, num_aug {config.data.num_aug}",
        f"- held-out: {results['tasks']} tasks ({results['inputs']} test inputs); learning curve `{curve}`; "
        f"still rising at the end: {still_rising(metrics)}",
        "",
        "| versions | steps | candidates | " + " | ".join(f"{p} pass@1 | {p} pass@2" for p in POLICY_ORDER) + " |",
        "| ---: | ---: | ---: | " + " | ".join("---: | ---:" for _ in POLICY_ORDER) + " |",
    ]
    for setting, (rows, _, count) in results["by_setting"].items():
        by_policy = {r["policy"]: r for r in rows}
        cells = " | ".join(f"{100 * by_policy[p]['pass@1']:.1f}% | {100 * by_policy[p]['pass@2']:.1f}%" for p in POLICY_ORDER)
        lines.append(f"| {setting.versions} | {setting.steps} | {count:,} | {cells} |")
    best_setting, best_policy = best
    solved = results["by_setting"][best_setting][1]
    lines += [
        "",
        f"Best: policy `{best_policy}` with {best_setting.versions} versions x {best_setting.steps} steps "
        f"(highest pass@2, then pass@1, then fewest candidates). `evaluation.score` on its submission.json: "
        f"score {100 * score['score']:.2f}% ({sum(t['score'] > 0 for t in score['tasks'].values())} of "
        f"{score['n_tasks']} tasks with a solved output).",
        "",
        "Solved (pass@2) at that setting, by policy:",
    ]
    lines += [f"- {policy}: {', '.join(solved[policy]) or 'none'}" for policy in POLICY_ORDER]
    return "\n".join(lines)


def choose_best(by_setting: dict[Setting, tuple]) -> tuple[Setting, str]:
    candidates = []
    for setting, (rows, _, count) in by_setting.items():
        for row in rows:
            candidates.append((-row["pass@2"], -row["pass@1"], count, POLICY_ORDER.index(row["policy"]), setting, row["policy"]))
    best = min(candidates, key=lambda c: c[:4])
    return best[4], best[5]


def main(argv: list[str] | None = None) -> int:
    args, overrides = parse_args(argv)
    from arc_trm.checkpoint import load_model
    from arc_trm.config import load_config, load_config_file
    from arc_trm.errors import UserError

    preset = preset_of(overrides)
    run_dir = Path(args.run_dir or f"runs/accuracy_{preset}")
    if not run_dir.is_absolute():
        run_dir = REPO / run_dir
    try:
        load_config(overrides)  # a bad override is one line now, not after a stage has started
    except UserError as error:
        sys.exit(f"error: {error}")
    print(f"[1/4] training {preset} for {args.minutes:g} min in {run_dir}", flush=True)
    spent = train(args, overrides, run_dir)
    config = load_config_file(run_dir / "config.yaml")
    metrics = read_metrics(run_dir)
    curve = run_dir / "learning_curve.png"
    learning_curve(metrics, config.train.global_batch, curve)

    print("[2/4] writing the held-out tasks", flush=True)
    challenges, tasks = write_held_out(run_dir)
    if not tasks:
        sys.exit(f"error: {run_dir}: the run holds out no task with known test outputs; nothing to measure")
    model, _, info = load_model(run_dir / "model")
    trained_versions = info["num_aug"] + 1
    step = metrics[-1]["step"] if metrics else 0

    print(f"[3/4] predicting {len(tasks)} held-out tasks", flush=True)
    by_setting = {}
    for setting in settings(args, trained_versions, model.config.halt_max_steps):
        out = predict(args, run_dir, challenges, setting, step)
        by_setting[setting] = measure(out, tasks)
        rows = {r["policy"]: r for r in by_setting[setting][0]}
        print(f"  {setting.name}: " + ", ".join(f"{p} pass@2 {100 * rows[p]['pass@2']:.1f}%" for p in POLICY_ORDER), flush=True)

    print("[4/4] scoring and recording", flush=True)
    best = choose_best(by_setting)
    score = score_with_evaluation(run_dir / "predict" / f"step_{step}" / best[0].name, challenges, best[1])
    results = {"tasks": len(tasks), "inputs": sum(len(t.test) for t in tasks), "by_setting": by_setting}
    threads = os.environ.get("OMP_NUM_THREADS")
    used = f"{threads} thread(s) per process (OMP_NUM_THREADS)" if threads else "all used by training"
    device = describe_device(None).replace("(1 used)", f"({used})")
    body = format_entry(args, overrides, run_dir.relative_to(REPO) if run_dir.is_relative_to(REPO) else run_dir,
                        spent, metrics, config, results, best, score, curve.name)
    text = entry(__file__, device, command_line(__file__, argv),
                 "held-out pass@K in % of tasks per voting policy, per (versions, supervision steps) setting", [body])
    print(text)
    if not args.no_record:
        record(text, Path(args.results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
