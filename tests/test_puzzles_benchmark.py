"""benchmarks/puzzles.py's plumbing: rating bands and the maze threshold as documented, per-puzzle scores
checked against predict's report, arguments refused in one line, and (slow) a tiny budget on tiny
generated data writing a well-formed entry with its bands, recursion sweep, curves and comparisons.
Nothing here is about accuracy (a measured figure in benchmarks/RESULTS.md, never a test threshold)."""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import puzzles  # noqa: E402

TINY = ["model.hidden=16", "model.heads=2", "model.halt_max_steps=2", "train.global_batch=8", "train.compile=false",
        "run.eval_every=3", "data.max_test=4", "run.log_every=1"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
PUZZLE = ("4.....8.5.3..........7......2.....6.....8.4......1.......6.3.7.5..2.....1.4......",
          "417369825632158947958724316825437169791586432346912758289643571573291684164875293")


def bench(*arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "benchmarks/puzzles.py", *arguments], cwd=ROOT, capture_output=True, text=True,
                          timeout=900, env=ENV)


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_the_band_of_a_rating_is_as_documented():
    bands = puzzles.parse_bands("0,1-5,6-20,21-99,100+")
    assert [b.name for b in bands] == ["rating 0", "rating 1-5", "rating 6-20", "rating 21-99", "rating 100+"]
    expected = {0: "rating 0", 1: "rating 1-5", 5: "rating 1-5", 6: "rating 6-20", 20: "rating 6-20", 21: "rating 21-99",
                99: "rating 21-99", 100: "rating 100+", 10**6: "rating 100+"}
    assert {rating: [b.name for b in bands if b.holds(rating)] for rating in expected} == {r: [n] for r, n in expected.items()}
    assert not any(b.holds(100) for b in puzzles.parse_bands(puzzles.DEFAULT_BANDS))  # outside every default band


@pytest.mark.parametrize("text", ["0,0-5", "1-5,3", "0,5+,7", "3-1", "x", "1-", "-2", "2+-3", ""])
def test_bad_or_overlapping_bands_are_refused(text):
    with pytest.raises(ValueError):
        puzzles.parse_bands(text)


def test_the_maze_threshold_scales_maze_hard_by_the_cell_count():
    assert puzzles.scaled_min_length(30) == 110  # Maze-Hard's own
    assert [puzzles.scaled_min_length(side) for side in (9, 11, 15)] == [10, 15, 28]


def test_generated_training_is_split_evenly_over_the_min_ratings():
    assert puzzles.train_parts(1000, 4) == [250, 250, 250, 250]
    assert puzzles.train_parts(10, 4) == [3, 3, 2, 2]


def test_held_out_rows_are_interleaved_so_a_prefix_is_balanced():
    rows, where = puzzles.interleaved([["a0", "a1", "a2"], ["b0"], ["c0", "c1"]])
    assert rows == ["a0", "b0", "c0", "a1", "c1", "a2"]
    assert [[rows[i] for i in group] for group in where] == [["a0", "a1", "a2"], ["b0"], ["c0", "c1"]]


def test_a_later_override_replaces_an_earlier_one():
    """A compared arm's model.T=1 must win over the recipe's model.T=2 (a sorted list would keep both)."""
    assert puzzles.merged(["model.T=2", "model.n=3"], ["model.T=1"]) == ["model.T=1", "model.n=3"]


def test_another_checkout_of_the_repository_names_the_same_runs():
    """The run folder hashes a data.path inside the repository relative to it, so a clone or a git worktree
    finds the runs that the data it prepared under its own runs/ trained; a path elsewhere stays as given."""
    args = puzzles.parse_args(["maze"])[0]
    inside = puzzles.rung_of(args, ["preset=maze_cpu", f"data.path={ROOT / 'runs/puzzles/data/maze-x'}"])
    relative = puzzles.rung_of(args, ["preset=maze_cpu", "data.path=runs/puzzles/data/maze-x"])
    outside = puzzles.rung_of(args, ["preset=maze_cpu", "data.path=/elsewhere/runs/puzzles/data/maze-x"])
    assert inside.root == relative.root != outside.root
    assert inside.overrides == ["data.path=runs/puzzles/data/maze-x"]
    assert outside.overrides == ["data.path=/elsewhere/runs/puzzles/data/maze-x"]


