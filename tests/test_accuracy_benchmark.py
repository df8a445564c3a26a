"""benchmarks/accuracy.py's plumbing on a tiny budget: it trains to a budget of work, predicts both
held-out groups, chooses on the validation half, writes a well-formed RESULTS entry and a learning
curve, and `compare` prints a paired interval. Nothing here is about accuracy (that is a measured
figure in benchmarks/RESULTS.md, never a test threshold)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import accuracy as benchmark  # noqa: E402

SMALL = [
    "preset=tiny", "data.max_tasks=4", "data.num_aug=2", "data.hold_out_training_tests=true", "model.hidden=16",
    "model.heads=2", "model.halt_max_steps=2", "train.global_batch=8", "run.eval_every=3", "run.eval_aug=2",
    "run.tracker=none", "run.log_every=1",
]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def accuracy(*arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "benchmarks/accuracy.py", *arguments], cwd=ROOT, capture_output=True,
                          text=True, timeout=600, env=ENV)


def test_a_work_budget_writes_an_entry_with_both_groups_and_a_curve(tmp_path):
    results, runs = tmp_path / "RESULTS.md", tmp_path / "runs"
    arguments = ["--example-steps", "44", "--seeds", "2", "--parallel", "2", "--run-dir", str(runs), "--versions", "1,all", "--steps", "1,all",
                 "--results", str(results), *SMALL]
    done = accuracy(*arguments)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    text = results.read_text()
    assert re.search(r"^## \d{4}-\d\d-\d\d \d\d:\d\d UTC: accuracy\.py$", text, re.M)
    assert "measured matmul rate" in text and "- command: `python benchmarks/accuracy.py" in text
    # 44 example-steps at batch 8 round up to 6 optimizer steps = 48 example-steps, for each seed
    assert "- budget: 6 optimizer steps x global batch 8 = 48 example-steps per seed" in text
    for seed in (0, 1):
        assert re.search(rf"  - seed {seed}: 6 steps = 48 example-steps in [\d.]+ min of training", text)
        assert (runs / f"seed_{seed}" / "model" / "weights.safetensors").exists()
    # both groups in the protocol's table, each split into halves, the chosen cell named
    for group in ("evaluation", "training"):
        row = re.search(rf"^\| {group} \| 4 \((\d) / (\d)\) \| .*`(\w+)`, (\d) versions x (\d) steps", text, re.M)
        assert row and int(row[1]) + int(row[2]) == 4, group
    assert "a maximum read off this table is an oracle chosen on the test tasks" in text
    assert re.search(r"still rising over the last fifth in [012] of 2 seeds", text)
    cells = re.findall(r"^\| (\d) \| (\d) \| 1 \| (\w+) \| ([\d,]+) \|", text, re.M)
    # versions x steps x 3 policies, and poe (its log-probabilities are the largest setting's) there only
    assert len(cells) == 2 * 2 * 3 + 1 and [c[:3] for c in cells if c[2] == "poe"] == [("3", "2", "poe")]
    # each smaller setting is a subset of the one prediction: candidates scale with versions x steps
    count = {(v, st): int(n.replace(",", "")) for v, st, _, n in cells}
    assert count[("3", "2")] == 2 * count[("3", "1")] == 3 * count[("1", "2")] == 6 * count[("1", "1")]
    assert [p.name for p in (runs / "seed_0" / "predict").glob("*/*")] == ["aug3_steps2"]
    assert (runs / "learning_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    metrics = [json.loads(line) for line in (runs / "seed_0" / "metrics.jsonl").read_text().splitlines()]
    evaluations = [m for m in metrics if "eval/pass@2" in m]
    assert evaluations and all("eval_training/pass@2" in m and "eval_both/validation_pass@2" in m for m in evaluations)
    # both groups together are 4 + 4 tasks: their pass@2 is the groups' mean
    assert all(m["eval_both/pass@2"] == pytest.approx((m["eval/pass@2"] + m["eval_training/pass@2"]) / 2) for m in evaluations)

    # a re-run trains nothing more: each seed is at its budget
    again = accuracy(*arguments)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert "seed(s) of" not in again.stdout and "arc_trm.train" not in again.stdout
    assert text.count("accuracy.py\n") + 1 == results.read_text().count("accuracy.py\n")


def test_test_time_compute_cells_are_subsets_of_one_noisy_prediction_past_the_trained_steps(tmp_path):
    results, runs = tmp_path / "RESULTS.md", tmp_path / "runs"
    done = accuracy("--optimizer-steps", "4", "--run-dir", str(runs), "--versions", "all", "--steps", "all,4",
                    "--trajectories", "1,2", "--noise", "0.5", "--results", str(results), *SMALL)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    text = results.read_text()
    cells = re.findall(r"^\| 3 \| (\d) \| (\d) \| (\w+) \| ([\d,]+) \|", text, re.M)
    # steps 2 (trained) and 4 x trajectories 1 and 2 x the three policies; no poe (its log-probabilities are
    # of the deterministic run alone)
    assert sorted({c[:2] for c in cells}) == [("2", "1"), ("2", "2"), ("4", "1"), ("4", "2")] and len(cells) == 12
    assert "poe" not in {c[2] for c in cells}
    count = {(steps, k): int(n.replace(",", "")) for steps, k, _, n in cells}
    assert count[("4", "2")] == 2 * count[("4", "1")] == 2 * count[("2", "2")] == 4 * count[("2", "1")]
    assert [p.name for p in (runs / "seed_0" / "predict").glob("*/*")] == ["aug3_steps4_traj2_noise0.5"]
    # each other setting is paired against the default (trained steps, one trajectory) on both groups,
    # its cost as a multiple of the default's
    rows = re.findall(r"^\| 3 versions x (\d) steps( x 2 trajectories)? \| ([\d.]+)x \| (.*) \|$", text, re.M)
    assert [(r[0], bool(r[1]), r[2]) for r in rows] == [("2", True, "2.0"), ("4", False, "2.0"), ("4", True, "4.0")]
    for *_, figures in rows:
        pairs = re.findall(r"([+-][\d.]+) points \(([+-][\d.]+) to ([+-][\d.]+)\), \d / \d", figures)
        assert len(pairs) == 2 and all(float(low) <= float(d) <= float(high) for d, low, high in pairs)


def test_compare_prints_a_paired_interval(tmp_path):
    results = tmp_path / "RESULTS.md"
    (tmp_path / "a.yaml").write_text("name: reference vote\npredict: {policy: reference}\n")
    (tmp_path / "b.yaml").write_text("predict: {policy: halt_weighted}\n")
    done = accuracy("compare", str(tmp_path / "a.yaml"), str(tmp_path / "b.yaml"), "--optimizer-steps", "4",
                    "--results", str(results), "--run-dir", str(tmp_path / "runs"), *SMALL)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    text = results.read_text()
    assert "- A: `reference vote`" in text and "- B: `b`" in text
    rows = re.findall(r"^\| (evaluation|training) \| 4 \| [\d.]+% \| [\d.]+% \| ([+-][\d.]+) points \(([+-][\d.]+) to ([+-][\d.]+)\)",
                      text, re.M)
    assert [r[0] for r in rows] == ["evaluation", "training"]
    for _, difference, low, high in rows:
        assert float(low) <= float(difference) <= float(high)
    # the arms differ only in the vote: they share one training run, under --run-dir
    assert text.count("runs `") == 2 and len(set(re.findall(r"runs `([^`]+)`", text))) == 1
    assert [p.name for p in (tmp_path / "runs").iterdir()] == [p.name for p in (tmp_path / "runs").glob("tiny-*")] != []


def test_compare_measures_the_kept_best_model_of_the_same_runs_and_each_test_half(tmp_path):
    """best_model.yaml measures run.dir/model_best of the very runs last_model.yaml measures the end of; since
    the best was chosen on the evaluation group's validation half, each group's test half gets a row too."""
    results, runs = tmp_path / "RESULTS.md", tmp_path / "runs"
    done = accuracy("compare", "benchmarks/arms/last_model.yaml", "benchmarks/arms/best_model.yaml", "--optimizer-steps", "6",
                    "--results", str(results), "--run-dir", str(runs), *SMALL, "run.eval_every=2")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    text = results.read_text()
    assert "the model `run.keep_best` kept (`model_best`)" in text and len(set(re.findall(r"runs `([^`]+)`", text))) == 1
    rows = re.findall(r"^\| (evaluation|training)(, test half)? \| (\d) \|", text, re.M)
    assert [r[0] for r in rows if not r[1]] == ["evaluation", "training"] and [r[0] for r in rows if r[1]] != []
    seed = next(runs.glob("tiny-*")) / "seed_0"
    selected = json.loads((seed / "model_best" / "data.json").read_text())["selected"]["step"]
    assert sorted(p.name for p in (seed / "predict").iterdir()) == [f"best_step_{selected}", "step_6"]


def test_an_arm_measuring_the_best_model_must_keep_it(tmp_path):
    (tmp_path / "a.yaml").write_text("predict: {model: best}\n")
    done = accuracy("compare", "benchmarks/arms/unchanged.yaml", str(tmp_path / "a.yaml"), "--optimizer-steps", "4",
                    "--no-record", "--run-dir", str(tmp_path / "never"), "preset=tiny")
    assert done.returncode == 2 and done.stderr.strip() == f"error: {tmp_path / 'a.yaml'}: predict.model: best needs run.keep_best=true in the overrides"
    assert not (tmp_path / "never").exists()


@pytest.mark.parametrize("option", [
    ["--versions", "abc"], ["--steps", "0"], ["--versions", "-3"], ["--batch-size", "0"], ["--minutes", "nan"],
    ["--launch", "'"], ["--results", "."], ["--seeds", "0"], ["--example-steps", "0"], ["--trajectories", "2,4"],
    ["--trajectories", "1,x"], ["--noise", "0"],
])
def test_bad_options_are_one_line_before_any_work(option, tmp_path):
    done = accuracy(*option, "--run-dir", str(tmp_path / "never"), "preset=tiny")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines() == [done.stderr.strip()] and done.stderr.startswith(f"error: {option[0]}")
    assert not (tmp_path / "never").exists()


def test_compare_arms_of_other_budgets_is_one_line_and_exit_2(tmp_path):
    """It used to exit with code 1 (sys.exit with a message), not the usage error's 2."""
    (tmp_path / "a.yaml").write_text("overrides: [train.global_batch=8]\n")
    (tmp_path / "b.yaml").write_text("overrides: [train.global_batch=16]\n")
    done = accuracy("compare", str(tmp_path / "a.yaml"), str(tmp_path / "b.yaml"), "--optimizer-steps", "4", "--no-record",
                    "--run-dir", str(tmp_path / "never"), "preset=tiny")
    assert done.returncode == 2 and done.stderr.strip().splitlines() == [done.stderr.strip()], done.stderr[-2000:]
    assert done.stderr.startswith("error: the arms' budgets differ") and not (tmp_path / "never").exists()


