"""The Sudoku and Maze rungs: train TRM on 1,000 puzzles for a budget of work, then report exact and cell
accuracy on held-out puzzles by difficulty, what recursion buys at inference, and A-against-B comparisons,
under the accuracy ladder's protocol (accuracy.py, ladder.py).

    python benchmarks/puzzles.py sudoku --seeds 3                                  # generated puzzles only
    python benchmarks/puzzles.py sudoku --data data/sudoku --seeds 3               # + real hard puzzles
    python benchmarks/puzzles.py maze --size 11 --seeds 3
    python benchmarks/puzzles.py sudoku compare benchmarks/arms/unchanged.yaml benchmarks/arms/no_recursion.yaml
    python benchmarks/puzzles.py maze compare benchmarks/arms/unchanged.yaml benchmarks/arms/dihedral.yaml

1. **The recipe** is the track's preset (`sudoku`, `maze`) with an arm file's training overrides
   (`preset=TRACK_cpu`, arc_trm/presets/), with an arm file's training overrides (`--arm`, optional), then
   the command line's; `compare A.yaml B.yaml`
   adds each arm's overrides on top. Budgets and runs are accuracy.py's: `train.steps` of the recipe,
   `--example-steps` or `--optimizer-steps`; `--minutes` only caps; runs in
   `runs/puzzles/PRESET-HASH/seed_S`, resumed on a re-run.
2. **Data**, built once into `--cache` (default runs/puzzles/data) by the project's generators:
   - Sudoku training: `--train` (1,000) puzzles, from `--data DIR/train.csv` (a seeded subsample per
     seed, `data.subsample`) or else generated, a quarter at each `--min-rating` of TRAIN_MIN_RATINGS.
   - Sudoku held out: `--held-out` (100) generated puzzles per rating band (`--bands`, default
     0,1-5,6-20,21-99; the rating is the generator's frozen solver's guess count, 0 = singles solve it),
     each band generated at its lowest rating and kept when its rating falls in the band; with
     `--data`, also the first `--extreme` (200) puzzles of DIR/test.csv. A held-out puzzle equivalent
     to a training puzzle (`canonical_form`) is dropped and counted.
   - Maze: `--train` + `--held-out` (1,000 + 200) mazes of side `--size` with shortest paths of more
     than `--min-length` cells (default scaled from Maze-Hard's > 110 of 900 cells by the cell count).
   The held-out puzzles are one test.csv (bands interleaved, so `data.max_test` takes a balanced
   prefix for the periodic evaluation of the learning curve), their bands in bands.json.
3. **Measure**: `python -m arc_trm.predict` per seed at the trained supervision steps and at each of
   `--steps-sweep` (the recursion curve, also past the trained number), and at the trained steps with each
   of `--trajectories-sweep` trajectories (noisy runs of each puzzle, `--noise`, the surest halt kept:
   test-time compute, with its cost in block applications); each puzzle scored from
   predictions.csv (exact, cell accuracy, a valid solution / a valid shortest path), checked against
   the report predict writes. Each figure: mean over seeds, lowest and highest seed, 95% bootstrap
   interval over puzzles. `compare`: B - A exact accuracy per band with a paired bootstrap interval.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import math
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/*.py, however the script is started
import accuracy  # noqa: E402
import ladder  # noqa: E402
from common import REPO, finish_fraction_axes, publish_entry, save_figure  # noqa: E402

from arc_trm.errors import exit_on_user_error  # noqa: E402
from arc_trm.inference import MAX_TRAJECTORIES  # noqa: E402

PUZZLE_TRACKS = ("sudoku", "maze")
RUNS = REPO / "runs" / "puzzles"
CACHE = RUNS / "data"
CSV_HEADER = ("source", "question", "answer", "rating")
DEFAULT_BANDS = "0,1-5,6-20,21-99"
TRAIN_MIN_RATINGS = (0, 1, 6, 21)
"""Generated Sudoku training: equal parts at these --min-rating, so it spans the held-out bands
(about 4 core-minutes for 1,000 puzzles; 100+ would take 12-15 s a puzzle)."""
TRAIN_SEED, BAND_SEED = 0, 1000
"""Generator seeds: training part j uses TRAIN_SEED + j, band b's round r BAND_SEED + 100 b + r. Every set
needs its own: an attempt is a function of (seed, task), so two sets from one seed start from the same grids."""
LEAK_CHECK_LIMIT = 20_000
"""A --data training file of more puzzles is not checked for puzzles equivalent to a held-out one
(canonical_form costs about 8 ms a puzzle; the real Sudoku-Extreme train.csv holds millions)."""
MAX_ROUNDS = 30
"""Generator rounds of --held-out puzzles per band before a band that keeps too few is refused."""
MAZE_HARD = (30, 110)
"""Maze-Hard: side 30, shortest paths of more than 110 cells."""
METRICS = ("exact", "cell_accuracy")
CURVES = (("train/exact_accuracy", "tab:gray", "training exact accuracy (ACT steps)"),
          ("eval/exact_accuracy", "tab:red", "held-out exact accuracy (periodic, balanced prefix)"),
          ("eval/cell_accuracy", "tab:blue", "held-out cell accuracy (periodic, balanced prefix)"))


# ------------------------------------------------------------------------------------------- bands


@dataclass(frozen=True)
class Band:
    """Ratings from `low` to `high` (None: no upper end), both included."""

    low: int
    high: int | None

    @property
    def name(self) -> str:
        if self.high is None:
            return f"rating {self.low}+"
        return f"rating {self.low}" if self.low == self.high else f"rating {self.low}-{self.high}"

    def holds(self, rating: int) -> bool:
        return rating >= self.low and (self.high is None or rating <= self.high)


def parse_bands(text: str) -> list[Band]:
    """'0,1-5,6-20,21-99,100+' -> bands in order; ValueError naming a bad or overlapping item."""
    bands = []
    for item in (part.strip() for part in text.split(",")):
        low, dash, high = item.removesuffix("+").partition("-")
        if not low.isdigit() or (dash and not high.isdigit()) or (item.endswith("+") and dash):
            raise ValueError(f"{item!r} is not a rating band (N, N-M or N+)")
        band = Band(int(low), None if item.endswith("+") else int(high or low))
        if band.high is not None and band.high < band.low:
            raise ValueError(f"{item!r}: the band ends below its start")
        if any(band.holds(other.low) or other.holds(band.low) for other in bands):
            raise ValueError(f"{item!r} overlaps another band")
        bands.append(band)
    return bands


def scaled_min_length(side: int) -> int:
    """Maze-Hard's threshold scaled by the cell count: round(110 x side^2 / 900) (15 at side 11)."""
    return round(MAZE_HARD[1] * side * side / MAZE_HARD[0] ** 2)


