"""Test-time augmentation inference: every augmentation of every test input, all supervision steps.

    python -m arc_trm.predict checkpoint=runs/tiny split=arc-agi-1/evaluation out=predictions/tiny

For each test input and each augmentation (identity included) the model runs all `halt_max_steps`
supervision steps without halting. Every step's prediction is decoded, mapped back through the
inverse augmentation, and kept as a candidate (task, test index, augmentation, step, sigmoid(q_halt),
grid). Candidates are written to `OUT/candidates.parquet`; voting turns them into
`OUT/submission.json` (two attempts per test input), and, when the split has solutions, the scores.

Processes (`accelerate launch -m arc_trm.predict ...`) each take a shard of the tasks; the main
process gathers. Finished tasks are kept in `OUT/parts/`, so a re-run after a kill skips them.
This module is the command line and its orchestration; the model runs in `arc_trm.inference`.
"""

from __future__ import annotations

import hashlib
import sys
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from accelerate import Accelerator
from accelerate.utils import gather_object
from tqdm.auto import tqdm

from arc_trm.candidates import CandidateTable, load_candidates, load_log_probs, save_candidates, save_log_probs
from arc_trm.config import describe_fields, key_value_pairs, parse_value
from arc_trm.config_fields import field_types
from arc_trm.distributed import make_accelerator, process_group
from arc_trm.errors import ConfigError, exit_on_user_error
from arc_trm.exported import PuzzleIndex, load_model, model_dir_of
from arc_trm.grids import Task
from arc_trm.inference import (
    ForwardPasses,
    TestTimeCompute,
    count_queries,
    forward_passes,
    predict_puzzles,
    predict_queries,
    queries,
    recursions_per_pass,
)
from arc_trm.io import atomic_write_json, read_json, refuse_output_on_input
from arc_trm.kaggle.submission import attempts_from_rankings, write_submission
from arc_trm.model.puzzle_embedding import PuzzleEmbedding
from arc_trm.model.trm import TRM
from arc_trm.scoring import format_report, load_submission, score_submission
from arc_trm.splits import SPLITS, resolve, split_inputs
from arc_trm.tracks import TRACKS
from arc_trm.tracks.puzzles import PuzzleTrack
from arc_trm.vote import DEFAULT_POLICY, POLICIES, pass_at_k, vote


@dataclass
class PredictArgs:
    checkpoint: str = ""
    """An exported model folder (runs/NAME/model) or a run directory."""
    split: str = ""
    """A split name (arc-agi-1/evaluation) or a path: task folder, task file, Kaggle challenges file."""
    out: str = ""
    """Output folder: candidates.parquet, submission.json, report.json (when solutions are known)."""
    num_aug: int = 1000
    """Augmentations per test input besides the identity (the reference uses all 1000)."""
    batch_size: int = 256
    """Queries (test input x augmentation) per forward batch."""
    steps: int = 0
    """Supervision steps to run (0 = the model's halt_max_steps, 16 for the real presets; at most 1024). More
    than the trained number continues the recursion; every step's candidates are kept."""
    trajectories: int = 1
    """Runs of each query: trajectory 0 is the deterministic run, 1.. add latent noise (PTRM); > 1 needs noise > 0.
    Each trajectory's candidates vote like another augmentation's (policy=q_select picks by the halting head)."""
    noise: float = 0.0
    """Scale of the N(0, 1) noise added to the latent z after each update of trajectories 1..; needs trajectories >= 2."""
    noise_seed: int = 0
    """Seed of the trajectories' noise (hashed with each query and trajectory: the same in any batch)."""
    early_exit: bool = False
    """Stop a batch once every query has halted (q_halt > 0 at some step); the steps run keep their candidates."""
    policy: str = DEFAULT_POLICY
    """Voting policy for submission.json: halt_weighted (the measured best with every augmentation and step,
    docs/benchmarks.md#accuracy-on-a-cpu), reference, first_halt, poe, q_select (the trajectory the halting head trusts most)."""
    poe_top_n: int = 0
    """Score each test input's top-N candidates under every augmentation (needed by policy=poe)."""
    tasks_per_part: int = 8
    """Tasks per restartable part file under OUT/parts."""
    compile: bool = False
    """torch.compile the model (GPUs; the numbers stay those of the eager model)."""


