"""The exported model: the folder prediction and fine-tuning load, and its typed description.

    model/
      config.json                the model's `ModelConfig`
      weights.safetensors        the weights (the EMA copy when training kept one)
      puzzle_table.safetensors   the whole puzzle table, (num_puzzle_ids, hidden)
      data.json                  `DataInfo`: the track, the canvas and which puzzle id is which task version

`export_model` writes the four files whole (a kill or a reader never meets a folder that mixes two
exports); `load_model` reads them into an `ExportedModel`, and a corrupt, truncated or inconsistent file
is one `DataError` naming it.
"""

from __future__ import annotations

import errno
import shutil
from dataclasses import asdict, dataclass, field, fields
from functools import cached_property
from pathlib import Path
from typing import Any, Callable, TypeVar

import orjson
import torch
from safetensors.torch import load_file, save_file

from arc_trm.augment import Augmentation, sample_augmentation
from arc_trm.data.arc import puzzle_id
from arc_trm.errors import DataError
from arc_trm.io import atomic_write, atomic_write_bytes, read_json
from arc_trm.model.puzzle_embedding import PuzzleEmbedding
from arc_trm.model.trm import CONFIG_FILE, TRM, WEIGHTS_FILE, ModelConfig, check_weights_fit, model_config_from

TABLE_FILE = "puzzle_table.safetensors"
DATA_FILE = "data.json"
MODEL_FILES = (CONFIG_FILE, WEIGHTS_FILE, TABLE_FILE, DATA_FILE)
PARTIAL = ".partial"
T = TypeVar("T")


# ---------------------------------------------------------------------------------------- data.json


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_names(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


_CHECKS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "track": (lambda v: isinstance(v, str), "a string"),
    "num_puzzle_ids": (lambda v: _is_int(v) and v >= 1, "a whole number >= 1"),
    "seq_len": (lambda v: v is None or (_is_int(v) and v >= 1), "a whole number >= 1"),
    "canvas": (lambda v: _is_int(v) and v >= 1, "a whole number >= 1"),
    "task_ids": (_is_names, "a list of task ids"),
    "held_out": (_is_names, "a list of task ids"),
    "held_out_training": (_is_names, "a list of task ids"),
    "num_aug": (lambda v: _is_int(v) and v >= 0, "a whole number >= 0"),
    "seed": (_is_int, "a whole number"),
    "distinct_versions": (lambda v: isinstance(v, dict) and all(isinstance(ks, list) for ks in v.values()),
                          "an object of task id -> list of versions"),
    "versions": (lambda v: v is None or (isinstance(v, dict) and all(isinstance(rows, list) for rows in v.values())),
                 "an object of task id -> list of [puzzle id, dihedral, colors]"),
    "finetune_only": (lambda v: isinstance(v, bool), "true or false"),
    "source": (lambda v: v is None or isinstance(v, str), "a string"),
}
_LISTS = ("task_ids", "held_out", "held_out_training")


@dataclass(frozen=True)
class DataInfo:
    """data.json: what an exported model was trained on, as prediction and fine-tuning need it. A key a
    file lacks takes its default (a Sudoku model names no task; an imported reference model lists its
    versions instead of deriving them)."""

    track: str = "arc"
    """The track's name (`arc_trm.tracks.TRACKS`); a model of no known track is predicted as ARC."""
    num_puzzle_ids: int = 1
    seq_len: int | None = None
    canvas: int = 30
    """ARC: the side of the board the grids are drawn on."""
    task_ids: tuple[str, ...] = ()
    """ARC: the trained tasks, in puzzle-id order (`arc_trm.data.arc.puzzle_id`)."""
    held_out: tuple[str, ...] = ()
    """ARC: tasks whose test pairs training never saw (what periodic evaluation and the ladder score)."""
    held_out_training: tuple[str, ...] = ()
    num_aug: int = 0
    """ARC: augmented versions per task besides the identity (version k = 0..num_aug)."""
    seed: int = 0
    """ARC: the seed of the versions' augmentations (`arc_trm.augment.sample_augmentation`)."""
    distinct_versions: dict[str, list[int]] = field(default_factory=dict)
    """ARC: the versions kept, for the tasks that lost some to deduplication (the others keep all)."""
    versions: dict[str, list[Any]] | None = None
    """Imported reference models: each task's versions as [puzzle id, dihedral, colors], in table order."""
    finetune_only: bool = False
    """A slim export: the blank row and the mean row only, for fine-tuning on new tasks."""
    source: str | None = None
    """Where an imported or slim model came from."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Every other key of the file, kept as written (counts and provenance for people to read)."""

    @classmethod
    def from_json(cls, raw: Any, path: Path | str = DATA_FILE) -> DataInfo:
        """A parsed data.json; a DataError naming `path` and the key when a value has the wrong type."""
        if not isinstance(raw, dict):
            raise DataError(f"{path}: not a data description (expected an object)")
        known = {}
        for key, value in raw.items():
            if key not in _CHECKS:
                continue
            ok, expected = _CHECKS[key]
            if not ok(value):
                raise DataError(f"{path}: {key!r} is {str(value)[:60]!r}, expected {expected}")
            known[key] = tuple(value) if key in _LISTS else value
        return cls(**known, extra={key: value for key, value in raw.items() if key not in _CHECKS})

    @classmethod
    def read(cls, path: Path) -> DataInfo:
        return cls.from_json(read_json(path), path)

    def to_json(self) -> dict[str, Any]:
        """The file's object: every field that differs from its default, then `extra`."""
        blank = DataInfo()
        out: dict[str, Any] = {"track": self.track, "num_puzzle_ids": self.num_puzzle_ids}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name not in out and f.name != "extra" and value != getattr(blank, f.name):
                out[f.name] = list(value) if f.name in _LISTS else value
        return {**out, **self.extra}

    @property
    def known_tasks(self) -> set[str]:
        """The tasks the model has puzzle ids for; any other task is predicted with the blank id."""
        return set(self.versions or self.task_ids)


