"""The run directory: config, checkpoints with a `latest` pointer, and the exported model.

    runs/NAME/
      config.yaml            the effective config of the run
      checkpoints/step_000400/   accelerate `save_state` (model, optimizer, RNG, EMA)
                                 + rank_<r>.pt per process (data-stream position, ACT carry)
                                 + puzzle_table_<r>.pt per shard of the puzzle table
      latest                 name of the newest complete checkpoint
      .lock                  flock'ed by the training process that uses the folder (its PID inside)
      model/                 the exported model (arc_trm.exported): weights (EMA), puzzle table,
                             config.json, data.json (what prediction needs)
      logs/                  TensorBoard

A checkpoint is written to `step_N.tmp` and renamed when every process has finished, then `latest`
is replaced atomically, so a kill at any moment leaves the previous checkpoint intact.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import TypeVar

from arc_trm.errors import DataError
from arc_trm.io import atomic_write_bytes, hold_lock, release_lock

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
