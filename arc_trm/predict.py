"""Test-time augmentation inference: every augmentation of every test input, all supervision steps.

    python -m arc_trm.predict checkpoint=runs/tiny split=arc-agi-1/evaluation out=predictions/tiny

For each test input and each augmentation (identity included) the model runs all `halt_max_steps`
supervision steps without halting. Every step's prediction is decoded, mapped back through the
inverse augmentation, and kept as a candidate (task, test index, augmentation, step, sigmoid(q_halt),
grid). Candidates are written to `OUT/candidates.parquet`; voting turns them into
`OUT/submission.json` (two attempts per test input), and, when the split has solutions, the scores.

Processes (`accelerate launch -m arc_trm.predict ...`) each take a shard of the tasks; the main
process gathers. Finished tasks are kept in `OUT/parts/`, so a re-run after a kill skips them.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.utils import gather_object
from tqdm.auto import tqdm

from arc_trm.augment import Augmentation, sample_augmentation
from arc_trm.candidates import Candidate, CandidateTable, grid_key, load_candidates, save_candidates, save_log_probs
from arc_trm.checkpoint import load_model
from arc_trm.config import describe_fields, field_types, parse_value
from arc_trm.data.arc import puzzle_id
from arc_trm.datasets import resolve
from arc_trm.distributed import make_accelerator, process_group
from arc_trm.errors import ConfigError, exit_on_user_error
from arc_trm.grids import Task
from arc_trm.io import atomic_write_json, read_json, write_csv
from arc_trm.model.losses import log_stablemax
from arc_trm.model.puzzle_embedding import PuzzleEmbedding, RowSource
from arc_trm.model.trm import TRM
from arc_trm.submission import attempts_from_rankings, write_submission
from arc_trm.tokens import IGNORE_LABEL, decode_grid, encode_grid, labels_from_tokens
from arc_trm.vote import POLICIES, pass_at_k, poe_candidates, vote


@torch.no_grad()
def run_steps(
    model: TRM, table: RowSource, inputs: torch.Tensor, puzzle_ids: torch.Tensor, steps: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """All supervision steps from (y_init, z_init), no halting.

    Returns predicted tokens (steps, B, L), sigmoid(q_halt) (steps, B) and the last step's
    log-probabilities (B, L, vocab) under stablemax, the distribution the model is trained on.
    """
    # dense copies of the broadcast start: a compiled model then sees the same strides at every step
    y, z = (start.contiguous() for start in model.initial_state(inputs.shape[0], inputs.device))
    rows = table.rows(puzzle_ids, requires_grad=False)
    predictions, confidences = [], []
    for _ in range(steps):
        out = model(y, z, inputs, rows)
        y, z = out.y, out.z
        predictions.append(out.logits.argmax(-1).to(torch.uint8))
        confidences.append(torch.sigmoid(out.q_halt))
    return torch.stack(predictions), torch.stack(confidences), log_stablemax(out.logits.float())


@dataclass(frozen=True)
class Version:
    """One augmented version of a task the model knows: its augmentation and its puzzle id."""

    k: int
    puzzle_id: int
    augmentation: Augmentation


@dataclass
class PuzzleIndex:
    """Which puzzle ids (and augmentations) a trained model has for each task."""

    versions: dict[str, list[Version]] = field(default_factory=dict)
    canvas: int = 30

    @classmethod
    def from_data_info(cls, info: dict[str, Any]) -> "PuzzleIndex":
        """Our exported models: ids follow `arc_trm.data.arc.puzzle_id`.
        Imported reference models list their versions explicitly (import_reference.py)."""
        if "versions" in info:
            versions = {
                task_id: [Version(k, pid, Augmentation(d, tuple(int(c) for c in colors))) for k, (pid, d, colors) in enumerate(rows)]
                for task_id, rows in info["versions"].items()
            }
            return cls(versions, info["canvas"])
        num_aug, seed = info["num_aug"], info["seed"]
        versions = {}
        for t, task_id in enumerate(info["task_ids"]):
            ks = info.get("distinct_versions", {}).get(task_id) or range(num_aug + 1)
            versions[task_id] = [Version(k, puzzle_id(t, k, num_aug), sample_augmentation(seed, t, k)) for k in ks]
        return cls(versions, info["canvas"])

    def for_task(self, task_id: str, max_aug: int | None) -> list[Version]:
        """The task's versions, identity first; unknown tasks get the blank id and the identity only."""
        known = self.versions.get(task_id)
        if not known:
            return [Version(0, 0, Augmentation.identity())]
        chosen = [v for v in known if max_aug is None or v.k <= max_aug]
        return sorted(chosen, key=lambda v: (not v.augmentation.is_identity, v.k))


