"""The exported model opens with huggingface_hub's calls, and its fine-tuning-only slim copy."""

from __future__ import annotations

import json
import os
import re
import stat

import pytest
import torch

from arc_trm.errors import DataError
from arc_trm.exported import DataInfo, export_model, load_model
from arc_trm.model.trm import TRM, ModelConfig
from arc_trm.slim_export import folder_bytes, main, slim_export

SMALL = dict(hidden=32, heads=4, seq_len=16, vocab_size=12, T=2, n=2, puzzle_emb_len=4, forward_dtype="float32")


def exported(tmp_path, num_ids: int = 50):
    torch.manual_seed(0)
    model = TRM(ModelConfig(**SMALL))
    table = torch.randn(num_ids, 32)
    info = DataInfo(canvas=4, seq_len=16, task_ids=("a", "b"), num_aug=3, extra={"vocab_size": 12})
    return model, table, export_model(tmp_path / "model", model, table, info)


def test_an_export_opens_with_from_pretrained_and_saves_the_same_pair(tmp_path):
    model, _, folder = exported(tmp_path)
    loaded = TRM.from_pretrained(folder)
    assert loaded.config == model.config
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), model.state_dict().values()))
    loaded.save_pretrained(tmp_path / "saved")
    assert json.loads((tmp_path / "saved" / "config.json").read_text()) == json.loads((folder / "config.json").read_text())
    again = TRM.from_pretrained(tmp_path / "saved")
    assert all(torch.equal(a, b) for a, b in zip(again.state_dict().values(), model.state_dict().values()))


def test_the_slim_copy_holds_what_fine_tuning_reads(tmp_path):
    model, table, folder = exported(tmp_path, num_ids=5000)
    slim = slim_export(folder, tmp_path / "slim")
    slim_model, full_model = load_model(slim), load_model(folder)
    assert all(torch.equal(a, b) for a, b in zip(slim_model.model.state_dict().values(), full_model.model.state_dict().values()))
    assert slim_model.table.num_ids == 2 and torch.allclose(slim_model.table.mean_row(), full_model.table.mean_row())
    info = slim_model.data
    assert info.task_ids == () and info.known_tasks == set() and info.canvas == 4 and info.finetune_only
    assert info.seq_len == 16 and info.extra == {"vocab_size": 12} and info.source == str(folder.resolve())
    assert "task_ids" not in json.loads((slim / "data.json").read_text())
    table_file = "puzzle_table.safetensors"
    assert (slim / table_file).stat().st_size * 100 < (folder / table_file).stat().st_size
    assert folder_bytes(slim) < folder_bytes(folder)


def test_slim_export_of_a_missing_model_is_one_error_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([str(tmp_path / "nowhere"), "--out", str(tmp_path / "out")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "change, message",
    [
        ({"T": 2.5}, "T must be int, not 2.5"),
        ({"heads": True}, "heads must be int, not True"),
        ({"hidden": "32"}, "hidden must be int, not '32'"),
        ({"heads": -4}, "model.heads=-4: must be an integer >= 1"),
        ({"hidden": 10**6}, "does not fit"),  # would allocate about 50 GB before noticing
        ({"hidden": 2**40}, "no model of this size can be built"),
        ({"expansion": 1e300}, "no model of this size can be built"),  # torch's TypeError used to be a traceback
    ],
)
def test_a_config_json_of_wrong_types_or_sizes_is_one_error(tmp_path, capsys, change, message):
    _, _, folder = exported(tmp_path)
    config_file = folder / "config.json"
    config_file.write_text(json.dumps({**json.loads(config_file.read_text()), **change}))
    for load in (load_model, TRM.from_pretrained):
        with pytest.raises(DataError, match=re.escape(message)) as error:
            load(folder)
        assert str(error.value).startswith(f"{config_file}: ")
    with pytest.raises(SystemExit) as exit_info:
        main([str(folder), "--out", str(tmp_path / "slim")])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.startswith(f"error: {config_file}: ") and err.count("\n") == 1
    assert not (tmp_path / "slim").exists()


@pytest.mark.parametrize("missing", ["config.json", "weights.safetensors"])
def test_from_pretrained_names_a_missing_file(tmp_path, missing):
    _, _, folder = exported(tmp_path)
    (folder / missing).unlink()
    with pytest.raises(DataError, match=f"{folder}: not a saved TRM \\(no {missing}\\)"):
        TRM.from_pretrained(folder)


def test_exported_weights_are_readable_by_others(tmp_path):
    model, _, folder = exported(tmp_path)
    model.save_pretrained(tmp_path / "saved")
    mask = os.umask(0)
    os.umask(mask)
    for path in (folder / "weights.safetensors", folder / "puzzle_table.safetensors", tmp_path / "saved" / "weights.safetensors"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~mask, path