def train_parts(total: int, parts: int) -> list[int]:
    """`total` split into `parts` near-equal counts, the larger ones first."""
    return [total // parts + (j < total % parts) for j in range(parts)]


def steps_list(text: str) -> list[int]:
    """'1,2,4' -> [1, 2, 4]: distinct supervision step counts from 1 to arc_trm.predict's 1024."""
    values = set()
    for item in (part.strip() for part in text.split(",")):
        if not item.isdigit() or not 1 <= int(item) <= 1024:
            raise ValueError(f"{item!r} is not a whole number from 1 to 1024")
        values.add(int(item))
    return sorted(values)


# -------------------------------------------------------------------------------------------- data


@dataclass
class HeldOut:
    """A prepared data folder (train.csv, test.csv = every held-out puzzle) and its bands."""

    folder: Path
    bands: dict[str, list[int]]  # band name -> rows of test.csv
    lines: list[str]  # what the data is, for the entry

    @property
    def test_csv(self) -> Path:
        return self.folder / "test.csv"


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def write_rows(path: Path, rows: Iterable[dict[str, str]]) -> None:
    """The Sudoku/Maze CSV layout, written atomically."""
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(CSV_HEADER)
        writer.writerows([row[key] for key in CSV_HEADER] for row in rows)
    tmp.replace(path)


def interleaved(groups: Sequence[Sequence[dict[str, str]]]) -> tuple[list[dict[str, str]], list[list[int]]]:
    """The groups' rows round-robin (so any prefix is balanced) and each group's rows in the result."""
    rows: list[dict[str, str]] = []
    where: list[list[int]] = [[] for _ in groups]
    for i in range(max((len(g) for g in groups), default=0)):
        for g, group in enumerate(groups):
            if i < len(group):
                where[g].append(len(rows))
                rows.append(group[i])
    return rows, where


def save_held_out(folder: Path, names: Sequence[str], groups: Sequence[Sequence[dict[str, str]]], lines: list[str]) -> HeldOut:
    """test.csv of the interleaved groups and bands.json (written last: its presence means complete)."""
    from arc_trm.io import atomic_write_json

    rows, where = interleaved(groups)
    write_rows(folder / "test.csv", rows)
    held = HeldOut(folder, dict(zip(names, where)), lines)
    atomic_write_json(folder / "bands.json", {"bands": held.bands, "lines": lines}, indent=True)
    return held


def load_held_out(folder: Path) -> HeldOut | None:
    path = folder / "bands.json"
    if not path.exists():
        return None
    saved = json.loads(path.read_text())
    return HeldOut(folder, saved["bands"], saved["lines"])


def generated_sudoku(cache: Path, min_rating: int, n: int, seed: int) -> list[dict[str, str]]:
    """`n` puzzles of `python -m arc_trm.data.sudoku generate` (cached: the output is a function of the arguments)."""
    out = cache / "sudoku-parts" / f"rating{min_rating}-n{n}-seed{seed}"
    if not (out / "test.csv").exists():  # the generator writes test.csv last
        accuracy.run([sys.executable, "-m", "arc_trm.data.sudoku", "generate", "--n", str(n), "--min-rating", str(min_rating),
                      "--seed", str(seed), "--test-fraction", "1", "--out", str(out)])
    return read_rows(out / "test.csv")


def content_digest(path: Path) -> str:
    """The file's SHA-256: the same data names the same folder wherever it lies and whenever it was copied."""
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def sudoku_folder(args: argparse.Namespace) -> Path:
    """The prepared folder's path, a function of the data options (so a run's data.path names its data)."""
    files = [Path(args.data) / name for name in ("train.csv", "test.csv")] if args.data else []
    if args.train_generated:
        files = files[1:]
    settings = {"train": [(f.name, content_digest(f)) for f in files] or f"generated {args.train}",
                "bands": [b.name for b in args.band_list], "held_out": args.held_out, "extreme": args.extreme if args.data else 0}
    key = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:8]
    return Path(args.cache) / f"sudoku-{key}"


