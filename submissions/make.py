"""Kaggle ARC Prize submission for unseen tasks: fine-tune, predict, vote, and always leave a valid file.

    python -m submissions.make --checkpoint runs/arc2/model \\
        --challenges /kaggle/input/arc-prize-2025/arc-agi_test_challenges.json \\
        --out /kaggle/working/submission.json --time-budget 11h

1. Read the time budget (`11h`, `90m`, `3600s`, `3600`), the challenges and the checkpoint. A bad file
   or option is one `error:` line and exit code 2, and nothing is written.
2. Write a complete submission to --out at once (every task, every test input, two distinct
   attempts): what --out already holds for these tasks (unless --fresh), the fallback for the rest.
   From then on a valid file exists whatever happens. The fallback guesses
   (`arc_trm.submission.fallback_guesses`) are the test input itself, then a blank grid of the
   expected output shape filled with the demo outputs' most frequent colour.
3. Fine-tune the checkpoint on the tasks' demo pairs (preset `finetune`, full model unless
   --embeddings-only) for at most FINETUNE_SHARE of the time left. If it fails (out of memory, ...),
   predict with the original checkpoint.
4. Predict in chunks of CHUNK_TASKS tasks (`arc_trm.predict.predict_split`: every augmentation,
   every supervision step, then the vote). After each chunk its predictions replace what --out
   held for them when better founded (a prediction over a fallback, a fine-tuned model's over the
   original's; `submissions/provenance.py` keeps each answer's source beside --out), validated and
   atomic. An out-of-memory error retries the chunk with half the batch; a failed chunk keeps what
   the file held; no chunk starts that the time left would not cover.
5. Print a one-paragraph summary (tasks predicted, fallbacks and why, time per phase); exit 0.

It runs as one process (`python -m`, not `accelerate launch`). With `--processes 1` (the default)
fine-tuning and prediction run inside it, on one GPU. With `--processes N` each fine-tuning run and
each prediction chunk is started under `accelerate launch` on N processes (N GPUs: Kaggle's four
L4s) and waited for; this process keeps the clock, the fallbacks and the file, kills a launch that
outlives the time left, and reads an out-of-memory error from its output. The work folder (--work)
keeps the fine-tuning run and the prediction parts under names that hash their inputs (resolved
paths, the weights' content), so re-running the same command resumes where it stopped, and any other
checkpoint, challenges or setting starts afresh; a re-run never makes --out worse. The two ways of running (in process, launched) and the out-of-memory retry are in
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

import orjson
from tenacity import (
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
)

from arc_trm.candidates import NO_GRID, load_candidates, load_log_probs
from arc_trm.checkpoint import latest_checkpoint, load_model, model_dir_of
from arc_trm.config import Config, check_batch, load_config
from arc_trm.errors import ArgumentParser, ConfigError, DataError, error_summary, exit_on_user_error, nonempty_path
from arc_trm.grids import Task, kaggle_challenges, load_challenges
from arc_trm.io import (
    atomic_write_json,
    hold_lock,
    is_transient,
    read_json,
    refuse_output_on_input,
    release_lock,
)
from arc_trm.predict import PredictArgs, predict_split
from arc_trm.submission import write_submission
from arc_trm.train import train
from arc_trm.vote import DEFAULT_POLICY, POLICIES
from submissions.provenance import Answers, provenance_path
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
    parser.add_argument("--fresh", action="store_true",
                        help="start from the fallbacks, not from what --out holds (by default a re-run only improves --out)")
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
    inputs = {"the checkpoint": args.checkpoint, "the challenges file": args.challenges}
    refuse_output_on_input(args.out, inputs)
    refuse_output_on_input(provenance_path(args.out), inputs, option="--out's provenance file")
    refuse_output_on_input(args.work, inputs, option="--work")
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


def weights_digest(model: Path) -> str:
    """Hash of the model's weights file: its content, not its time, so that an identical re-export
    resumes and a different one starts afresh."""
    digest = hashlib.sha256()
    with open(model / "weights.safetensors", "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def model_identity(model: Path) -> list[Any]:
    """Where the model is (resolved, however it was spelled) and which weights it holds."""
    return [str(model.resolve()), weights_digest(model)]


def finetune_config(args: argparse.Namespace, model: Path, tasks_file: Path, tasks_key: str) -> Config:
    """The fine-tuning job (validated now, so a bad --set fails before anything is written).

    Its run folder hashes everything that shapes the result but the time limit, so the same command
    resumes the run and any other checkpoint, task set or setting gets a fresh one."""
    overrides = [
        "preset=finetune",
        f"train.init_from={model.resolve()}",
        f"data.tasks={tasks_file.resolve()}",
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
    identity["train"].pop("init_from")  # in the model's identity, resolved
    identity["data"].pop("tasks")  # in tasks_key, by content
    config.run.dir = str(args.work.resolve() / f"finetune-{fingerprint(tasks_key, model_identity(model), identity)}")
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
    """What this run did, for the summary: why tasks were not predicted, whole-phase facts, and the
    tasks answered with the blank id. What the file holds is counted from `Answers`."""

    tasks: Sequence[Task]
    fallbacks: dict[str, str] = field(default_factory=dict)  # task id -> why it was not predicted
    notes: list[str] = field(default_factory=list)  # whole-phase fallbacks and facts, with reasons
    blank_id: set[str] = field(default_factory=set)  # answered tasks the model had no puzzle ids for

    def note(self, message: str) -> None:
        log.warning(message)
        self.notes.append(message)

    def fall_back(self, tasks: Sequence[Task], reason: str) -> None:
        if tasks:
            more = ", ..." if len(tasks) > 5 else ""
            log.warning(f"not predicted: {len(tasks)} task(s) ({', '.join(t.id for t in tasks[:5])}{more}): {reason}")
        for task in tasks:
            self.fallbacks[task.id] = reason

    def predicted_by(self, task_id: str, known: bool) -> None:
        self.fallbacks.pop(task_id, None)
        if not known:
            self.blank_id.add(task_id)


SOURCE_OF_LABEL = {"original": "predicted", "fine-tuned": "finetuned"}
"""The model label of a run (summary) -> the provenance source of its answers."""
HELD_AS = {"finetuned": "by the fine-tuned model", "predicted": "by the original model", "unknown": "of unknown origin"}
"""How the summary names each kind of answer the file holds."""


def format_seconds(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.1f} s"
    return f"{seconds / 60:.1f} min" if seconds < 7200 else f"{seconds / 3600:.2f} h"


def held(answers: Answers) -> str:
    """What the file holds, e.g. `3 by the fine-tuned model (2 kept from an earlier run)`."""
    sources = [answers.source(task.id) for task in answers.tasks]
    counts = [f"{sources.count(source)} {words}" for source, words in HELD_AS.items() if source in sources]
    kept = sum(source != "fallback" and task.id not in answers.changed for task, source in zip(answers.tasks, sources))
    return (", ".join(counts) or "none") + (f" ({kept} kept from an earlier run)" if kept else "")


def standing(answers: Answers) -> str:
    """The file as it stays when nothing more is predicted."""
    kept = sum(answers.source(task.id) != "fallback" for task in answers.tasks)
    return f"the file stands with its {kept} earlier answer(s)" if kept else "the fallback file stands"


def summary(report: Report, answers: Answers, clock: Clock, out: Path) -> str:
    """The closing paragraph: what the file holds, fallbacks grouped by reason, time per phase."""
    total = len(report.tasks)
    inputs = sum(len(task.test) for task in report.tasks)
    reasons: dict[str, int] = {}
    for task in report.tasks:
        if answers.source(task.id) == "fallback":
            reason = report.fallbacks.get(task.id, "not predicted")
            reasons[reason] = reasons.get(reason, 0) + 1
    fallback = "; ".join(f"{n} {reason}" for reason, n in reasons.items())
    parts = [f"wrote {out}: {total} tasks ({inputs} test inputs); predicted: {held(answers)}."]
    if report.blank_id:
        parts.append(f"{len(report.blank_id)} predicted task(s) had no puzzle ids in the model (blank id, near 0%).")
    parts.append(f"Fallback guesses: {sum(reasons.values())} task(s)" + (f" ({fallback})." if fallback else "."))
    parts.extend(report.notes)
    phases = ", ".join(f"{name} {format_seconds(s)}" for name, s in clock.phases.items())
    spent = clock.budget_s - clock.remaining()
    parts.append(f"Time: {phases}; total {format_seconds(spent)} of a {format_seconds(clock.budget_s)} budget.")
    return " ".join(parts)



# ---------------------------------------------------------------------------------- robust actions


def write_retrying(submission: Submission, path: Path, tasks: Sequence[Task]) -> None:
    """`write_submission` (validate, atomic write), retried with back-off when the file system
    hiccups (network disks, a full disk being cleaned); an invalid submission is never retried."""
    retrying = Retrying(
        retry=retry_if_exception(is_transient),  # a missing permission or a folder in the way stays
        stop=stop_after_attempt(5),
        wait=wait_exponential(multiplier=0.5, max=8),
        before_sleep=lambda state: log.warning(f"writing {path} failed ({error_summary(state.outcome.exception())}); retrying"),
        reraise=True,
    )
    for attempt in retrying:
        with attempt:
            write_submission(submission, path, tasks)



def hold_out_lock(out: Path) -> None:
    """Hold an exclusive lock on OUT.lock (beside --out) until this process ends, or a ConfigError naming
    the PID that holds it: a second run on the same --out (another --work, another budget) would write
    the answers it started from over the better ones the first one wrote meanwhile."""
    path = out.with_name(f"{out.name}.lock")
    hold_lock(path, lambda holder: f"--out {out}: another submissions.make (PID {holder}) is writing it ({path} is "
                                   "locked); wait for it to end or write another --out")


def release_out_lock(out: Path) -> None:
    release_lock(out.with_name(f"{out.name}.lock"))


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


def chunk_results(out: Path, chunk: Sequence[Task]) -> tuple[dict[str, Any], dict[str, set[int]]]:
    """The chunk's voted entries, and per task the test indices with at least one decoded prediction."""
    entries = read_json(out / "submission.json")
    table = load_candidates(out / "candidates.parquet")
    found = table.grid != NO_GRID
    founded: dict[str, set[int]] = {}
    for code, index in set(zip(table.task[found].tolist(), table.test_index[found].tolist())):
        founded.setdefault(table.task_ids[code], set()).add(int(index))
    return {task.id: entries.get(task.id) if isinstance(entries, dict) else None for task in chunk}, founded