# ------------------------------------------------------------------------------------ puzzle index


@dataclass(frozen=True)
class Version:
    """One augmented version of a task the model knows: its augmentation and its puzzle id."""

    k: int
    puzzle_id: int
    augmentation: Augmentation


@dataclass
class PuzzleIndex:
    """Which puzzle ids (and augmentations) a trained model has for each task."""

    versions: dict[str, list[Version]] = field(default_factory=dict)
    canvas: int = 30

    @classmethod
    def from_data(cls, info: DataInfo) -> PuzzleIndex:
        """Our exported models: ids follow `arc_trm.data.arc.puzzle_id`. Imported reference models list
        their versions explicitly (import_reference.py). A model that names no task knows none."""
        if info.versions is not None:
            versions = {
                task_id: [Version(k, pid, Augmentation(d, tuple(int(c) for c in colors))) for k, (pid, d, colors) in enumerate(rows)]
                for task_id, rows in info.versions.items()
            }
            return cls(versions, info.canvas)
        versions = {}
        for t, task_id in enumerate(info.task_ids):
            ks = info.distinct_versions.get(task_id) or range(info.num_aug + 1)
            versions[task_id] = [Version(k, puzzle_id(t, k, info.num_aug), sample_augmentation(info.seed, t, k)) for k in ks]
        return cls(versions, info.canvas)

    def for_task(self, task_id: str, max_aug: int | None) -> list[Version]:
        """The task's versions, identity first; unknown tasks get the blank id and the identity only."""
        known = self.versions.get(task_id)
        if not known:
            return [Version(0, 0, Augmentation.identity())]
        chosen = [v for v in known if max_aug is None or v.k <= max_aug]
        return sorted(chosen, key=lambda v: (not v.augmentation.is_identity, v.k))


# ------------------------------------------------------------------------------ the model folder


@dataclass
class ExportedModel:
    """A loaded exported model: the network in eval mode, its puzzle table and its data description."""

    model: TRM
    table: PuzzleEmbedding
    data: DataInfo
    folder: Path

    @property
    def config(self) -> ModelConfig:
        return self.model.config

    @cached_property
    def index(self) -> PuzzleIndex:
        """Built on first use: at ARC-AGI-2's shapes it holds a million versions."""
        return PuzzleIndex.from_data(self.data)


def export_model(out_dir: Path, model: TRM, table: torch.Tensor, data: DataInfo) -> Path:
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
        _atomic_save_safetensors(staging / WEIGHTS_FILE, weights)
        _atomic_save_safetensors(staging / TABLE_FILE, {"weights": table.float().cpu().contiguous()})
        atomic_write_bytes(staging / DATA_FILE, orjson.dumps(data.to_json(), option=orjson.OPT_INDENT_2))
        atomic_write_bytes(staging / CONFIG_FILE, orjson.dumps(asdict(model.config), option=orjson.OPT_INDENT_2))
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
    if run_model.is_dir() and not (model_dir / WEIGHTS_FILE).exists():
        model_dir = run_model  # a run directory was given
    return model_dir


def model_dir_of(path: str | Path) -> Path:
    """The exported model folder behind `path` (the folder itself or a run directory), checked complete."""
    model_dir = model_folder(path)
    missing = [name for name in MODEL_FILES if not (model_dir / name).exists()]
    if missing:
        raise DataError(f"{model_dir}: not an exported model (missing {', '.join(missing)})")
    return model_dir


def load_model(path: str | Path, device: torch.device | str = "cpu") -> ExportedModel:
    """Load the exported model at `path` (its folder or a run directory). A file that is corrupt,
    truncated or does not fit the model's config is one `DataError` naming it."""
    model_dir = model_dir_of(path)
    config_file = model_dir / CONFIG_FILE
    config = model_config_from(read_json(config_file), config_file)
    weights_file = model_dir / WEIGHTS_FILE
    check_weights_fit(config, config_file, weights_file)  # before building: a huge size would allocate it
    model = TRM(config)
    _read_tensors(weights_file, lambda: model.load_state_dict(load_file(str(weights_file))))
    table_file = model_dir / TABLE_FILE
    weights = _read_tensors(table_file, lambda: load_file(str(table_file))["weights"])
    if weights.dim() != 2 or weights.shape[1] != config.hidden:
        raise DataError(f"{table_file}: puzzle table of shape {tuple(weights.shape)}, the model needs (ids, {config.hidden})")
    table = PuzzleEmbedding(weights.shape[0], weights.shape[1], device)
    table.weights.copy_(weights)
    return ExportedModel(model.to(device).eval(), table, DataInfo.read(model_dir / DATA_FILE), model_dir)


def _read_tensors(path: Path, read: Callable[[], T]) -> T:
    try:
        return read()
    except Exception as error:  # safetensors' own error, a missing key, a shape mismatch
        text = " ".join(str(error).split())  # torch's shape mismatch comes on the lines after its first
        first = text[:200] if text else type(error).__name__
        raise DataError(f"{path}: cannot load ({first})") from None