def test_a_data_folder_is_named_by_its_files_content_not_their_place_or_time(tmp_path):
    """A copy of --data elsewhere, written later, prepares the same folder (and so resumes the same runs);
    one changed puzzle prepares another."""
    rows = "source,question,answer,rating\nx," + "." * 81 + "," + "1" * 81 + ",0\n"
    first, copy = tmp_path / "a", tmp_path / "b"
    for folder in (first, copy):
        folder.mkdir()
        for name in ("train.csv", "test.csv"):
            (folder / name).write_text(rows)
    os.utime(copy / "train.csv", ns=(1, 1))
    named = {folder: puzzles.sudoku_folder(puzzles.parse_args(["sudoku", "--data", str(folder)])[0]) for folder in (first, copy)}
    assert named[first] == named[copy]
    (copy / "test.csv").write_text(rows.replace(",0\n", ",1\n"))
    assert puzzles.sudoku_folder(puzzles.parse_args(["sudoku", "--data", str(copy)])[0]) != named[first]


def test_puzzle_scores_read_predictions_against_the_answers_and_the_report(tmp_path):
    wrong = PUZZLE[1][:-2] + PUZZLE[1][-1] + PUZZLE[1][-2]
    rows = [{"source": "s", "question": PUZZLE[0], "answer": PUZZLE[1], "rating": "0"}] * 3
    with (tmp_path / "predictions.csv").open("w", newline="") as handle:
        csv.writer(handle).writerows([["index", "prediction"], [0, PUZZLE[1]], [1, wrong]])  # row 2 missing
    (tmp_path / "report.json").write_text(json.dumps({"exact_accuracy": 1 / 3}))
    scores = puzzles.puzzle_scores("sudoku", rows, tmp_path)
    assert scores["exact"] == {"0": 1.0, "1": 0.0, "2": 0.0}
    assert scores["cell_accuracy"]["1"] == pytest.approx(79 / 81) and scores["cell_accuracy"]["2"] == 0.0
    assert scores["valid_solution"] == {"0": 1.0, "1": 0.0, "2": 0.0}
    (tmp_path / "report.json").write_text(json.dumps({"exact_accuracy": 2 / 3}))
    with pytest.raises(SystemExit, match="report.json"):  # rows misread: never a silent figure
        puzzles.puzzle_scores("sudoku", rows, tmp_path)


@pytest.mark.parametrize("arguments", [
    [], ["chess"], ["sudoku", "--bands", "0,0-5"], ["sudoku", "--steps-sweep", "0"], ["sudoku", "--data", "/nonexistent"],
    ["maze", "--size", "1"], ["maze", "--min-length", "121"], ["sudoku", "--train", "0"], ["sudoku", "data.path=x"],
    ["sudoku", "--arm", "/nonexistent.yaml"], ["sudoku", "model.hidden=abc"], ["maze", "--seeds", "0"],
    ["sudoku", "compare", "benchmarks/arms/unchanged.yaml"], ["sudoku", "--trajectories-sweep", "0"], ["maze", "--noise", "-1"],
])
def test_bad_arguments_are_one_line_and_exit_2_before_any_work(arguments, tmp_path):
    done = bench(*arguments, "--cache", str(tmp_path / "never"), "--run-dir", str(tmp_path / "never"))
    assert done.returncode == 2 and done.stderr.startswith("error: "), done.stderr[-2000:]
    assert done.stderr.strip().splitlines() == [done.stderr.strip()]
    assert not (tmp_path / "never").exists()