@dataclass(frozen=True)
class Query:
    task_id: str
    test_index: int
    version: Version
    inputs: np.ndarray  # (L,) tokens in the augmented frame


def queries(tasks: Iterable[Task], index: PuzzleIndex, max_aug: int | None) -> Iterator[Query]:
    for task in tasks:
        for test_index, pair in enumerate(task.test):
            for version in index.for_task(task.id, max_aug):
                grid = version.augmentation.apply(pair.input)
                yield Query(task.id, test_index, version, encode_grid(grid, index.canvas).astype(np.int32))


def predict_queries(
    model: TRM, table: RowSource, items: Sequence[Query], batch_size: int, steps: int, device: torch.device,
    checkpoint: str = "", poe_top_n: int = 0, progress: bool = False, fixed_batch: bool = False,
) -> tuple[list[Candidate], dict[tuple[str, int, bytes], list[float]]]:
    """Candidates of every step for every query (grids in the original frame), and, when
    `poe_top_n` > 0, the log-probabilities of each test input's top candidates under every
    augmentation (product of experts). `items` must hold whole test inputs (all their versions).

    `fixed_batch` (a compiled model): a short last batch is padded to `batch_size` with copies of its
    first query, whose outputs are dropped, so that the model sees one shape and compiles once."""
    canvas = int(round(len(items[0].inputs) ** 0.5)) if items else 0
    candidates: list[Candidate] = []
    last_logprobs: list[torch.Tensor] = []
    for start in tqdm(range(0, len(items), batch_size), disable=not progress, desc="predict", unit="batch"):
        batch = items[start : start + batch_size]
        padded = list(batch) + [batch[0]] * (batch_size - len(batch)) if fixed_batch and len(items) > batch_size else batch
        inputs = torch.from_numpy(np.stack([q.inputs for q in padded])).to(device)
        ids = torch.tensor([q.version.puzzle_id for q in padded], device=device)
        tokens, confidences, logprobs = run_steps(model, table, inputs, ids, steps)
        tokens, confidences = tokens.cpu().numpy(), confidences.float().cpu().numpy()
        if poe_top_n:
            last_logprobs.extend(logprobs[: len(batch)].to(torch.float16).cpu())
        for step in range(steps):
            for i, query in enumerate(batch):
                grid = decode_grid(tokens[step, i], canvas)
                if grid is not None:
                    grid = query.version.augmentation.invert(grid)
                candidates.append(
                    Candidate(query.task_id, query.test_index, query.version.k, step + 1, float(confidences[step, i]), grid, checkpoint)
                )
    log_probs = expert_log_probs(candidates, items, last_logprobs, canvas, poe_top_n) if poe_top_n else {}
    return candidates, log_probs


def expert_log_probs(
    candidates: list[Candidate], items: Sequence[Query], logprobs: list[torch.Tensor], canvas: int, top_n: int
) -> dict[tuple[str, int, bytes], list[float]]:
    """Score each test input's top-N reference-vote grids under every augmentation's distribution:
    the grid is mapped into that augmentation's frame, tokenised, and its token log-probs summed."""
    rankings = vote(CandidateTable.from_candidates(candidates), "reference")
    by_input: dict[tuple[str, int], list[int]] = {}
    for row, query in enumerate(items):
        by_input.setdefault((query.task_id, query.test_index), []).append(row)
    scores: dict[tuple[str, int, bytes], list[float]] = {}
    for task_id, test_index, grid in poe_candidates(rankings, top_n):
        per_expert = []
        for row in by_input.get((task_id, test_index), []):
            augmented = items[row].version.augmentation.apply(grid)
            if max(augmented.shape) > canvas:
                continue
            labels = torch.from_numpy(labels_from_tokens(encode_grid(augmented, canvas)))
            valid = labels != IGNORE_LABEL
            picked = logprobs[row].float().gather(-1, torch.where(valid, labels, 0).unsqueeze(-1)).squeeze(-1)
            per_expert.append(float(picked[valid].sum()))
        scores[(task_id, test_index, grid_key(grid))] = per_expert
    return scores


