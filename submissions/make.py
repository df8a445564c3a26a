"""Kaggle ARC Prize submission for unseen tasks: fine-tune, predict, vote, and always leave a valid file.

    python -m submissions.make --checkpoint runs/arc2/model \\
        --challenges /kaggle/input/arc-prize-2025/arc-agi_test_challenges.json \\
        --out /kaggle/working/submission.json --time-budget 11h

1. Read the time budget (`11h`, `90m`, `3600s`, `3600`), the challenges and the checkpoint. A bad file
   or option is one `error:` line and exit code 2, and nothing is written.
2. Write the fallback submission to --out at once (every task, every test input, two distinct
   attempts): from then on a valid file exists whatever happens. The fallback guesses
   (`arc_trm.submission.fallback_guesses`) are the test input itself, then a blank grid of the
   expected output shape filled with the demo outputs' most frequent colour.
3. Fine-tune the checkpoint on the tasks' demo pairs (preset `finetune`, full model unless
   --embeddings-only) for at most FINETUNE_SHARE of the time left. If it fails (out of memory, ...),
   predict with the original checkpoint.
4. Predict in chunks of CHUNK_TASKS tasks (`arc_trm.predict.predict_split`: every augmentation,
   every supervision step, then the vote). After each chunk its tasks overwrite their fallback in
   --out (validated, atomic). An out-of-memory error retries the chunk with half the batch; a
   failed chunk keeps its fallback; no chunk starts that the time left would not cover.
5. Print a one-paragraph summary (tasks predicted, fallbacks and why, time per phase); exit 0.

It runs as one process (`python -m`, not `accelerate launch`). With `--processes 1` (the default)
fine-tuning and prediction run inside it, on one GPU. With `--processes N` each fine-tuning run and
each prediction chunk is started under `accelerate launch` on N processes (N GPUs: Kaggle's four
L4s) and waited for; this process keeps the clock, the fallbacks and the file, kills a launch that
outlives the time left, and reads an out-of-memory error from its output. The work folder (--work)
keeps the fine-tuning run and the prediction parts under names that hash their inputs, so re-running
the same command resumes where it stopped, and any other checkpoint, challenges or setting starts
afresh. The two ways of running (in process, launched) and the out-of-memory retry are in
`submissions/runners.py`.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import math
import os
import re
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import orjson
from tenacity import (
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
)

from arc_trm.candidates import NO_GRID, load_candidates
from arc_trm.checkpoint import latest_checkpoint, load_model, model_dir_of
from arc_trm.config import Config, check_batch, load_config
from arc_trm.data.arc import fits
from arc_trm.errors import ArgumentParser, ConfigError, DataError, error_summary, exit_on_user_error, nonempty_path
from arc_trm.grids import Task, kaggle_challenges, load_challenges
from arc_trm.io import atomic_write_json, read_json
from arc_trm.predict import PredictArgs, predict_split
from arc_trm.submission import fallback_submission, validate_submission, write_submission
from arc_trm.train import train
from arc_trm.vote import DEFAULT_POLICY, POLICIES
from submissions.runners import InProcessRunner, LaunchedRunner, Runner, free_memory, predict_halving_batch

log = logging.getLogger("submissions.make")

Submission = dict[str, list[dict[str, list[list[int]]]]]

FINETUNE_SHARE = 0.7
"""Share of the time left after loading that fine-tuning may use; prediction and writing get the rest.
A choice, not a measurement: fine-tuning can stop at any step and still help, while prediction must
reach a task to score it at all, so prediction keeps a generous share (Trelis predicted for about
1 h of 12 on 4 GPUs; with --processes 1 one GPU predicts)."""
MIN_FINETUNE_S = 60.0
"""Below this, loading the model and building the augmented tasks would use up the whole phase."""
CHUNK_TASKS = 8
"""Tasks per prediction call: the unit of progress written to --out and of the clock check."""
CHUNK_SAFETY = 1.5
"""A chunk starts only when the time left exceeds this many times the slowest chunk so far (chunks
differ in their number of test inputs)."""
DEFAULT_WORK = Path(tempfile.gettempdir()) / "arc_trm_submission"
SET_BY_MAKE = {
    "preset": "the finetune preset", "config": "the finetune preset", "train.init_from": "from --checkpoint",
    "data.tasks": "from --challenges", "data.track": "arc", "run.dir": "under --work", "train.max_minutes": "from --time-budget",
}
"""Fine-tuning settings that the command derives from its own options: `--set` may not change them."""


# ------------------------------------------------------------------------------------------- inputs


def parse_duration(text: str) -> float:
    """Seconds in `11h`, `1.5h`, `90m`, `3600s` or plain `3600`."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([hms]?)\s*", text.lower())
    if match is None:
        raise argparse.ArgumentTypeError(f"'{text}' is not a duration like 11h, 90m, 3600s or 3600")
    seconds = float(match.group(1)) * {"h": 3600.0, "m": 60.0, "s": 1.0, "": 1.0}[match.group(2)]
    if not math.isfinite(seconds):
        raise argparse.ArgumentTypeError(f"'{text[:40]}' is not a finite duration")
    return seconds


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(prog="python -m submissions.make", description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True, help="exported model folder (runs/NAME/model) or run folder")
    parser.add_argument("--challenges", required=True, type=Path, help="Kaggle *_challenges.json of the tasks to answer")
    parser.add_argument("--out", required=True, type=nonempty_path, help="submission.json to write")
    parser.add_argument("--time-budget", type=parse_duration, default=parse_duration("11h"),
                        help="wall-clock budget for everything: 11h, 90m, 3600s or seconds (default 11h)")
    parser.add_argument("--work", type=nonempty_path, default=DEFAULT_WORK, help=f"work folder (default {DEFAULT_WORK})")
    parser.add_argument("--finetune-steps", type=int, default=0, help="fine-tuning steps (default: the preset's)")
    parser.add_argument("--finetune-aug", type=int, default=128, help="augmentations per task to fine-tune on (default 128)")
    parser.add_argument("--predict-aug", type=int, default=128, help="augmentations per test input besides the identity (default 128)")
    parser.add_argument("--batch-size", type=int, default=256, help="prediction batch; halved after an out-of-memory error (default 256)")
    parser.add_argument("--embeddings-only", action="store_true", help="fine-tune the puzzle embeddings only")
    parser.add_argument("--no-finetune", action="store_true", help="predict with the checkpoint as it is")
    parser.add_argument("--policy", default=DEFAULT_POLICY, choices=sorted(POLICIES),
                        help="voting policy (default halt_weighted, the measured best with every augmentation and step)")
    parser.add_argument("--processes", type=int, default=1,
                        help="processes (GPUs) for fine-tuning and prediction, each phase under accelerate launch when > 1 (default 1)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="fine-tuning config override, repeatable (e.g. --set train.global_batch=96)")
    return parser


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    args = build_parser().parse_args(argv)
    for name in ("finetune_aug", "predict_aug"):
        if getattr(args, name) < 0:
            raise ConfigError(f"--{name.replace('_', '-')} must be >= 0")
    if args.batch_size < 1 or args.finetune_steps < 0 or args.processes < 1:
        raise ConfigError("--batch-size and --processes must be >= 1 and --finetune-steps >= 0")
    if args.out.is_dir():
        raise ConfigError(f"--out {args.out}: is a folder; name the submission file to write")
    if args.out.resolve() == args.challenges.resolve():
        raise ConfigError(f"--out {args.out}: is the challenges file; writing there would replace it")
    for override in args.overrides:
        key = override.partition("=")[0].strip()
        if key in SET_BY_MAKE:
            raise ConfigError(f"--set {key}: set by submissions.make itself ({SET_BY_MAKE[key]}); not an override")
    return args


def known_tasks(model: Path) -> set[str]:
    """Tasks the model has puzzle ids for; any other task is predicted with the blank id (near 0%)."""
    info = read_json(model / "data.json")
    return set(info.get("versions") or info.get("task_ids") or ())


def fingerprint(*parts: Any) -> str:
    """Short stable hash of JSON-able parts: names work folders after what they were made from."""
    return hashlib.sha256(orjson.dumps(parts, option=orjson.OPT_SORT_KEYS)).hexdigest()[:12]


def model_identity(model: Path) -> list[Any]:
    """Where the model is and which weights it holds (a re-export in place changes the identity)."""
    weights = (model / "weights.safetensors").stat()
    return [str(model.resolve()), weights.st_size, weights.st_mtime_ns]


def finetune_config(args: argparse.Namespace, model: Path, tasks_file: Path, tasks_key: str) -> Config:
    """The fine-tuning job (validated now, so a bad --set fails before anything is written).

    Its run folder hashes everything that shapes the result but the time limit, so the same command
    resumes the run and any other checkpoint, task set or setting gets a fresh one."""
    overrides = [
        "preset=finetune",
        f"train.init_from={model}",
        f"data.tasks={tasks_file}",
        f"data.num_aug={args.finetune_aug}",
        *([f"train.steps={args.finetune_steps}"] if args.finetune_steps else []),
        *args.overrides,
    ]
    config = load_config(overrides)
    if not any(o.strip().startswith("train.grad_accum=") for o in args.overrides):
        # the preset accumulates what one GPU cannot hold; N GPUs take 1/N of the micro-steps (rounded
        # up, so that no micro-batch grows past the preset's)
        config.train.grad_accum = -(-config.train.grad_accum // args.processes)
    check_batch(config, world=args.processes)
    if args.embeddings_only:
        config.train.freeze_dense_steps = config.train.steps
    identity = config.to_dict()
    identity["train"].pop("max_minutes")
    identity["run"].pop("dir")
    config.run.dir = str(args.work / f"finetune-{fingerprint(tasks_key, model_identity(model), identity)}")
    return config


# --------------------------------------------------------------------------------------- bookkeeping


@dataclass
class Clock:
    """The time budget, and the time spent per phase for the summary."""

    budget_s: float
    start: float = field(default_factory=time.monotonic)
    phases: dict[str, float] = field(default_factory=dict)

    def remaining(self) -> float:
        return self.budget_s - (time.monotonic() - self.start)

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        begin = time.monotonic()
        try:
            yield
        finally:
            self.phases[name] = self.phases.get(name, 0.0) + time.monotonic() - begin


@dataclass
class Report:
    """What happened, for the summary: which model predicted which task, and every fallback's reason."""

    tasks: Sequence[Task]
    predicted: dict[str, str] = field(default_factory=dict)  # task id -> model label
    fallbacks: dict[str, str] = field(default_factory=dict)  # task id -> why it kept the fallback
    notes: list[str] = field(default_factory=list)  # whole-phase fallbacks and facts, with reasons
    blank_id: int = 0  # predicted tasks the model had no puzzle ids for

    def note(self, message: str) -> None:
        log.warning(message)
        self.notes.append(message)

    def fall_back(self, tasks: Sequence[Task], reason: str) -> None:
        if tasks:
            more = ", ..." if len(tasks) > 5 else ""
            log.warning(f"fallback kept for {len(tasks)} task(s) ({', '.join(t.id for t in tasks[:5])}{more}): {reason}")
        for task in tasks:
            self.fallbacks[task.id] = reason
            self.predicted.pop(task.id, None)

    def predicted_by(self, task_id: str, label: str, known: bool) -> None:
        self.predicted[task_id] = label
        self.fallbacks.pop(task_id, None)
        self.blank_id += not known


def format_seconds(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.1f} s"
    return f"{seconds / 60:.1f} min" if seconds < 7200 else f"{seconds / 3600:.2f} h"


def summary(report: Report, clock: Clock, out: Path) -> str:
    """The closing paragraph: tasks predicted, fallbacks grouped by reason, time per phase."""
    total = len(report.tasks)
    inputs = sum(len(task.test) for task in report.tasks)
    by_model: dict[str, int] = {}
    for label in report.predicted.values():
        by_model[label] = by_model.get(label, 0) + 1
    predicted = ", ".join(f"{n} by the {label} model" for label, n in by_model.items()) or "none"
    reasons: dict[str, int] = {}
    for task in report.tasks:
        if task.id not in report.predicted:
            reason = report.fallbacks.get(task.id, "not predicted")
            reasons[reason] = reasons.get(reason, 0) + 1
    fallback = "; ".join(f"{n} {reason}" for reason, n in reasons.items())
    parts = [f"wrote {out}: {total} tasks ({inputs} test inputs); predicted: {predicted}."]
    if report.blank_id:
        parts.append(f"{report.blank_id} predicted task(s) had no puzzle ids in the model (blank id, near 0%).")
    parts.append(f"Fallback guesses: {total - len(report.predicted)} task(s)" + (f" ({fallback})." if fallback else "."))
    parts.extend(report.notes)
    phases = ", ".join(f"{name} {format_seconds(s)}" for name, s in clock.phases.items())
    spent = clock.budget_s - clock.remaining()
    parts.append(f"Time: {phases}; total {format_seconds(spent)} of a {format_seconds(clock.budget_s)} budget.")
    return " ".join(parts)


class Answers:
    """The predicted answers of earlier runs of the same command (same tasks, checkpoint and settings),
    kept in the work folder: a re-run starts its file from them, not from the fallbacks, so a re-run
    killed early never leaves a worse file than the run before it. A task's answer is replaced only by
    one from a model at least as good (fine-tuned over original)."""

    RANK = {"original": 0, "fine-tuned": 1}

    def __init__(self, path: Path):
        self.path = path
        self.stored: dict[str, dict[str, Any]] = {}

    def load(self, tasks: Sequence[Task], report: Report) -> Submission:
        """The stored entries of these tasks that are still valid answers to them."""
        try:
            stored = read_json(self.path) if self.path.exists() else {}
        except DataError as error:
            report.note(f"Earlier answers not reused ({error}).")
            stored = {}
        by_id = {task.id: task for task in tasks}
        valid = {}
        for task_id, answer in (stored.items() if isinstance(stored, dict) else ()):
            task = by_id.get(task_id)
            if (
                task is not None and isinstance(answer, dict) and answer.get("label") in self.RANK
                and not validate_submission({task_id: answer.get("entries")}, [task])
            ):
                valid[task_id] = answer
        self.stored = valid
        for task_id, answer in valid.items():
            report.predicted_by(task_id, f"{answer['label']} (earlier run)", known=True)
        if valid:
            log.info(f"{len(valid)} task(s) keep the answers of an earlier run of this command ({self.path})")
        return {task_id: answer["entries"] for task_id, answer in valid.items()}

    def improves(self, task_id: str, label: str) -> bool:
        earlier = self.stored.get(task_id)
        return earlier is None or self.RANK.get(label, 0) >= self.RANK.get(earlier["label"], 0)

    def save(self, entries: Submission, label: str) -> None:
        self.stored.update({task_id: {"label": label, "entries": entry} for task_id, entry in entries.items()})
        try:
            atomic_write_json(self.path, self.stored)
        except OSError as error:  # only re-runs lose: this run's file is already written
            log.warning(f"cannot keep the answers in {self.path} ({error_summary(error)})")


def command_identity(args: argparse.Namespace) -> list[Any]:
    """The settings besides the model and the fine-tuning run that shape the answers."""
    return [args.predict_aug, args.policy, args.no_finetune]


# ---------------------------------------------------------------------------------- robust actions


def write_retrying(submission: Submission, path: Path, tasks: Sequence[Task]) -> None:
    """`write_submission` (validate, atomic write), retried with back-off when the file system
    hiccups (network disks, a full disk being cleaned); an invalid submission is never retried."""
    retrying = Retrying(
        retry=retry_if_exception_type(OSError),
        stop=stop_after_attempt(5),
        wait=wait_exponential(multiplier=0.5, max=8),
        before_sleep=lambda state: log.warning(f"writing {path} failed ({error_summary(state.outcome.exception())}); retrying"),
        reraise=True,
    )
    for attempt in retrying:
        with attempt:
            write_submission(submission, path, tasks)



# ------------------------------------------------------------------------------------------- phases


def finetune(config: Config, clock: Clock, report: Report, runner: Runner) -> Path | None:
    """The fine-tuned model, or None (with the reason noted) when there is no time or training fails."""
    budget = FINETUNE_SHARE * clock.remaining()
    if budget < MIN_FINETUNE_S:
        report.note(f"Fine-tuning skipped: {format_seconds(budget)} of budget for it (< {MIN_FINETUNE_S:.0f} s).")
        return None
    # max_minutes counts from the run's start: loading the model and the tasks included; export on top
    config.train.max_minutes = budget / 60
    log.info(f"fine-tuning for at most {format_seconds(budget)} in {config.run.dir}")
    try:
        model = model_dir_of(runner.train(config))
    except Exception as error:  # any failure (out of memory, bad data, a bug) leaves the original model
        log.warning("fine-tuning failed", exc_info=True)
        report.note(f"Fine-tuning failed ({error_summary(error)}); predicted with the original checkpoint.")
        return None
    finally:
        free_memory()
    reached = latest_checkpoint(Path(config.run.dir))
    steps = int(reached.name.split("_")[-1]) if reached is not None else 0
    report.notes.append(f"Fine-tuned for {steps} of {config.train.steps} steps.")
    return model


def chunk_results(out: Path, chunk: Sequence[Task]) -> tuple[Submission, set[str]]:
    """The chunk's voted entries and the ids of its tasks with at least one decoded prediction."""
    entries = read_json(out / "submission.json")
    table = load_candidates(out / "candidates.parquet")
    decoded = {table.task_ids[code] for code in np.unique(table.task[table.grid != NO_GRID])}
    return {task.id: entries[task.id] for task in chunk}, decoded


def predict(
    tasks: Sequence[Task], model: Path, label: str, args: argparse.Namespace, tasks_key: str,
    submission: Submission, clock: Clock, report: Report, runner: Runner, answers: Answers,
) -> None:
    """Predict chunk by chunk; after each, its decoded tasks replace what --out held for them, unless
    an earlier run of the same command answered them with a better model (fine-tuned over original)."""
    canvas = read_json(model / "data.json").get("canvas", 30)
    known = known_tasks(model)
    settings = PredictArgs(
        checkpoint=str(model), split="", out="", num_aug=args.predict_aug, policy=args.policy,
        poe_top_n=10 if args.policy == "poe" else 0,
    )
    folder = args.work / f"predict-{fingerprint(tasks_key, model_identity(model), args.predict_aug, args.policy)}"
    batch, slowest = args.batch_size, 0.0
    chunks = [tasks[i : i + CHUNK_TASKS] for i in range(0, len(tasks), CHUNK_TASKS)]
    for i, chunk in enumerate(chunks):
        if clock.remaining() <= CHUNK_SAFETY * slowest:
            report.fall_back([t for later in chunks[i:] for t in later], "out of time")
            report.note(f"Prediction stopped by the clock after {i} of {len(chunks)} chunks.")
            break
        began = time.monotonic()
        chunk_dir = folder / f"chunk_{i:05d}"
        try:
            atomic_write_json(chunk_dir / "tasks.json", kaggle_challenges(chunk))
            out, batch = predict_halving_batch(
                replace(settings, split=str(chunk_dir / "tasks.json"), out=str(chunk_dir), batch_size=batch), runner
            )
            entries, decoded = chunk_results(out, chunk)
            decoded = {task_id for task_id in decoded if answers.improves(task_id, label)}
            entries = {task_id: entry for task_id, entry in entries.items() if task_id in decoded}
        except Exception as error:  # one chunk's failure keeps its fallback; the next chunk may work
            log.warning(f"prediction of chunk {i} failed", exc_info=True)
            report.fall_back(chunk, f"prediction failed ({error_summary(error)})")
            free_memory()
            continue
        finally:
            slowest = max(slowest, time.monotonic() - began)
        updated = {**submission, **entries}
        try:
            write_retrying(updated, args.out, tasks)
        except (OSError, ValueError) as error:  # the file keeps its last good version
            report.fall_back(chunk, f"writing failed ({error_summary(error)})")
            continue
        submission = updated
        answers.save({task_id: entries[task_id] for task_id in decoded}, label)
        for task in chunk:
            if task.id in decoded:
                report.predicted_by(task.id, label, known=task.id in known)
        missing = [task for task in chunk if task.id not in decoded and task.id not in report.predicted]
        too_big = {task.id for task in missing if not fits(task, canvas)}
        report.fall_back([task for task in missing if task.id in too_big], f"with a grid larger than the model's {canvas}x{canvas} canvas")
        unknown = {task.id for task in missing if task.id not in too_big and known and task.id not in known}
        if not known:  # a model that knows no task (a slim copy, or one not fine-tuned) predicts none
            unknown = {task.id for task in missing if task.id not in too_big}
        report.fall_back([task for task in missing if task.id in unknown], "not known to the model (not fine-tuned on it)")
        report.fall_back([task for task in missing if task.id not in too_big | unknown], "no prediction decoded")
        log.info(f"chunk {i + 1}/{len(chunks)}: {len(decoded)} of {len(chunk)} tasks predicted; {args.out} updated")


# --------------------------------------------------------------------------------------------- main


@exit_on_user_error
def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(format="%(name)s: %(message)s")  # other libraries stay at WARNING
    log.setLevel(logging.INFO)
    clock = Clock(0.0)
    with clock.phase("load"):
        args = parse_args(sys.argv[1:] if argv is None else argv)
        clock.budget_s = args.time_budget
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            raise ConfigError("run `python -m submissions.make` as one process, not under `accelerate launch`")
        tasks = load_challenges(args.challenges)
        model = model_dir_of(args.checkpoint)
        _, _, info = load_model(model)  # a corrupt or inconsistent model is one error line now, before anything is written
        if info.get("track", "arc") != "arc":
            raise ConfigError(f"--checkpoint {model}: a {info['track']} model, not an ARC one")
        tasks_key = fingerprint(kaggle_challenges(tasks))
        tasks_file = args.work / f"tasks-{tasks_key}.json"
        config = finetune_config(args, model, tasks_file, tasks_key)
        answers = Answers(args.work / f"answers-{fingerprint(tasks_key, model_identity(model), config.run.dir, command_identity(args))}.json")
    report = Report(tasks)
    with clock.phase("fallback"):
        submission = {**fallback_submission(tasks), **answers.load(tasks, report)}
        try:
            write_retrying(submission, args.out, tasks)
        except OSError as error:
            raise DataError(f"{args.out}: cannot write the submission ({error_summary(error)})") from None
    if clock.remaining() <= 0:
        report.note("The time budget is spent: the fallback file stands.")
    else:
        run_phases(args, model, tasks, tasks_file, tasks_key, config, submission, clock, report, answers)
    print(summary(report, clock, args.out))
    return 0


def run_phases(
    args: argparse.Namespace, model: Path, tasks: Sequence[Task], tasks_file: Path, tasks_key: str, config: Config,
    submission: Submission, clock: Clock, report: Report, answers: Answers,
) -> None:
    """Fine-tune (unless told not to), then predict with the fine-tuned or the original model.
    Nothing here stops the command: every failure is noted and leaves the file as last written."""
    try:
        atomic_write_json(tasks_file, kaggle_challenges(tasks))
    except OSError as error:
        report.note(f"Cannot write to the work folder {args.work} ({error_summary(error)}): the fallback file stands.")
        return
    # this module's train and predict_split, looked up now: a caller (a test) may have replaced them
    runner: Runner = InProcessRunner(train, predict_split) if args.processes == 1 else LaunchedRunner(args.processes, clock)
    label = "original"
    if not args.no_finetune:
        with clock.phase("fine-tune"):
            tuned = finetune(config, clock, report, runner)
        if tuned is not None:
            model, label = tuned, "fine-tuned"
    if clock.remaining() <= 0:
        report.note("No time left to predict: the fallback file stands.")
        return
    with clock.phase("predict"):
        try:
            predict(tasks, model, label, args, tasks_key, submission, clock, report, runner, answers)
        except Exception as error:  # e.g. the model folder cannot be read: the file holds what was written
            log.warning("prediction failed", exc_info=True)
            report.note(f"Prediction stopped ({error_summary(error)}).")


if __name__ == "__main__":
    sys.exit(main())
