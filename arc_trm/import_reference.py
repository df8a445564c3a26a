"""Import a checkpoint saved by the reference TRM code into this project's model format.

    python -m arc_trm.import_reference step_518071 --identifiers identifiers.json --out models/trm-arc1

The reference saves `torch.save(model.state_dict())` of its loss head: keys like
`model.inner.L_level.layers.0.self_attn.qkv_proj.weight`, with an `_orig_mod.` prefix when it was
compiled, and the puzzle table as `model.inner.puzzle_emb.weights`. Its `identifiers.json` lists the
name of every puzzle id (`<task>|||t<dihedral>|||<colour map>`, the original as `<task>`, id 0 blank),
so prediction can use exactly the augmentation that each trained embedding row belongs to.
The output is an exported model (see checkpoint.py) that `predict` and `submissions.make` load.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import torch

from arc_trm.augment import Augmentation
from arc_trm.errors import ArgumentParser, ConfigError, DataError, exit_on_user_error, nonempty_path
from arc_trm.exported import DataInfo, export_model
from arc_trm.io import read_json, refuse_output_on_input
from arc_trm.model.trm import TRM, ModelConfig
from arc_trm.tracks.arc import ARC

PREFIX = "model.inner."
SEPARATOR = "|||"
RENAMES = {"H_init": "y_init", "L_init": "z_init", "L_level.layers.": "blocks."}


def our_name(reference_name: str) -> str | None:
    """Our parameter name for a reference key (None for the puzzle table)."""
    name = reference_name.removeprefix("_orig_mod.").removeprefix(PREFIX)
    if name == "puzzle_emb.weights":
        return None
    for old, new in RENAMES.items():
        if name.startswith(old):
            name = new + name[len(old):]
    return name


def convert_state_dict(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], torch.Tensor | None]:
    """(our dense weights in fp32, the puzzle table or None)."""
    weights, table = {}, None
    for key, tensor in state.items():
        name = our_name(key)
        if name is None:
            table = tensor.float()
        else:
            weights[name] = tensor.float()
    return weights, table


def infer_config(weights: dict[str, torch.Tensor], T: int, n: int, heads: int, seq_len: int | None, puzzle_emb_len: int) -> ModelConfig:
    """Model shape from the tensors; what they cannot tell (T, n, heads, sequence) comes from options."""
    vocab, hidden = weights["embed_tokens.embedding_weight"].shape
    layers = len({k.split(".")[1] for k in weights if k.startswith("blocks.")})
    mixer = "mlp_t" if any(".mlp_t." in k for k in weights) else "attention"
    if mixer == "mlp_t":
        total = weights["blocks.0.mlp_t.down_proj.weight"].shape[0]
        seq_len = total - puzzle_emb_len
    if seq_len is None:
        seq_len = 81 if vocab == 11 else 900
    width = weights["blocks.0.mlp.down_proj.weight"].shape[1]
    expansion = 4.0 if width == 1536 and hidden == 512 else width * 3 / (2 * hidden)
    pos = "learned" if "embed_pos.embedding_weight" in weights else ("none" if mixer == "mlp_t" else "rope")
    return ModelConfig(
        vocab_size=vocab, seq_len=seq_len, hidden=hidden, heads=heads, expansion=expansion, layers=layers, T=T, n=n,
        puzzle_emb_len=puzzle_emb_len, mixer=mixer, pos_encodings=pos,
    )


def versions_from_identifiers(names: list[str]) -> dict[str, list[list[Any]]]:
    """task id -> [[puzzle_id, dihedral, colour map string], ...] from the reference identifiers."""
    versions: dict[str, list[list[Any]]] = {}
    for puzzle_id, name in enumerate(names):
        if puzzle_id == 0 or not name or name == "<blank>":
            continue
        if not isinstance(name, str):
            raise ValueError(f"puzzle {puzzle_id}: {name!r} is not a name")
        if SEPARATOR in name:
            task_id = name.split(SEPARATOR)[0]
            try:
                augmentation = Augmentation.from_reference_name(name)
            except (ValueError, IndexError, KeyError):
                raise ValueError(f"puzzle {puzzle_id}: {name[:80]!r} is not <task>|||t<dihedral>|||<colour map>") from None
        else:
            task_id, augmentation = name, Augmentation.identity()
        colors = "".join(str(c) for c in augmentation.colors)
        versions.setdefault(task_id, []).append([puzzle_id, augmentation.dihedral, colors])
    return versions


def load_reference_checkpoint(path: Path) -> dict[str, torch.Tensor]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except Exception as error:  # torch raises many types for a file that is not a checkpoint
        raise DataError(f"{path}: not a PyTorch checkpoint ({type(error).__name__})") from None
    if not isinstance(state, dict) or not any(k.removeprefix("_orig_mod.").startswith(PREFIX) for k in state):
        raise DataError(f"{path}: no reference TRM weights (keys starting with '{PREFIX}')")
    return state


def import_reference(
    checkpoint: Path, out: Path, identifiers: Path | None = None, T: int = 3, n: int = 4, heads: int = 8,
    seq_len: int | None = None, puzzle_emb_len: int = 16,
) -> Path:
    weights, table_weights = convert_state_dict(load_reference_checkpoint(checkpoint))
    try:
        config = infer_config(weights, T, n, heads, seq_len, puzzle_emb_len)
    except KeyError as missing:
        raise DataError(f"{checkpoint}: incomplete TRM checkpoint (no {missing.args[0]})") from None
    try:
        config.check()
    except ConfigError as error:
        raise DataError(f"{checkpoint}: {error} (from the tensors or --T/--n/--heads/--seq-len)") from None
    canvas = int(round(config.seq_len ** 0.5))
    arc = config.vocab_size == ARC.vocab_size  # any other reference model (Sudoku, Maze) is imported as track "other"
    if arc and canvas * canvas != config.seq_len:
        raise DataError(f"{checkpoint}: an ARC model reads a square canvas; --seq-len {config.seq_len} is not a square")
    model = TRM(config)
    try:
        missing, unexpected = model.load_state_dict(weights, strict=False)
    except RuntimeError as error:  # a tensor of another shape than the inferred config gives it
        raise DataError(f"{checkpoint}: weights do not fit TRM ({' '.join(str(error).split())[:200]})") from None
    if missing or unexpected:
        raise DataError(f"{checkpoint}: weights do not fit TRM (missing {missing[:3]}, unexpected {unexpected[:3]})")
    if table_weights is None:
        table_weights = torch.zeros(1, config.hidden)
    if table_weights.dim() != 2 or table_weights.shape[1] != config.hidden or table_weights.shape[0] < 1:
        raise DataError(f"{checkpoint}: puzzle table of shape {tuple(table_weights.shape)}, expected (ids, {config.hidden})")
    num_ids = table_weights.shape[0]
    versions = None
    if identifiers is not None:
        names = read_json(identifiers)
        if not isinstance(names, list) or len(names) != num_ids:
            raise DataError(f"{identifiers}: expected a list of {num_ids} puzzle names, one per table row")
        try:
            versions = versions_from_identifiers(names)
        except ValueError as error:
            raise DataError(f"{identifiers}: {error}") from None
    info = DataInfo(track=ARC.name if arc else "other", num_puzzle_ids=num_ids, seq_len=config.seq_len, canvas=canvas,
                    versions=versions, source=str(checkpoint))
    return export_model(out, model, table_weights, info)


@exit_on_user_error
def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(prog="python -m arc_trm.import_reference", description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", type=Path, help="state dict saved by the reference code")
    parser.add_argument("--identifiers", type=Path, help="the reference dataset's identifiers.json")
    parser.add_argument("--out", type=nonempty_path, required=True, help="folder for the exported model")
    parser.add_argument("--T", type=int, default=3, help="recursion cycles (reference: 3)")
    parser.add_argument("--n", type=int, default=4, help="z-updates per cycle (reference README: 4 for ARC)")
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--seq-len", type=int, default=None, help="tokens without prefix (default: 900 ARC/Maze, 81 Sudoku)")
    args = parser.parse_args(argv)
    refuse_output_on_input(args.out, {"the checkpoint": args.checkpoint, "the identifiers file": args.identifiers})
    out = import_reference(args.checkpoint, args.out, args.identifiers, args.T, args.n, args.heads, args.seq_len)
    print(f"imported {args.checkpoint} -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