def sudoku_data(args: argparse.Namespace) -> HeldOut:
    """Training puzzles and the held-out bands (see the module's docstring), built once."""
    from arc_trm.data.sudoku import canonical_form
    from arc_trm.errors import ConfigError

    folder = sudoku_folder(args)
    held = load_held_out(folder)
    if held is not None:
        return held
    folder.mkdir(parents=True, exist_ok=True)
    cache = Path(args.cache)
    if args.data and not args.train_generated:
        source = (Path(args.data) / "train.csv").resolve()
        (folder / "train.csv").unlink(missing_ok=True)
        (folder / "train.csv").symlink_to(source)  # never copied: it may hold millions of puzzles
        with source.open() as handle:
            count = sum(1 for _ in handle) - 1
        train = read_rows(source) if count <= LEAK_CHECK_LIMIT else []
        lines = [f"training: `{args.data}/train.csv` ({count:,} puzzles), a seeded subsample of {args.train:,} per seed "
                 "(`data.subsample`, with train.seed)" + ("" if train else f"; held-out puzzles not checked against it "
                                                          f"(over {LEAK_CHECK_LIMIT:,} puzzles)")]
    else:
        parts = train_parts(args.train, len(TRAIN_MIN_RATINGS))
        train = [row for j, (rating, n) in enumerate(zip(TRAIN_MIN_RATINGS, parts)) if n
                 for row in generated_sudoku(cache, rating, n, TRAIN_SEED + j)]
        write_rows(folder / "train.csv", train)
        lines = [f"training: {len(train):,} generated puzzles, {'/'.join(map(str, parts))} at `--min-rating` "
                 f"{'/'.join(map(str, TRAIN_MIN_RATINGS))} (rating median {statistics.median(int(r['rating']) for r in train):.0f})"]
    seen = {canonical_form(row["question"]) for row in train}
    groups, names = [], []
    for b, band in enumerate(args.band_list):
        kept, dropped, rounds = [], 0, 0
        while len(kept) < args.held_out:
            if rounds == MAX_ROUNDS:
                raise ConfigError(f"--bands: {band.name} kept {len(kept)} puzzles in {MAX_ROUNDS} generator rounds; choose a wider band")
            for row in generated_sudoku(cache, band.low, args.held_out, BAND_SEED + 100 * b + rounds):
                form = canonical_form(row["question"])
                if band.holds(int(row["rating"])) and form not in seen:
                    seen.add(form)
                    kept.append(row)
                elif band.holds(int(row["rating"])):
                    dropped += 1
            rounds += 1
        groups.append(kept[: args.held_out])
        names.append(band.name)
        lines.append(f"held out, {band.name}: {args.held_out} generated puzzles (generated at `--min-rating {band.low}`, "
                     f"{rounds} round(s); {dropped} equivalent to a training or earlier puzzle dropped)")
    if args.data and args.extreme:
        first = read_rows(Path(args.data) / "test.csv")[: args.extreme]
        extreme = [row for row in first if canonical_form(row["question"]) not in seen]
        groups.append(extreme)
        names.append(f"{Path(args.data).name}/test.csv first {args.extreme}")
        lines.append(f"held out, `{args.data}/test.csv` first {args.extreme}: {len(extreme)} puzzles "
                     f"({len(first) - len(extreme)} equivalent to a training puzzle dropped)")
    return save_held_out(folder, names, groups, lines)


