"""The accuracy ladder: train a rung for a budget of work, predict its held-out test inputs with TTA,
vote with every policy, and record what it solves with an honest protocol.

    python benchmarks/accuracy.py preset=arc1_8x8_cpu --seeds 3          # a CPU rung, its own budget
    python benchmarks/accuracy.py preset=arc1_8x8_cpu --example-steps 100000 model.n=3
    python benchmarks/accuracy.py compare A.yaml B.yaml preset=arc1_8x8_cpu --seeds 3
    python benchmarks/accuracy.py preset=arc1_8x8_cpu --seeds 3 --versions all --steps all,16,64 --trajectories 1,4,16
    python benchmarks/accuracy.py preset=arc1 --launch "accelerate launch --config_file accelerate_configs/multi_gpu.yaml"

1. **Budget in work.** Each seed trains `python -m arc_trm.train PRESET OVERRIDES train.seed=S` to the
   budget: the preset's `train.steps`, or `--example-steps N` (rounded up to whole optimizer steps at the
   global batch) or `--optimizer-steps N`. The same command and seed give the same model on any machine
   of this kind bitwise in eager mode at a fixed thread count; compiled (`train.compile=true`, the
   rungs' default) or at another thread count only up to the last bits, which a run can grow
   (docs/benchmarks.md); `--minutes M` caps
   each training run's wall clock, and a capped run says so in its entry. Runs live in
   `runs/ladder/PRESET-HASH/seed_S` (HASH: of the resolved training settings); a re-run resumes each seed to the budget,
   or only predicts when it is reached. `--parallel P` trains P seeds side by side with cores/P threads
   each (default 1: on 2 cores one compiled run did 1.28x the work of eager, two side by side 1.07x).
2. **Two held-out groups.** The evaluation tasks' test inputs and, with `data.hold_out_training_tests`
   (every CPU rung), the training tasks' test inputs (their demos are trained on): reported apart,
   never mixed (training tasks are easier).
3. **Validation and test halves.** A fixed rule (`ladder.half`, a hash of the task id) splits each
   group. The setting (versions x supervision steps x trajectories: `--steps` past the trained number
   and `--trajectories K --noise s` are test-time compute, each cell one subset of a single prediction,
   its candidates one per forward pass) and voting policy are chosen on the validation
   half (mean over seeds); the headline is the test half at that choice, beside the default policy at
   every version and step (which involves no choice, so it is also given over the whole group). Each
   figure is the mean over seeds with the lowest and highest seed and a 95% bootstrap interval over tasks.
4. `compare A.yaml B.yaml`: two arms on the same rung, budget and seeds (arms with equal training
   overrides share their runs), and the difference B - A in pass@2 of each group with a paired
   per-task bootstrap interval. An arm file:

       name: reference vote            # optional
       overrides: [model.n=3]          # training overrides (a list of key=value, or a mapping)
       predict: {policy: reference, versions: all, steps: all}   # optional; these are the defaults
                                                                  # but with the default policy
       predict: {model: best}          # the run's run.dir/model_best (needs run.keep_best=true), not its last model

   An arm that measures `model_best` was chosen on the evaluation group's validation half, so the
   comparison also gives each group's test half, where neither arm chose anything.

Each stage is a child process (`arc_trm.train`, `arc_trm.predict`, `evaluation.score`) as a user would
run it; the entry goes to benchmarks/RESULTS.md with the machine, its measured matmul rate and training
examples/s, and each seed's steps and minutes, so a figure is comparable across days.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import shlex
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/common.py, however the script is started
import ladder  # noqa: E402
from common import (  # noqa: E402
    REPO,
    RESULTS,
    check_results,
    cpu_model,
    finish_fraction_axes,
    measure_peak,
    publish_entry,
    save_figure,
)

from arc_trm.errors import exit_on_user_error  # noqa: E402
from arc_trm.inference import MAX_TRAJECTORIES  # noqa: E402
from arc_trm.predict import MAX_STEPS  # noqa: E402

POLICY_ORDER = ("reference", "halt_weighted", "first_halt", "poe")
GROUPS = ("evaluation", "training")
RUNS = REPO / "runs" / "ladder"


@dataclass(frozen=True)
class Setting:
    """One prediction setting: versions per test input (identity included), supervision steps (more than
    the trained number continue the recursion) and trajectories per query (1 = the deterministic run; the
    others add `noise` to the latent, test-time compute)."""

    versions: int
    steps: int
    trajectories: int = 1
    noise: float = 0.0

    @property
    def name(self) -> str:
        return f"aug{self.versions}_steps{self.steps}{trajectory_suffix(self.trajectories, self.noise)}"

    def describe(self) -> str:
        noisy = f" x {self.trajectories} trajectories" if self.trajectories > 1 else ""
        return f"{self.versions} versions x {self.steps} steps{noisy}"


Cell = tuple[Setting, str]
"""A (setting, voting policy) cell of the ladder's table."""


def trajectory_suffix(trajectories: int, noise: float) -> str:
    """What a prediction folder's name adds for noisy trajectories (nothing for the deterministic run)."""
    return f"_traj{trajectories}_noise{noise:g}" if trajectories > 1 else ""


def trajectory_arguments(trajectories: int, noise: float) -> list[str]:
    """arc_trm.predict's arguments for `trajectories` runs per query, the others with `noise` on the latent."""
    return [f"trajectories={trajectories}", f"noise={noise!r}"] if trajectories > 1 else []