def shard(items: Sequence, rank: int, world: int) -> list:
    return list(items[rank::world])


@torch.no_grad()
def predict_puzzles(
    model: TRM, table: RowSource, test_source: Any, batch_size: int, steps: int, device: torch.device,
    rank: int = 0, world: int = 1,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sudoku / Maze: (CSV row indices, last-step predicted tokens, labels) of this process's batches."""
    indices, predictions, labels = [], [], []
    for b, (index, examples) in enumerate(test_source.test_examples(batch_size)):
        if b % world != rank:
            continue
        inputs = torch.from_numpy(examples.inputs).to(device)
        ids = torch.from_numpy(examples.puzzle_ids).to(device)
        tokens, _, _ = run_steps(model, table, inputs, ids, steps)
        indices.append(index)
        predictions.append(tokens[-1].cpu().numpy())
        labels.append(examples.labels)
    if not indices:
        return np.zeros(0, np.int64), np.zeros((0, 0), np.uint8), np.zeros((0, 0), np.int64)
    return np.concatenate(indices), np.concatenate(predictions), np.concatenate(labels)


# ------------------------------------------------------------------------------------------- CLI


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
    """Supervision steps to run (0 = the model's halt_max_steps, 16 for the real presets)."""
    policy: str = "halt_weighted"
    """Voting policy for submission.json: halt_weighted (the measured best with every augmentation and step,
    docs/benchmarks.md#accuracy-on-a-cpu), reference, first_halt, poe."""
    poe_top_n: int = 0
    """Score each test input's top-N candidates under every augmentation (needed by policy=poe)."""
    tasks_per_part: int = 8
    """Tasks per restartable part file under OUT/parts."""
    compile: bool = False
    """torch.compile the model (GPUs; the numbers stay those of the eager model)."""


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


def key_value_pairs(argv: Sequence[str]) -> list[str]:
    """`key=value` arguments, also written `--key value` or `--key=value` (dashes read as underscores):
    the flag style of the other commands works here too."""
    pairs, items = [], list(argv)
    while items:
        arg = items.pop(0)
        if arg.startswith("--"):
            key, sep, value = arg[2:].partition("=")
            if not sep:
                if not items:
                    raise ConfigError(f"argument '{arg}' needs a value")
                value = items.pop(0)
            arg = f"{key.replace('-', '_')}={value}"
        pairs.append(arg)
    return pairs


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
        (args.steps >= 0, "steps must be >= 0 (0 = the model's halt_max_steps)"),
        (args.num_aug >= 0, "num_aug must be >= 0"),
        (args.poe_top_n >= 0, "poe_top_n must be >= 0"),
        (args.policy in POLICIES, f"policy must be one of {', '.join(POLICIES)}"),
    ]
    for ok, message in checks:
        if not ok:
            raise ConfigError(message)
    if args.policy == "poe" and args.poe_top_n == 0:
        args.poe_top_n = 10
    return args


