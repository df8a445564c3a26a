"""The run directory: config, checkpoints with a `latest` pointer, and the exported model.

    runs/NAME/
      config.yaml            the effective config of the run
      checkpoints/step_000400/   accelerate `save_state` (model, optimizer, RNG, EMA)
                                 + rank_<r>.pt per process (data-stream position, ACT carry)
                                 + puzzle_table_<r>.pt per shard of the puzzle table
      latest                 name of the newest complete checkpoint
      .lock                  flock'ed by the training process that uses the folder (its PID inside)
      model/                 exported model: weights.safetensors (EMA), puzzle_table.safetensors,
                             config.json, data.json (what prediction needs)
      logs/                  TensorBoard

A checkpoint is written to `step_N.tmp` and renamed when every process has finished, then `latest`
is replaced atomically, so a kill at any moment leaves the previous checkpoint intact.
"""

from __future__ import annotations

import errno
import logging
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable, TypeVar

import orjson
import torch
from safetensors.torch import load_file, save_file

from arc_trm.errors import DataError
from arc_trm.io import atomic_write, atomic_write_bytes, hold_lock, read_json, release_lock
from arc_trm.model.puzzle_embedding import PuzzleEmbedding
from arc_trm.model.trm import TRM, check_weights_fit, model_config_from

log = logging.getLogger(__name__)
T = TypeVar("T")


def checkpoint_name(step: int) -> str:
    return f"step_{step:07d}"


def is_complete(checkpoint: Path) -> bool:
    """A checkpoint with what every resume reads: the first process's state and a puzzle-table shard,
    the last files a save writes. A folder copied in part lacks them, and so does a checkpoint of an
    arc_trm from before the sharded table (it resumes only with that version)."""
    return (checkpoint / "rank_0.pt").is_file() and any(checkpoint.glob("puzzle_table_*.pt"))


def step_of(checkpoint: Path) -> int:
    return int(checkpoint.name.split("_")[-1])


def published(run_dir: Path) -> list[Path]:
    """The run's published checkpoint folders (complete or not), oldest step first."""
    folder = run_dir / "checkpoints"
    if not folder.is_dir():
        return []
    found = [p for p in folder.glob("step_*") if p.is_dir() and p.name[5:].isdigit()]
    return sorted(found, key=step_of)


