"""Config presets, dotted overrides and their errors (one line, exit code 2 from the CLI)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from arc_trm.config import check_batch, load_config, preset_names, save_config_file
from arc_trm.distributed import free_port
from arc_trm.errors import ConfigError


def test_presets_load():
    assert {"tiny", "arc1", "arc2"} <= set(preset_names())
    arc1 = load_config(["preset=arc1"])
    assert (arc1.model.hidden, arc1.model.T, arc1.model.n, arc1.train.global_batch) == (512, 3, 4, 768)
    assert arc1.train.puzzle_emb_lr == 1e-2 and arc1.data.tasks == "arc1"
    assert load_config(["preset=arc2"]).data.tasks == "arc2"
    assert load_config([]).preset == "tiny"


def test_overrides_are_typed_and_applied_in_order():
    config = load_config(["train.lr=3e-4", "model.n=6", "train.ema=false", "run.dir=runs/x", "train.steps=1e3", "model.n=5"])
    assert config.train.lr == 3e-4 and isinstance(config.train.lr, float)
    assert config.model.n == 5 and config.train.ema is False
    assert config.run.dir == "runs/x" and config.train.steps == 1000


def test_flag_style_arguments_give_the_same_config():
    pairs = load_config(["preset=arc1", "train.max_minutes=5", "model.n=6", "train.ema=false"])
    flags = load_config(["--preset", "arc1", "--train.max-minutes", "5", "--model.n=6", "--train.ema", "false"])
    assert flags == pairs and flags.train.max_minutes == 5.0


def test_a_trailing_flag_without_a_value_is_one_error(capsys):
    from arc_trm.train import main

    with pytest.raises(SystemExit) as exit_info:
        main(["preset=tiny", "--train.steps"])
    assert exit_info.value.code == 2 and capsys.readouterr().err == "error: argument '--train.steps' needs a value\n"


@pytest.mark.parametrize(
    "arg,message",
    [
        ("model.nope=1", "unknown config key 'model.nope'"),
        ("nosection.x=1", "unknown config key 'nosection.x'"),
        ("model.n=abc", "model.n: cannot read 'abc' as int"),
        ("model.n=1.5", "model.n: cannot read '1.5' as int"),
        ("train.ema=maybe", "train.ema: cannot read 'maybe' as bool"),
        ("preset=nothing", "unknown preset 'nothing'"),
        ("model.mixer=conv", "model.mixer must be attention or mlp_t"),
        ("justaword", "is not key=value"),
        ("train.lr=nan", "train.lr=nan: must be a finite number > 0"),
        ("train.lr=inf", "train.lr=inf: must be a finite number > 0"),
        ("train.max_minutes=-5", "train.max_minutes=-5.0: must be a finite number >= 0"),
        ("model.layers=0", "model.layers=0: must be an integer >= 1"),
        ("model.heads=0", "model.heads=0: must be an integer >= 1"),
        ("run.log_every=0", "run.log_every=0: must be an integer >= 1"),
        ("train.beta2=1", "train.beta2=1.0: must be a finite number >= 0 and < 1"),
        ("data.canvas=31", "data.canvas=31: must be an integer >= 1 and <= 30"),
        ("model.halt_exploration_prob=1.5", "model.halt_exploration_prob=1.5: must be a finite number >= 0 and <= 1"),
        ("model.hidden=12", "model.hidden / model.heads must be even for rope"),
        ("train.seed=4294967296", "train.seed=4294967296: must be an integer >= 0 and <= 4294967295"),
        ("model.rope_theta=1e-300", "model.rope_theta=1e-300: must be a finite number >= 1"),
    ],
)
def test_bad_config_is_one_clear_error(arg, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")):
        load_config([arg])


def test_batch_must_split_over_processes_and_accumulation():
    config = load_config(["train.global_batch=32", "train.grad_accum=2"])
    assert check_batch(config, world=2) == 8
    with pytest.raises(ConfigError, match="not divisible"):
        check_batch(config, world=3)


def test_cli_reports_config_errors_without_traceback(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "arc_trm.train", "model.nope=1", f"run.dir={tmp_path}/run"],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.strip().startswith("error: unknown config key 'model.nope'")
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()


def test_a_saved_config_file_is_a_base_for_overrides(tmp_path):
    """config=FILE (a run's config.yaml) gives back the same config; later overrides still apply."""
    config = load_config(["preset=arc1", "train.lr=3e-4", "model.n=6"])
    path = tmp_path / "config.yaml"
    save_config_file(config, path)
    assert load_config([f"config={path}"]) == config
    assert load_config([f"config={path}", "train.steps=7"]).train.steps == 7
    with pytest.raises(ConfigError, match="not both"):
        load_config([f"config={path}", "preset=tiny"])
    path.write_text("- not a config\n")
    with pytest.raises(ConfigError, match="not a config"):
        load_config([f"config={path}"])
    with pytest.raises(ConfigError, match="cannot read"):
        load_config([f"config={tmp_path / 'missing.yaml'}"])


def test_every_numeric_field_has_a_range():
    from dataclasses import fields

    from arc_trm.config import SECTIONS, Config
    from arc_trm.config_fields import field_types, range_of

    config = Config()
    numeric = {
        f"{name}.{f.name}": f
        for name in SECTIONS
        for f in fields(getattr(config, name))
        if field_types(getattr(config, name))[f.name] in (int, float)
    }
    assert {"model.layers", "model.expansion", "data.canvas", "train.lr", "run.log_every"} <= set(numeric)
    assert [key for key, f in numeric.items() if range_of(f) is None] == []


def test_a_config_error_under_accelerate_launch_is_printed_once(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
         "--main_process_port", str(free_port()), "-m", "arc_trm.train", "model.nope=1", f"run.dir={tmp_path}/run"],
        capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert result.returncode != 0
    assert result.stderr.count("error: unknown config key 'model.nope'") == 1
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("rank, waits", [("0", False), ("1", True)])
def test_a_config_error_waits_on_other_ranks_so_the_first_can_print_it(rank, waits, monkeypatch, capsys):
    # The launcher stops every worker when one exits: a second process that exited at once could stop
    # the first before it printed (seen in CI), so it waits, and prints the error itself if still alive.
    from arc_trm import errors

    slept = []
    monkeypatch.setenv("RANK", rank)
    monkeypatch.setattr(errors.time, "sleep", slept.append)
    with pytest.raises(SystemExit) as exit_:
        errors.report("unknown config key 'model.nope'", every_process=False)
    assert exit_.value.code == 2
    assert slept == ([errors.CONFIG_ERROR_WAIT_S] if waits else [])
    assert capsys.readouterr().err == "error: unknown config key 'model.nope'\n"


@pytest.mark.parametrize("module", ["arc_trm.train", "arc_trm.predict"])
def test_help_lists_every_field_with_its_default_and_meaning(module):
    from dataclasses import fields

    from arc_trm.config import SECTIONS, Config, preset_names
    from arc_trm.predict import PredictArgs

    result = subprocess.run([sys.executable, "-m", module, "--help"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stderr == ""
    if module == "arc_trm.train":
        keys = [f"{s}.{f.name}" for s in SECTIONS for f in fields(getattr(Config(), s))]
        assert all(name in result.stdout for name in preset_names())
    else:
        keys = [f.name for f in fields(PredictArgs())]
    lines = {line.split("=")[0].strip(): line for line in result.stdout.splitlines() if line.startswith("  ")}
    assert sorted(lines) == sorted(keys)
    undocumented = [key for key, line in lines.items() if line.rstrip().endswith(")")]
    assert undocumented == []


def test_every_accelerate_tracker_is_accepted_and_a_missing_package_is_named(tmp_path):
    from accelerate.tracking import get_available_trackers
    from accelerate.utils import LoggerType

    from arc_trm.config import TRACKERS

    assert set(TRACKERS) == {t.value for t in LoggerType} - {"all"} | {"none"}
    missing = next((t for t in TRACKERS if t != "none" and t not in {a.value for a in get_available_trackers()}), None)
    if missing is None:
        pytest.skip("every tracker package is installed here")
    result = subprocess.run([sys.executable, "-m", "arc_trm.train", f"run.tracker={missing}", f"run.dir={tmp_path}/run"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and result.stderr == f"error: run.tracker={missing}: its package is not installed (pip install {missing}), or use run.tracker=none\n"


def test_a_tiny_expansion_builds_a_model_that_runs():
    """model.expansion=0.001 is within its range (> 0); its SwiGLU width rounded to 0 and divided by it."""
    import torch

    from arc_trm.model.layers import swiglu_width
    from arc_trm.model.trm import TRM

    config = load_config(["model.expansion=0.001", "model.hidden=32", "model.heads=2", "model.seq_len=4", "model.puzzle_emb_len=1"])
    assert swiglu_width(32, 0.001) == 256 and swiglu_width(512, 4.0) == 1536  # the reference's width unchanged
    model = TRM(config.model)
    y, z = model.initial_state(1)
    out = model(y, z, torch.zeros(1, 4, dtype=torch.int32), None)
    assert torch.isfinite(out.logits.float()).all()


@pytest.mark.parametrize(
    "text, key, line",
    [("train:\n  lr: 1e-3\n  lr: 1e-2\n", "lr", 3), ("train:\n  lr: 1e-3\nmodel:\n  n: 2\ntrain:\n  steps: 5\n", "train", 5)],
)
def test_a_key_given_twice_in_a_config_or_preset_is_refused(tmp_path, monkeypatch, text, key, line):
    path = tmp_path / "dup.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=f"{path}: key '{key}' appears twice \\(again on line {line}\\)"):
        load_config([f"config={path}"])
    monkeypatch.setattr("arc_trm.config.PRESETS_DIR", tmp_path)
    with pytest.raises(ConfigError, match=f"{path}: key '{key}' appears twice"):
        load_config(["preset=dup"])
