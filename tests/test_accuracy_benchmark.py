"""benchmarks/accuracy.py's plumbing on a tiny budget: it trains, predicts, votes, scores, writes a
well-formed RESULTS entry and a learning curve. Nothing here is about accuracy (that is a measured
figure in benchmarks/RESULTS.md, never a test threshold)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_accuracy_benchmark_writes_an_entry_and_a_curve(tmp_path):
    results = tmp_path / "RESULTS.md"
    run_dir = tmp_path / "run"
    command = [
        sys.executable, "benchmarks/accuracy.py", "--minutes", "0.25", "--run-dir", str(run_dir),
        "--versions", "1,all", "--steps", "1,all", "--results", str(results),
        "preset=tiny", "data.max_tasks=4", "data.num_aug=2", "model.hidden=16", "model.heads=2",
        "model.halt_max_steps=2", "train.global_batch=8", "run.eval_every=3", "run.eval_aug=2",
        "run.tracker=none", "run.log_every=1",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    text = results.read_text()
    assert text.startswith("# Benchmark results\n")
    assert re.search(r"^## \d{4}-\d\d-\d\d \d\d:\d\d UTC: accuracy\.py$", text, re.M)
    for line in ("- device: ", "- command: `python benchmarks/accuracy.py", "- preset: `tiny`", "- budget: 0.25 min"):
        assert line in text
    assert re.search(r"\d[\d,]* optimizer steps = [\d,]+ example-steps", text)
    # one table row per (versions, steps) setting: 3 versions (identity + 2) are 'all' here
    rows = re.findall(r"^\| (\d+) \| (\d+) \| ([\d,]+) \|", text, re.M)
    assert [(v, s) for v, s, _ in rows] == [("1", "1"), ("1", "2"), ("3", "1"), ("3", "2")]
    # candidates: (tasks' test inputs) x versions x steps, so the settings' counts keep those ratios
    counts = [int(c.replace(",", "")) for _, _, c in rows]
    assert counts[1] == 2 * counts[0] and counts[3] == 2 * counts[2] and counts[2] == 3 * counts[0]
    for policy in ("reference", "halt_weighted", "first_halt", "poe"):
        assert f"- {policy}: " in text
    assert "`evaluation.score` on its submission.json: score " in text

    curve = run_dir / "learning_curve.png"
    assert curve.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (run_dir / "held_out" / "challenges.json").exists() and (run_dir / "held_out" / "solutions.json").exists()

    # a re-run spends no more training time: the budget is spent, the model is reused
    again = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600, env=env)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert "already spent" in again.stdout
    assert text.count("accuracy.py\n") + 1 == results.read_text().count("accuracy.py\n")