def maze_data(args: argparse.Namespace) -> HeldOut:
    """`python -m arc_trm.data.maze generate` of --train + --held-out mazes, built once."""
    folder = Path(args.cache) / f"maze-{args.size}x{args.size}-path{args.min_length}-{args.train}+{args.held_out}"
    held = load_held_out(folder)
    if held is not None:
        return held
    total = args.train + args.held_out
    accuracy.run([sys.executable, "-m", "arc_trm.data.maze", "generate", "--n", str(total), "--size", str(args.size),
                  "--min-length", str(args.min_length), "--test-fraction", repr(args.held_out / total), "--out", str(folder)])
    test = read_rows(folder / "test.csv")
    lengths = [int(row["rating"]) for row in test]
    name = f"{args.size}x{args.size}, path > {args.min_length} cells"
    lines = [f"mazes: {len(read_rows(folder / 'train.csv')):,} training + {len(test)} held out, side {args.size}, shortest "
             f"paths of more than {args.min_length} cells (held out: {min(lengths)}-{max(lengths)} cells, median "
             f"{statistics.median(lengths):.0f}); every maze its own wall layout"]
    return save_held_out(folder, [name], [test], lines)


# ---------------------------------------------------------------------------------------- measure


Scores = dict[int, dict[str, float]]
"""seed -> puzzle (test.csv row, as text) -> score: ladder.py's score table."""


def model_config(run_dir: Path) -> dict[str, Any]:
    return json.loads((run_dir / "model" / "config.json").read_text())


def predict_at(args: argparse.Namespace, run: accuracy.SeedRun, held: HeldOut, steps: int, trajectories: int = 1) -> Path:
    """`python -m arc_trm.predict` of every held-out puzzle at `steps` supervision steps (kept for a re-run);
    with `trajectories` > 1, that many runs of each puzzle, the others with --noise, picked by the halting head."""
    noise = args.noise if trajectories > 1 else 0.0  # compare has no --noise: it measures the deterministic run
    noisy = accuracy.trajectory_arguments(trajectories, noise)
    out = run.run_dir / "predict" / f"step_{run.step}" / f"steps_{steps}{accuracy.trajectory_suffix(trajectories, noise)}"
    if not (out / "report.json").exists():
        accuracy.run([*accuracy.launcher(args), "-m", "arc_trm.predict", f"checkpoint={run.run_dir / 'model'}",
                      f"split={held.test_csv}", f"out={out}", f"steps={steps}", *noisy, f"batch_size={args.batch_size}"])
    return out


def puzzle_scores(track: str, puzzles: Sequence[dict[str, str]], out: Path) -> dict[str, dict[str, float]]:
    """metric -> puzzle -> score of one prediction folder, from predictions.csv (a missing puzzle scores 0);
    exits if the exact accuracy differs from the report predict wrote (the rows would be misread)."""
    from arc_trm.tracks import TRACKS

    metric = TRACKS[track].metrics
    predicted = {int(row["index"]): row["prediction"] for row in read_rows(out / "predictions.csv")}
    names = (*METRICS, TRACKS[track].validity)
    scores: dict[str, dict[str, float]] = {name: {} for name in names}
    for row, puzzle in enumerate(puzzles):
        values = metric(puzzle["question"], puzzle["answer"], predicted[row]) if row in predicted else dict.fromkeys(names, 0.0)
        for name in names:
            scores[name][str(row)] = values[name]
    reported = json.loads((out / "report.json").read_text())["exact_accuracy"]
    mean = statistics.fmean(scores["exact"].values()) if puzzles else 0.0
    if not math.isclose(mean, reported, abs_tol=1e-9):
        sys.exit(f"error: {out}: exact accuracy {mean:.6f} read from predictions.csv, {reported:.6f} in report.json")
    return scores


def measure(args: argparse.Namespace, runs: list[accuracy.SeedRun], held: HeldOut, steps: Sequence[int], track: str,
            trajectories: int = 1) -> dict[int, dict[str, Scores]]:
    """steps -> metric -> seed -> puzzle -> score, one prediction per seed and step count (at `trajectories`)."""
    puzzles = read_rows(held.test_csv)
    measured: dict[int, dict[str, Scores]] = {}
    for run in runs:
        for count in steps:
            for name, scores in puzzle_scores(track, puzzles, predict_at(args, run, held, count, trajectories)).items():
                measured.setdefault(count, {}).setdefault(name, {})[run.seed] = scores
    return measured


def measure_trajectories(args: argparse.Namespace, runs: list[accuracy.SeedRun], held: HeldOut, steps: int, track: str,
                         at_one: dict[str, Scores]) -> dict[int, dict[str, Scores]]:
    """trajectories -> metric -> seed -> puzzle -> score at `steps` supervision steps (1: `at_one`, already measured)."""
    return {k: at_one if k == 1 else measure(args, runs, held, [steps], track, k)[steps] for k in args.trajectory_list}


