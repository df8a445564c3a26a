"""Train TRM: `accelerate launch -m arc_trm.train [preset=NAME] [section.key=value ...]`.

    accelerate launch -m arc_trm.train                     # tiny preset: CPU, a few minutes
    accelerate launch --config_file accelerate_configs/multi_gpu.yaml -m arc_trm.train preset=arc1

Accelerate owns devices, processes and DeepSpeed (chosen by the accelerate config file). One
optimizer step = one supervision step on every batch slot (deep supervision with an ACT carry).
Re-running the same command resumes from the run directory's `latest` checkpoint.

`train()` is the loop of that step; what happens between steps belongs to four components, each of
which decides after every step whether it acts: `MetricsLog` (metrics.jsonl, the tracker, the progress
bar), `TimeBudget` (train.max_minutes), `Checkpointer` (run.checkpoint_every, resume) and `Evaluator`
(run.eval_every).
"""

from __future__ import annotations

import math
import shutil
import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, ContextManager, TypeVar

import orjson
import torch
from accelerate import Accelerator
from accelerate.utils import set_seed
from tqdm.auto import tqdm

from arc_trm.checkpoint import checkpoint_name, latest_checkpoint, lock_run_dir, publish_checkpoint, unlock_run_dir
from arc_trm.config import (
    Config,
    DataConfig,
    check_batch,
    config_help,
    load_config,
    load_config_file,
    save_config_file,
)
from arc_trm.curriculum import Stage, check_final_depth, parse_curriculum, stage_at
from arc_trm.data.sources import build_source, build_test_source, data_inputs, describe
from arc_trm.data.stream import ExampleSource, TrainStream
from arc_trm.distributed import make_accelerator, process_group
from arc_trm.ema import EMA
from arc_trm.errors import ConfigError, DataError, UserError, error_summary, exit_on_user_error
from arc_trm.exported import DATA_FILE, DataInfo, ExportedModel, export_model, load_model, model_folder
from arc_trm.held_out import evaluate_held_out
from arc_trm.io import refuse_output_on_input, writing_to
from arc_trm.model.act import Carry, empty_carry, halt_decision, refill
from arc_trm.model.losses import HALT_LOSS_WEIGHT, act_loss
from arc_trm.model.puzzle_embedding import PuzzleEmbedding, SparseSignSGD
from arc_trm.model.trm import TRM, ModelConfig
from arc_trm.optim import AdamATan2, learning_rate

T = TypeVar("T")

METRICS = ("count", "accuracy", "exact_accuracy", "q_halt_accuracy", "steps", "lm_loss", "halt_loss")


