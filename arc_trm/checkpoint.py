"""The run directory: config, checkpoints with a `latest` pointer, and the exported model.

    runs/NAME/
      config.yaml            the effective config of the run
      checkpoints/step_000400/   accelerate `save_state` (model, optimizer, RNG, EMA)
                                 + rank_<r>.pt per process (data-stream position, ACT carry)
                                 + puzzle_table_<r>.pt per shard of the puzzle table
      latest                 name of the newest complete checkpoint
      model/                 exported model: weights.safetensors (EMA), puzzle_table.safetensors,
                             config.json, data.json (what prediction needs)
      logs/                  TensorBoard

A checkpoint is written to `step_N.tmp` and renamed when every process has finished, then `latest`
is replaced atomically, so a kill at any moment leaves the previous checkpoint intact.
"""

from __future__ import annotations

import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any

import orjson
import torch
from safetensors.torch import load_file, save_file

from arc_trm.errors import DataError
from arc_trm.io import atomic_write_bytes, read_json
from arc_trm.model.puzzle_embedding import PuzzleEmbedding
from arc_trm.model.trm import TRM, ModelConfig


def checkpoint_name(step: int) -> str:
    return f"step_{step:07d}"


def latest_checkpoint(run_dir: Path) -> Path | None:
    pointer = run_dir / "latest"
    if not pointer.exists():
        return None
    path = run_dir / "checkpoints" / pointer.read_text().strip()
    return path if path.is_dir() else None


def publish_checkpoint(run_dir: Path, tmp: Path, step: int, keep: int) -> Path:
    """Rename a finished temp checkpoint into place, point `latest` at it, drop the oldest."""
    final = tmp.with_name(checkpoint_name(step))
    if final.exists():
        shutil.rmtree(final)
    tmp.rename(final)
    atomic_write_bytes(run_dir / "latest", final.name.encode())
    done = sorted(p for p in final.parent.glob("step_*") if not p.name.endswith(".tmp"))
    for old in done[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def export_model(out_dir: Path, model: TRM, table: torch.Tensor, data_info: dict[str, Any]) -> Path:
    """Write the model that prediction loads: weights, the whole puzzle table (num_ids, dim), model
    config, data description."""
    out_dir.mkdir(parents=True, exist_ok=True)
    weights = {name: t.detach().float().cpu().contiguous() for name, t in model.state_dict().items()}
    _atomic_save_safetensors(out_dir / "weights.safetensors", weights)
    _atomic_save_safetensors(out_dir / "puzzle_table.safetensors", {"weights": table.float().cpu().contiguous()})
    atomic_write_bytes(out_dir / "data.json", orjson.dumps(data_info, option=orjson.OPT_INDENT_2))
    atomic_write_bytes(out_dir / "config.json", orjson.dumps(asdict(model.config), option=orjson.OPT_INDENT_2))
    return out_dir


def _atomic_save_safetensors(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    save_file(tensors, str(tmp))
    tmp.replace(path)


MODEL_FILES = ("config.json", "weights.safetensors", "puzzle_table.safetensors", "data.json")


def model_dir_of(path: str | Path) -> Path:
    """The exported model folder behind `path` (the folder itself or a run directory), checked complete."""
    model_dir = Path(path)
    if (model_dir / "model").is_dir() and not (model_dir / "weights.safetensors").exists():
        model_dir = model_dir / "model"  # a run directory was given
    missing = [name for name in MODEL_FILES if not (model_dir / name).exists()]
    if missing:
        raise DataError(f"{model_dir}: not an exported model (missing {', '.join(missing)})")
    return model_dir


def load_model(path: str | Path, device: torch.device | str = "cpu") -> tuple[TRM, PuzzleEmbedding, dict[str, Any]]:
    """Load an exported model: (TRM in eval mode, puzzle table, data description)."""
    model_dir = model_dir_of(path)
    config = ModelConfig(**read_json(model_dir / "config.json"))
    model = TRM(config)
    model.load_state_dict(load_file(str(model_dir / "weights.safetensors")))
    weights = load_file(str(model_dir / "puzzle_table.safetensors"))["weights"]
    table = PuzzleEmbedding(weights.shape[0], weights.shape[1], device)
    table.weights.copy_(weights)
    return model.to(device).eval(), table, read_json(model_dir / "data.json")