# ----------------------------------------------------------------------------------------- report


def band_views(held: HeldOut) -> list[tuple[str, list[str]]]:
    """(name, puzzles) of each band, and of all held-out puzzles when there are several bands."""
    views = [(name, [str(row) for row in rows]) for name, rows in held.bands.items()]
    return views + ([("all held out", [i for _, group in views for i in group])] if len(views) > 1 else [])


def difficulty(track: str, puzzles: Sequence[dict[str, str]], rows: Sequence[str]) -> str:
    """Median givens (Sudoku) or shortest-path cells (Maze) of the rows."""
    if track == "sudoku":
        return f"{statistics.median(sum(ch in '123456789' for ch in puzzles[int(r)]['question']) for r in rows):.0f}"
    return f"{statistics.median(int(puzzles[int(r)]['rating']) for r in rows):.0f}"


def band_table(track: str, held: HeldOut, at: dict[str, Scores]) -> list[str]:
    """Per band: exact, cell and validity, each a ladder.Spread (mean over seeds, seed range, bootstrap CI)."""
    puzzles = read_rows(held.test_csv)
    column = "median givens" if track == "sudoku" else "median path cells"
    from arc_trm.tracks import TRACKS

    validity = TRACKS[track].validity  # Sudoku: a valid solution keeping the givens; Maze: a valid shortest path
    lines = [f"| band | puzzles | {column} | exact accuracy | cell accuracy | {validity} |", "| --- | ---: | ---: | --- | --- | --- |"]
    for name, rows in band_views(held):
        if not rows:
            lines.append(f"| {name} | 0 | - | - | - | - |")
            continue
        cells = [ladder.spread(at[metric], rows).cell() for metric in (*METRICS, validity)]
        lines.append(f"| {name} | {len(rows)} | {difficulty(track, puzzles, rows)} | {' | '.join(cells)} |")
    return lines


def mean_figure(scores: Scores, rows: Sequence[str]) -> str:
    per_seed = ladder.figure(scores, rows)
    return f"{100 * statistics.fmean(per_seed):.1f}%" if per_seed else "-"


def forward_cost(config: dict[str, Any], steps: int) -> tuple[int, float]:
    """(block applications, MFLOP) of predicting one puzzle for `steps` supervision steps: each step applies
    the block T x (n + 1) times (arc_trm.model.flops, inference)."""
    from arc_trm.model.flops import flops_per_example_step
    from arc_trm.model.trm import ModelConfig

    return steps * config["T"] * (config["n"] + 1), steps * flops_per_example_step(ModelConfig(**config), training=False) / 1e6


def sweep_table(held: HeldOut, measured: dict[int, dict[str, Scores]], config: dict[str, Any]) -> list[str]:
    """Exact accuracy of each band against the supervision steps at inference, with each row's cost."""
    views = band_views(held)
    lines = ["| supervision steps | block applications per puzzle | MFLOP per puzzle | " + " | ".join(n for n, _ in views) + " |",
             "| ---: | ---: | ---: | " + " | ".join("---:" for _ in views) + " |"]
    for steps in sorted(measured):
        blocks, mflop = forward_cost(config, steps)
        mark = " (trained)" if steps == config["halt_max_steps"] else ""
        lines.append(f"| {steps}{mark} | {blocks:,} | {mflop:,.0f} | "
                     + " | ".join(mean_figure(measured[steps]["exact"], rows) for _, rows in views) + " |")
    return lines


def trajectory_table(held: HeldOut, measured: dict[int, dict[str, Scores]], config: dict[str, Any]) -> list[str]:
    """Exact accuracy of each band against trajectories per puzzle at the trained steps, with each row's cost."""
    views = band_views(held)
    steps = config["halt_max_steps"]
    lines = ["| trajectories | block applications per puzzle | MFLOP per puzzle | " + " | ".join(n for n, _ in views) + " |",
             "| ---: | ---: | ---: | " + " | ".join("---:" for _ in views) + " |"]
    for k in sorted(measured):
        blocks, mflop = forward_cost(config, steps * k)
        lines.append(f"| {k}{' (deterministic)' if k == 1 else ''} | {blocks:,} | {mflop:,.0f} | "
                     + " | ".join(mean_figure(measured[k]["exact"], rows) for _, rows in views) + " |")
    return lines