def named_by_latest(run_dir: Path) -> tuple[Path | None, str | None]:
    """The checkpoint `latest` names, or (None, what is wrong with the pointer). A `latest` that is a
    folder or special file is a DataError at once: the run could not replace it after its first checkpoint."""
    pointer = run_dir / "latest"
    if not pointer.exists():
        return None, f"{pointer} is missing"
    if not pointer.is_file():
        raise DataError(f"{pointer}: is a folder or special file, not the file naming the newest checkpoint; move it away")
    try:
        name = pointer.read_text().strip()
    except (OSError, UnicodeDecodeError):
        return None, f"{pointer} cannot be read"
    if not name:
        return None, f"{pointer} is empty"
    if not name.startswith("step_") or not name[5:].isdigit():
        return None, f"{pointer} does not name a checkpoint ({name[:60]!r})"
    path = run_dir / "checkpoints" / name
    if not path.is_dir():
        return None, f"{pointer} names {name}, which is not in {run_dir / 'checkpoints'}"
    if not is_complete(path):
        return None, (
            f"{pointer} names {name}, which is incomplete (no rank_0.pt or puzzle_table_*.pt: a partial copy, "
            "or a checkpoint of an arc_trm from before the sharded puzzle table)"
        )
    return path, None


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The checkpoint to resume from: the one `latest` names; else the newest complete one, with a
    warning that says what was wrong. Never None while a complete checkpoint exists, so a run never
    starts again from step 0 over its own checkpoints; DataError when there are only incomplete ones."""
    named, problem = named_by_latest(run_dir)
    if named is not None:
        return named
    folders = published(run_dir)
    complete = [p for p in folders if is_complete(p)]
    if complete:
        log.warning(f"warning: {problem}; resuming from the newest complete checkpoint, {complete[-1]}")
        return complete[-1]
    if folders:
        raise DataError(
            f"{run_dir / 'checkpoints'}: {len(folders)} checkpoint folder(s), none complete; {problem}; "
            "move them away to train from step 0, use another run.dir, or fine-tune an exported model with train.init_from"
        )
    return None


def publish_checkpoint(run_dir: Path, tmp: Path, step: int, keep: int) -> Path:
    """Rename a finished temp checkpoint into place, point `latest` at it, then drop the oldest beyond
    `keep`. Never dropped: the checkpoint just written (which `latest` now names) and the newest one."""
    final = tmp.with_name(checkpoint_name(step))
    if final.exists():
        shutil.rmtree(final)
    tmp.rename(final)
    atomic_write_bytes(run_dir / "latest", final.name.encode())
    folders = published(run_dir)
    for old in set(folders) - kept_checkpoints(folders, final, keep):
        shutil.rmtree(old, ignore_errors=True)
    return final


def kept_checkpoints(folders: list[Path], final: Path, keep: int) -> set[Path]:
    """What rotation keeps of `folders` (oldest first): the checkpoint just written, the newest folder
    (perhaps another run's, resumed past a broken `latest`) and the newest complete one, then the newest
    other complete ones up to `keep` complete in all. Incomplete ones count for nothing: they cannot be resumed."""
    complete = [p for p in folders if is_complete(p)]
    protected = {final, folders[-1], *complete[-1:]}
    others = [p for p in complete if p not in protected]
    room = max(0, keep - len(protected & set(complete)))
    return protected | set(others[len(others) - room :] if room else [])


LOCK_FILE = ".lock"
def lock_run_dir(run_dir: Path) -> None:
    """Hold an exclusive lock on run_dir/.lock until `unlock_run_dir` or the end of this process: two
    training processes on one run directory would interleave checkpoints and metrics. A ConfigError
    naming the holder's PID when another process holds it."""
    path = run_dir / LOCK_FILE
    hold_lock(path, lambda holder: f"run.dir={run_dir}: another training process (PID {holder}) is using it ({path} is "
                                   "locked); wait for it to end or use another run.dir")


def unlock_run_dir(run_dir: Path) -> None:
    """Release this process's lock on `run_dir`, if it holds one."""
    release_lock(run_dir / LOCK_FILE)


def export_model(out_dir: Path, model: TRM, table: torch.Tensor, data_info: dict[str, Any]) -> Path:
    """Write the model that prediction loads: weights, the whole puzzle table (num_ids, dim), model
    config, data description. Written whole: the files go to OUT.partial, which then takes OUT's place,
    so a kill or a reader never meets a folder that mixes two exports."""
    out_dir = out_dir.resolve() if out_dir.is_symlink() else out_dir  # replace the folder a link names
    if out_dir.exists() and not out_dir.is_dir():
        raise FileExistsError(errno.EEXIST, "exists and is not a folder; cannot export a model there", str(out_dir))
    staging = out_dir.with_name(out_dir.name + PARTIAL)
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        weights = {name: t.detach().float().cpu().contiguous() for name, t in model.state_dict().items()}
        _atomic_save_safetensors(staging / "weights.safetensors", weights)
        _atomic_save_safetensors(staging / "puzzle_table.safetensors", {"weights": table.float().cpu().contiguous()})
        atomic_write_bytes(staging / "data.json", orjson.dumps(data_info, option=orjson.OPT_INDENT_2))
        atomic_write_bytes(staging / "config.json", orjson.dumps(asdict(model.config), option=orjson.OPT_INDENT_2))
    except BaseException as error:  # a full disk, a kill: nothing left behind, the old export untouched
        shutil.rmtree(staging, ignore_errors=True)
        if isinstance(error, OSError) and error.filename:  # name the user's folder, not the staging one
            name = str(error.filename).replace(str(staging), str(out_dir), 1)
            raise type(error)(error.errno, error.strerror, name) from error
        raise
    replace_folder(staging, out_dir)
    return out_dir


def replace_folder(new: Path, folder: Path) -> None:
    """`new` takes `folder`'s place: two renames, the old folder kept aside until the new one is in. A
    kill between them leaves no `folder` but a complete `new` (FOLDER.partial), which `model_folder` reads."""
    aside = folder.with_name(folder.name + ".old")
    shutil.rmtree(aside, ignore_errors=True)
    if folder.exists():
        folder.rename(aside)
    new.rename(folder)
    shutil.rmtree(aside, ignore_errors=True)


def _atomic_save_safetensors(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    atomic_write(path, lambda tmp: save_file(tensors, str(tmp)))


MODEL_FILES = ("config.json", "weights.safetensors", "puzzle_table.safetensors", "data.json")
PARTIAL = ".partial"


def _exported(folder: Path) -> Path:
    """`folder`, or its complete FOLDER.partial when an export stopped between its two renames."""
    partial = folder.with_name(folder.name + PARTIAL)
    if not folder.exists() and all((partial / name).exists() for name in MODEL_FILES):
        return partial
    return folder


def model_folder(path: str | Path) -> Path:
    """The exported model folder `path` names: the folder itself, or the `model` folder of a run directory."""
    model_dir = _exported(Path(path))
    run_model = _exported(model_dir / "model")
    if run_model.is_dir() and not (model_dir / "weights.safetensors").exists():
        model_dir = run_model  # a run directory was given
    return model_dir


def model_dir_of(path: str | Path) -> Path:
    """The exported model folder behind `path` (the folder itself or a run directory), checked complete."""
    model_dir = model_folder(path)
    missing = [name for name in MODEL_FILES if not (model_dir / name).exists()]
    if missing:
        raise DataError(f"{model_dir}: not an exported model (missing {', '.join(missing)})")
    return model_dir


def load_model(path: str | Path, device: torch.device | str = "cpu") -> tuple[TRM, PuzzleEmbedding, dict[str, Any]]:
    """Load an exported model: (TRM in eval mode, puzzle table, data description). A file that is
    corrupt, truncated or does not fit the model's config is one `DataError` naming it."""
    model_dir = model_dir_of(path)
    config_file = model_dir / "config.json"
    config = model_config_from(read_json(config_file), config_file)
    weights_file = model_dir / "weights.safetensors"
    check_weights_fit(config, config_file, weights_file)  # before building: a huge size would allocate it
    try:
        model = TRM(config)
    except ValueError as error:
        raise DataError(f"{config_file}: {error}") from None
    _read_tensors(weights_file, lambda: model.load_state_dict(load_file(str(weights_file))))
    table_file = model_dir / "puzzle_table.safetensors"
    weights = _read_tensors(table_file, lambda: load_file(str(table_file))["weights"])
    if weights.dim() != 2 or weights.shape[1] != config.hidden:
        raise DataError(f"{table_file}: puzzle table of shape {tuple(weights.shape)}, the model needs (ids, {config.hidden})")
    table = PuzzleEmbedding(weights.shape[0], weights.shape[1], device)
    table.weights.copy_(weights)
    info = read_json(model_dir / "data.json")
    if not isinstance(info, dict):
        raise DataError(f"{model_dir / 'data.json'}: not a data description (expected an object)")
    return model.to(device).eval(), table, info


def _read_tensors(path: Path, read: Callable[[], T]) -> T:
    try:
        return read()
    except Exception as error:  # safetensors' own error, a missing key, a shape mismatch
        text = " ".join(str(error).split())  # torch's shape mismatch comes on the lines after its first
        first = text[:200] if text else type(error).__name__
        raise DataError(f"{path}: cannot load ({first})") from None