def set_aside_unreadable(parts: Path) -> None:
    """Rename the part files a killed run or a damaged disk left unreadable (`NAME.corrupt`), so that
    prediction makes them again instead of failing on them in every later run."""
    readers = {"part_": load_candidates, "log_probs_": load_log_probs}
    for path in sorted(parts.glob("*")) if parts.is_dir() else ():
        reader = next((read for prefix, read in readers.items() if path.name.startswith(prefix) and path.suffix == ".parquet"), None)
        if path.name == "settings.json":
            reader = read_settings
        if reader is None:
            continue
        try:
            reader(path)
        except DataError as error:
            aside = next(c for n in range(1000) if not (c := path.with_name(f"{path.name}.corrupt{n or ''}")).exists())
            path.rename(aside)
            log.warning(f"set aside as {aside.name}: {error}; it is made again")


def read_settings(path: Path) -> None:
    if not isinstance(read_json(path), dict):
        raise DataError(f"{path}: not a settings object")


def explain_missing(report: Report, missing: Sequence[Task], canvas: int, known: set[str]) -> None:
    """Why each task of a chunk got no prediction, for the summary."""
    too_big = {task.id for task in missing if not task.fits(canvas)}
    report.fall_back([task for task in missing if task.id in too_big], f"with a grid larger than the model's {canvas}x{canvas} canvas")
    unknown = {task.id for task in missing if task.id not in too_big and known and task.id not in known}
    if not known:  # a model that knows no task (a slim copy, or one not fine-tuned) predicts none
        unknown = {task.id for task in missing if task.id not in too_big}
    report.fall_back([task for task in missing if task.id in unknown], "not known to the model (not fine-tuned on it)")
    report.fall_back([task for task in missing if task.id not in too_big | unknown], "no prediction decoded")


