"""Each config rule lives once, beside its field: the training config, a model's config.json and building
a model apply the same rule with the same words; `--help` shows it; saved configs keep loading."""

from __future__ import annotations

import ast
import re
from dataclasses import asdict
from pathlib import Path

import pytest

from arc_trm.config import config_help, load_config
from arc_trm.errors import ConfigError, DataError
from arc_trm.model import trm
from arc_trm.model.trm import TRM, ModelConfig, model_config_from


@pytest.mark.parametrize(
    "change, message",
    [
        ({"heads": 0}, "model.heads=0: must be an integer >= 1"),
        ({"rope_theta": 0.5}, "model.rope_theta=0.5: must be a finite number >= 1"),
        ({"halt_exploration_prob": 1.5}, "model.halt_exploration_prob=1.5: must be a finite number >= 0 and <= 1"),
        ({"T": 10**21}, "model.T=1000000000000000000000: must be an integer of at most 64 bits"),
        ({"mixer": "conv"}, "model.mixer must be attention or mlp_t"),
        ({"pos_encodings": "alibi"}, "model.pos_encodings must be rope, learned or none"),
        ({"forward_dtype": "fp8"}, "model.forward_dtype must be bfloat16, float16 or float32"),
        ({"hidden": 66}, "model.hidden must be divisible by model.heads"),
        ({"hidden": 12}, "model.hidden / model.heads must be even for rope (rotary pairs)"),
    ],
)
def test_a_model_rule_is_the_same_in_training_in_config_json_and_in_building(change, message):
    """The tiny preset's model (hidden 64, 4 heads) with one bad change, three ways in."""
    with pytest.raises(ConfigError) as in_training:
        load_config([f"model.{key}={value}" for key, value in change.items()])
    assert str(in_training.value).startswith(message)
    values = {**asdict(load_config([]).model), **change}
    with pytest.raises(DataError) as in_config_json:
        model_config_from(values, "model/config.json")
    assert str(in_config_json.value) == f"model/config.json: {in_training.value}"
    with pytest.raises(ConfigError, match=re.escape(str(in_training.value))):
        TRM(ModelConfig(**values))


def test_every_choice_of_a_model_field_builds_a_model():
    for mixer, pos_encodings in [("attention", "rope"), ("attention", "learned"), ("attention", "none"), ("mlp_t", "none")]:
        config = ModelConfig(hidden=16, heads=2, seq_len=4, puzzle_emb_len=1, mixer=mixer, pos_encodings=pos_encodings)
        assert TRM(config).config is config


def test_help_shows_each_fields_type_and_range():
    lines = {line.split("=")[0].strip(): line for line in config_help("cmd", "what").splitlines() if line.startswith("  ")}
    assert "  model.layers=2  (int; an integer >= 1)  Blocks in the one network f." == lines["model.layers"]
    assert "(float; a finite number >= 0 and < 1)" in lines["train.beta2"]
    assert "(int; an integer >= 0 and <= 4294967295)" in lines["train.seed"]
    assert "  model.mixer='attention'  (str)  'attention' or 'mlp_t'" in lines["model.mixer"]
    assert "  run.tracker='tensorboard'  (str)  Where metrics go" in lines["run.tracker"]


SAVED_TINY_CONFIG = """\
preset: tiny
model:
  vocab_size: 12
  seq_len: 900
  hidden: 64
  heads: 4
  expansion: 4.0
  layers: 2
  T: 2
  n: 2
  halt_max_steps: 4
  halt_exploration_prob: 0.1
  puzzle_emb_len: 4
  mixer: attention
  pos_encodings: rope
  rope_theta: 10000.0
  rms_eps: 1.0e-05
  forward_dtype: float32
data:
  track: arc
  tasks: arc1
  concept: ''
  max_tasks: 16
  num_aug: 16
  canvas: 10
  hold_out_training_tests: false
  translate: true
  path: ''
  subsample: 0
  max_test: 0
train:
  global_batch: 32
  grad_accum: 1
  steps: 400
  lr: 0.001
  lr_warmup_steps: 20
  lr_min_ratio: 1.0
  weight_decay: 0.1
  beta1: 0.9
  beta2: 0.95
  puzzle_emb_lr: 0.01
  puzzle_emb_weight_decay: 0.1
  ema: true
  ema_rate: 0.99
  compile: false
  seed: 0
  init_from: ''
  freeze_dense_steps: 0
  max_minutes: 0.0
  puzzle_table: sharded
run:
  dir: runs/tiny
  checkpoint_every: 100
  keep_checkpoints: 2
  eval_every: 0
  eval_aug: 4
  log_every: 10
  tracker: tensorboard
"""
"""A run directory's config.yaml as the default command wrote it before the rules moved beside the fields."""


def test_a_config_saved_before_loads_as_the_same_config(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(SAVED_TINY_CONFIG)
    assert load_config([f"config={path}"]) == load_config([])


def test_the_model_module_imports_neither_the_config_nor_the_checkpoint_module():
    """Both import trm.py; an import back, even inside a function, would be a hidden circle."""
    tree = ast.parse(Path(trm.__file__).read_text())
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    imported |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    assert not imported & {"arc_trm.config", "arc_trm.checkpoint"}