TEST_TIME_COMPUTE = tuple(f.name for f in fields(TestTimeCompute))
"""PredictArgs fields that change the candidates beyond one deterministic run (`TestTimeCompute`)."""

MAX_STEPS = 1024
"""Far past any trained halt_max_steps (16): a larger steps= is a typo that would run for days."""


def predict_help() -> str:
    """`--help`: the usage line, then every argument with its type, default and meaning."""
    lines = [
        "usage: [accelerate launch -m | python -m] arc_trm.predict checkpoint=MODEL split=SPLIT out=FOLDER [key=value ...]",
        "(--key value and --key=value work too)",
        "",
        __doc__.split("\n\n")[0],
        "",
        "arguments (key=default  (type)  meaning):",
        *describe_fields(PredictArgs()),
    ]
    return "\n".join(lines)


def parse_predict_args(argv: Sequence[str]) -> PredictArgs:
    args = PredictArgs()
    types = field_types(args)
    for arg in key_value_pairs(argv):
        key, sep, value = arg.partition("=")
        if not sep or key not in types:
            raise ConfigError(f"argument '{arg}' is not one of {', '.join(f'{k}=...' for k in types)}")
        setattr(args, key, parse_value(key, value, types[key]))
    for required in ("checkpoint", "split", "out"):
        if not getattr(args, required):
            raise ConfigError(f"{required}=... is required (e.g. checkpoint=runs/tiny split=arc-agi-1/evaluation out=predictions)")
    checks = [
        (args.batch_size >= 1, "batch_size must be >= 1"),
        (args.tasks_per_part >= 1, "tasks_per_part must be >= 1"),
        (0 <= args.steps <= MAX_STEPS, f"steps={args.steps}: must be from 0 (the model's halt_max_steps) to {MAX_STEPS}"),
        (args.num_aug >= 0, "num_aug must be >= 0"),
        (args.poe_top_n >= 0, "poe_top_n must be >= 0"),
        (args.policy in POLICIES, f"policy must be one of {', '.join(POLICIES)}"),
    ]
    for ok, message in checks:
        if not ok:
            raise ConfigError(message)
    TestTimeCompute.of(args)  # a bad combination is one line before any work
    if args.policy == "poe" and args.poe_top_n == 0:
        args.poe_top_n = 10
    return args


def changed_from_default(args: PredictArgs, keys: Sequence[str]) -> dict[str, Any]:
    """The settings among `keys` that differ from their defaults: what records a run's test-time compute
    without changing the record of a run that used none."""
    default = PredictArgs()
    return {key: getattr(args, key) for key in keys if getattr(args, key) != getattr(default, key)}


def report_cost(ran: int, planned: int, model: TRM) -> str:
    """One line: forward passes this run made, of what the whole prediction plans (early exit and parts
    reused from an earlier run make fewer), and the network applications in each."""
    return (f"forward passes: {ran:,} run of {planned:,} planned "
            f"(each applies the network {recursions_per_pass(model.config)} times)")


def check_parts_settings(out: Path, args: PredictArgs, tasks: Sequence[Task]) -> None:
    """Parts are reused on a re-run only if they were made with the same model, data and settings. The
    model is its files' hash: a model exported again to the same folder is another model; the tasks are
    their ids' and test inputs' hash: a task file or folder changed under the same path is other tasks."""
    settings = {key: getattr(args, key) for key in ("checkpoint", "split", "num_aug", "steps", "poe_top_n", "tasks_per_part")}
    # test-time compute is recorded only when not the default, so parts made before these options stay valid
    settings |= changed_from_default(args, TEST_TIME_COMPUTE)
    settings["checkpoint"] = str(Path(args.checkpoint).resolve())
    settings["model"] = model_hash(model_dir_of(args.checkpoint))
    settings["tasks"] = tasks_hash(tasks)
    path = out / "parts" / "settings.json"
    if path.exists():
        saved = read_json(path)
        if not isinstance(saved, dict):
            raise ConfigError(f"{path}: not a settings object; delete {out / 'parts'} to predict afresh")
        changed = sorted(key for key in settings.keys() | saved.keys() & set(TEST_TIME_COMPUTE) if saved.get(key) != settings.get(key))
        if changed:
            raise ConfigError(
                f"{out / 'parts'} holds predictions made with other {', '.join(changed)}; use another out= or delete that folder"
            )
    else:
        atomic_write_json(path, settings, indent=True)