def test_the_limit_is_not_stated_when_a_run_beats_the_measured_matmul_rate(tmp_path):
    """A run faster than the matmul rate allows means the rate was measured on a busy machine: the entry must
    not print an impossible share (164% of the limit was once recorded)."""
    from dataclasses import asdict

    from arc_trm.model.flops import flops_per_example_step
    from arc_trm.model.trm import ModelConfig

    config = ModelConfig(hidden=16, heads=2)
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text(json.dumps(asdict(config)))
    flops = flops_per_example_step(config, training=True)
    runs = [benchmark.SeedRun(seed=0, run_dir=tmp_path, examples_per_s=100.0)]
    assert "(50% of it)" in benchmark.limit_line(tmp_path, 200.0 * flops, runs)
    busy = benchmark.limit_line(tmp_path, 50.0 * flops, runs)
    assert "not stated" in busy and "%" not in busy


@pytest.mark.parametrize("arm_file", sorted((ROOT / "benchmarks" / "arms").glob("*.yaml")), ids=lambda p: p.stem)
def test_every_arm_file_reads_and_its_overrides_make_a_valid_config(arm_file):
    # an arm with a misspelt field would otherwise fail only when a benchmark reaches it, after hours of another arm
    from arc_trm.config import load_config

    load_config(["preset=arc1_8x8_cpu", *benchmark.read_arm(str(arm_file)).overrides])  # every field and range is checked