@dataclass
class Trainer:
    """Everything one training step touches."""

    config: Config
    accelerator: Accelerator
    model: torch.nn.Module  # prepared (DDP / DeepSpeed / plain)
    raw_model: TRM
    optimizer: torch.optim.Optimizer
    table: PuzzleEmbedding
    sparse_optimizer: SparseSignSGD
    ema: EMA | None
    source: ExampleSource
    stream: TrainStream
    carries: list[Carry | None]
    curriculum: tuple[Stage, ...] = ()
    step: int = 0

    def train_step(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """One optimizer step over the local batch, split into `grad_accum` micro-batches."""
        config, accelerator = self.config, self.accelerator
        self.follow_curriculum()
        # one schedule for both optimizers, scaled by their base rates
        schedule = learning_rate(
            self.step, base_lr=1.0, warmup_steps=config.train.lr_warmup_steps, min_ratio=config.train.lr_min_ratio,
            total_steps=config.train.steps,
        )
        lr = config.train.lr * schedule
        if self.step < config.train.freeze_dense_steps:
            lr = 0.0  # embeddings-only phase: AdamATan2 with lr 0 leaves the dense weights (and their decay) alone
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        micro = batch["inputs"].shape[0] // config.train.grad_accum
        totals = {name: torch.zeros((), device=accelerator.device, dtype=torch.float64) for name in METRICS}
        touched_ids, touched_grads = [], []
        for i in range(config.train.grad_accum):
            chunk = {k: v[i * micro : (i + 1) * micro] for k, v in batch.items()}
            with accelerator.accumulate(self.model):
                carry = self.carries[i] or empty_carry(self.raw_model, chunk)
                carry = refill(self.raw_model, carry, chunk)
                rows = self.table.rows(carry.puzzle_ids, requires_grad=True)
                out = self.model(carry.y, carry.z, carry.inputs, rows)
                steps = carry.steps + 1
                halted = halt_decision(
                    steps, out.q_halt.detach(), halt_max_steps=config.model.halt_max_steps,
                    exploration_prob=config.model.halt_exploration_prob, training=True,
                )
                loss, metrics = act_loss(out.logits, out.q_halt, carry.labels, halted)
                # per micro-batch mean; DDP's average and accumulate's 1/grad_accum make it the global mean
                accelerator.backward(loss / micro)
                self.optimizer.step()
                self.optimizer.zero_grad(set_to_none=True)
            self.carries[i] = Carry(out.y, out.z, steps, halted, carry.inputs, carry.labels, carry.puzzle_ids)
            touched_ids.append(carry.puzzle_ids)
            touched_grads.append(rows.grad)
            metrics["steps"] = torch.where(halted, steps, 0).sum()
            for name in METRICS:
                totals[name] += metrics[name].double()
        gather = accelerator.gather if accelerator.num_processes > 1 else None
        self.sparse_optimizer.step(torch.cat(touched_ids), torch.cat(touched_grads), config.train.puzzle_emb_lr * schedule, gather)
        if self.ema is not None:
            self.ema.update()
        self.step += 1
        # a fill, not a copy from the host: copying a Python number to a GPU waits for the device
        totals["lr"] = torch.full((), lr, dtype=torch.float64, device=accelerator.device)
        return totals

    def follow_curriculum(self) -> None:
        """The depth curriculum's T and n for this step (a function of the step: a resumed run follows it too)."""
        if not self.curriculum:
            return
        stage = stage_at(self.curriculum, self.step, self.config.train.steps)
        if (stage.T, stage.n) != (self.raw_model.config.T, self.raw_model.config.n):
            self.raw_model.config = replace(self.raw_model.config, T=stage.T, n=stage.n)

    def finite(self) -> bool:
        """Whether every weight (the EMA's too) and the puzzle table are finite, on every process: checked
        before each checkpoint, so that no checkpoint or export ever holds NaNs (one host sync per save)."""
        tensors = [*self.raw_model.parameters(), self.table.weights]
        if self.ema is not None:
            tensors += list(self.ema.shadow.values())
        bad = torch.stack([(~torch.isfinite(t)).any() for t in tensors]).any().float().reshape(1)
        return not bool(self.accelerator.reduce(bad, reduction="sum").item())

    def evaluation_weights(self) -> ContextManager[TRM]:
        """The model with the weights evaluation and export use: the EMA average when kept."""
        return self.ema.averaged() if self.ema is not None else nullcontext(self.raw_model)

    def save(self, run_dir: Path) -> Path:
        """Checkpoint on every process, then publish it atomically from the main one."""
        accelerator = self.accelerator
        tmp = run_dir / "checkpoints" / f"{checkpoint_name(self.step)}.tmp"
        if accelerator.is_main_process and tmp.exists():
            shutil.rmtree(tmp)  # left by a run killed while saving, perhaps with another number of processes
        accelerator.wait_for_everyone()
        with writing_to(tmp):  # a full disk: one line naming the checkpoint, not torch's `unexpected pos`
            accelerator.save_state(str(tmp))
            rank_state = {
                "step": self.step,
                "stream": self.stream.state_dict(),
                "carries": [None if c is None else c.state_dict() for c in self.carries],
                "layout": self.layout(),
            }
            torch.save(rank_state, tmp / f"rank_{accelerator.process_index}.pt")
            if self.table.sharded or accelerator.is_main_process:
                torch.save(self.table.state_dict(), tmp / f"puzzle_table_{self.table.rank}.pt")
        accelerator.wait_for_everyone()
        final = tmp.with_name(checkpoint_name(self.step))
        if accelerator.is_main_process:
            publish_checkpoint(run_dir, tmp, self.step, self.config.run.keep_checkpoints)
        accelerator.wait_for_everyone()
        return final

    def layout(self) -> dict[str, int]:
        """How the global batch is split: the ACT carries fit only the layout that saved them."""
        train = self.config.train
        return {"processes": self.accelerator.num_processes, "global_batch": train.global_batch, "grad_accum": train.grad_accum}

    def load(self, path: Path) -> None:
        """Resume from a checkpoint, also one written with another number of processes (not with
        DeepSpeed, whose optimizer shards are per process), global batch or accumulation: the weights,
        optimizer, data position and puzzle table carry over; the ACT carries (examples between
        supervision steps) then restart empty."""
        accelerator = self.accelerator
        rank_file = path / f"rank_{accelerator.process_index}.pt"
        state = read_checkpoint(path, lambda: torch.load(rank_file if rank_file.exists() else path / "rank_0.pt", weights_only=False))
        same_layout = state["layout"] == self.layout()
        if state["layout"]["processes"] != accelerator.num_processes and accelerator.state.deepspeed_plugin is not None:
            raise ConfigError(
                f"{path}: written by {state['layout']['processes']} processes; DeepSpeed resumes with the same number"
            )
        read_checkpoint(path, lambda: accelerator.load_state(str(path)))
        read_checkpoint(path, lambda: self.table.load_shards(sorted(path.glob("puzzle_table_*.pt"))))
        self.step = state["step"]
        self.stream.load_state_dict(state["stream"])  # the stream's position is the same on every process
        if same_layout:
            self.carries = [None if c is None else Carry.from_state_dict(c, accelerator.device) for c in state["carries"]]
        else:
            accelerator.print(
                f"{path} was written with {state['layout']}, this run has {self.layout()}: the data position and "
                "weights continue; the examples that were between supervision steps are dropped"
            )


def read_checkpoint(path: Path, read: Callable[[], T]) -> T:
    """`read()` of a checkpoint's files; a corrupt or truncated file is one error line naming the checkpoint."""
    try:
        return read()
    except Exception as error:  # torch, safetensors and pickle each raise their own kinds
        if "size mismatch" in str(error) or "does not match" in str(error):  # deleting it would not help
            raise ConfigError(
                f"{path}: holds a model or puzzle table of another size than this config's ({error_summary(error)}); "
                "use another run.dir"
            ) from None
        raise DataError(
            f"{path}: cannot resume from this checkpoint ({error_summary(error)}); delete it to resume from an older one"
        ) from None


# ---------------------------------------------------------------- between steps: each component keeps its cadence


def log_step(config: Config, step: int) -> bool:
    """Whether `step` writes a metrics line: every `run.log_every` steps and the last."""
    return step % config.run.log_every == 0 or step == config.train.steps


class MetricsLog:
    """The training metrics, summed on the device between log steps and reduced over the processes at
    them (the host waits for the device only then): to the tracker, run.dir/metrics.jsonl and the
    progress bar's postfix. A loss that is NaN or infinite stops the run."""

    def __init__(self, config: Config, accelerator: Accelerator, bar: tqdm) -> None:
        self.config, self.accelerator, self.bar = config, accelerator, bar
        self.window: dict[str, torch.Tensor] = {}
        self.window_steps, self.window_start = 0, time.perf_counter()

    def after_step(self, step: int, totals: dict[str, torch.Tensor]) -> None:
        for name, value in totals.items():
            self.window[name] = self.window.get(name, 0) + value if name != "lr" else value
        self.window_steps += 1
        self.bar.update(1)
        if not log_step(self.config, step):
            return
        examples = self.window_steps * self.config.train.global_batch
        logs = summarise(self.window, self.accelerator, examples)
        logs["train/examples_per_s"] = examples / max(time.perf_counter() - self.window_start, 1e-9)
        if not math.isfinite(logs["train/loss"]):
            raise diverged(Path(self.config.run.dir), step)
        self.log(step, logs)
        self.bar.set_postfix(
            loss=f"{logs['train/loss']:.3f}", exact=f"{logs['train/exact_accuracy']:.3f}",
            halt_steps=f"{logs['train/steps']:.1f}", ex_s=f"{logs['train/examples_per_s']:.0f}",
        )
        self.window, self.window_steps, self.window_start = {}, 0, time.perf_counter()

    def log(self, step: int, values: dict[str, float]) -> None:
        """To the tracker and, on the main process, to run.dir/metrics.jsonl."""
        self.accelerator.log(values, step=step)
        if self.accelerator.is_main_process:
            append_jsonl(Path(self.config.run.dir) / "metrics.jsonl", {"step": step, **values})


class TimeBudget:
    """`train.max_minutes`, counted from `started` (loading and compilation included): whether the run
    stops after a step, and the progress bar's total, the step the run reaches by the deadline."""

    def __init__(self, config: Config, accelerator: Accelerator, bar: tqdm, *, started: float, first_step: int) -> None:
        self.config, self.accelerator, self.bar = config, accelerator, bar
        minutes = config.train.max_minutes
        self.deadline = started + 60 * minutes if minutes > 0 else None
        self.loop_start, self.first_step = time.perf_counter(), first_step

    def spent_at(self, step: int) -> bool:
        """Whether the budget is spent after `step`, the same answer on every process; at log steps this
        also sets the progress bar's total."""
        if self.deadline is None:
            return False
        if log_step(self.config, step):  # the bar's total and ETA are the time budget's, not train.steps'
            self.bar.total = steps_within(
                step=step, steps=self.config.train.steps, done=step - self.first_step,
                seconds=time.perf_counter() - self.loop_start, seconds_left=self.deadline - time.perf_counter(),
            )
            self.bar.refresh()
        # several processes must agree on the stop step, which waits for the device: vote only at log
        # steps, which synchronise anyway (at most run.log_every steps past the budget)
        if self.accelerator.num_processes > 1 and step % self.config.run.log_every != 0:
            return False
        return out_of_time(self.deadline, self.accelerator)


class Checkpointer:
    """Resumes from run.dir's `latest`; saves every `run.checkpoint_every` steps, at the last step and
    when the time budget stops the run, each time after checking that the weights are finite."""

    def __init__(self, config: Config) -> None:
        self.run_dir = Path(config.run.dir)
        self.every, self.last_step = config.run.checkpoint_every, config.train.steps

    def resume(self, trainer: Trainer) -> None:
        latest = latest_checkpoint(self.run_dir)
        if latest is not None:
            trainer.load(latest)
            trainer.accelerator.print(f"resumed from {latest} at step {trainer.step}")

    def due(self, step: int, *, stopping: bool) -> bool:
        return step % self.every == 0 or step == self.last_step or stopping

    def after_step(self, trainer: Trainer, *, stopping: bool) -> None:
        if self.due(trainer.step, stopping=stopping):
            self.save(trainer)

    def save(self, trainer: Trainer) -> None:
        if not trainer.finite():
            raise diverged(self.run_dir, trainer.step)
        trainer.save(self.run_dir)


class Evaluator:
    """Exact accuracy and pass@K on the held-out test inputs, with the EMA weights, every
    `run.eval_every` steps before the last (the run evaluates once more after its export). With
    `run.keep_best`, an evaluation that beats every earlier one on the validation half exports its model
    to run.dir/model_best (`BEST`), its data.json naming the step, metric and value (`SELECTED`)."""

    def __init__(self, config: Config, metrics: MetricsLog) -> None:
        self.every, self.last_step = config.run.eval_every, config.train.steps
        self.metrics = metrics
        self.best_dir = Path(config.run.dir) / BEST if config.run.keep_best else None
        self.best = best_so_far(self.best_dir) if self.best_dir is not None else None

    def due(self, step: int) -> bool:
        return bool(self.every) and step % self.every == 0 and step < self.last_step

    def after_step(self, trainer: Trainer) -> None:
        if self.due(trainer.step):
            self.evaluate(trainer)

    def evaluate(self, trainer: Trainer) -> None:
        with trainer.evaluation_weights() as model:
            results = evaluate_held_out(model, trainer.table, trainer.source, trainer.config, trainer.accelerator)
        if results:
            self.metrics.log(trainer.step, results)
            trainer.accelerator.print("eval: " + ", ".join(f"{k} {v:.4f}" for k, v in results.items()))
        if self.best_dir is not None:
            self.keep_if_best(trainer, results)

    def keep_if_best(self, trainer: Trainer, results: dict[str, float]) -> None:
        """Export to model_best when the validation figure matches or beats the best so far: a tie keeps the
        later, more trained model (a figure that never moves off 0 must not keep the first evaluation's)."""
        metric = next((name for name in SELECTION_METRICS if name in results), None)
        if metric is None or (self.best is not None and results[metric] < self.best):
            return
        self.best = results[metric]
        export(trainer, self.best_dir.parent, BEST, selected={"step": trainer.step, "metric": metric, "value": self.best})


BEST = "model_best"
SELECTED = "selected"
SELECTION_METRICS = ("eval_both/validation_pass@2", "eval/validation_pass@2", "eval_training/validation_pass@2",
                     "eval/validation_exact_accuracy")
"""What `run.keep_best` selects by: the first of these an evaluation gives."""


def selected_of(best_dir: Path) -> dict | None:
    """What the model in model_best was selected by ({step, metric, value}), None before one."""
    if not (best_dir / DATA_FILE).is_file():
        return None
    selected = DataInfo.read(best_dir / DATA_FILE).extra.get(SELECTED)
    return selected if isinstance(selected, dict) else None


def best_so_far(best_dir: Path) -> float | None:
    """The validation figure of the model in model_best (a resumed run must match or beat it), None before one."""
    selected = selected_of(best_dir)
    return float(selected["value"]) if selected is not None and isinstance(selected.get("value"), (int, float)) else None


def diverged(run_dir: Path, step: int) -> UserError:
    """The error that stops a run whose loss or weights became NaN or infinite: nothing is saved or
    exported after that, so the last checkpoint is the last good state."""
    last = latest_checkpoint(run_dir)
    kept = f"the last good checkpoint is {last}" if last is not None else "no checkpoint was written before it"
    return DataError(
        f"{run_dir}: the training loss or weights became NaN or infinite by step {step}; stopped without "
        f"saving or exporting ({kept}); lower train.lr or train.puzzle_emb_lr and run again"
    )


def summarise(totals: dict[str, torch.Tensor], accelerator: Accelerator, examples: float) -> dict[str, float]:
    """Reduce metric sums over processes and turn them into means (one host sync per log)."""
    stacked = accelerator.reduce(torch.stack([totals[name] for name in METRICS]), reduction="sum").tolist()
    sums = dict(zip(METRICS, stacked))
    count = max(sums["count"], 1.0)
    return {
        "train/loss": (sums["lm_loss"] + HALT_LOSS_WEIGHT * sums["halt_loss"]) / examples,
        "train/lm_loss": sums["lm_loss"] / examples,
        "train/accuracy": sums["accuracy"] / count,
        "train/exact_accuracy": sums["exact_accuracy"] / count,
        "train/q_halt_accuracy": sums["q_halt_accuracy"] / count,
        "train/steps": sums["steps"] / count,
        "train/lr": float(totals["lr"]),
    }


def steps_within(step: int, steps: int, done: int, seconds: float, seconds_left: float) -> int:
    """The step a run at `step` reaches by its deadline, `done` steps having taken `seconds`: at most
    `steps`, at least the step it is at."""
    rate = done / max(seconds, 1e-9)
    return max(step, min(steps, step + int(rate * max(seconds_left, 0.0))))


def out_of_time(deadline: float, accelerator: Accelerator) -> bool:
    """Every process stops at the same step: as soon as any one of them is past the deadline. Alone,
    the host clock decides; several processes vote, which makes the host wait for the device."""
    late = time.perf_counter() > deadline
    if accelerator.num_processes == 1:
        return late
    votes = torch.tensor([float(late)], device=accelerator.device)
    return bool(accelerator.reduce(votes, reduction="sum").item() > 0)


def append_jsonl(path: Path, record: dict) -> None:
    """One JSON line per log step: easy to read back without TensorBoard."""
    with writing_to(path), open(path, "ab") as handle:
        handle.write(orjson.dumps(record) + b"\n")


# ------------------------------------------------------------------------------- building the run


def run_accelerator(config: Config, run_dir: Path) -> Accelerator:
    tracker = None if config.run.tracker == "none" else config.run.tracker
    if tracker is not None:
        from accelerate.tracking import get_available_trackers

        if tracker not in {t.value for t in get_available_trackers()}:
            raise ConfigError(f"run.tracker={tracker}: its package is not installed (pip install {tracker}), or use run.tracker=none")
    return make_accelerator(
        gradient_accumulation_steps=config.train.grad_accum, log_with=tracker, project_dir=str(run_dir / "logs"),
    )


def prepare_run_dir(run_dir: Path, config: Config, accelerator: Accelerator) -> None:
    """Write the config; when resuming, refuse a config that changes the model or the data."""
    path = run_dir / "config.yaml"
    current = config.to_dict()
    if path.exists():
        saved = load_config_file(path).to_dict()  # a damaged file is one error line naming it
        changed = [
            f"{section}.{key}"
            for section in ("model", "data")
            for key in current[section]
            if saved.get(section, {}).get(key) != current[section][key]
        ]
        if changed:
            raise ConfigError(f"{path}: resuming with a different {', '.join(changed)}; use another run.dir")
        warn_if_schedule_moves(path, saved["train"].get("steps"), config, accelerator)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        save_config_file(config, path)


def warn_if_schedule_moves(path: Path, saved_steps: int | None, config: Config, accelerator: Accelerator) -> None:
    """A resumed run with other train.steps is still allowed (it is how a budget is extended), but a cosine
    decay or a depth curriculum is a function of the fraction of train.steps done: say that its past
    steps followed another schedule than a fresh run of the new budget would."""
    train = config.train
    follows = [name for name, on in (("the cosine decay", train.lr_min_ratio < 1.0), ("the depth curriculum", bool(train.depth_curriculum))) if on]
    if saved_steps is not None and saved_steps != train.steps and follows:
        accelerator.print(f"warning: {path}: train.steps was {saved_steps} and is now {train.steps}; {' and '.join(follows)} "
                          f"{'follows' if len(follows) == 1 else 'follow'} the new total from here, so the run is not what a fresh run of {train.steps} steps gives")


def load_source(
    config: Config, accelerator: Accelerator, initial: ExportedModel | None = None
) -> tuple[ExampleSource, ModelConfig, DataConfig]:
    """Build the data; return it with the model and data config the run uses: the model's vocabulary
    and sequence length come from the data.

    When fine-tuning (`train.init_from`), the model config and the ARC canvas come from the model.
    """
    check_batch(config, accelerator.num_processes)
    model, data = config.model, config.data
    if initial is not None:
        model, data = initial.config, replace(data, canvas=initial.data.canvas)
    check_final_depth(parse_curriculum(config.train.depth_curriculum), model.T, model.n)
    with accelerator.main_process_first():
        source = build_source(data, config.train.seed)
    if initial is not None and (source.vocab_size, source.seq_len) != (model.vocab_size, model.seq_len):
        raise ConfigError(
            f"train.init_from: the model reads {model.seq_len} tokens of vocabulary {model.vocab_size}, "
            f"the data gives {source.seq_len} of {source.vocab_size}"
        )
    return source, replace(model, vocab_size=source.vocab_size, seq_len=source.seq_len), data


def initial_weights(initial: ExportedModel, model: TRM, table: PuzzleEmbedding) -> None:
    """Fine-tuning: dense weights from the exported model; every puzzle id at its mean embedding."""
    model.load_state_dict(initial.model.state_dict())
    table.weights[:] = initial.table.mean_row().to(table.weights.device)


def free_memory_bytes(device: torch.device) -> int:
    """Memory free for new tensors on `device`: the GPU's free memory, else the host's available memory."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    import psutil

    return psutil.virtual_memory().available


def check_model_fits(config: Config, num_puzzle_ids: int, device: torch.device) -> None:
    """A ConfigError naming the model keys, before anything is allocated, when the float32 weights and
    the puzzle table alone exceed the free memory (model.hidden=400000 used to end in the allocator's
    traceback, or in the kernel's out-of-memory killer)."""
    model = config.model
    keys = f"model.hidden={model.hidden}, model.expansion={model.expansion:g}, model.layers={model.layers}"
    try:
        with torch.device("meta"):
            parameters = TRM(model).num_parameters()
    except (RuntimeError, ValueError, OverflowError, TypeError) as error:  # torch: a size past 64 bits is a TypeError
        raise ConfigError(f"{keys}: no model of this size can be built ({error_summary(error)})") from None
    need = 4 * (parameters + num_puzzle_ids * model.hidden)
    free = free_memory_bytes(device)
    if need > free:
        raise ConfigError(
            f"{keys}: {parameters:,} weights and a puzzle table of {num_puzzle_ids:,} x {model.hidden} need "
            f"{need / 2**30:.1f} GiB before gradients and optimizer state; {free / 2**30:.1f} GiB is free on {device}"
        )


def build_trainer(config: Config, accelerator: Accelerator, source: ExampleSource, initial: ExportedModel | None = None) -> Trainer:
    world = accelerator.num_processes
    check_model_fits(config, source.num_puzzle_ids, accelerator.device)
    set_seed(config.train.seed)
    model = TRM(config.model)
    sharded = config.train.puzzle_table == "sharded" and world > 1
    table = PuzzleEmbedding(
        source.num_puzzle_ids, config.model.hidden, accelerator.device,
        rank=accelerator.process_index if sharded else 0, world=world if sharded else 1,
    )
    if initial is not None:
        initial_weights(initial, model, table)
    optimizer = AdamATan2(
        model.parameters(), lr=0.0, betas=(config.train.beta1, config.train.beta2), weight_decay=config.train.weight_decay
    )
    if config.train.compile:
        model.compile()  # in place: parameter names (and so checkpoints) stay the same with or without compile
    if accelerator.state.deepspeed_plugin is not None:
        # no dataloader goes through prepare(), so DeepSpeed cannot infer its micro-batch
        accelerator.state.deepspeed_plugin.deepspeed_config["train_micro_batch_size_per_gpu"] = (
            config.train.global_batch // (world * config.train.grad_accum)
        )
    prepared, optimizer = accelerator.prepare(model, optimizer)
    raw_model = accelerator.unwrap_model(prepared)
    ema = EMA(raw_model, config.train.ema_rate) if config.train.ema else None
    if ema is not None:
        accelerator.register_for_checkpointing(ema)
    return Trainer(
        config=config, accelerator=accelerator, model=prepared, raw_model=raw_model, optimizer=optimizer, table=table,
        sparse_optimizer=SparseSignSGD(table, config.train.puzzle_emb_weight_decay), ema=ema, source=source,
        stream=TrainStream(
            source, config.train.global_batch, rank=accelerator.process_index, world=world, seed=config.train.seed
        ),
        carries=[None] * config.train.grad_accum, curriculum=parse_curriculum(config.train.depth_curriculum),
    )


def train(config: Config) -> Path:
    """Train the run of `config` in run.dir, resuming from its `latest` checkpoint; export the model
    and return its folder."""
    started = time.perf_counter()  # train.max_minutes counts loading and compilation too
    run_dir = Path(config.run.dir)
    refuse_run_dir_on_inputs(config)
    accelerator = run_accelerator(config, run_dir)
    if accelerator.is_main_process:
        lock_run_dir(run_dir)  # held to the end: a second run on this run.dir fails here, before writing
    initial = load_model(config.train.init_from) if config.train.init_from else None
    source, model_config, data_config = load_source(config, accelerator, initial)
    config = replace(config, model=model_config, data=data_config)
    build_test_source(config.data, config.model.seq_len)  # Sudoku / Maze read theirs at each evaluation: check it before training
    prepare_run_dir(run_dir, config, accelerator)
    trainer = build_trainer(config, accelerator, source, initial)
    del initial  # the fine-tuned copy lives in the trainer; free the loaded one (the ARC-2 table is ~2.6 GB)
    checkpointer = Checkpointer(config)
    checkpointer.resume(trainer)
    if accelerator.is_main_process and config.run.tracker != "none":
        accelerator.init_trackers("train", config=_flat(config.to_dict()))
    accelerator.print(
        f"TRM {trainer.raw_model.num_parameters():,} parameters + puzzle table {trainer.table.num_ids:,} x "
        f"{config.model.hidden}{' sharded' if trainer.table.sharded else ''}; {accelerator.num_processes} process(es) on {accelerator.device}; "
        f"global batch {config.train.global_batch}; {config.train.steps} steps"
    )
    batches = iter(trainer.stream)
    bar = tqdm(
        total=config.train.steps, initial=trainer.step, disable=not accelerator.is_main_process, dynamic_ncols=True,
        file=sys.stdout, unit="step",
    )
    metrics = MetricsLog(config, accelerator, bar)
    budget = TimeBudget(config, accelerator, bar, started=started, first_step=trainer.step)
    evaluator = Evaluator(config, metrics)
    while trainer.step < config.train.steps:
        totals = trainer.train_step(to_device(next(batches), accelerator.device))
        metrics.after_step(trainer.step, totals)
        stopping = budget.spent_at(trainer.step)
        checkpointer.after_step(trainer, stopping=stopping)
        if stopping:
            accelerator.print(f"train.max_minutes={config.train.max_minutes} reached at step {trainer.step}")
            break
        evaluator.after_step(trainer)
    bar.close()
    model_dir = export(trainer, run_dir)
    evaluator.evaluate(trainer)
    accelerator.free_memory()  # drop the prepared (DDP / DeepSpeed) model before the process group ends
    accelerator.end_training()  # closes the trackers and destroys the process group
    unlock_run_dir(run_dir)
    return model_dir


def refuse_run_dir_on_inputs(config: Config) -> None:
    """A ConfigError before any work when run.dir is, or lies inside, what the run reads (the model
    `train.init_from` names, the task or data folder), or when its export, run.dir/model, would replace
    the model it fine-tunes from."""
    data, init_from = config.data, config.train.init_from.strip()
    inputs = {
        "train.init_from": init_from or None,
        "the model of train.init_from": model_folder(init_from) if init_from else None,
        "data.path": data.path.strip() or None,
        **data_inputs(data),  # ARC: data.tasks and data.concept when they name files
    }
    refuse_output_on_input(config.run.dir, inputs, option="run.dir=")
    for name in ("model", BEST) if init_from else ():
        refuse_output_on_input(Path(config.run.dir) / name, {"the model of train.init_from": model_folder(init_from)},
                               option=f"run.dir={config.run.dir}: its export")


def to_device(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    """The batch on the device. To a GPU through pinned memory, so that the copy does not wait: the
    training step has no host synchronisation, and the host prepares this batch while the GPU still
    computes the previous step."""
    if device.type == "cuda":
        return {k: v.pin_memory().to(device, non_blocking=True) for k, v in batch.items()}
    return {k: v.to(device) for k, v in batch.items()}


def export(trainer: Trainer, run_dir: Path, name: str = "model", selected: dict | None = None) -> Path:
    """Export the EMA weights, the puzzle table and the data description for prediction to run_dir/name
    (`selected`: why this model was chosen, kept in its data.json)."""
    accelerator = trainer.accelerator
    accelerator.wait_for_everyone()
    info = describe(trainer.source, trainer.config.data)
    if selected is not None:
        info = replace(info, extra={**info.extra, SELECTED: selected})
    table = trainer.table.full()  # every process takes part when the table is sharded
    if accelerator.is_main_process:
        with trainer.evaluation_weights() as model:
            export_model(run_dir / name, model, table, info)
        accelerator.print(f"exported model to {run_dir / name}")
    accelerator.wait_for_everyone()
    return run_dir / name

def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in d.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


@exit_on_user_error
def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if {"-h", "--help"} & set(argv):
        print(config_help("accelerate launch -m arc_trm.train", __doc__.split("\n\n")[0]))
        return 0
    config = load_config(argv)
    with process_group():
        train(config)
    return 0


if __name__ == "__main__":
    sys.exit(main())