def recursion_curve(held: HeldOut, measured: dict[int, dict[str, Scores]], config: dict[str, Any], path: Path) -> None:
    """Exact accuracy of each band against supervision steps at inference (mean over seeds), log2 axis."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = sorted(measured)
    figure, axis = plt.subplots(figsize=(7, 4), dpi=110)
    for name, rows in band_views(held):
        if rows:
            axis.plot(steps, [statistics.fmean(ladder.figure(measured[s]["exact"], rows)) for s in steps], marker="o",
                      markersize=3, label=name)
    axis.axvline(config["halt_max_steps"], color="gray", linestyle=":", label="trained supervision steps")
    axis.set_xscale("log", base=2)
    axis.set_xticks(steps, [str(count) for count in steps])
    axis.set_xlabel(f"supervision steps at inference (each T x (n + 1) = {config['T'] * (config['n'] + 1)} block applications)")
    finish_fraction_axes(axis, "exact accuracy", f"{path.parent.name}: recursion at inference")
    save_figure(figure, path)


# ------------------------------------------------------------------------------------------ arguments


def parse_args(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    from arc_trm.errors import ArgumentParser

    track = argv[0] if argv else ""
    compare = len(argv) > 1 and argv[1] == "compare"
    parser = ArgumentParser(
        prog=f"python benchmarks/puzzles.py {track or 'TRACK'}" + (" compare" if compare else ""),
        description=("Train two arms on the same recipe, data and seeds and print B - A exact accuracy per band with a "
                     "paired bootstrap interval. " if compare else
                     "Train a Sudoku or Maze rung for a budget of work, report exact and cell accuracy per held-out band "
                     "and against the supervision steps at inference, and append an entry to benchmarks/RESULTS.md. ")
        + "Other arguments are training overrides (section.key=value) passed to arc_trm.train.",
    )
    if track not in PUZZLE_TRACKS:
        parser.error(f"the first argument is the track: {' or '.join(PUZZLE_TRACKS)}")
    if compare:
        parser.add_argument("arms", nargs=2, metavar="ARM.yaml", help="the two arms, A then B, added to the recipe")
    else:
        parser.add_argument("--steps-sweep", default="1,2,4,8,16,32",
                            help="supervision steps at inference for the recursion curve (the trained number is always measured)")
        parser.add_argument("--trajectories-sweep", default="1,4,16",
                            help="trajectories per puzzle at the trained steps (test-time compute: the others add --noise to "
                                 "the latent; the one whose last step halts most surely is kept, as PTRM); default 1,4,16")
        accuracy.add_noise(parser)
    parser.add_argument("--arm", default=None,
                        help=f"an arm file of training overrides on the recipe, preset={track}_cpu (default none)")
    parser.add_argument("--cache", default=str(CACHE), help="folder for generated and prepared data (default runs/puzzles/data)")
    parser.add_argument("--train", type=int, default=1000, help="training puzzles (default 1000, as the reference)")
    if track == "sudoku":
        parser.add_argument("--data", default=None, help="a folder with train.csv and test.csv to train on (e.g. the real "
                            "hard puzzles) instead of generated ones; its test.csv's first --extreme puzzles become a band")
        parser.add_argument("--train-generated", action="store_true", help="with --data: train on generated puzzles "
                            "all the same (as without --data), --data giving only its held-out test puzzles")
        parser.add_argument("--extreme", type=int, default=200, help="held-out puzzles from the head of --data's test.csv (default 200)")
        parser.add_argument("--bands", default=DEFAULT_BANDS, help=f"generated rating bands, N, N-M or N+ (default {DEFAULT_BANDS})")
        parser.add_argument("--held-out", type=int, default=100, help="generated puzzles per band (default 100)")
    else:
        parser.add_argument("--size", type=int, default=11, help="maze side (default 11)")
        parser.add_argument("--min-length", type=int, default=None,
                            help="shortest paths of more than this many cells (default round(110 x side^2 / 900), 15 at 11)")
        parser.add_argument("--held-out", type=int, default=200, help="held-out mazes (default 200)")
    accuracy.add_common(parser, runs="runs/puzzles")
    args, overrides = parser.parse_known_args(argv[2:] if compare else argv[1:])
    args.track, args.compare = track, compare
    unknown = [a for a in overrides if "=" not in a or a.startswith("-")]
    if unknown:
        parser.error(f"unrecognised arguments: {' '.join(unknown)}")
    if any(o.startswith(("data.path=", "data.track=")) for o in overrides):
        parser.error("data.path and data.track are set by this command (use --data for Sudoku)")
    check_args(parser, args)
    return args, overrides


def check_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Every option checked before any work: one line and exit code 2."""
    accuracy.check_common(parser, args)
    if args.train < 1 or args.held_out < 1:
        parser.error("--train and --held-out must be >= 1")
    if not args.compare:
        try:
            args.sweep = steps_list(args.steps_sweep)
        except ValueError as error:
            parser.error(f"--steps-sweep: {error}")
        try:
            args.trajectory_list = steps_list(args.trajectories_sweep)
        except ValueError as error:
            parser.error(f"--trajectories-sweep: {error}")
        if max(args.trajectory_list) > MAX_TRAJECTORIES:
            parser.error(f"--trajectories-sweep: at most {MAX_TRAJECTORIES} trajectories")
        accuracy.check_noise(parser, args)
    if args.arm is not None and not Path(args.arm).is_file():
        parser.error(f"--arm {args.arm}: no such file")
    if args.track == "sudoku":
        try:
            args.band_list = parse_bands(args.bands)
        except ValueError as error:
            parser.error(f"--bands: {error}")
        if args.extreme < 0:
            parser.error("--extreme must be >= 0")
        if args.train_generated and not args.data:
            parser.error("--train-generated goes with --data (without it, training is generated anyway)")
        for name in ("train.csv", "test.csv") if args.data else ():
            if not (Path(args.data) / name).is_file():
                parser.error(f"--data {args.data}: no {name} in it")
    else:
        if not 2 <= args.size <= 100:
            parser.error("--size must be from 2 to 100")
        args.min_length = scaled_min_length(args.size) if args.min_length is None else args.min_length
        if not 1 <= args.min_length < args.size * args.size:
            parser.error(f"--min-length must be from 1 to {args.size * args.size - 1} at side {args.size}")