@pytest.mark.slow
def test_a_sudoku_rung_writes_an_entry_with_its_bands_sweep_and_curves(tmp_path):
    results, runs, cache = tmp_path / "RESULTS.md", tmp_path / "runs", tmp_path / "data"
    arguments = ["sudoku", "--train", "8", "--held-out", "4", "--bands", "0,1-5", "--optimizer-steps", "6", "--seeds", "2",
                 "--steps-sweep", "1,3", "--trajectories-sweep", "1,2", "--run-dir", str(runs), "--cache", str(cache),
                 "--results", str(results), *TINY]
    done = bench(*arguments)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    text = results.read_text()
    assert re.search(r"^## \d{4}-\d\d-\d\d \d\d:\d\d UTC: puzzles\.py$", text, re.M)
    assert "- budget: 6 optimizer steps x global batch 8 = 48 example-steps per seed" in text
    assert "- training: 8 generated puzzles, 2/2/2/2 at `--min-rating` 0/1/6/21" in text
    for band in ("rating 0", "rating 1-5", "all held out"):
        puzzles_in = 8 if band == "all held out" else 4
        assert re.search(rf"^\| {band} \| {puzzles_in} \| \d+ \| [\d.]+% \(seeds [\d.]+-[\d.]+%, 95% CI", text, re.M), band
    steps_part, trajectories_part = text.split("Exact accuracy against trajectories")
    sweep = re.findall(r"^\| (\d+)( \(trained\))? \| ([\d,]+) \| [\d,]+ \| [\d.]+% \| [\d.]+% \| [\d.]+% \|$", steps_part, re.M)
    # the trained 2 steps are always measured; each step applies the block T x (n + 1) = 2 x 4 times
    assert [(s, bool(t), int(b)) for s, t, b in sweep] == [("1", False, 8), ("2", True, 16), ("3", False, 24)]
    # trajectories at the trained 2 steps: each one more run of the puzzle
    trajectories = re.findall(r"^\| (\d+)( \(deterministic\))? \| ([\d,]+) \| [\d,]+ \| [\d.]+% \| [\d.]+% \| [\d.]+% \|$", trajectories_part, re.M)
    assert [(k, bool(d), int(b)) for k, d, b in trajectories] == [("1", True, 16), ("2", False, 32)]
    assert sorted(p.name for p in (runs / "seed_0" / "predict").glob("*/*")) == ["steps_1", "steps_2", "steps_2_traj2_noise0.1", "steps_3"]
    for name in ("learning_curve.png", "recursion_curve.png"):
        assert (runs / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # the held-out bands are what bands.json says: each puzzle's rating in its band, none in training
    [folder] = [f for f in cache.glob("sudoku-*") if (f / "bands.json").exists()]
    held = puzzles.load_held_out(folder)
    test, train = read_csv(folder / "test.csv"), read_csv(folder / "train.csv")
    bands = puzzles.parse_bands("0,1-5")
    for band in bands:
        assert len(held.bands[band.name]) == 4 and all(band.holds(int(test[row]["rating"])) for row in held.bands[band.name])
    assert len(train) == 8 and not {r["question"] for r in train} & {r["question"] for r in test}

    # a re-run trains and predicts nothing more
    again = bench(*arguments)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert "arc_trm.train" not in again.stdout and "arc_trm.predict" not in again.stdout
    assert results.read_text().count("UTC: puzzles.py") == 2


@pytest.mark.slow
def test_a_sudoku_comparison_with_a_data_folder_prints_a_paired_interval_per_band(tmp_path):
    data = tmp_path / "hard"
    made = subprocess.run([sys.executable, "-m", "arc_trm.data.sudoku", "generate", "--n", "12", "--min-rating", "0",
                           "--seed", "7", "--out", str(data)], cwd=ROOT, capture_output=True, text=True, env=ENV)
    assert made.returncode == 0, made.stderr[-2000:]
    results = tmp_path / "RESULTS.md"
    done = bench("sudoku", "compare", "benchmarks/arms/unchanged.yaml", "benchmarks/arms/no_recursion.yaml", "--data", str(data),
                 "--extreme", "5", "--train", "6", "--held-out", "3", "--bands", "0", "--optimizer-steps", "4",
                 "--run-dir", str(tmp_path / "runs"), "--cache", str(tmp_path / "data"), "--results", str(results), *TINY)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    text = results.read_text()
    assert "- A: `the recipe unchanged`: (no overrides); T=2 n=3" in text
    assert "- B: `no recursion (T=1, n=1)`: `model.T=1` `model.n=1`; T=1 n=1" in text
    assert f"- training: `{data}/train.csv` (6 puzzles)" in text
    rows = re.findall(r"^\| (.+?) \| (\d+) \| [\d.]+% \| [\d.]+% \| [+-][\d.]+ points \([+-][\d.]+ to [+-][\d.]+\) \| \d+ / \d+ \| ",
                      text, re.M)
    assert rows == [("rating 0", "3"), ("hard/test.csv first 5", "5"), ("all held out", "8")]
    assert len(list((tmp_path / "runs").glob("sudoku_cpu-*/seed_0/model"))) == 2  # one run per arm


@pytest.mark.slow
def test_a_maze_rung_reports_exact_and_the_valid_shortest_path_rate(tmp_path):
    results, runs = tmp_path / "RESULTS.md", tmp_path / "runs"
    done = bench("maze", "--size", "7", "--train", "10", "--held-out", "6", "--optimizer-steps", "4", "--steps-sweep", "4",
                 "--trajectories-sweep", "1", "--run-dir", str(runs), "--cache", str(tmp_path / "data"), "--results", str(results), *TINY)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    text = results.read_text()
    # side 7: round(110 x 49 / 900) = 6
    assert "- mazes: 10 training + 6 held out, side 7, shortest paths of more than 6 cells" in text
    assert "| band | puzzles | median path cells | exact accuracy | cell accuracy | valid_optimal_path |" in text
    assert re.search(r"^\| 7x7, path > 6 cells \| 6 \| \d+ \| [\d.]+% \(95% CI [\d.]+-[\d.]+%\) \| ", text, re.M)
    assert re.findall(r"^\| (\d+)(?: \(trained\))? \| ", text, re.M) == ["2", "4"]  # past the trained number too
    assert len(read_csv(tmp_path / "data" / "maze-7x7-path6-10+6" / "train.csv")) == 10
