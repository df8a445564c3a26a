"""The depth curriculum (train.depth_curriculum): its stages, the step each begins at, and a run that follows it."""

from __future__ import annotations

import os
import subprocess
import sys
from types import SimpleNamespace

import orjson
import pytest
import torch

from arc_trm.config import load_config
from arc_trm.curriculum import Stage, check_final_depth, parse_curriculum, stage_at
from arc_trm.errors import ConfigError
from arc_trm.model.trm import TRM, ModelConfig
from arc_trm.train import Trainer

CGAR = "0:1x2,0.3:2x4,0.6:3x6"


def test_the_stages_read_as_written():
    assert parse_curriculum(CGAR) == (Stage(0.0, 1, 2), Stage(0.3, 2, 4), Stage(0.6, 3, 6))
    assert parse_curriculum("") == () and parse_curriculum(" 0:3x4 ") == (Stage(0.0, 3, 4),)


@pytest.mark.parametrize(("text", "problem"), [
    ("0.1:1x2", "the first stage starts at 0"),
    ("0:1x2,0.6:2x4,0.3:3x6", "increase from 0 and stay below 1"),
    ("0:1x2,1:3x6", "increase from 0 and stay below 1"),
    ("0:1x0", "T and n >= 1"),
    ("0:1-2", "is not FRACTION:TxN"),
    ("0:ax2", "is not FRACTION:TxN"),
])
def test_a_malformed_curriculum_is_one_error_naming_the_key(text, problem):
    with pytest.raises(ConfigError, match=f"^train.depth_curriculum: .*{problem}"):
        load_config([f"train.depth_curriculum={text}"])


def test_the_last_stage_must_be_the_models_depth():
    check_final_depth(parse_curriculum(CGAR), 3, 6)
    with pytest.raises(ConfigError, match="the last stage is 3x6, the model's T x n is 3x4"):
        check_final_depth(parse_curriculum(CGAR), 3, 4)


def test_each_stage_begins_at_its_fraction_of_the_steps():
    stages = parse_curriculum(CGAR)
    depths = [(s.T, s.n) for s in (stage_at(stages, step, 10) for step in range(10))]
    assert depths == [(1, 2)] * 3 + [(2, 4)] * 3 + [(3, 6)] * 4


def test_the_trainer_applies_the_block_as_often_as_the_stage_says():
    """T cycles of n z-updates and one y-update: the block runs T x (n + 1) times per supervision step."""
    model = TRM(ModelConfig(hidden=16, heads=2, seq_len=4, vocab_size=12, puzzle_emb_len=1, T=3, n=6, forward_dtype="float32"))
    trainer = SimpleNamespace(curriculum=parse_curriculum(CGAR), config=load_config(["train.steps=10"]), raw_model=model, step=0)
    calls = []
    real_f = model.f
    model.f = lambda h, injection: calls.append(1) or real_f(h, injection)
    inputs = torch.zeros(1, 4, dtype=torch.long)
    applied = []
    for step in range(10):
        trainer.step = step
        Trainer.follow_curriculum(trainer)
        calls.clear()
        model(*model.initial_state(1), inputs, torch.zeros(1, 16))
        applied.append(len(calls))
    assert applied == [1 * 3] * 3 + [2 * 5] * 3 + [3 * 7] * 4


FAST = ["preset=tiny", "data.max_tasks=4", "data.num_aug=1", "model.hidden=16", "model.heads=2", "model.halt_max_steps=2",
        "train.global_batch=8", "train.steps=4", "train.lr_warmup_steps=0", "run.tracker=none", "run.log_every=1",
        "run.checkpoint_every=100", "model.T=2", "model.n=2"]


def train(run_dir, *extra) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "arc_trm.train", *FAST, f"run.dir={run_dir}", *extra],
                          capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})


def test_a_run_follows_the_curriculum_and_exports_the_models_depth(tmp_path):
    plain, staged = tmp_path / "plain", tmp_path / "staged"
    assert train(plain).returncode == 0
    result = train(staged, "train.depth_curriculum=0:1x1,0.5:2x2")
    assert result.returncode == 0, result.stderr[-2000:]
    losses = [[m["train/loss"] for m in map(orjson.loads, (run / "metrics.jsonl").read_bytes().splitlines()) if "train/loss" in m]
              for run in (plain, staged)]
    assert len(losses[0]) == len(losses[1]) == 4 and losses[0][0] != losses[1][0]  # step 1 ran at 1x1, not 2x2
    config = orjson.loads((staged / "model" / "config.json").read_bytes())
    assert (config["T"], config["n"]) == (2, 2)


def test_a_curriculum_that_ends_elsewhere_is_refused_before_training(tmp_path):
    result = train(tmp_path / "run", "train.depth_curriculum=0:1x1,0.5:3x3")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        "error: train.depth_curriculum: the last stage is 3x3, the model's T x n is 2x2; end the curriculum at the model's depth")
    assert not (tmp_path / "run" / "checkpoints").exists()
