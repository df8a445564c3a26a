"""Importing reference TRM checkpoints: the reference's state-dict names -> our exported model.

A "reference checkpoint" here is one of our models saved under the reference's key names, exactly as
the reference code (SamsungSAILMontreal/TinyRecursiveModels) names them (written out below,
independently of the importer's own rename table), so the imported model must compute the same
outputs as the model it came from.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
import torch

from arc_trm.augment import Augmentation
from arc_trm.exported import load_model
from arc_trm.import_reference import import_reference, main
from arc_trm.model.puzzle_embedding import PuzzleEmbedding
from arc_trm.model.trm import TRM, ModelConfig

SMALL = ModelConfig(seq_len=100, hidden=64, heads=4, T=2, n=2)  # canvas 10, prefix 16 as the reference
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}

# identifiers.json as the reference writes it: index 0 blank, then `<task>` and `<task>|||t<d>|||<colour map>`
IDENTIFIERS = [
    "<blank>",
    "007bbfb7",
    "007bbfb7|||t3|||0472918365",
    "007bbfb7|||t6|||0198765432",
    "00d62c1b",
    "00d62c1b|||t1|||0213456789",
    "00d62c1b|||t0|||0987654321",
]


def reference_state_dict(model: TRM, table: PuzzleEmbedding, compiled: bool) -> dict[str, torch.Tensor]:
    """Our weights under the reference's names: `model.inner.` prefix (after `_orig_mod.`
    when compiled), H_init/L_init (bf16 buffers) for y_init/z_init, `L_level.layers.N.` for `blocks.N.`,
    the puzzle table as `puzzle_emb.weights`."""
    prefix = ("_orig_mod." if compiled else "") + "model.inner."
    state = {}
    for name, tensor in model.state_dict().items():
        if name == "y_init":
            ref, tensor = "H_init", tensor.to(torch.bfloat16)
        elif name == "z_init":
            ref, tensor = "L_init", tensor.to(torch.bfloat16)
        elif name.startswith("blocks."):
            ref = "L_level.layers." + name.removeprefix("blocks.")
        else:
            ref = name
        state[prefix + ref] = tensor.clone()
    state[prefix + "puzzle_emb.weights"] = table.weights.clone()
    return state


def reference_model(config: ModelConfig, num_ids: int, seed: int = 0) -> tuple[TRM, PuzzleEmbedding]:
    """A model with random weights, a non-zero q_head and a random puzzle table, y/z inits rounded to
    bf16 as the reference stores them."""
    torch.manual_seed(seed)
    model = TRM(config).eval()
    with torch.no_grad():
        model.q_head.weight.normal_(0, 0.1)
        model.y_init.copy_(model.y_init.to(torch.bfloat16).float())
        model.z_init.copy_(model.z_init.to(torch.bfloat16).float())
    table = PuzzleEmbedding(num_ids, config.hidden)
    table.weights.normal_()
    return model, table


def outputs(model: TRM, table: PuzzleEmbedding, inputs: torch.Tensor, ids: torch.Tensor, steps: int = 2) -> list:
    """(logits, q_halt, q_continue) of each of `steps` supervision steps from the initial state."""
    y, z = model.initial_state(inputs.shape[0])
    result = []
    with torch.no_grad():
        for _ in range(steps):
            out = model(y, z, inputs, table.rows(ids, requires_grad=False))
            y, z = out.y, out.z
            result.append((out.logits.float(), out.q_halt, out.q_continue))
    return result


@pytest.fixture(scope="module")
def small_reference() -> tuple[TRM, PuzzleEmbedding]:
    return reference_model(SMALL, num_ids=len(IDENTIFIERS))


def save_checkpoint(folder: Path, model: TRM, table: PuzzleEmbedding, compiled: bool) -> tuple[Path, Path]:
    checkpoint = folder / "step_518071"
    torch.save(reference_state_dict(model, table, compiled), checkpoint)
    identifiers = folder / "identifiers.json"
    identifiers.write_bytes(orjson.dumps(IDENTIFIERS))
    return checkpoint, identifiers


def import_cli(*argv: str) -> None:
    assert main([str(a) for a in argv]) == 0


@pytest.mark.parametrize("compiled", [True, False], ids=["orig_mod", "plain"])
def test_imported_model_computes_the_same_outputs(tmp_path, small_reference, compiled):
    model, table = small_reference
    checkpoint, identifiers = save_checkpoint(tmp_path, model, table, compiled)
    out = tmp_path / "imported"
    import_cli(checkpoint, "--identifiers", identifiers, "--out", out, "--T", 2, "--n", 2, "--heads", 4, "--seq-len", 100)

    loaded = load_model(out)
    imported, imported_table, info = loaded.model, loaded.table, loaded.data
    c = imported.config
    assert (c.vocab_size, c.seq_len, c.hidden, c.heads, c.layers, c.T, c.n, c.puzzle_emb_len) == (12, 100, 64, 4, 2, 2, 2, 16)
    assert (c.mixer, c.pos_encodings, c.forward_dtype) == ("attention", "rope", "bfloat16")
    assert imported.num_parameters() == model.num_parameters()
    assert info.canvas == 10 and info.num_puzzle_ids == len(IDENTIFIERS) and info.track == "arc"
    assert torch.equal(imported_table.weights, table.weights)

    generator = torch.Generator().manual_seed(1)
    inputs = torch.randint(0, 12, (3, 100), generator=generator)
    ids = torch.tensor([1, 3, 5])
    for mine, theirs in zip(outputs(model, table, inputs, ids), outputs(imported, imported_table, inputs, ids)):
        for a, b in zip(mine, theirs):
            assert torch.equal(a, b)


def test_puzzle_index_follows_the_identifiers(tmp_path, small_reference):
    model, table = small_reference
    checkpoint, identifiers = save_checkpoint(tmp_path, model, table, compiled=True)
    import_reference(checkpoint, tmp_path / "imported", identifiers, T=2, n=2, heads=4, seq_len=100)
    index = load_model(tmp_path / "imported").index

    expected: dict[str, dict[int, Augmentation]] = {}
    for puzzle_id, name in enumerate(IDENTIFIERS[1:], start=1):
        parts = name.split("|||")
        if len(parts) == 1:
            augmentation = Augmentation.identity()
        else:
            augmentation = Augmentation(int(parts[1].removeprefix("t")), tuple(int(ch) for ch in parts[2]))
        expected.setdefault(parts[0], {})[puzzle_id] = augmentation
    assert set(index.versions) == set(expected)
    for task_id, by_id in expected.items():
        assert {v.puzzle_id: v.augmentation for v in index.versions[task_id]} == by_id
        first = index.for_task(task_id, None)[0]  # prediction starts from the original's own row
        assert first.augmentation.is_identity and IDENTIFIERS[first.puzzle_id] == task_id
    assert index.canvas == 10


def test_mlp_t_sudoku_variant_imports_with_its_config(tmp_path):
    # the reference Sudoku-MLP shape: vocab 11, 81 cells + 16 prefix, mlp_t, no positions
    config = ModelConfig(vocab_size=11, seq_len=81, mixer="mlp_t", pos_encodings="none", T=1, n=1)
    model, table = reference_model(config, num_ids=1)
    state = reference_state_dict(model, table, compiled=True)
    assert state["_orig_mod.model.inner.L_level.layers.0.mlp_t.gate_up_proj.weight"].shape == (1024, 97)
    assert state["_orig_mod.model.inner.L_level.layers.0.mlp_t.down_proj.weight"].shape == (97, 512)
    torch.save(state, tmp_path / "sudoku.pt")

    loaded = load_model(import_reference(tmp_path / "sudoku.pt", tmp_path / "out", T=1, n=1))
    imported, imported_table, info = loaded.model, loaded.table, loaded.data
    c = imported.config
    assert (c.vocab_size, c.seq_len, c.hidden, c.mixer, c.pos_encodings, c.puzzle_emb_len) == (11, 81, 512, "mlp_t", "none", 16)
    assert imported.num_parameters() == 5_028_866  # the reference's Sudoku-MLP count
    assert imported_table.weights.shape == (1, 512) and info.versions is None and info.track == "other"

    inputs = torch.randint(1, 11, (2, 81), generator=torch.Generator().manual_seed(2))
    ids = torch.zeros(2, dtype=torch.long)
    for mine, theirs in zip(outputs(model, table, inputs, ids, 1), outputs(imported, imported_table, inputs, ids, 1)):
        for a, b in zip(mine, theirs):
            assert torch.equal(a, b)


# ------------------------------------------------------------------------------------ bad inputs


def bad_checkpoints(tmp_path: Path, model: TRM, table: PuzzleEmbedding) -> dict[str, list[str]]:
    good, _ = save_checkpoint(tmp_path, model, table, compiled=False)
    (tmp_path / "notes.txt").write_text("not a checkpoint\n")
    torch.save({"encoder.weight": torch.zeros(3, 3)}, tmp_path / "other.pt")
    (tmp_path / "short.json").write_bytes(orjson.dumps(IDENTIFIERS[:-1]))
    (tmp_path / "malformed.json").write_bytes(orjson.dumps([*IDENTIFIERS[:-1], IDENTIFIERS[-1].split("|||")[0] + "|||tX|||12"]))
    state = torch.load(good)
    key = next(k for k in state if k.endswith("embed_tokens.embedding_weight"))
    state[next(k for k in state if k.endswith("q_head.weight"))] = torch.zeros(3, state[key].shape[1])
    torch.save(state, tmp_path / "reshaped.pt")
    (tmp_path / "a_file").write_text("")
    out = ["--out", str(tmp_path / "out")]
    return {
        "missing file": [str(tmp_path / "nowhere.pt"), *out],
        "not a checkpoint": [str(tmp_path / "notes.txt"), *out],
        "no reference keys": [str(tmp_path / "other.pt"), *out],
        "identifiers of the wrong length": [str(good), "--identifiers", str(tmp_path / "short.json"), "--seq-len", "100", *out],
        "malformed identifier": [str(good), "--identifiers", str(tmp_path / "malformed.json"), "--seq-len", "100", *out],
        "heads 0": [str(good), "--heads", "0", "--seq-len", "100", *out],
        "T 0": [str(good), "--T", "0", "--seq-len", "100", *out],
        "T past 64 bits": [str(good), "--T", str(10**21), "--seq-len", "100", *out],  # half an export, then a traceback
        "negative sequence length": [str(good), "--seq-len", "-5", *out],
        "a tensor of the wrong shape": [str(tmp_path / "reshaped.pt"), "--seq-len", "100", *out],
        "unwritable out": [str(good), "--seq-len", "100", "--out", str(tmp_path / "a_file" / "out")],
    }


CASES = [
    "missing file", "not a checkpoint", "no reference keys", "identifiers of the wrong length", "malformed identifier",
    "heads 0", "T 0", "T past 64 bits", "negative sequence length", "a tensor of the wrong shape", "unwritable out",
]


@pytest.mark.parametrize("case", CASES)
def test_bad_input_is_one_error_line_and_exit_2(tmp_path, small_reference, capsys, case):
    argv = bad_checkpoints(tmp_path, *small_reference)[case]
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), captured.err
    assert not (tmp_path / "out" / "weights.safetensors").exists()


def test_bad_input_from_the_command_line(tmp_path, small_reference):
    """The real process: exit code 2 and one line on stderr, no traceback."""
    argv = bad_checkpoints(tmp_path, *small_reference)["no reference keys"]
    result = subprocess.run([sys.executable, "-m", "arc_trm.import_reference", *argv], capture_output=True, text=True, env=ENV, timeout=120)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "other.pt" in lines[0], result.stderr


def test_incomplete_reference_state_dict_is_one_error_line(tmp_path, small_reference, capsys):
    model, table = small_reference
    state = reference_state_dict(model, table, compiled=False)
    del state["model.inner.embed_tokens.embedding_weight"]
    torch.save(state, tmp_path / "incomplete.pt")
    with pytest.raises(SystemExit) as exit_info:
        main([str(tmp_path / "incomplete.pt"), "--seq-len", "100", "--out", str(tmp_path / "out")])
    assert exit_info.value.code == 2