def tasks_hash(tasks: Sequence[Task]) -> str:
    """SHA-256 over the task ids and test inputs, in order: what each part predicts."""
    digest = hashlib.sha256()
    for task in tasks:
        digest.update(task.id.encode() + b"\0")
        for pair in task.test:
            grid = np.ascontiguousarray(pair.input, dtype=np.uint8)
            digest.update(f"{grid.shape}".encode() + grid.tobytes())
    return digest.hexdigest()


def model_hash(model_dir: Path) -> str:
    """SHA-256 over the files of an exported model that set its predictions (the puzzle table too: a
    fine-tuning of the embeddings alone leaves the dense weights as they were)."""
    digest = hashlib.sha256()
    for name in ("config.json", "weights.safetensors", "puzzle_table.safetensors"):
        with open(model_dir / name, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 24), b""):  # Python 3.10 has no hashlib.file_digest
                digest.update(block)
    return digest.hexdigest()


def skipped_tasks(tasks: Sequence[Task], index: PuzzleIndex) -> dict[str, list[str]]:
    """Tasks prediction cannot answer, by reason. A model that knows some tasks has no trained puzzle
    embedding for the others (the blank id scores near 0, so they are fine-tuned first, e.g. by
    `submissions.make`); a model without task index (an imported one without identifiers) uses the
    blank id for every task."""
    reasons: dict[str, list[str]] = {}
    for task in tasks:
        if any(max(pair.input.shape) > index.canvas for pair in task.test):
            reasons.setdefault(f"have test inputs larger than the {index.canvas}x{index.canvas} canvas", []).append(task.id)
        elif index.versions and task.id not in index.versions:
            reasons.setdefault("were not trained by this model", []).append(task.id)
    return reasons


def predict_split(args: PredictArgs, accelerator: Accelerator) -> Path:
    """Predict every part this process owns (skipping finished ones), then gather and vote on the main one."""
    out = Path(args.out)
    loaded = load_model(args.checkpoint, accelerator.device)
    model, table = loaded.model, loaded.table
    if args.compile:
        model.compile()
    model_track = TRACKS.get(loaded.data.track)  # None for a model of no known track: predicted as ARC
    if isinstance(model_track, PuzzleTrack):
        return predict_track(args, accelerator, model, table, model_track)
    tasks, index = resolve(args.split), loaded.index
    skipped = skipped_tasks(tasks, index)
    for reason, ids in skipped.items():
        accelerator.print(f"warning: {len(ids)} task(s) {reason} (e.g. {ids[0]}): they get fallback answers")
    skip = {task_id for ids in skipped.values() for task_id in ids}
    steps = args.steps or model.config.halt_max_steps
    parts = [[t for t in tasks[i : i + args.tasks_per_part] if t.id not in skip] for i in range(0, len(tasks), args.tasks_per_part)]
    # a compiled model sees one batch shape in the whole run: every batch padded to the largest part's
    compute = TestTimeCompute.of(args)
    # rows, not queries: each query runs once per trajectory
    pad_to = min(args.batch_size, compute.trajectories * max(count_queries(part, index, args.num_aug) for part in parts)) if args.compile else 0
    spent = ForwardPasses()
    checkpoint = str(Path(args.checkpoint).resolve())
    if accelerator.is_main_process:
        check_parts_settings(out, args, tasks)
    accelerator.wait_for_everyone()
    mine = [i for i in range(len(parts)) if i % accelerator.num_processes == accelerator.process_index]
    for i in tqdm(mine, desc="parts", unit="part", disable=not accelerator.is_main_process):
        path = out / "parts" / f"part_{i:05d}.parquet"
        if path.exists():
            continue
        items = list(queries(parts[i], index, args.num_aug))
        candidates, log_probs = predict_queries(
            model, table, items, args.batch_size, steps, accelerator.device, checkpoint, args.poe_top_n,
            pad_to=pad_to, compute=compute, spent=spent,
        )
        if args.poe_top_n:
            save_log_probs(log_probs, out / "parts" / f"log_probs_{i:05d}.parquet")
        save_candidates(CandidateTable.from_candidates(candidates), path)
    accelerator.wait_for_everyone()
    ran = sum(gather_object([spent.count]))
    if accelerator.is_main_process:
        finish(args, tasks, out, len(parts))
        planned = forward_passes(sum(count_queries(part, index, args.num_aug) for part in parts), steps, compute)
        print(report_cost(ran, planned, model))
    accelerator.wait_for_everyone()
    return out


