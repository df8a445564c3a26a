"""The exported model's description (data.json as `DataInfo`) and what `load_model` returns."""

from __future__ import annotations

import orjson
import pytest
import torch

from arc_trm.augment import sample_augmentation
from arc_trm.data.arc import puzzle_id
from arc_trm.errors import DataError
from arc_trm.exported import DATA_FILE, MODEL_FILES, DataInfo, PuzzleIndex, export_model, load_model
from arc_trm.model.trm import TRM, ModelConfig

ARC_FILE = {
    "track": "arc", "num_puzzle_ids": 10, "seq_len": 16, "canvas": 4, "task_ids": ["a", "b", "c"], "held_out": ["b"],
    "num_aug": 2, "seed": 7, "distinct_versions": {"c": [0, 2]}, "examples_per_epoch": 12, "skipped_tasks": [],
}


def test_a_written_file_reads_back_whole_with_its_other_keys_kept():
    info = DataInfo.from_json(ARC_FILE)
    assert (info.track, info.canvas, info.task_ids, info.held_out, info.num_aug, info.seed) == ("arc", 4, ("a", "b", "c"), ("b",), 2, 7)
    assert info.extra == {"examples_per_epoch": 12, "skipped_tasks": []}
    assert info.to_json() == ARC_FILE


def test_a_key_the_file_lacks_takes_its_default_and_defaults_are_not_written():
    info = DataInfo.from_json({"track": "sudoku", "num_puzzle_ids": 1, "seq_len": 81})
    assert (info.canvas, info.task_ids, info.versions, info.finetune_only, info.known_tasks) == (30, (), None, False, set())
    assert info.to_json() == {"track": "sudoku", "num_puzzle_ids": 1, "seq_len": 81}
    assert DataInfo.from_json({}).track == "arc"  # a file of no track is predicted as ARC


@pytest.mark.parametrize(("key", "value", "expected"), [
    ("canvas", "30", "a whole number >= 1"),
    ("num_aug", True, "a whole number >= 0"),  # a bool is not a count
    ("task_ids", ["a", 1], "a list of task ids"),
    ("versions", ["a"], "an object of task id -> list of [puzzle id, dihedral, colors]"),
])
def test_a_value_of_the_wrong_type_is_one_error_naming_the_file_and_key(tmp_path, key, value, expected):
    path = tmp_path / DATA_FILE
    path.write_bytes(orjson.dumps({**ARC_FILE, key: value}))
    with pytest.raises(DataError) as error:
        DataInfo.read(path)
    assert str(error.value) == f"{path}: {key!r} is {str(value)[:60]!r}, expected {expected}"


def test_the_index_follows_the_puzzle_id_scheme_and_keeps_only_distinct_versions():
    index = PuzzleIndex.from_data(DataInfo.from_json(ARC_FILE))
    assert index.canvas == 4 and list(index.versions) == ["a", "b", "c"]
    assert [v.k for v in index.versions["c"]] == [0, 2]
    for t, task_id in enumerate(["a", "b", "c"]):
        for version in index.versions[task_id]:
            assert version.puzzle_id == puzzle_id(t, version.k, 2)
            assert version.augmentation == sample_augmentation(7, t, version.k)


def test_load_model_returns_what_was_exported(tmp_path):
    torch.manual_seed(0)
    model = TRM(ModelConfig(hidden=32, heads=2, seq_len=16, puzzle_emb_len=1))
    table = torch.randn(10, 32)
    folder = export_model(tmp_path / "model", model, table, DataInfo.from_json(ARC_FILE))
    assert sorted(p.name for p in folder.iterdir()) == sorted(MODEL_FILES)
    loaded = load_model(tmp_path / "model")
    assert loaded.folder == folder and loaded.config == model.config and not loaded.model.training
    assert torch.equal(loaded.table.weights, table)
    assert loaded.data == DataInfo.from_json(ARC_FILE) and loaded.index == PuzzleIndex.from_data(loaded.data)
    state = model.state_dict()
    assert loaded.model.state_dict().keys() == state.keys()
    assert all(torch.equal(tensor, state[name]) for name, tensor in loaded.model.state_dict().items())
