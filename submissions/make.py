"""Kaggle ARC Prize submission for unseen tasks: fine-tune, predict, vote, and always leave a valid file.

    python -m submissions.make --checkpoint runs/arc2/model \\
        --challenges /kaggle/input/arc-prize-2025/arc-agi_test_challenges.json \\
        --out /kaggle/working/submission.json --time-budget 11h

1. Read the time budget (`11h`, `90m`, `3600s`, `3600`), the challenges and the checkpoint. A bad file
   or option is one `error:` line and exit code 2, and nothing is written.
2. Write a complete submission to --out at once (every task, every test input, two distinct
   attempts): what --out already holds for these tasks (unless --fresh), the fallback for the rest.
   From then on a valid file exists whatever happens. The fallback guesses
   (`arc_trm.kaggle.submission.fallback_guesses`) are the test input itself, then a blank grid of the
   expected output shape filled with the demo outputs' most frequent colour.
3. Fine-tune the checkpoint on the tasks' demo pairs (preset `finetune`, full model unless
   --embeddings-only) for at most FINETUNE_SHARE of the time left. If it fails (out of memory, ...),
   predict with the original checkpoint.
4. Predict in chunks of CHUNK_TASKS tasks (`arc_trm.predict.predict_split`: every augmentation,
   every supervision step, then the vote). After each chunk its predictions replace what --out
   held for them when better founded (a prediction over a fallback, a fine-tuned model's over the
   original's; `arc_trm/kaggle/provenance.py` keeps each answer's source beside --out), validated and
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
checkpoint, challenges or setting starts afresh; a re-run never makes --out worse.

This module is the command line; the steps are `arc_trm.kaggle.flow` (FINETUNE_SHARE, CHUNK_TASKS
there), the two ways of running (in process, launched) and the out-of-memory retry `arc_trm.kaggle.runners`.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import re
import sys
from pathlib import Path
from typing import Sequence

from arc_trm.errors import ArgumentParser, ConfigError, exit_on_user_error, nonempty_path
from arc_trm.inference import TestTimeCompute
from arc_trm.io import refuse_output_on_input
from arc_trm.kaggle.clock import Clock
from arc_trm.kaggle.flow import SET_BY_MAKE, Options, make_submission
from arc_trm.kaggle.provenance import provenance_path
from arc_trm.predict import MAX_STEPS
from arc_trm.vote import POLICIES

log = logging.getLogger("submissions.make")


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
    parser.add_argument("--work", type=nonempty_path, default=Options.work, help=f"work folder (default {Options.work})")
    parser.add_argument("--finetune-steps", type=int, default=Options.finetune_steps, help="fine-tuning steps (default: the preset's)")
    parser.add_argument("--finetune-aug", type=int, default=Options.finetune_aug,
                        help=f"augmentations per task to fine-tune on (default {Options.finetune_aug})")
    parser.add_argument("--predict-aug", type=int, default=Options.predict_aug,
                        help=f"augmentations per test input besides the identity (default {Options.predict_aug})")
    parser.add_argument("--batch-size", type=int, default=Options.batch_size,
                        help=f"prediction batch; halved after an out-of-memory error (default {Options.batch_size})")
    parser.add_argument("--embeddings-only", action="store_true", help="fine-tune the puzzle embeddings only")
    parser.add_argument("--no-finetune", action="store_true", help="predict with the checkpoint as it is")
    parser.add_argument("--fresh", action="store_true",
                        help="start from the fallbacks, not from what --out holds (by default a re-run only improves --out)")
    parser.add_argument("--policy", default=Options.policy, choices=sorted(POLICIES),
                        help=f"voting policy (default {Options.policy}, the measured best with every augmentation and step)")
    parser.add_argument("--processes", type=int, default=Options.processes,
                        help="processes (GPUs) for fine-tuning and prediction, each phase under accelerate launch when > 1 (default 1)")
    parser.add_argument("--steps", type=int, default=Options.steps,
                        help="supervision steps at prediction (default: the model's halt_max_steps; more continues the recursion)")
    parser.add_argument("--trajectories", type=int, default=Options.trajectories,
                        help="runs of each query: trajectory 0 is the deterministic run, 1.. add latent noise (PTRM); "
                        "> 1 needs --noise (default 1)")
    parser.add_argument("--noise", type=float, default=Options.noise,
                        help="scale of the N(0, 1) noise added to the latent z after each update of trajectories 1.. (default 0)")
    parser.add_argument("--noise-seed", type=int, default=Options.noise_seed, help="seed of the trajectories' noise (default 0)")
    parser.add_argument("--early-exit", action="store_true",
                        help="stop a prediction batch once every query has halted (its steps run keep their candidates)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="fine-tuning config override, repeatable (e.g. --set train.global_batch=96)")
    return parser


def parse_args(argv: Sequence[str]) -> Options:
    args = build_parser().parse_args(argv)
    for name in ("finetune_aug", "predict_aug"):
        if getattr(args, name) < 0:
            raise ConfigError(f"--{name.replace('_', '-')} must be >= 0")
    if args.batch_size < 1 or args.finetune_steps < 0 or args.processes < 1:
        raise ConfigError("--batch-size and --processes must be >= 1 and --finetune-steps >= 0")
    if not 0 <= args.steps <= MAX_STEPS:
        raise ConfigError(f"--steps {args.steps}: must be from 0 (the model's halt_max_steps) to {MAX_STEPS}")
    TestTimeCompute.of(args)  # --trajectories / --noise mistakes: one line before any work
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
    return Options(**vars(args))


@exit_on_user_error
def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(format="%(name)s: %(message)s")  # other libraries stay at WARNING
    log.setLevel(logging.INFO)
    clock = Clock(0.0)  # the budget counts from here: loading is part of it
    with clock.phase("load"):
        options = parse_args(sys.argv[1:] if argv is None else argv)
        clock.budget_s = options.time_budget
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            raise ConfigError("run `python -m submissions.make` as one process, not under `accelerate launch`")
    make_submission(options, clock)
    return 0


if __name__ == "__main__":
    sys.exit(main())