def predict_track(args: PredictArgs, accelerator: Accelerator, model: TRM, table: PuzzleEmbedding, track: PuzzleTrack) -> Path:
    """Sudoku / Maze: OUT/predictions.csv (`index,prediction`, see arc_trm/tracks/puzzles.py) and, since
    the test CSV holds the answers, OUT/report.json from the track's scoring."""
    if args.split in SPLITS or args.split.endswith(".json"):
        raise ConfigError(f"checkpoint={args.checkpoint}: a {track.name} model; split= must be a {track.name} test.csv or its folder")
    test_source = track.load_test(args.split, model.config.seq_len)
    steps, compute, spent = args.steps or model.config.halt_max_steps, TestTimeCompute.of(args), ForwardPasses()
    indices, predicted, _ = predict_puzzles(
        model, table, test_source, args.batch_size, steps, accelerator.device, accelerator.process_index, accelerator.num_processes,
        compute=compute, spent=spent,
    )
    rows = gather_object(list(zip(indices.tolist(), (track.decode(t) for t in predicted))))
    ran = sum(gather_object([spent.count]))
    out = Path(args.out)
    if accelerator.is_main_process:
        track.write_predictions(out / "predictions.csv", sorted(rows))
        report = track.score_file(out / "predictions.csv", Path(args.split))
        atomic_write_json(out / "report.json", report, indent=True)
        print(f"wrote {out / 'predictions.csv'} ({len(rows)} puzzles)")
        print(track.format_report(report))
        print(report_cost(ran, forward_passes(len(rows), steps, compute), model))
    accelerator.wait_for_everyone()
    return out


def finish(args: PredictArgs, tasks: list[Task], out: Path, num_parts: int) -> None:
    """Concatenate the parts, vote, write submission.json and (with solutions) report.json."""
    table = CandidateTable.concat([load_candidates(out / "parts" / f"part_{i:05d}.parquet") for i in range(num_parts)])
    save_candidates(table, out / "candidates.parquet")
    options: dict[str, Any] = {}
    if args.policy == "poe":
        log_probs: dict = {}
        for i in range(num_parts):
            log_probs.update(load_log_probs(out / "parts" / f"log_probs_{i:05d}.parquet"))
        save_log_probs(log_probs, out / "log_probs.parquet")
        options = {"log_probs": log_probs, "top_n": args.poe_top_n}
    rankings = vote(table, args.policy, **options)
    write_submission(attempts_from_rankings(rankings, tasks), out / "submission.json", tasks)
    print(f"wrote {out / 'submission.json'} ({len(table):,} candidates, policy {args.policy})")
    if all(task.has_solutions for task in tasks):
        report = score_submission(load_submission(out / "submission.json"), tasks)
        report["pass_at_k"] = {str(k): v for k, v in pass_at_k(rankings, tasks).items()}
        atomic_write_json(out / "report.json", report, indent=True)
        print(format_report(report))


@exit_on_user_error
def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if {"-h", "--help"} & set(argv):
        print(predict_help())
        return 0
    args = parse_predict_args(argv)
    refuse_output_on_input(args.out, {"the checkpoint": args.checkpoint, **split_inputs(args.split)}, option="out=")
    with process_group():
        predict_split(args, make_accelerator())
    return 0


if __name__ == "__main__":
    sys.exit(main())