def write_better(
    answers: Answers, entries: dict[str, Any], founded: dict[str, set[int]], pending: Sequence[Task], source: str,
    weights: str, args: argparse.Namespace, report: Report,
) -> int:
    """Write the entries that improve on the file (then their records); how many tasks improved."""
    taken = {t.id: better for t in pending if (better := answers.better(t.id, entries[t.id], founded.get(t.id, set()), source))}
    if not taken:
        return 0
    updated = {**answers.entries, **{task_id: answers.merged(task_id, entries[task_id], i) for task_id, i in taken.items()}}
    try:
        write_retrying(updated, args.out, answers.tasks)
    except (OSError, ValueError) as error:  # the file keeps its last good version
        report.fall_back(pending, f"writing failed ({error_summary(error)})")
        return 0
    for task_id, indices in taken.items():
        answers.take(task_id, entries[task_id], indices, source, weights)
    answers.save_records(args.out)
    return len(taken)


def predict(
    tasks: Sequence[Task], model: Path, label: str, args: argparse.Namespace, tasks_key: str,
    clock: Clock, report: Report, runner: Runner, answers: Answers,
) -> None:
    """Predict chunk by chunk the tasks whose answers this model could better; after each chunk its
    better-founded answers replace what --out held (a prediction over a fallback, a fine-tuned
    model's over the original's)."""
    source = SOURCE_OF_LABEL[label]
    canvas = read_json(model / "data.json").get("canvas", 30)
    known = known_tasks(model)
    identity = model_identity(model)
    settings = PredictArgs(
        checkpoint=str(model), split="", out="", num_aug=args.predict_aug, policy=args.policy,
        poe_top_n=10 if args.policy == "poe" else 0,
    )
    folder = args.work / f"predict-{fingerprint(tasks_key, identity, args.predict_aug, args.policy)}"
    batch, slowest = args.batch_size, 0.0
    # chunks over all tasks, so that a chunk's folder always holds the same tasks
    chunks = [tasks[i : i + CHUNK_TASKS] for i in range(0, len(tasks), CHUNK_TASKS)]
    for i, chunk in enumerate(chunks):
        pending = [task for task in chunk if answers.wants(task.id, source)]
        if not pending:
            continue
        if clock.remaining() <= CHUNK_SAFETY * slowest:
            report.fall_back([t for later in chunks[i:] for t in later if answers.wants(t.id, source)], "out of time")
            report.note(f"Prediction stopped by the clock after {i} of {len(chunks)} chunks.")
            break
        began = time.monotonic()
        chunk_dir = folder / f"chunk_{i:05d}"
        try:
            set_aside_unreadable(chunk_dir / "parts")
            atomic_write_json(chunk_dir / "tasks.json", kaggle_challenges(chunk))
            out, batch = predict_halving_batch(
                replace(settings, split=str(chunk_dir / "tasks.json"), out=str(chunk_dir), batch_size=batch), runner
            )
            entries, founded = chunk_results(out, chunk)
        except Exception as error:  # one chunk's failure keeps what the file held; the next chunk may work
            log.warning(f"prediction of chunk {i} failed", exc_info=True)
            report.fall_back(pending, f"prediction failed ({error_summary(error)})")
            free_memory()
            continue
        finally:
            slowest = max(slowest, time.monotonic() - began)
        improved = write_better(answers, entries, founded, pending, source, identity[1], args, report)
        for task in pending:
            if founded.get(task.id):
                report.predicted_by(task.id, known=task.id in known)
        explain_missing(report, [task for task in pending if not founded.get(task.id)], canvas, known)
        log.info(f"chunk {i + 1}/{len(chunks)}: {improved} of {len(chunk)} tasks answered better; {args.out} updated")


