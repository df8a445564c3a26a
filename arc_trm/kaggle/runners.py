"""Where the Kaggle flow (`python -m submissions.make`) fine-tunes and predicts: in this process on one
GPU (`InProcessRunner`) or under `accelerate launch` on N processes (`LaunchedRunner`), and prediction
retried with half the batch after each out-of-memory error (`predict_halving_batch`)."""

from __future__ import annotations

import gc
import logging
from dataclasses import replace
from pathlib import Path
from typing import Callable

import torch
from accelerate import Accelerator
from tenacity import RetryCallState, Retrying, retry_if_exception

from arc_trm.config import Config, field_types, save_config_file
from arc_trm.distributed import make_accelerator, run_on_processes
from arc_trm.kaggle.clock import Clock
from arc_trm.predict import PredictArgs, predict_split
from arc_trm.train import train

log = logging.getLogger("submissions.make")  # the command's logger: these lines are the command's

LAUNCH_GRACE, LAUNCH_GRACE_S = 0.1, 300.0
"""A launched fine-tuning run is killed after its train.max_minutes plus 10% plus 5 minutes (start-up,
export), or at the end of the budget if that comes first: a guard against a hung process group, not
the usual way it ends."""


def is_out_of_memory(error: BaseException) -> bool:
    return isinstance(error, torch.cuda.OutOfMemoryError) or (
        isinstance(error, RuntimeError) and "out of memory" in str(error)
    )


def free_memory() -> None:
    """Drop what a failed phase left behind (its frames hold tensors) before the next one allocates."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def halved(batch: int, attempt: int) -> int:
    """Batch size of the `attempt`-th try (1-based): halved after each failure, down to 1."""
    return max(1, batch >> (attempt - 1))


def predict_halving_batch(args: PredictArgs, runner: Runner) -> tuple[Path, int]:
    """`runner.predict`, retried with half the batch after each out-of-memory error until batch 1
    fails too. Finished parts are kept between tries. Returns the output and the batch that worked."""

    def after_failure(state: RetryCallState) -> None:
        free_memory()
        log.warning(
            f"out of memory at prediction batch {halved(args.batch_size, state.attempt_number)}; "
            f"retrying with batch {halved(args.batch_size, state.attempt_number + 1)}"
        )

    retrying = Retrying(
        retry=retry_if_exception(is_out_of_memory),
        stop=lambda state: halved(args.batch_size, state.attempt_number) == 1,
        before_sleep=after_failure,
        reraise=True,
    )

    def attempt() -> tuple[Path, int]:
        batch = halved(args.batch_size, retrying.statistics["attempt_number"])
        return runner.predict(replace(args, batch_size=batch)), batch

    return retrying(attempt)


class InProcessRunner:
    """Fine-tuning and prediction in this process, on one GPU, with `train_fn` (`arc_trm.train.train`)
    and `predict_fn` (`arc_trm.predict.predict_split`) unless given others."""

    def __init__(
        self, train_fn: Callable[[Config], Path] = train, predict_fn: Callable[[PredictArgs, Accelerator], Path] = predict_split,
    ) -> None:
        self._train, self._predict = train_fn, predict_fn
        self._accelerator: Accelerator | None = None

    def train(self, config: Config) -> Path:
        return self._train(config)

    def predict(self, args: PredictArgs) -> Path:
        if self._accelerator is None:
            self._accelerator = make_accelerator()
        return self._predict(args, self._accelerator)


class LaunchedRunner:
    """Each run under `accelerate launch` on `processes` processes (GPUs), killed when it outlives
    the clock; this process never touches a GPU. A launch's out-of-memory error is raised here as
    one, so that prediction halves its batch as in-process."""

    def __init__(self, processes: int, clock: Clock):
        self.processes, self.clock = processes, clock

    def train(self, config: Config) -> Path:
        run_dir = Path(config.run.dir)
        config_file = run_dir.with_name(f"{run_dir.name}.yaml")
        save_config_file(config, config_file)
        # the run stops itself at train.max_minutes (loading included); the export comes on top
        limit = 60 * config.train.max_minutes * (1 + LAUNCH_GRACE) + LAUNCH_GRACE_S
        self._launch("arc_trm.train", [f"config={config_file}"], min(limit, max(self.clock.remaining(), 1.0)))
        return run_dir / "model"

    def predict(self, args: PredictArgs) -> Path:
        settings = [f"{name}={getattr(args, name)}" for name in field_types(args)]
        self._launch("arc_trm.predict", settings, max(self.clock.remaining(), 1.0))
        return Path(args.out)

    def _launch(self, module: str, args: list[str], timeout: float) -> None:
        done = run_on_processes(module, args, self.processes, timeout)
        if done.returncode != 0:
            if done.out_of_memory:
                raise torch.cuda.OutOfMemoryError(f"{module} on {self.processes} processes ran out of memory")
            lines = [line for line in done.stderr_tail.splitlines() if line.strip()]
            raise RuntimeError(f"{module} on {self.processes} processes exited with {done.returncode}: "
                               f"{lines[-1].strip() if lines else 'no error output'}")


Runner = InProcessRunner | LaunchedRunner
"""Where fine-tuning and prediction run: `train(config) -> model folder`, `predict(args) -> output folder`."""
