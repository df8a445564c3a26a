"""The per-step cost of each way to launch training, as ratios measured in one run.

    python benchmarks/launchers.py                          # tiny preset, 4 launchers, 2 rounds
    python benchmarks/launchers.py --launchers one,ddp --steps 300 --rounds 3

Runs the real command (`python -m arc_trm.train` or `accelerate launch ... -m arc_trm.train`) with
the same config and the same global batch under each launcher:

- `one`:   one process, `python -m arc_trm.train`, all the machine's cores as torch threads;
- `one1`:  the same with one thread (what each process of the two-process launchers gets);
- `compiled`: `one` with `train.compile=true` (torch.compile's first steps fall in the skipped windows);
- `pair`:  two independent `one1` runs side by side (two seeds of a ladder rung): their summed examples/s;
- `ddp`:   `accelerate launch` with accelerate_configs/cpu.yaml: 2 processes, one gloo group (DDP);
- `zero1`, `zero2`: `accelerate launch` with accelerate_configs/deepspeed_zero{1,2}.yaml, 2 processes
  (DeepSpeed on its CPU accelerator over gloo).

Multi-process launchers get cores / processes threads each, so every launcher uses the same cores.
The step time is read from the run's own metrics.jsonl: `train/examples_per_s` of each `run.log_every`
window, the first `--skip` windows dropped (start-up, first-touch allocations); the median window
counts. The launchers are run in turn for `--rounds` rounds (the order rotated each round, so a slow
moment of the machine does not fall on one launcher only), and each launcher's median over rounds is
compared with the first launcher's. Appends an entry to benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/common.py, however the script is started
from common import REPO, command_line, describe_device, entry, publish  # noqa: E402

from arc_trm.distributed import free_port  # noqa: E402

LAUNCHERS = ("one", "one1", "compiled", "pair", "ddp", "zero1", "zero2")
DESCRIPTIONS = {
    "one": "python -m arc_trm.train, 1 process",
    "one1": "python -m arc_trm.train, 1 process, 1 thread",
    "compiled": "python -m arc_trm.train train.compile=true, 1 process",
    "pair": "two python -m arc_trm.train side by side, 1 thread each (summed)",
    "ddp": "accelerate launch (cpu.yaml): DDP, 2 gloo processes",
    "zero1": "accelerate launch (deepspeed_zero1.yaml): ZeRO-1, 2 processes",
    "zero2": "accelerate launch (deepspeed_zero2.yaml): ZeRO-2, 2 processes",
}
PROCESSES = 2
SINGLE = ("one", "one1", "compiled", "pair")
"""Launchers whose runs are one process each (`pair` starts two of them)."""


def launch_prefix(launcher: str) -> list[str]:
    """The command before `arc_trm.train`'s arguments."""
    if launcher in SINGLE:
        return [sys.executable, "-m", "arc_trm.train", *(["train.compile=true"] if launcher == "compiled" else [])]
    config = "cpu.yaml" if launcher == "ddp" else f"deepspeed_{launcher}.yaml"
    return [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(REPO / "accelerate_configs" / config),
            "--num_processes", str(PROCESSES), "--main_process_port", str(free_port()), "-m", "arc_trm.train"]