def nothing_to_improve(tasks: Sequence[Task], answers: Answers, args: argparse.Namespace, canvas: int) -> bool:
    """Whether every task that fits the canvas already has answers as well founded as this command
    can give; then fine-tuning and prediction are skipped."""
    best = "predicted" if args.no_finetune else "finetuned"
    return not any(answers.wants(task.id, best) and task.fits(canvas) for task in tasks)


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
        model = model_dir_of(args.checkpoint).resolve()
        _, _, info = load_model(model)  # a corrupt or inconsistent model is one error line now, before anything is written
        if info.get("track", "arc") != "arc":
            raise ConfigError(f"--checkpoint {model}: a {info['track']} model, not an ARC one")
        args.work = args.work.resolve()
        tasks_key = fingerprint(kaggle_challenges(tasks))
        tasks_file = args.work / f"tasks-{tasks_key}.json"
        config = finetune_config(args, model, tasks_file, tasks_key)
    hold_out_lock(args.out)
    try:
        write_and_improve(args, model, info, tasks, tasks_file, tasks_key, config, clock)
    finally:
        release_out_lock(args.out)
    return 0


def write_and_improve(
    args: argparse.Namespace, model: Path, info: dict[str, Any], tasks: Sequence[Task], tasks_file: Path, tasks_key: str,
    config: Config, clock: Clock,
) -> None:
    """Steps 2 to 5 (see the module's docstring), with --out locked."""
    report = Report(tasks)
    with clock.phase("fallback"):
        answers = Answers.fallback(tasks) if args.fresh else Answers.start(tasks, args.out, report.note)
        try:
            write_retrying(answers.entries, args.out, tasks)
        except OSError as error:
            raise DataError(f"{args.out}: cannot write the submission ({error_summary(error)})") from None
        answers.save_records(args.out)
    canvas = info.get("canvas", 30)
    if clock.remaining() <= 0:
        report.note(f"The time budget is spent: {standing(answers)}.")
    elif nothing_to_improve(tasks, answers, args, canvas):
        too_big = [task for task in tasks if not task.fits(canvas) and answers.source(task.id) == "fallback"]
        report.fall_back(too_big, f"with a grid larger than the model's {canvas}x{canvas} canvas")
        report.note("Nothing to improve: every answer already rests on the best model this command can give (--fresh starts over).")
    else:
        run_phases(args, model, tasks, tasks_file, tasks_key, config, clock, report, answers)
    print(summary(report, answers, clock, args.out))


def run_phases(
    args: argparse.Namespace, model: Path, tasks: Sequence[Task], tasks_file: Path, tasks_key: str, config: Config,
    clock: Clock, report: Report, answers: Answers,
) -> None:
    """Fine-tune (unless told not to), then predict with the fine-tuned or the original model.
    Nothing here stops the command: every failure is noted and leaves the file as last written."""
    try:
        atomic_write_json(tasks_file, kaggle_challenges(tasks))
    except OSError as error:
        report.note(f"Cannot write to the work folder {args.work} ({error_summary(error)}): {standing(answers)}.")
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
        report.note(f"No time left to predict: {standing(answers)}.")
        return
    with clock.phase("predict"):
        try:
            predict(tasks, model, label, args, tasks_key, clock, report, runner, answers)
        except Exception as error:  # e.g. the model folder cannot be read: the file holds what was written
            log.warning("prediction failed", exc_info=True)
            report.note(f"Prediction stopped ({error_summary(error)}).")


if __name__ == "__main__":
    sys.exit(main())