def merged(*lists: Sequence[str]) -> list[str]:
    """key=value overrides, a later value of a key replacing an earlier one, in first-seen key order."""
    values: dict[str, str] = {}
    for item in (o for overrides in lists for o in overrides):
        key, _, value = item.partition("=")
        values[key.strip()] = value
    return [f"{key}={value}" for key, value in values.items()]


def data_folder(args: argparse.Namespace) -> Path:
    if args.track == "sudoku":
        return sudoku_folder(args)
    return Path(args.cache) / f"maze-{args.size}x{args.size}-path{args.min_length}-{args.train}+{args.held_out}"


def recipe(args: argparse.Namespace, overrides: list[str], arm: accuracy.Arm | None = None) -> list[str]:
    """The preset, the recipe arm, the command line, a compared arm, then the data this command prepares."""
    data = [f"data.path={data_folder(args)}"] + ([f"data.subsample={args.train}"] if args.track == "sudoku" else [])
    return merged([f"preset={args.track}_cpu"], args.recipe, overrides, arm.overrides if arm else [], data)


def recipe_name(args: argparse.Namespace) -> str:
    arm = f" with `{accuracy.display(Path(args.arm))}`" if args.arm else ""
    return f"`preset={args.track}_cpu`{arm}"


def rung_of(args: argparse.Namespace, overrides: list[str]) -> accuracy.Rung:
    """accuracy.py's rung (budget, seeds, runs under --run-dir or runs/puzzles/PRESET-HASH)."""
    return accuracy.rung_of(args, overrides, None if args.run_dir and not args.compare else Path(args.run_dir or RUNS))


def prepare(args: argparse.Namespace) -> HeldOut:
    print(f"[data] {args.track}: preparing {data_folder(args)}", flush=True)
    return sudoku_data(args) if args.track == "sudoku" else maze_data(args)


def data_note(args: argparse.Namespace, held: HeldOut) -> list[str]:
    return [f"- {line}" for line in held.lines] + [f"- data folder `{accuracy.display(held.folder)}` (test.csv: every held-out "
                                                   "puzzle, bands interleaved; bands.json)"]


# ------------------------------------------------------------------------------------------------ main


