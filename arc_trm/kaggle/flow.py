"""The Kaggle flow behind `python -m submissions.make`: fine-tune, predict, vote, and always leave a valid
submission.json for unseen tasks (its steps are that command's docstring, README section Kaggle and
docs/kaggle.md).

    make_submission(Options(checkpoint="runs/arc2/model", challenges=Path("arc-agi_test_challenges.json"),
                            out=Path("submission.json"), time_budget=11 * 3600), Clock(0.0))

`make_submission` loads the challenges and the model, locks --out, writes the complete fallback file at
once, then fine-tunes (`finetune`) and predicts chunk by chunk (`predict`), each chunk's better-founded
answers replacing what the file held (`arc_trm.kaggle.provenance`); fine-tuning and prediction run in
this process or under `accelerate launch` (`arc_trm.kaggle.runners`). Nothing after the lock stops it:
every failure is noted in the closing summary and leaves the file as last written.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Sequence

import orjson
from tenacity import (
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
)

from arc_trm.candidates import NO_GRID, load_candidates, load_log_probs
from arc_trm.checkpoint import latest_checkpoint
from arc_trm.config import Config, check_batch, load_config
from arc_trm.errors import ConfigError, DataError, error_summary
from arc_trm.exported import DATA_FILE, DataInfo, load_model, model_dir_of
from arc_trm.grids import Task, kaggle_challenges, load_challenges
from arc_trm.io import atomic_write_json, hold_lock, is_transient, read_json, release_lock
from arc_trm.kaggle.clock import Clock
from arc_trm.kaggle.provenance import Answers
from arc_trm.kaggle.runners import InProcessRunner, LaunchedRunner, Runner, free_memory, predict_halving_batch
from arc_trm.kaggle.submission import Submission, write_submission
from arc_trm.predict import TEST_TIME_COMPUTE, PredictArgs, changed_from_default, predict_split
from arc_trm.tracks import TRACKS
from arc_trm.tracks.arc import ARC
from arc_trm.train import train
from arc_trm.vote import DEFAULT_POLICY

log = logging.getLogger("submissions.make")  # the command's logger: these lines are the command's

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
    "data.tasks": "from --challenges", "data.track": ARC.name, "run.dir": "under --work", "train.max_minutes": "from --time-budget",
}
"""Fine-tuning settings that the flow derives from its own options: `--set` may not change them."""


@dataclass
class Options:
    """What `python -m submissions.make` was asked for (its options, same names; see its --help)."""

    checkpoint: str
    """Exported model folder (runs/NAME/model) or run folder."""
    challenges: Path
    """Kaggle *_challenges.json of the tasks to answer."""
    out: Path
    """The submission.json to write."""
    time_budget: float
    """Wall-clock seconds for everything, loading included."""
    work: Path = DEFAULT_WORK
    """Work folder: the fine-tuning run and the prediction parts, under names that hash their inputs."""
    finetune_steps: int = 0
    """Fine-tuning steps (0: the preset's)."""
    finetune_aug: int = 128
    """Augmentations per task to fine-tune on."""
    predict_aug: int = 128
    """Augmentations per test input besides the identity."""
    batch_size: int = 256
    """Prediction batch; halved after an out-of-memory error."""
    embeddings_only: bool = False
    """Fine-tune the puzzle embeddings only."""
    no_finetune: bool = False
    """Predict with the checkpoint as it is."""
    fresh: bool = False
    """Start from the fallbacks, not from what --out holds."""
    policy: str = DEFAULT_POLICY
    """Voting policy."""
    processes: int = 1
    """Processes (GPUs) for fine-tuning and prediction, each phase under `accelerate launch` when > 1."""
    steps: int = 0
    """Supervision steps at prediction (0: the model's halt_max_steps; more continues the recursion)."""
    trajectories: int = 1
    """Runs of each query: 0 is the deterministic one, 1.. add latent noise (PTRM)."""
    noise: float = 0.0
    """Scale of the latent noise of trajectories 1.."""
    noise_seed: int = 0
    """Seed of the trajectories' noise."""
    early_exit: bool = False
    """Stop a prediction batch once every query has halted."""
    overrides: list[str] = field(default_factory=list)
    """Fine-tuning config overrides (KEY=VALUE), none of `SET_BY_MAKE`."""


# ------------------------------------------------------------------------------------------- inputs


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


def finetune_config(options: Options, model: Path, tasks_file: Path, tasks_key: str) -> Config:
    """The fine-tuning job (validated now, so a bad --set fails before anything is written).

    Its run folder hashes everything that shapes the result but the time limit, so the same command
    resumes the run and any other checkpoint, task set or setting gets a fresh one."""
    overrides = [
        "preset=finetune",
        f"train.init_from={model.resolve()}",
        f"data.tasks={tasks_file.resolve()}",
        f"data.num_aug={options.finetune_aug}",
        *([f"train.steps={options.finetune_steps}"] if options.finetune_steps else []),
        *options.overrides,
    ]
    config = load_config(overrides)
    if not any(o.strip().startswith("train.grad_accum=") for o in options.overrides):
        # the preset accumulates what one GPU cannot hold; N GPUs take 1/N of the micro-steps (rounded
        # up, so that no micro-batch grows past the preset's)
        config.train.grad_accum = -(-config.train.grad_accum // options.processes)
    check_batch(config, world=options.processes)
    if options.embeddings_only:
        config.train.freeze_dense_steps = config.train.steps
    identity = config.to_dict()
    identity["train"].pop("max_minutes")
    identity["run"].pop("dir")
    identity["train"].pop("init_from")  # in the model's identity, resolved
    identity["data"].pop("tasks")  # in tasks_key, by content
    config.run.dir = str(options.work.resolve() / f"finetune-{fingerprint(tasks_key, model_identity(model), identity)}")
    return config


# --------------------------------------------------------------------------------------- bookkeeping


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
    weights: str, options: Options, report: Report,
) -> int:
    """Write the entries that improve on the file (then their records); how many tasks improved."""
    taken = {t.id: better for t in pending if (better := answers.better(t.id, entries[t.id], founded.get(t.id, set()), source))}
    if not taken:
        return 0
    updated = {**answers.entries, **{task_id: answers.merged(task_id, entries[task_id], i) for task_id, i in taken.items()}}
    try:
        write_retrying(updated, options.out, answers.tasks)
    except (OSError, ValueError) as error:  # the file keeps its last good version
        report.fall_back(pending, f"writing failed ({error_summary(error)})")
        return 0
    for task_id, indices in taken.items():
        answers.take(task_id, entries[task_id], indices, source, weights)
    answers.save_records(options.out)
    return len(taken)


def predict(
    tasks: Sequence[Task], model: Path, label: str, options: Options, tasks_key: str,
    clock: Clock, report: Report, runner: Runner, answers: Answers,
) -> None:
    """Predict chunk by chunk the tasks whose answers this model could better; after each chunk its
    better-founded answers replace what --out held (a prediction over a fallback, a fine-tuned
    model's over the original's)."""
    source = SOURCE_OF_LABEL[label]
    info = DataInfo.read(model / DATA_FILE)
    canvas, known = info.canvas, info.known_tasks  # a task the model does not know is predicted with the blank id (near 0%)
    identity = model_identity(model)
    compute_keys = ("steps", *TEST_TIME_COMPUTE)
    settings = PredictArgs(
        checkpoint=str(model), split="", out="", num_aug=options.predict_aug, policy=options.policy,
        poe_top_n=10 if options.policy == "poe" else 0, **{key: getattr(options, key) for key in compute_keys},
    )
    # test-time compute names the folder only when not the default, so earlier work folders stay valid
    compute = changed_from_default(settings, compute_keys)
    folder = options.work / f"predict-{fingerprint(tasks_key, identity, options.predict_aug, options.policy, *([compute] if compute else []))}"
    batch, slowest = options.batch_size, 0.0
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
        improved = write_better(answers, entries, founded, pending, source, identity[1], options, report)
        for task in pending:
            if founded.get(task.id):
                report.predicted_by(task.id, known=task.id in known)
        explain_missing(report, [task for task in pending if not founded.get(task.id)], canvas, known)
        log.info(f"chunk {i + 1}/{len(chunks)}: {improved} of {len(chunk)} tasks answered better; {options.out} updated")


def nothing_to_improve(tasks: Sequence[Task], answers: Answers, options: Options, canvas: int) -> bool:
    """Whether every task that fits the canvas already has answers as well founded as this command
    can give; then fine-tuning and prediction are skipped."""
    best = "predicted" if options.no_finetune else "finetuned"
    return not any(answers.wants(task.id, best) and task.fits(canvas) for task in tasks)


# ------------------------------------------------------------------------------------------- the flow


def make_submission(options: Options, clock: Clock) -> None:
    """Load the challenges and the model (a bad file is one error now, before anything is written), then,
    with --out locked, write the fallback file at once and improve it (`write_and_improve`)."""
    with clock.phase("load"):
        tasks = load_challenges(options.challenges)
        model = model_dir_of(options.checkpoint).resolve()
        info = load_model(model).data  # a corrupt or inconsistent model is one error line now, before anything is written
        if TRACKS.get(info.track) is not ARC:
            raise ConfigError(f"--checkpoint {model}: a {info.track} model, not an ARC one")
        options = replace(options, work=options.work.resolve())
        tasks_key = fingerprint(kaggle_challenges(tasks))
        tasks_file = options.work / f"tasks-{tasks_key}.json"
        config = finetune_config(options, model, tasks_file, tasks_key)
    hold_out_lock(options.out)
    try:
        write_and_improve(options, model, info, tasks, tasks_file, tasks_key, config, clock)
    finally:
        release_out_lock(options.out)


def write_and_improve(
    options: Options, model: Path, info: DataInfo, tasks: Sequence[Task], tasks_file: Path, tasks_key: str,
    config: Config, clock: Clock,
) -> None:
    """Steps 2 to 5 of `python -m submissions.make` (its docstring), with --out locked."""
    report = Report(tasks)
    with clock.phase("fallback"):
        answers = Answers.fallback(tasks) if options.fresh else Answers.start(tasks, options.out, report.note)
        try:
            write_retrying(answers.entries, options.out, tasks)
        except OSError as error:
            raise DataError(f"{options.out}: cannot write the submission ({error_summary(error)})") from None
        answers.save_records(options.out)
    canvas = info.canvas
    if clock.remaining() <= 0:
        report.note(f"The time budget is spent: {standing(answers)}.")
    elif nothing_to_improve(tasks, answers, options, canvas):
        too_big = [task for task in tasks if not task.fits(canvas) and answers.source(task.id) == "fallback"]
        report.fall_back(too_big, f"with a grid larger than the model's {canvas}x{canvas} canvas")
        report.note("Nothing to improve: every answer already rests on the best model this command can give (--fresh starts over).")
    else:
        run_phases(options, model, tasks, tasks_file, tasks_key, config, clock, report, answers)
    print(summary(report, answers, clock, options.out))


def run_phases(
    options: Options, model: Path, tasks: Sequence[Task], tasks_file: Path, tasks_key: str, config: Config,
    clock: Clock, report: Report, answers: Answers,
) -> None:
    """Fine-tune (unless told not to), then predict with the fine-tuned or the original model.
    Nothing here stops the command: every failure is noted and leaves the file as last written."""
    try:
        atomic_write_json(tasks_file, kaggle_challenges(tasks))
    except OSError as error:
        report.note(f"Cannot write to the work folder {options.work} ({error_summary(error)}): {standing(answers)}.")
        return
    # this module's train and predict_split, looked up now: a caller (a test) may have replaced them
    runner: Runner = InProcessRunner(train, predict_split) if options.processes == 1 else LaunchedRunner(options.processes, clock)
    label = "original"
    if not options.no_finetune:
        with clock.phase("fine-tune"):
            tuned = finetune(config, clock, report, runner)
        if tuned is not None:
            model, label = tuned, "fine-tuned"
    if clock.remaining() <= 0:
        report.note(f"No time left to predict: {standing(answers)}.")
        return
    with clock.phase("predict"):
        try:
            predict(tasks, model, label, options, tasks_key, clock, report, runner, answers)
        except Exception as error:  # e.g. the model folder cannot be read: the file holds what was written
            log.warning("prediction failed", exc_info=True)
            report.note(f"Prediction stopped ({error_summary(error)}).")