def check_parts_settings(out: Path, args: PredictArgs) -> None:
    """Parts are reused on a re-run only if they were made with the same model, data and settings."""
    settings = {key: getattr(args, key) for key in ("checkpoint", "split", "num_aug", "steps", "poe_top_n", "tasks_per_part")}
    settings["checkpoint"] = str(Path(args.checkpoint).resolve())
    path = out / "parts" / "settings.json"
    if path.exists():
        saved = read_json(path)
        if not isinstance(saved, dict):
            raise ConfigError(f"{path}: not a settings object; delete {out / 'parts'} to predict afresh")
        changed = sorted(key for key in settings if saved.get(key) != settings[key])
        if changed:
            raise ConfigError(
                f"{out / 'parts'} holds predictions made with other {', '.join(changed)}; use another out= or delete that folder"
            )
    else:
        atomic_write_json(path, settings, indent=True)


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
    model, table, info = load_model(args.checkpoint, accelerator.device)
    if args.compile:
        model.compile()
    if info.get("track", "arc") in ("sudoku", "maze"):
        return predict_track(args, accelerator, model, table, info["track"])
    tasks = resolve(args.split)
    index = PuzzleIndex.from_data_info(info) if "versions" in info or "task_ids" in info else PuzzleIndex(canvas=info.get("canvas", 30))
    skipped = skipped_tasks(tasks, index)
    for reason, ids in skipped.items():
        accelerator.print(f"warning: {len(ids)} task(s) {reason} (e.g. {ids[0]}): they get fallback answers")
    skip = {task_id for ids in skipped.values() for task_id in ids}
    steps = args.steps or model.config.halt_max_steps
    parts = [tasks[i : i + args.tasks_per_part] for i in range(0, len(tasks), args.tasks_per_part)]
    checkpoint = str(Path(args.checkpoint).resolve())
    if accelerator.is_main_process:
        check_parts_settings(out, args)
    accelerator.wait_for_everyone()
    mine = [i for i in range(len(parts)) if i % accelerator.num_processes == accelerator.process_index]
    for i in tqdm(mine, desc="parts", unit="part", disable=not accelerator.is_main_process):
        path = out / "parts" / f"part_{i:05d}.parquet"
        if path.exists():
            continue
        items = list(queries([t for t in parts[i] if t.id not in skip], index, args.num_aug))
        candidates, log_probs = predict_queries(
            model, table, items, args.batch_size, steps, accelerator.device, checkpoint, args.poe_top_n,
            fixed_batch=args.compile,
        )
        if args.poe_top_n:
            save_log_probs(log_probs, out / "parts" / f"log_probs_{i:05d}.parquet")
        save_candidates(CandidateTable.from_candidates(candidates), path)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        finish(args, tasks, out, len(parts))
    accelerator.wait_for_everyone()
    return out


def predict_track(args: PredictArgs, accelerator: Accelerator, model: TRM, table: PuzzleEmbedding, track: str) -> Path:
    """Sudoku / Maze: OUT/predictions.csv (`index,prediction`, see evaluation/tracks.py) and, since the
    test CSV holds the answers, OUT/report.json from `evaluation.tracks`."""
    from arc_trm.config import DataConfig
    from arc_trm.data.sources import build_test_source
    from arc_trm.datasets import SPLITS
    from evaluation.tracks import PREDICTIONS_HEADER, format_track_report, score_track_file

    if args.split in SPLITS or args.split.endswith(".json"):
        raise ConfigError(f"checkpoint={args.checkpoint}: a {track} model; split= must be a {track} test.csv or its folder")
    module = __import__(f"arc_trm.data.{track}", fromlist=["tokens_to_string"])
    test_source = build_test_source(DataConfig(track=track, path=args.split), model.config.seq_len, args.split)
    steps = args.steps or model.config.halt_max_steps
    indices, predicted, _ = predict_puzzles(
        model, table, test_source, args.batch_size, steps, accelerator.device, accelerator.process_index, accelerator.num_processes
    )
    rows = gather_object(list(zip(indices.tolist(), (module.tokens_to_string(t) for t in predicted))))
    out = Path(args.out)
    if accelerator.is_main_process:
        write_csv(out / "predictions.csv", PREDICTIONS_HEADER, sorted(rows))
        solutions = Path(args.split)
        report = score_track_file(out / "predictions.csv", solutions, track)
        atomic_write_json(out / "report.json", report, indent=True)
        print(f"wrote {out / 'predictions.csv'} ({len(rows)} puzzles)")
        print(format_track_report(report))
    accelerator.wait_for_everyone()
    return out


def finish(args: PredictArgs, tasks: list[Task], out: Path, num_parts: int) -> None:
    """Concatenate the parts, vote, write submission.json and (with solutions) report.json."""
    from arc_trm.candidates import load_log_probs

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
        from evaluation.arc import format_report, load_submission, score_submission

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
    with process_group():
        predict_split(args, make_accelerator())
    return 0


if __name__ == "__main__":
    sys.exit(main())