def rung_main(args: argparse.Namespace, overrides: list[str], argv: list[str]) -> int:
    rung = rung_of(args, recipe(args, overrides))
    held = prepare(args)
    print(f"[1/3] training {rung.preset}, seeds {rung.seeds}, in {accuracy.display(rung.root)}", flush=True)
    runs = accuracy.train_rung(args, rung)
    curve = rung.root / "learning_curve.png"
    accuracy.learning_curve(runs, rung.config.train.global_batch, curve, CURVES)

    config = model_config(runs[0].run_dir)
    trained = config["halt_max_steps"]
    print(f"[2/3] predicting {sum(map(len, held.bands.values()))} held-out puzzles at {sorted({trained, *args.sweep})} "
          "supervision steps", flush=True)
    measured = measure(args, runs, held, sorted({trained, *args.sweep}), args.track)
    sweep_plot = rung.root / "recursion_curve.png"
    recursion_curve(held, measured, config, sweep_plot)
    print(f"[2/3] and at {args.trajectory_list} trajectories per puzzle", flush=True)
    by_trajectories = measure_trajectories(args, runs, held, trained, args.track, measured[trained])

    print("[3/3] recording", flush=True)
    rising = sum(accuracy.still_rising(accuracy.read_metrics(r.run_dir)) for r in runs)
    device, rate = accuracy.machine(runs)
    body = [
        *accuracy.budget_lines(rung, runs), accuracy.limit_line(runs[0].run_dir, rate, runs),
        f"- recipe: {recipe_name(args)}; model T={config['T']} n={config['n']}, "
        f"{trained} supervision steps, hidden {config['hidden']}, mixer {config['mixer']}",
        *data_note(args, held),
        f"- learning curve `{accuracy.display(curve)}` (training exact accuracy still rising over the last fifth in {rising} "
        f"of {len(runs)} seeds); recursion curve `{accuracy.display(sweep_plot)}`",
        "",
        f"At the trained {trained} supervision steps: mean over seeds (lowest-highest seed; 95% bootstrap interval over puzzles):",
        "",
        *band_table(args.track, held, measured[trained]),
        "",
        "Exact accuracy against the supervision steps at inference (mean over seeds; no halting, the last step's "
        "answer). Cost per puzzle: one model call per step, each T x (n + 1) block applications:",
        "",
        *sweep_table(held, measured, config),
        "",
        f"Exact accuracy against trajectories per puzzle at the trained {trained} steps (mean over seeds): trajectory 1 is "
        f"the deterministic run, the others add {args.noise:g} x N(0, 1) to the latent after each z-update (seeded per "
        "puzzle), and the trajectory whose last step has the highest halting probability answers (PTRM's rule):",
        "",
        *trajectory_table(held, by_trajectories, config),
    ]
    publish_entry(__file__, args, argv, device, f"{args.track}: held-out exact and cell accuracy per band and against supervision steps at "
            "inference, over seeds, with bootstrap intervals over puzzles", body)
    return 0


def compare_main(args: argparse.Namespace, overrides: list[str], argv: list[str], arms: list[accuracy.Arm]) -> int:
    from arc_trm.errors import ConfigError

    rungs = [rung_of(args, recipe(args, overrides, arm)) for arm in arms]
    if len({r.budget * r.config.train.global_batch for r in rungs}) != 1:
        raise ConfigError("the arms' budgets differ in example-steps (their train.global_batch differ); give --example-steps")
    held = prepare(args)
    scores, described, runs = [], [], []
    for arm, rung in zip(arms, rungs):
        print(f"arm {arm.name}: {rung.preset} {' '.join(rung.overrides)} in {accuracy.display(rung.root)}", flush=True)
        runs = accuracy.train_rung(args, rung)
        config = model_config(runs[0].run_dir)
        scores.append(measure(args, runs, held, [config["halt_max_steps"]], args.track)[config["halt_max_steps"]]["exact"])
        described.append(f"`{arm.name}`: {' '.join(f'`{o}`' for o in arm.overrides) or '(no overrides)'}; T={config['T']} "
                         f"n={config['n']}, measured at its {config['halt_max_steps']} supervision steps; runs "
                         f"`{accuracy.display(rung.root)}`")
    lines = [f"- recipe: {recipe_name(args)}", f"- A: {described[0]}", f"- B: {described[1]}",
             f"- budget: {rungs[0].budget * rungs[0].config.train.global_batch:,} example-steps per seed; seeds {rungs[0].seeds}",
             *data_note(args, held), "",
             "| band | puzzles | A exact | B exact | B - A (95% paired bootstrap interval) | puzzles B better / worse | verdict |",
             "| --- | ---: | ---: | ---: | --- | --- | --- |"]
    for name, rows in band_views(held):
        if not rows:
            continue
        d = ladder.paired_difference(scores[0], scores[1], rows)
        lines.append(d.row(name))
    publish_entry(__file__, args, argv, accuracy.machine(runs)[0], f"{args.track}: held-out exact accuracy of two arms on the same recipe, data "
            "and seeds, and B - A per band with a per-puzzle paired bootstrap interval (each puzzle's exact score "
            "averaged over seeds)", lines)
    return 0


@exit_on_user_error
def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args, overrides = parse_args(argv)  # before torch loads (arc_trm.config): a bad option is one line at once
    from arc_trm.config import load_config
    from arc_trm.errors import ConfigError, UserError

    args.recipe = accuracy.read_arm(args.arm).overrides if args.arm else []
    arms = [accuracy.read_arm(path) for path in args.arms] if args.compare else [None]
    for arm in arms:  # a bad override or arm is one line now, not after the data was generated
        try:
            load_config(recipe(args, overrides, arm))
        except UserError as error:
            if arm is None:
                raise
            raise ConfigError(f"{arm.name}: {error}") from None
    return compare_main(args, overrides, argv, arms) if args.compare else rung_main(args, overrides, argv)


if __name__ == "__main__":
    sys.exit(main())