def test_runs_are_named_by_the_resolved_training_settings():
    """An override restating the preset's value names the preset's runs; another value, other runs (so an
    edited preset never reuses, nor fails to resume, the runs of its old values); the seed, the budget and a
    path's checkout do not change the name."""
    from arc_trm.config import load_config

    args = benchmark.parse_args([])[0]
    root = benchmark.rung_of(args, ["preset=arc1_8x8_cpu"]).root
    num_aug = load_config(["preset=arc1_8x8_cpu"]).data.num_aug
    assert benchmark.rung_of(args, ["preset=arc1_8x8_cpu", f"data.num_aug={num_aug}"]).root == root
    assert benchmark.rung_of(args, ["preset=arc1_8x8_cpu", "train.seed=2", "train.steps=10"]).root == root
    assert benchmark.rung_of(args, ["preset=arc1_8x8_cpu", f"data.num_aug={num_aug + 1}"]).root != root
    assert benchmark.rung_of(args, ["preset=arc1_6x6_cpu"]).root.name.startswith("arc1_6x6_cpu-")
    inside = benchmark.rung_of(args, ["preset=arc1_8x8_cpu", f"train.init_from={ROOT / 'runs/x/model'}"]).root
    assert benchmark.rung_of(args, ["preset=arc1_8x8_cpu", "train.init_from=runs/x/model"]).root == inside != root