def add_noise(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--noise", type=float, default=0.1, help="noise scale of trajectories 2.. (default 0.1)")


def check_noise(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if not (math.isfinite(args.noise) and args.noise > 0):
        parser.error("--noise must be a number > 0")


# ---------------------------------------------------------------------------------------- arguments


def add_common(parser: argparse.ArgumentParser, runs: str = "runs/ladder") -> None:
    budget = parser.add_mutually_exclusive_group()
    budget.add_argument("--example-steps", type=int, help="training budget in example-steps (optimizer steps x global batch)")
    budget.add_argument("--optimizer-steps", type=int, help="training budget in optimizer steps (default: the preset's train.steps)")
    parser.add_argument("--minutes", type=float, default=None, help="cap on each training run's wall clock (optional)")
    parser.add_argument("--seeds", type=int, default=1, help="seeds train.seed, +1, ... (default 1)")
    parser.add_argument("--parallel", type=int, default=1,
                        help="seeds trained side by side, cores/P threads each (default 1: on 2 cores a compiled run "
                        "does more than two side by side)")
    parser.add_argument("--run-dir", default=None, help=f"folder of the seeds' runs (default {runs}/PRESET-HASH); "
                        "with compare, the folder that holds each arm's PRESET-HASH folder")
    parser.add_argument("--launch", default="", help="launcher for training and prediction, e.g. 'accelerate launch'")
    parser.add_argument("--batch-size", type=int, default=256, help="prediction batch size")
    parser.add_argument("--results", default=str(RESULTS), help="where to append the entry")
    parser.add_argument("--no-record", action="store_true", help="print the entry without appending it")


def parse_args(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    from arc_trm.errors import ArgumentParser

    compare = bool(argv) and argv[0] == "compare"
    parser = ArgumentParser(
        prog="python benchmarks/accuracy.py" + (" compare" if compare else ""),
        description=("Train two arms on the same rung and seeds and print B - A with a paired bootstrap interval. "
                     if compare else
                     "Train a rung for a budget of work, predict its held-out test inputs with TTA, vote, score, and "
                     "append an entry to benchmarks/RESULTS.md. ")
        + "Other arguments are training overrides (preset=NAME, section.key=value) passed to arc_trm.train.",
    )
    if compare:
        parser.add_argument("arms", nargs=2, metavar="ARM.yaml", help="the two arms, A then B")
    else:
        parser.add_argument("--versions", default="1,8,all",
                            help="versions per test input to compare, identity included ('all' = every trained one)")
        parser.add_argument("--steps", default="1,2,all", help="supervision steps to compare ('all' = the model's "
                            f"halt_max_steps; larger numbers, up to {MAX_STEPS}, continue the recursion past it)")
        parser.add_argument("--trajectories", default="1", help="trajectories per query to compare (1 = the deterministic "
                            f"run, which the default vote uses; up to {MAX_TRAJECTORIES}); the others add --noise to the latent")
        add_noise(parser)
    add_common(parser)
    args, overrides = parser.parse_known_args(argv[1:] if compare else argv)
    args.compare = compare
    unknown = [a for a in overrides if "=" not in a or a.startswith("-")]
    if unknown:
        parser.error(f"unrecognised arguments: {' '.join(unknown)}")
    check_args(parser, args)
    return args, overrides


def check_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Every option checked before any work: one line and exit code 2."""
    check_common(parser, args)
    if not args.compare:
        for option, text in (("--versions", args.versions), ("--steps", args.steps)):
            try:
                numbers(text, 1)
            except ValueError as error:
                parser.error(f"{option}: {error}")
            if "all" not in (item.strip() for item in text.split(",")):
                parser.error(f"{option} must include 'all': the default vote is over every version and step")
        try:
            if 1 not in numbers(args.trajectories, 1, MAX_TRAJECTORIES) or "all" in args.trajectories:
                parser.error("--trajectories must include 1 (the default vote is over the deterministic run) and not 'all'")
        except ValueError as error:
            parser.error(f"--trajectories: {error}")
        check_noise(parser, args)


def check_common(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """The options of `add_common`, checked before any work: one line and exit code 2."""
    if args.example_steps is not None and args.example_steps < 1:
        parser.error("--example-steps must be >= 1")
    if args.optimizer_steps is not None and args.optimizer_steps < 1:
        parser.error("--optimizer-steps must be >= 1")
    if args.minutes is not None and not (math.isfinite(args.minutes) and args.minutes > 0):
        parser.error("--minutes must be a number > 0")
    if args.seeds < 1:
        parser.error("--seeds must be >= 1")
    if args.parallel < 1:
        parser.error("--parallel must be >= 1")
    if args.batch_size < 1:
        parser.error("--batch-size must be >= 1")
    if args.launch:
        try:
            words = shlex.split(args.launch)
        except ValueError as error:
            parser.error(f"--launch: {error}")
        if not words:
            parser.error("--launch: empty")
    check_results(parser, args.results)


def numbers(text: str, top: int, most: int | None = None) -> list[int]:
    """'1,8,all' -> [1, 8, top], each at most `most` (default `top`); ValueError naming a bad item."""
    values = set()
    for item in (part.strip() for part in text.split(",")):
        if item == "all":
            values.add(top)
        elif item.isdigit() and int(item) >= 1:
            values.add(min(int(item), top if most is None else most))
        else:
            raise ValueError(f"{item!r} is neither a whole number >= 1 nor 'all'")
    return sorted(values)


# ------------------------------------------------------------------------------------------ training


@dataclass
class Rung:
    """A preset with training overrides, at a budget of optimizer steps, over seeds."""

    overrides: list[str]
    config: Any  # arc_trm.config.Config of the overrides
    budget: int
    seeds: list[int]
    root: Path

    @property
    def preset(self) -> str:
        return self.config.preset

    def run_dir(self, seed: int) -> Path:
        return self.root / f"seed_{seed}"


PATH_KEYS = ("data.path", "train.init_from")
# What a seed's run does not depend on: its seed and budget (a larger budget continues the same runs) and its folder.
NOT_TRAINING = ("train.seed", "train.steps", "run.dir")


def repo_relative(path: str) -> str:
    """A path inside the repository made relative to it: training runs from the repository, and another
    checkout (a clone, a git worktree) then names the same runs."""
    return str(Path(path).relative_to(REPO)) if Path(path).is_absolute() and Path(path).is_relative_to(REPO) else path


def portable(override: str) -> str:
    """The override with a path value made `repo_relative`."""
    key, _, value = override.partition("=")
    return f"{key}={repo_relative(value)}" if key in PATH_KEYS else override


def training_key(config: Any) -> str:
    """A hash of every setting a seed's run trains with, resolved (preset and overrides together): an edited
    preset names other runs instead of reusing, or failing to resume, those of its old values, and an
    override that restates the preset's value names the same runs."""
    settings = {
        key: repo_relative(value) if key in PATH_KEYS else value
        for section, values in config.to_dict().items() if isinstance(values, dict)
        for name, value in values.items()
        if (key := f"{section}.{name}") not in NOT_TRAINING
    }
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:8]


def rung_of(args: argparse.Namespace, overrides: list[str], runs_under: Path | None = None) -> Rung:
    """The rung the arguments name; a bad override is one error line before any work. Its runs are in
    `--run-dir`, else in `runs_under` (or runs/ladder) / PRESET-HASH."""
    from arc_trm.config import load_config

    config = load_config(overrides)
    budget = config.train.steps
    if args.optimizer_steps is not None:
        budget = args.optimizer_steps
    elif args.example_steps is not None:
        budget = math.ceil(args.example_steps / config.train.global_batch)
    training = sorted(portable(o) for o in overrides if not o.startswith(("preset=", *(f"{key}=" for key in NOT_TRAINING))))
    name = f"{config.preset}-{training_key(config)}"
    root = Path(args.run_dir) if args.run_dir and runs_under is None else (runs_under or RUNS) / name
    root = root if root.is_absolute() else REPO / root
    seeds = [config.train.seed + i for i in range(args.seeds)]
    return Rung(training, config, budget, seeds, root)


def launcher(args: argparse.Namespace) -> list[str]:
    return shlex.split(args.launch) if args.launch else [sys.executable]


def run(command: list[str], env: dict[str, str] | None = None) -> None:
    """A stage as a child process, its output (progress bars included) passed through."""
    print("$ " + " ".join(shlex.quote(c) for c in command), flush=True)
    done = subprocess.run(command, cwd=REPO, env=env)
    if done.returncode != 0:
        sys.exit(f"error: stage failed with exit code {done.returncode}: {' '.join(command)}")


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    path = run_dir / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def trained_step(run_dir: Path) -> int:
    """The step of the run's exported model (0 when there is none)."""
    metrics = read_metrics(run_dir)
    return metrics[-1]["step"] if metrics and (run_dir / "model" / "data.json").exists() else 0


@dataclass
class SeedRun:
    seed: int
    run_dir: Path
    step: int = 0
    minutes: float = 0.0
    threads: int = 0
    capped: bool = False
    examples_per_s: float = float("nan")


def train_command(args: argparse.Namespace, rung: Rung, seed: int) -> list[str]:
    cap = [f"train.max_minutes={args.minutes}"] if args.minutes else []
    return [*launcher(args), "-m", "arc_trm.train", f"preset={rung.preset}", *rung.overrides, f"train.seed={seed}",
            f"train.steps={rung.budget}", f"run.dir={rung.run_dir(seed)}", *cap]


def parallel_runs(args: argparse.Namespace, waiting: int) -> int:
    return 1 if args.launch else min(args.parallel, waiting)  # a launcher spreads one run over its devices


def train_rung(args: argparse.Namespace, rung: Rung) -> list[SeedRun]:
    """Train every seed to the budget (P side by side, each logging to RUN/train.log); resume where
    a run stopped; skip the seeds already there."""
    from arc_trm.errors import ConfigError

    runs = [SeedRun(seed, rung.run_dir(seed), trained_step(rung.run_dir(seed))) for seed in rung.seeds]
    for seed_run in runs:
        if seed_run.step > rung.budget:
            raise ConfigError(f"{seed_run.run_dir}: trained to step {seed_run.step:,}, past the budget of "
                              f"{rung.budget:,}; give --run-dir another folder")
    waiting = [r for r in runs if r.step < rung.budget]
    width = max(1, parallel_runs(args, len(waiting)))
    cores = os.cpu_count() or 1
    # OMP_NUM_THREADS set by the user (e.g. one thread beside other work) is what each run uses
    threads = int(os.environ.get("OMP_NUM_THREADS") or 0) or max(1, cores // width)
    if waiting:
        print(f"training {len(waiting)} seed(s) of {rung.preset} to {rung.budget:,} steps "
              f"({rung.budget * rung.config.train.global_batch:,} example-steps), {width} at a time, "
              f"{threads} thread(s) each", flush=True)
    while waiting:
        batch, waiting = waiting[:width], waiting[width:]
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)} if width > 1 else None
        started = time.monotonic()
        children = []
        for seed_run in batch:
            seed_run.run_dir.mkdir(parents=True, exist_ok=True)
            command = train_command(args, rung, seed_run.seed)
            print("$ " + " ".join(shlex.quote(c) for c in command) + (f"  > {seed_run.run_dir / 'train.log'}" if width > 1 else ""),
                  flush=True)
            log = open(seed_run.run_dir / "train.log", "ab") if width > 1 else None
            children.append((seed_run, subprocess.Popen(command, cwd=REPO, env=env, stdout=log, stderr=log), log))
        for seed_run, child, log in children:
            code = child.wait()
            if log is not None:
                log.close()
            if code != 0:
                tail = f"; see {seed_run.run_dir / 'train.log'}" if log is not None else ""
                sys.exit(f"error: training seed {seed_run.seed} failed with exit code {code}{tail}")
            add_minutes(seed_run.run_dir, (time.monotonic() - started) / 60, threads)
    for seed_run in runs:
        seed_run.step = trained_step(seed_run.run_dir)
        seed_run.capped = seed_run.step < rung.budget
        spent = read_training_time(seed_run.run_dir)
        seed_run.minutes, seed_run.threads = spent.get("minutes", float("nan")), spent.get("threads", 0)
        rates = [m["train/examples_per_s"] for m in read_metrics(seed_run.run_dir) if "train/examples_per_s" in m]
        seed_run.examples_per_s = statistics.median(rates) if rates else float("nan")
    return runs


def still_rising(metrics: list[dict[str, Any]]) -> bool:
    """Whether training exact accuracy rose from the second-last fifth of the logs to the last (the
    budget did not reach a plateau)."""
    train = [m["train/exact_accuracy"] for m in metrics if "train/exact_accuracy" in m]
    tail = len(train) // 5
    return tail > 0 and sum(train[-tail:]) > sum(train[-2 * tail : -tail])


def read_training_time(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "ladder_training.json"
    return json.loads(path.read_text()) if path.exists() else {}


def add_minutes(run_dir: Path, minutes: float, threads: int) -> None:
    """Training wall-clock over all invocations (a killed invocation's minutes are not counted)."""
    from arc_trm.io import atomic_write_json

    spent = read_training_time(run_dir)
    atomic_write_json(run_dir / "ladder_training.json",
                      {"minutes": spent.get("minutes", 0.0) + minutes, "threads": threads}, indent=True)


# ---------------------------------------------------------------------------------------- prediction


@dataclass
class Held:
    """A run's held-out tasks (those with known test outputs) and their groups."""

    challenges: Path
    tasks: list
    groups: dict[str, list[str]] = field(default_factory=dict)  # group -> task ids


def write_held_out(run_dir: Path) -> Held:
    """The run's held-out tasks as RUN/held_out/challenges.json + solutions.json, and their groups."""
    from arc_trm.config import load_config_file
    from arc_trm.data.sources import build_source
    from arc_trm.exported import DATA_FILE, DataInfo, model_dir_of
    from arc_trm.grids import write_kaggle_pair

    info = DataInfo.read(model_dir_of(run_dir) / DATA_FILE)
    config = load_config_file(run_dir / "config.yaml")
    source = build_source(config.data, config.train.seed)  # the tasks exactly as trained (leak-cleaned)
    held = set(info.held_out)
    chosen = [t for t in source.tasks if t.id in held and t.has_solutions]
    training = set(info.held_out_training)
    groups = {"evaluation": sorted(t.id for t in chosen if t.id not in training),
              "training": sorted(t.id for t in chosen if t.id in training)}
    return Held(write_kaggle_pair(chosen, run_dir / "held_out")[0], chosen, groups)


MODELS = ("last", "best")
"""An arm's `predict.model`: the run's last exported model, or the one `run.keep_best` kept."""


def model_dir(run_dir: Path, model: str) -> Path:
    from arc_trm.train import BEST

    return run_dir / (BEST if model == "best" else "model")


def selected_step(run_dir: Path) -> int:
    """The step of the run's model_best, which `run.keep_best` exported."""
    from arc_trm.train import BEST, selected_of

    selected = selected_of(run_dir / BEST)
    if selected is None:
        sys.exit(f"error: {run_dir / BEST}: no model_best (train with run.keep_best=true and periodic evaluation)")
    return int(selected["step"])


def predict(args: argparse.Namespace, run_dir: Path, challenges: Path, setting: Setting, model: str = "last") -> Path:
    """The candidates of `setting` (and, without trajectories, the log-probabilities `poe` votes with) by
    the run's last model, or by the one `run.keep_best` kept (`model` = "best")."""
    step = f"step_{trained_step(run_dir)}" if model == "last" else f"best_step_{selected_step(run_dir)}"
    out = run_dir / "predict" / step / setting.name
    noisy = trajectory_arguments(setting.trajectories, setting.noise) or ["policy=poe", "poe_top_n=10"]
    if not (out / "candidates.parquet").exists():
        run([
            *launcher(args), "-m", "arc_trm.predict", f"checkpoint={model_dir(run_dir, model)}", f"split={challenges}",
            f"out={out}", f"num_aug={setting.versions - 1}", f"steps={setting.steps}", *noisy, f"batch_size={args.batch_size}",
        ])
    return out


def task_scores(table: Any, log_probs: Any, tasks: list, policies: tuple[str, ...], k: int) -> dict[str, dict[str, float]]:
    """policy -> task id -> pass@k score of one candidate table."""
    from arc_trm.vote import task_pass_at_k, vote

    return {policy: task_pass_at_k(vote(table, policy, **({"log_probs": log_probs} if policy == "poe" else {})), tasks, k)
            for policy in policies}


def within(table: Any, setting: Setting) -> Any:
    """The candidates a prediction at `setting` would make: the first `versions` versions (k below it)
    and the first `steps` steps of a prediction at a larger setting, in its order (so votes and their
    ties are the same as a separate prediction's)."""
    return table.select((table.augmentation < setting.versions) & (table.step <= setting.steps)
                        & (table.trajectory < setting.trajectories))


def score_with_evaluation(out: Path, challenges: Path, setting: Setting, policy: str) -> dict[str, Any]:
    """`python -m evaluation.score` on the votes of `setting` (within the candidates in `out`) under
    `policy` (`poe` only where `out` is that setting's own prediction); the submission is written by this script."""
    from arc_trm.candidates import load_candidates, load_log_probs
    from arc_trm.kaggle.submission import attempts_from_rankings, write_submission
    from arc_trm.splits import resolve
    from arc_trm.vote import vote

    tasks = resolve(challenges)
    table = within(load_candidates(out / "candidates.parquet"), setting)
    options = {"log_probs": load_log_probs(out / "log_probs.parquet")} if policy == "poe" else {}
    submission = out / f"submission_{setting.name}_{policy}.json"
    write_submission(attempts_from_rankings(vote(table, policy, **options), tasks), submission, tasks)
    report = out / f"score_{setting.name}_{policy}.json"
    run([sys.executable, "-m", "evaluation.score", str(submission), "--solutions", str(challenges.with_name("solutions.json")),
         "--json", str(report)])
    return json.loads(report.read_text())


@dataclass
class Measured:
    """Every seed's per-task scores of every cell, and what they were measured on."""

    pass2: dict[Cell, dict[int, dict[str, float]]]  # cell -> seed -> task -> pass@2
    pass1: dict[Cell, dict[int, dict[str, float]]]
    candidates: dict[Cell, float]  # mean over seeds; one per forward pass of one query
    held: Held


def largest_of(settings: list[Setting]) -> Setting:
    """The one prediction every setting is a subset of."""
    return Setting(max(s.versions for s in settings), max(s.steps for s in settings), max(s.trajectories for s in settings),
                   max(s.noise for s in settings))


def measure_rung(args: argparse.Namespace, runs: list[SeedRun], settings: list[Setting], policies: tuple[str, ...],
                 model: str = "last") -> Measured:
    """Predict every seed's held-out tasks once, at the largest setting, by `model` (MODELS), and score each
    policy per task at every setting (a smaller one is a subset of the larger one's candidates; `poe`,
    whose log-probabilities belong to the predicted setting, is scored there only)."""
    from arc_trm.candidates import load_candidates, load_log_probs

    largest = largest_of(settings)
    most = largest.trajectories
    pass2: dict[Cell, dict[int, dict[str, float]]] = {}
    pass1: dict[Cell, dict[int, dict[str, float]]] = {}
    counts: dict[Cell, list[int]] = {}
    held = None
    for seed_run in runs:
        held = write_held_out(seed_run.run_dir)
        if not held.tasks:
            sys.exit(f"error: {seed_run.run_dir}: the run holds out no task with known test outputs; nothing to measure")
        out = predict(args, seed_run.run_dir, held.challenges, largest, model)
        table = load_candidates(out / "candidates.parquet")
        log_probs = load_log_probs(out / "log_probs.parquet") if most == 1 else None
        for setting in settings:
            subset = within(table, setting)
            scored = tuple(p for p in policies if p != "poe" or (setting == largest and most == 1))
            for k, into in ((2, pass2), (1, pass1)):
                for policy, scores in task_scores(subset, log_probs, held.tasks, scored, k).items():
                    into.setdefault((setting, policy), {})[seed_run.seed] = scores
            for policy in scored:
                counts.setdefault((setting, policy), []).append(len(subset))
    return Measured(pass2, pass1, {c: statistics.fmean(v) for c, v in counts.items()}, held)


def model_shape(run_dir: Path) -> tuple[int, int]:
    """(trained versions, halt_max_steps) of a run's exported model."""
    from arc_trm.exported import DATA_FILE, DataInfo
    from arc_trm.io import read_json
    from arc_trm.model.trm import CONFIG_FILE

    model = run_dir / "model"
    return DataInfo.read(model / DATA_FILE).num_aug + 1, int(read_json(model / CONFIG_FILE)["halt_max_steps"])


# -------------------------------------------------------------------------------------------- report


def machine(runs: list[SeedRun], before: float = 0.0) -> tuple[str, float]:
    """The device line (CPU, cores, matmul rate, how the runs used the cores) and the rate: the better of a
    measurement now and `before` (taken before training; 0 = none), since a busy moment only lowers one."""
    import torch

    peak = measure_peak(torch.device("cpu"), torch.float32)
    rate = max(peak.rate, before)
    when = f"; the better of {before / 1e12:.3f} before training and {peak.rate / 1e12:.3f} after" if before else ""
    threads = sorted({r.threads for r in runs if r.threads})
    line = (f"{cpu_model()}, {os.cpu_count()} CPUs, torch {torch.__version__}; {peak.describe()}{when}; "
            f"training used {'/'.join(map(str, threads)) or 'all'} thread(s) per run")
    return line, rate


def limit_line(run_dir: Path, rate: float, runs: list[SeedRun]) -> str:
    """What the matmul rate allows this model's training step, against what the runs reached. A run above
    the limit means the rate was measured on a busy machine: then no limit is stated (it would be false)."""
    from arc_trm.io import read_json
    from arc_trm.model.flops import flops_per_example_step
    from arc_trm.model.trm import ModelConfig

    flops = flops_per_example_step(ModelConfig(**read_json(run_dir / "model" / "config.json")), training=True)
    reached = statistics.median(r.examples_per_s for r in runs)
    if reached * flops > rate:
        return (f"- the machine's limit: not stated; the runs reached {reached:,.0f} examples/s, more than the measured "
                f"matmul rate allows ({rate / flops:,.0f}), so the machine was busy while the rate was measured")
    return (f"- the machine's limit: matmul rate / {flops / 1e6:.1f} MFLOP per training example-step = "
            f"{rate / flops:,.0f} examples/s; the runs reached {reached:,.0f} ({reached * flops / rate:.0%} of it)")


def budget_lines(rung: Rung, runs: list[SeedRun]) -> list[str]:
    batch = rung.config.train.global_batch
    lines = [f"- rung: `{rung.preset}` ({', '.join(rung.overrides) or 'no overrides'}); runs under `{display(rung.root)}`",
             f"- budget: {rung.budget:,} optimizer steps x global batch {batch} = {rung.budget * batch:,} example-steps per seed"]
    for r in runs:
        capped = " **(stopped by the --minutes cap: not the rung's figure)**" if r.capped else ""
        lines.append(f"  - seed {r.seed}: {r.step:,} steps = {r.step * batch:,} example-steps in {r.minutes:.1f} min of training "
                     f"({r.threads or '?'} thread(s); median {r.examples_per_s:.0f} examples/s){capped}")
    return lines


def display(path: Path) -> Path:
    return path.relative_to(REPO) if path.is_relative_to(REPO) else path


def group_lines(measured: Measured, default: Cell) -> list[str]:
    """The protocol's table: per group, the default policy (no choice) and the validation-chosen cell."""
    lines = ["| group | tasks (validation / test) | default vote, whole group | default vote, test half | "
             "chosen on the validation half | its validation figure | **chosen, test half** |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for group in GROUPS:
        ids = measured.held.groups.get(group, [])
        if not ids:
            continue
        halves = ladder.split_halves(ids)
        chosen = ladder.choose(measured.pass2, halves["validation"], measured.candidates)
        cells = [
            ladder.spread(measured.pass2[default], ids), ladder.spread(measured.pass2[default], halves["test"]),
            ladder.spread(measured.pass2[chosen], halves["validation"]), ladder.spread(measured.pass2[chosen], halves["test"]),
        ]
        text = [c.cell() if c is not None else "-" for c in cells]
        lines.append(f"| {group} | {len(ids)} ({len(halves['validation'])} / {len(halves['test'])}) | {text[0]} | {text[1]} | "
                     f"`{chosen[1]}`, {chosen[0].describe()} | {text[2]} | **{text[3]}** |")
    return lines


def cell_table(measured: Measured) -> list[str]:
    """Every cell's pass@2 over each whole group, mean over seeds: a description, not a choice."""
    present = [g for g in GROUPS if measured.held.groups.get(g)]
    lines = ["| versions | steps | trajectories | policy | candidates (forward passes) | "
             + " | ".join(f"{g} pass@1 | {g} pass@2" for g in present) + " |",
             "| ---: | ---: | ---: | --- | ---: | " + " | ".join("---: | ---:" for _ in present) + " |"]
    for (setting, policy), scores in measured.pass2.items():
        figures = []
        for group in present:
            ids = measured.held.groups[group]
            figures.append(f"{100 * statistics.fmean(ladder.figure(measured.pass1[(setting, policy)], ids)):.1f}%")
            figures.append(f"{100 * statistics.fmean(ladder.figure(scores, ids)):.1f}%")
        lines.append(f"| {setting.versions} | {setting.steps} | {setting.trajectories} | {policy} | {measured.candidates[(setting, policy)]:,.0f} | "
                     + " | ".join(figures) + " |")
    return lines


def against_default_lines(measured: Measured, default: Cell) -> list[str]:
    """Each other setting under the default vote against the default setting, per group: B - A with the
    paired per-task interval, so more test-time compute is claimed to pay only where its interval says so."""
    present = [g for g in GROUPS if measured.held.groups.get(g)]
    others = [cell for cell in measured.pass2 if cell[1] == default[1] and cell != default]
    if not others:
        return []
    lines = ["| setting (B) | forward passes, B / A | " + " | ".join(f"{g}: B - A (95% paired interval), better / worse" for g in present) + " |",
             "| --- | ---: | " + " | ".join("---" for _ in present) + " |"]
    for cell in others:
        figures = []
        for group in present:
            d = ladder.paired_difference(measured.pass2[default], measured.pass2[cell], measured.held.groups[group])
            shown = f": {d.verdict()}" if d.shown else ""
            figures.append(f"{d.points()}, {d.wins} / {d.losses}{shown}")
        ratio = measured.candidates[cell] / measured.candidates[default]
        lines.append(f"| {cell[0].describe()} | {ratio:.1f}x | " + " | ".join(figures) + " |")
    return ["", f"Each other setting against the default one, both under `{default[1]}` (B - A over each whole group, "
            "tasks resampled in pairs; each row is its own comparison, so one interval in twenty misses by chance):",
            "", *lines]


def solved_lines(measured: Measured, cell: Cell) -> list[str]:
    lines = []
    for group in GROUPS:
        ids = measured.held.groups.get(group, [])
        counts = {t: sum(measured.pass2[cell][seed][t] > 0 for seed in measured.pass2[cell]) for t in ids}
        solved = [f"{t} ({n}/{len(measured.pass2[cell])}, {ladder.half(t)})" for t, n in sorted(counts.items()) if n]
        if ids:
            lines.append(f"- {group}: {', '.join(solved) or 'none'}")
    return lines


ARC_CURVES = (("train/exact_accuracy", "tab:gray", "training exact accuracy (ACT steps)"),
              ("eval/pass@2", "tab:red", "evaluation tasks: pass@2 (periodic)"),
              ("eval_training/pass@2", "tab:blue", "training tasks: pass@2 (periodic)"))
"""(metrics.jsonl key, colour, label) of each line of a rung's learning curve."""


def learning_curve(runs: list[SeedRun], global_batch: int, path: Path, curves: tuple[tuple[str, str, str], ...] = ARC_CURVES) -> None:
    """Each of `curves` against example-steps, every seed: by default held-out pass@2 of both groups
    (periodic evaluations) and training exact accuracy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 4), dpi=110)
    for i, seed_run in enumerate(runs):
        metrics = read_metrics(seed_run.run_dir)
        label = i == 0
        for key, color, name in curves:
            points = [(m["step"] * global_batch, m[key]) for m in metrics if key in m]
            if points:
                axis.plot(*zip(*points), color=color, linewidth=1, marker=None if key.startswith("train") else "o",
                          markersize=3, alpha=0.8, label=name if label else None)
    axis.set_xlabel("example-steps (optimizer steps x global batch)")
    finish_fraction_axes(axis, "fraction", f"{path.parent.name}: {len(runs)} seed(s)")
    save_figure(figure, path)


# ---------------------------------------------------------------------------------------------- main


def ladder_main(args: argparse.Namespace, overrides: list[str], argv: list[str]) -> int:
    import torch

    from arc_trm.vote import DEFAULT_POLICY

    rung = rung_of(args, overrides)
    before = measure_peak(torch.device("cpu"), torch.float32).rate
    print(f"[1/4] training {rung.preset}, seeds {rung.seeds}, in {display(rung.root)}", flush=True)
    runs = train_rung(args, rung)
    curve = rung.root / "learning_curve.png"
    learning_curve(runs, rung.config.train.global_batch, curve)

    print("[2/4] predicting the held-out tasks at every setting", flush=True)
    versions, halt_max_steps = model_shape(runs[0].run_dir)
    settings = [Setting(v, s, k, args.noise if k > 1 else 0.0) for v in numbers(args.versions, versions)
                for s in numbers(args.steps, halt_max_steps, MAX_STEPS) for k in numbers(args.trajectories, 1, MAX_TRAJECTORIES)]
    measured = measure_rung(args, runs, settings, POLICY_ORDER)
    default = (Setting(versions, halt_max_steps), DEFAULT_POLICY)

    print("[3/4] scoring the default vote with evaluation.score", flush=True)
    out = runs[0].run_dir / "predict" / f"step_{runs[0].step}" / largest_of(settings).name
    score = score_with_evaluation(out, measured.held.challenges, default[0], DEFAULT_POLICY)

    print("[4/4] recording", flush=True)
    body = budget_lines(rung, runs) + [
        f"- held out: {', '.join(f'{len(measured.held.groups[g])} {g} tasks' for g in GROUPS if measured.held.groups.get(g))}; "
        f"halves by `ladder.half` (hash of the task id); learning curve `{display(curve)}`; training exact "
        f"accuracy still rising over the last fifth in {sum(still_rising(read_metrics(r.run_dir)) for r in runs)} of {len(runs)} seeds",
        f"- evaluation.score on seed {runs[0].seed}'s default-vote submission (both groups together): "
        f"score {100 * score['score']:.2f}% over {score['n_tasks']} tasks",
        "",
        "pass@2, mean over seeds (lowest-highest seed; 95% bootstrap interval over tasks). The default vote "
        f"is `{DEFAULT_POLICY}` over every version and step; the choice (setting and policy) is made on the "
        "validation half and reported on the test half:",
        "",
        *group_lines(measured, default),
        "",
        "Solved at the default vote (seeds that solve it, half):",
        *solved_lines(measured, default),
        "",
        "Every cell over each whole group (mean over seeds). A description, not a choice: a maximum read off "
        "this table is an oracle chosen on the test tasks.",
        "",
        *cell_table(measured),
        *against_default_lines(measured, default),
    ]
    device, rate = machine(runs, before)
    body.insert(len(budget_lines(rung, runs)), limit_line(runs[0].run_dir, rate, runs))
    publish_entry(__file__, args, argv, device, "held-out pass@2 of each group under the ladder's protocol "
            "(validation-chosen setting on the test half, default vote), per seed and per cell", body)
    return 0


@dataclass
class Arm:
    name: str
    overrides: list[str]
    policy: str
    versions: str
    steps: str
    model: str = "last"


def read_arm(path: str) -> Arm:
    """An arm file (see the module's docstring); a mistake is one error line naming the file."""
    import yaml

    from arc_trm.errors import ConfigError
    from arc_trm.vote import DEFAULT_POLICY, POLICIES

    try:
        values = yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError) as error:
        raise ConfigError(f"{path}: cannot read the arm ({type(error).__name__}: {str(error).splitlines()[0]})")
    if not isinstance(values, dict) or set(values) - {"name", "overrides", "predict"}:
        raise ConfigError(f"{path}: an arm holds name, overrides and predict only")
    overrides = values.get("overrides") or []
    if isinstance(overrides, dict):
        overrides = [f"{k}={v}" for k, v in overrides.items()]
    if not isinstance(overrides, list) or not all(isinstance(o, str) and "=" in o for o in overrides):
        raise ConfigError(f"{path}: overrides must be a list of key=value (or a mapping)")
    predict = values.get("predict") or {}
    if not isinstance(predict, dict) or set(predict) - {"policy", "versions", "steps", "model"}:
        raise ConfigError(f"{path}: predict holds policy, versions, steps and model only")
    model = str(predict.get("model", "last"))
    if model not in MODELS:
        raise ConfigError(f"{path}: predict.model: {model!r} is neither last nor best")
    if model == "best" and "run.keep_best=true" not in overrides:
        raise ConfigError(f"{path}: predict.model: best needs run.keep_best=true in the overrides")
    policy = str(predict.get("policy", DEFAULT_POLICY))
    if policy not in POLICIES:
        raise ConfigError(f"{path}: unknown policy {policy!r} (known: {', '.join(POLICIES)})")
    versions, steps = str(predict.get("versions", "all")), str(predict.get("steps", "all"))
    for name, text in (("versions", versions), ("steps", steps)):
        try:
            if len(numbers(text, 1)) != 1:
                raise ValueError("one value")
        except ValueError as error:
            raise ConfigError(f"{path}: predict.{name}: {error}")
    return Arm(str(values.get("name", Path(path).stem)), overrides, policy, versions, steps, model)


def compare_main(args: argparse.Namespace, overrides: list[str], argv: list[str]) -> int:
    from arc_trm.config import load_config
    from arc_trm.errors import ConfigError, UserError

    arms = [read_arm(path) for path in args.arms]
    rungs = []
    for arm in arms:
        try:
            load_config([*overrides, *arm.overrides])
        except UserError as error:
            raise ConfigError(f"{arm.name}: {error}") from None
        rungs.append(rung_of(args, [*overrides, *arm.overrides], runs_under=Path(args.run_dir) if args.run_dir else RUNS))
    if len({r.budget * r.config.train.global_batch for r in rungs}) != 1:
        raise ConfigError("the arms' budgets differ in example-steps (their train.global_batch differ); give --example-steps")
    scores = []
    runs = None
    for arm, rung in zip(arms, rungs):
        print(f"arm {arm.name}: {rung.preset} {' '.join(rung.overrides)} in {display(rung.root)}", flush=True)
        runs = train_rung(args, rung)
        versions, halt_max_steps = model_shape(runs[0].run_dir)
        setting = Setting(numbers(arm.versions, versions)[0], numbers(arm.steps, halt_max_steps)[0])
        scores.append((measure_rung(args, runs, [setting], (arm.policy,), arm.model), (setting, arm.policy)))
    (a, cell_a), (b, cell_b) = scores
    lines = [f"- A: {describe_arm(arms[0], rungs[0], cell_a)}", f"- B: {describe_arm(arms[1], rungs[1], cell_b)}",
             f"- budget: {rungs[0].budget * rungs[0].config.train.global_batch:,} example-steps per seed; seeds {rungs[0].seeds}",
             "", "| group | tasks | A pass@2 | B pass@2 | B - A (95% paired bootstrap interval) | tasks B better / worse | verdict |",
             "| --- | ---: | ---: | ---: | --- | --- | --- |"]
    selected = any(arm.model == "best" for arm in arms)
    views = [(group, ids) for group in GROUPS if (ids := a.held.groups.get(group, []))]
    if selected:  # model_best was chosen on the evaluation group's validation half: its test half is untouched
        views += [(f"{group}, test half", test) for group, ids in views if (test := ladder.split_halves(ids)["test"])]
    for group, ids in views:
        d = ladder.paired_difference(a.pass2[cell_a], b.pass2[cell_b], ids)
        lines.append(d.row(group))
    publish_entry(__file__, args, argv, machine(runs or [])[0], "pass@2 of two arms on the same rung and seeds over each whole held-out "
            "group (every setting fixed by the arm, none chosen on these tasks), and B - A with a per-task paired "
            "bootstrap interval (tasks resampled, each task's scores averaged over seeds)", lines)
    return 0


def describe_arm(arm: Arm, rung: Rung, cell: Cell) -> str:
    model = "; the model `run.keep_best` kept (`model_best`)" if arm.model == "best" else ""
    return (f"`{arm.name}`: `{rung.preset}` {' '.join(f'`{o}`' for o in rung.overrides) or '(no overrides)'}; "
            f"`{cell[1]}` vote over {cell[0].versions} versions x {cell[0].steps} steps{model}; runs `{display(rung.root)}`")


@exit_on_user_error
def main(argv: list[str] | None = None) -> int:
    from arc_trm.config import load_config

    argv = sys.argv[1:] if argv is None else argv
    args, overrides = parse_args(argv)
    load_config(overrides)  # a bad override is one line now, not after a stage has started
    return compare_main(args, overrides, argv) if args.compare else ladder_main(args, overrides, argv)


if __name__ == "__main__":
    sys.exit(main())
