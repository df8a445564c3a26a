"""run.keep_best: the evaluated model that scores best on the validation half is exported beside the last."""

from __future__ import annotations

import os
import subprocess
import sys
from types import SimpleNamespace

import orjson
import torch
from safetensors.torch import load_file

import arc_trm.train as train_module
from arc_trm.config import load_config
from arc_trm.exported import DataInfo
from arc_trm.splits import half
from arc_trm.train import BEST, SELECTED, Evaluator, best_so_far


def test_a_validation_figure_as_good_or_better_replaces_the_kept_model(tmp_path, monkeypatch):
    exported = []
    monkeypatch.setattr(train_module, "export", lambda trainer, run_dir, name, selected: exported.append((run_dir, name, selected)))
    config = load_config([f"run.dir={tmp_path}", "run.keep_best=true"])
    evaluator = Evaluator(config, metrics=None)
    assert evaluator.best is None
    trainer = SimpleNamespace(step=0)
    for step, value in enumerate([0.1, 0.3, 0.3, 0.2, 0.5], start=1):
        trainer.step = 10 * step
        evaluator.keep_if_best(trainer, {"eval/pass@2": 1.0, "eval/validation_pass@2": value, "eval_training/validation_pass@2": 1.0})
    assert [(selected["step"], selected["value"]) for _, _, selected in exported] == [(10, 0.1), (20, 0.3), (30, 0.3), (50, 0.5)]
    assert {(run_dir, name, selected["metric"]) for run_dir, name, selected in exported} == {(tmp_path, BEST, "eval/validation_pass@2")}


def test_both_groups_validation_halves_together_are_selected_by_when_given(tmp_path, monkeypatch):
    exported = []
    monkeypatch.setattr(train_module, "export", lambda trainer, run_dir, name, selected: exported.append(selected))
    evaluator = Evaluator(load_config([f"run.dir={tmp_path}", "run.keep_best=true"]), metrics=None)
    for step, (alone, both) in enumerate([(0.0, 0.1), (0.0, 0.05), (0.0, 0.2)], start=1):
        evaluator.keep_if_best(SimpleNamespace(step=step), {"eval/validation_pass@2": alone, "eval_both/validation_pass@2": both})
    assert [(s["step"], s["metric"]) for s in exported] == [(1, "eval_both/validation_pass@2"), (3, "eval_both/validation_pass@2")]


def test_a_resumed_run_must_match_or_beat_the_model_it_kept(tmp_path):
    assert best_so_far(tmp_path / BEST) is None
    (tmp_path / BEST).mkdir()
    (tmp_path / BEST / "data.json").write_bytes(orjson.dumps(DataInfo(extra={SELECTED: {"step": 4, "metric": "m", "value": 0.25}}).to_json()))
    assert best_so_far(tmp_path / BEST) == 0.25
    assert Evaluator(load_config([f"run.dir={tmp_path}", "run.keep_best=true"]), metrics=None).best == 0.25


def test_a_run_keeps_its_best_evaluated_model_beside_the_last(tmp_path):
    run = tmp_path / "run"
    args = ["preset=tiny", "data.max_tasks=4", "data.num_aug=1", "model.hidden=16", "model.heads=2", "model.halt_max_steps=2",
            "train.global_batch=8", "train.steps=6", "train.lr_warmup_steps=0", "run.tracker=none", "run.log_every=1",
            "run.eval_every=2", "run.eval_aug=1", "run.keep_best=true", f"run.dir={run}"]
    result = subprocess.run([sys.executable, "-m", "arc_trm.train", *args], capture_output=True, text=True, timeout=600,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-2000:]
    lines = [orjson.loads(line) for line in (run / "metrics.jsonl").read_bytes().splitlines()]
    evaluations = [(m["step"], m["eval/validation_pass@2"]) for m in lines if "eval/validation_pass@2" in m]
    assert [step for step, _ in evaluations] == [2, 4, 6]  # every eval_every, then the last step's
    best = max(value for _, value in evaluations)
    last_best_step = max(step for step, value in evaluations if value == best)  # a tie keeps the later model
    selected = DataInfo.read(run / BEST / "data.json").extra[SELECTED]
    assert selected == {"step": last_best_step, "metric": "eval/validation_pass@2", "value": best}
    last = load_file(str(run / "model" / "weights.safetensors"))
    kept = load_file(str(run / BEST / "weights.safetensors"))
    assert all(torch.equal(last[k], kept[k]) for k in last) == (last_best_step == 6)
    held = DataInfo.read(run / "model" / "data.json").held_out
    assert any(half(task_id) == "validation" for task_id in held)  # the figure is over real tasks
