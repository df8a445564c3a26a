"""The exported model opens with huggingface_hub's calls, and its fine-tuning-only slim copy."""

from __future__ import annotations

import json

import torch

from arc_trm.checkpoint import export_model, load_model
from arc_trm.model.trm import TRM, ModelConfig
from arc_trm.slim_export import folder_bytes, main, slim_export

SMALL = dict(hidden=32, heads=4, seq_len=16, vocab_size=12, T=2, n=2, puzzle_emb_len=4, forward_dtype="float32")


def exported(tmp_path, num_ids: int = 50):
    torch.manual_seed(0)
    model = TRM(ModelConfig(**SMALL))
    table = torch.randn(num_ids, 32)
    info = {"track": "arc", "canvas": 4, "seq_len": 16, "task_ids": ["a", "b"], "num_aug": 3, "seed": 0}
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
    slim_model, slim_table, info = load_model(slim)
    full_model, full_table, _ = load_model(folder)
    assert all(torch.equal(a, b) for a, b in zip(slim_model.state_dict().values(), full_model.state_dict().values()))
    assert slim_table.num_ids == 2 and torch.allclose(slim_table.mean_row(), full_table.mean_row())
    assert "task_ids" not in info and info["canvas"] == 4 and info["finetune_only"]
    table_file = "puzzle_table.safetensors"
    assert (slim / table_file).stat().st_size * 100 < (folder / table_file).stat().st_size
    assert folder_bytes(slim) < folder_bytes(folder)


def test_slim_export_of_a_missing_model_is_one_error_line(tmp_path, capsys):
    try:
        main([str(tmp_path / "nowhere"), "--out", str(tmp_path / "out")])
    except SystemExit as exit_info:
        assert exit_info.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and not (tmp_path / "out").exists()