def threads(launcher: str, cores: int) -> int:
    if launcher in ("one1", "pair"):
        return 1
    return cores if launcher in ("one", "compiled") else max(1, cores // PROCESSES)


def window_rates(run_dir: Path) -> list[float]:
    """examples per second of every logged window, in order."""
    lines = (run_dir / "metrics.jsonl").read_bytes().splitlines()
    return [row["train/examples_per_s"] for row in map(orjson.loads, lines) if "train/examples_per_s" in row]


def run_launcher(launcher: str, overrides: list[str], cores: int, work: Path, skip: int) -> float:
    """The median examples/s of one launcher's run, after the first `skip` windows (`pair`: the sum of
    its two runs' medians)."""
    count = str(threads(launcher, cores))
    env = {**os.environ, "OMP_NUM_THREADS": count, "MKL_NUM_THREADS": count, "TOKENIZERS_PARALLELISM": "false"}
    run_dirs = [work / f"{launcher}-{len(list(work.iterdir()))}-{i}" for i in range(2 if launcher == "pair" else 1)]
    # from the repository root: the DeepSpeed configs name their JSON relative to it
    children = [subprocess.Popen([*launch_prefix(launcher), *overrides, f"run.dir={run_dir}", f"train.seed={i}"], cwd=REPO,
                                 env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
                for i, run_dir in enumerate(run_dirs)]
    total = 0.0
    for child, run_dir in zip(children, run_dirs):
        _, stderr = child.communicate()
        if child.returncode != 0:
            raise SystemExit(f"error: {launcher} failed (exit {child.returncode}):\n{stderr[-2000:]}")
        rates = window_rates(run_dir)[skip:]
        if not rates:
            raise SystemExit(f"error: {launcher}: no logged window after the first {skip}; raise --steps")
        total += statistics.median(rates)
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--launchers", default="one,one1,ddp,zero1,zero2", help=f"comma-separated, from {', '.join(LAUNCHERS)}")
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--global-batch", type=int, default=64, help="examples per optimizer step over all processes")
    parser.add_argument("--steps", type=int, default=200, help="optimizer steps per run")
    parser.add_argument("--log-every", type=int, default=20, help="steps per timed window")
    parser.add_argument("--skip", type=int, default=2, help="first windows not counted")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--no-record", action="store_true", help="print only; do not append to RESULTS.md")
    args = parser.parse_args()
    launchers = args.launchers.split(",")
    if unknown := [name for name in launchers if name not in LAUNCHERS]:
        parser.error(f"unknown launcher {unknown[0]!r} ({', '.join(LAUNCHERS)})")

    cores = os.cpu_count() or 1
    overrides = [f"preset={args.preset}", f"train.global_batch={args.global_batch}", f"train.steps={args.steps}",
                 f"run.log_every={args.log_every}", f"run.checkpoint_every={args.steps}", "run.tracker=none",
                 "run.eval_every=0", "model.forward_dtype=float32"]
    rates: dict[str, list[float]] = {name: [] for name in launchers}
    with tempfile.TemporaryDirectory(prefix="launchers-") as folder:
        for round_index in range(args.rounds):
            shift = round_index % len(launchers)
            for name in launchers[shift:] + launchers[:shift]:
                rates[name].append(run_launcher(name, overrides, cores, Path(folder), args.skip))
                print(f"round {round_index + 1}: {name}: {rates[name][-1]:.1f} examples/s", flush=True)

    base = statistics.median(rates[launchers[0]])
    body = ["| launcher | processes x threads | examples/s (median over rounds) | ms per step | per-step cost vs "
            f"{launchers[0]} | each round's examples/s |", "| --- | --- | ---: | ---: | ---: | --- |"]
    for name in launchers:
        rate = statistics.median(rates[name])
        processes = 1 if name in SINGLE and name != "pair" else PROCESSES
        body.append(f"| {DESCRIPTIONS[name]} | {processes} x {threads(name, cores)} | {rate:.1f} | "
                    f"{1000 * args.global_batch / rate:.1f} | {base / rate:.2f}x | "
                    f"{', '.join(f'{r:.1f}' for r in rates[name])} |")
    figures = (f"`python -m arc_trm.train preset={args.preset}` (float32) at global batch {args.global_batch}, "
               f"{args.steps} steps per run; examples/s from the run's metrics.jsonl, median of the "
               f"{args.log_every}-step windows after the first {args.skip}, then the median over {args.rounds} "
               "rounds (order rotated); per-step cost = ms per step over the first launcher's")
    publish(entry(__file__, f"{describe_device()} (all {cores} used by every launcher)", command_line(__file__),
                  figures, body), args.no_record)


if __name__ == "__main__":
    main()
