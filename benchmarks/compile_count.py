"""How often torch.compile compiles in real runs, and what it costs in wall time.

    python benchmarks/compile_count.py                          # this checkout
    python benchmarks/compile_count.py --before ../old-checkout  # and an older one, same model, same run

Trains a tiny model once (`python -m arc_trm.train preset=tiny`, a few steps: the weights do not
matter, the shapes do), then for each source tree (this checkout, and `--before DIR` if given: another
checkout of the project, e.g. `git worktree add ../old COMMIT`) runs the real commands as a user would,
under `TORCH_LOGS=recompiles`:

- `python -m arc_trm.predict compile=true` (and `compile=false`, the eager reference) of that model
  over arc-agi-1/evaluation (the tasks the model knows, every augmentation, every supervision step);
- `python -m arc_trm.train train.compile=true` with in-training evaluation every few steps.

It counts the recompilations torch logs ("Recompiling function ...", with the guard that failed) and
times each command from start to exit (Python start-up, model load, compilation and the work). Each
command gets an empty inductor cache (TORCHINDUCTOR_CACHE_DIR), so every compilation is a cold one, as
on a user's first run; a warm cache would hide what a recompilation costs. Appends an entry to RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/common.py, however the script is started
from common import REPO, command_line, describe_device, entry, publish  # noqa: E402

TRAIN_STEPS = 30
EVAL_EVERY = 10


def commit(tree: Path) -> str:
    result = subprocess.run(["git", "-C", str(tree), "log", "-1", "--format=%h"], capture_output=True, text=True)
    return result.stdout.strip() or "unknown commit"


def run(tree: Path, args: list[str], env: dict[str, str]) -> tuple[float, list[str]]:
    """(wall seconds, the guard failure behind each recompilation) of `python -m ARGS` run in `tree`
    (its own arc_trm first on the path), with an empty inductor cache."""
    with tempfile.TemporaryDirectory(prefix="inductor-cache-") as cache:
        begin = time.perf_counter()
        result = subprocess.run([sys.executable, "-m", *args], cwd=tree, capture_output=True, text=True,
                                env={**env, "PYTHONPATH": str(tree), "TORCHINDUCTOR_CACHE_DIR": cache})
        seconds = time.perf_counter() - begin
    if result.returncode != 0:
        raise SystemExit(f"error: {' '.join(args[:2])} in {tree} failed (exit {result.returncode}):\n{result.stderr[-2000:]}")
    log = (result.stdout + result.stderr).split("Recompiling function")[1:]
    # the first guard failure named under each "Recompiling function" line: "- 0/0: <reason>"
    return seconds, [match.group(1).strip() if (match := re.search(r"- \d+/\d+: (.*)", part)) else "?" for part in log]


def measure(tree: Path, model: Path, work: Path, env: dict[str, str]) -> list[tuple[str, float, list[str]]]:
    rows = []
    for compiled in (False, True):
        out = work / f"predict-{tree.name}-{compiled}"
        seconds, recompiles = run(tree, ["arc_trm.predict", f"checkpoint={model}", "split=arc-agi-1/evaluation",
                                         f"out={out}", f"compile={str(compiled).lower()}"], env)
        rows.append((f"predict compile={str(compiled).lower()}", seconds, recompiles))
    seconds, recompiles = run(tree, ["arc_trm.train", "preset=tiny", "train.compile=true", f"train.steps={TRAIN_STEPS}",
                                     f"run.eval_every={EVAL_EVERY}", "run.tracker=none", f"run.dir={work / f'train-{tree.name}'}"], env)
    rows.append((f"train train.compile=true, {TRAIN_STEPS} steps, evaluation every {EVAL_EVERY}", seconds, recompiles))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", type=Path, help="another checkout of the project to measure the same way")
    parser.add_argument("--no-record", action="store_true", help="print only; do not append to RESULTS.md")
    args = parser.parse_args()
    trees = [("this checkout", REPO)] + ([("before", args.before.resolve())] if args.before else [])
    env = {**os.environ, "TORCH_LOGS": "recompiles", "TOKENIZERS_PARALLELISM": "false"}
    with tempfile.TemporaryDirectory(prefix="compile-count-") as folder:
        work = Path(folder)
        model = work / "model-run"
        run(REPO, ["arc_trm.train", "preset=tiny", "train.steps=20", "run.tracker=none", f"run.dir={model}"], env)
        results = {label: measure(tree, model / "model", work, env) for label, tree in trees}

    body = ["| source tree | command | wall s (start to exit) | recompilations | why (the failed guard) |",
            "| --- | --- | ---: | ---: | --- |"]
    for label, tree in trees:
        for command, seconds, reasons in results[label]:
            why = "; ".join(reason.replace("|", "/")[:80] for reason in reasons) or "-"
            body.append(f"| {label} ({commit(tree)}) | {command} | {seconds:.1f} | {len(reasons)} | {why} |")
    figures = ("one run of each command; the model: `python -m arc_trm.train preset=tiny train.steps=20` "
               "(D 64, 10x10 canvas, 16 held-out tasks, 17 versions each, 4 supervision steps); predict over "
               "arc-agi-1/evaluation at its defaults (batch 256); recompilations = 'Recompiling function' lines "
               "under TORCH_LOGS=recompiles (the first compilation of each function is not counted); every command with an "
               "empty inductor cache (cold compilation)")
    publish(entry(__file__, describe_device(), command_line(__file__), figures, body), args.no_record)


if __name__ == "__main__":
    main()
