"""Candidate predictions: the record the predictor emits, a columnar table of them, and its Parquet form.

A `Candidate` is one decoded prediction for one test input: which task and test input, which
augmentation `k` (0 = identity), which supervision step (1-based), the model's halting confidence
sigmoid(q_halt), the grid already mapped back into the original frame (None when the prediction did
not decode), the checkpoint that produced it, and which trajectory of the query it comes from (test-time
compute runs a query K times with noise in its latent; 0 = the deterministic run, the only one by default).

At full scale (400 tasks x 1001 augmentations x 16 steps ~ 6.7M rows) candidates live in a
`CandidateTable`: numpy columns, with task ids, checkpoints and grids dictionary-encoded (an int32
code per row into a tuple of distinct values). Most rows repeat a few grids, so grids are stored
once each, as their `grid_key`, and grouping identical grids is integer grouping.

    table = CandidateTable.from_candidates(candidates)
    save_candidates(table, "out/candidates.parquet")
    table = load_candidates("out/candidates.parquet")

On disk: one Parquet file with columns `task_id` (dictionary string), `test_index` (int32),
`augmentation` (int32), `step` (int16), `q_halt` (float64), `checkpoint` (dictionary string) and
`grid` (dictionary binary, null = did not decode; each value is a `grid_key`), and `trajectory` (int16)
only when some row has a trajectory other than 0: a file without it reads as trajectory 0. Product-of-experts
log-probabilities are a separate file (`save_log_probs` / `load_log_probs`), see the README, section Voting.
"""

from __future__ import annotations

import contextlib
import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Mapping, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from arc_trm.errors import DataError
from arc_trm.grids import Grid
from arc_trm.io import atomic_write_bytes

FORMAT_KEY = b"arc_trm.format"
CANDIDATES_FORMAT = b"candidates/1"
LOG_PROBS_FORMAT = b"log_probs/1"
NO_GRID = -1  # grid code of a prediction that did not decode


def grid_key(grid: Grid) -> bytes:
    """Stable identity of a grid: one byte rows, one byte columns, then the uint8 values row-major.

    Equal grids give equal keys on every platform; the key also decodes back (`grid_from_key`).
    """
    grid = np.asarray(grid)
    if grid.ndim != 2 or not (0 < grid.shape[0] < 256 and 0 < grid.shape[1] < 256):
        raise ValueError(f"grid_key needs a 2-D grid with 1..255 rows and columns, got shape {grid.shape}")
    return bytes(grid.shape) + np.ascontiguousarray(grid, dtype=np.uint8).tobytes()


def grid_from_key(key: bytes) -> Grid:
    """The grid a `grid_key` was made from."""
    rows, cols = key[0], key[1]
    return np.frombuffer(key, dtype=np.uint8, offset=2).reshape(rows, cols).copy()


@dataclass(frozen=True)
class Candidate:
    task_id: str
    test_index: int
    augmentation: int  # k, 0 = identity
    step: int  # 1-based supervision step
    q_halt: float  # sigmoid of the halt logit, 0..1
    grid: Grid | None  # in the original frame; None = the prediction did not decode
    checkpoint: str = ""
    trajectory: int = 0  # which noisy run of the query (test-time compute); 0 = the deterministic one


class _Interner:
    """Assigns consecutive int codes to distinct hashable values, first seen first."""

    def __init__(self, values: Sequence = ()) -> None:
        self.codes: dict = {value: code for code, value in enumerate(values)}

    def code(self, value) -> int:
        return self.codes.setdefault(value, len(self.codes))

    def values(self) -> tuple:
        return tuple(self.codes)


@dataclass(frozen=True, eq=False)
class CandidateTable:
    """Columnar candidates. `task`, `checkpoint` and `grid` are int32 codes into `task_ids`,
    `checkpoints` and `grids` (distinct grid keys); a `grid` code of -1 means no grid.
    Row order is meaningful: voting breaks remaining ties by first appearance."""

    task_ids: tuple[str, ...]
    checkpoints: tuple[str, ...]
    grids: tuple[bytes, ...]
    task: np.ndarray
    test_index: np.ndarray
    augmentation: np.ndarray
    step: np.ndarray
    q_halt: np.ndarray
    checkpoint: np.ndarray
    grid: np.ndarray
    trajectory: np.ndarray

    # dtype of every per-row column
    COLUMNS = {
        "task": np.int32,
        "test_index": np.int32,
        "augmentation": np.int32,
        "step": np.int16,
        "q_halt": np.float64,
        "checkpoint": np.int32,
        "grid": np.int32,
        "trajectory": np.int16,
    }

    def __post_init__(self) -> None:
        lengths = {name: len(getattr(self, name)) for name in self.COLUMNS}
        if len(set(lengths.values())) > 1:
            raise ValueError(f"candidate columns differ in length: {lengths}")
        for name, dtype in self.COLUMNS.items():
            object.__setattr__(self, name, exact_column(name, getattr(self, name), dtype))
        for name, pool in (("task", self.task_ids), ("checkpoint", self.checkpoints), ("grid", self.grids)):
            codes = getattr(self, name)
            low = NO_GRID if name == "grid" else 0
            if len(codes) and (codes.min() < low or codes.max() >= len(pool)):
                raise ValueError(f"candidate column '{name}' has codes outside its {len(pool)} values")

    def __len__(self) -> int:
        return len(self.task)

    @classmethod
    def from_candidates(cls, candidates: Iterable[Candidate]) -> "CandidateTable":
        """A table of `candidates`, in their order."""
        tasks, checkpoints, grids = _Interner(), _Interner(), _Interner()
        columns: dict[str, list] = {name: [] for name in cls.COLUMNS}
        for c in candidates:
            columns["task"].append(tasks.code(c.task_id))
            columns["test_index"].append(c.test_index)
            columns["augmentation"].append(c.augmentation)
            columns["step"].append(c.step)
            columns["q_halt"].append(c.q_halt)
            columns["checkpoint"].append(checkpoints.code(c.checkpoint))
            columns["grid"].append(NO_GRID if c.grid is None else grids.code(grid_key(c.grid)))
            columns["trajectory"].append(c.trajectory)
        return cls(tasks.values(), checkpoints.values(), grids.values(), **columns)

    @classmethod
    def empty(cls) -> "CandidateTable":
        return cls.from_candidates(())

    @classmethod
    def concat(cls, tables: Sequence["CandidateTable"]) -> "CandidateTable":
        """Rows of every table in order; the value dictionaries are merged and codes remapped."""
        if not tables:
            return cls.empty()
        pools = {"task": _Interner(), "checkpoint": _Interner(), "grid": _Interner()}
        columns: dict[str, list[np.ndarray]] = {name: [] for name in cls.COLUMNS}
        for table in tables:
            for name in cls.COLUMNS:
                values = getattr(table, name)
                if name in pools:
                    values = _recode(values, table.pool(name), pools[name])
                columns[name].append(values)
        return cls(
            pools["task"].values(),
            pools["checkpoint"].values(),
            pools["grid"].values(),
            **{name: np.concatenate(parts) for name, parts in columns.items()},
        )

    def pool(self, name: str) -> tuple:
        """The distinct values behind a coded column ('task', 'checkpoint' or 'grid')."""
        return {"task": self.task_ids, "checkpoint": self.checkpoints, "grid": self.grids}[name]

    def select(self, rows: np.ndarray) -> "CandidateTable":
        """The rows at `rows` (indices or a boolean mask); value dictionaries are kept as they are."""
        return CandidateTable(
            self.task_ids, self.checkpoints, self.grids, **{name: getattr(self, name)[rows] for name in self.COLUMNS}
        )

    def row(self, i: int) -> Candidate:
        code = int(self.grid[i])
        return Candidate(
            self.task_ids[self.task[i]],
            int(self.test_index[i]),
            int(self.augmentation[i]),
            int(self.step[i]),
            float(self.q_halt[i]),
            None if code == NO_GRID else grid_from_key(self.grids[code]),
            self.checkpoints[self.checkpoint[i]],
            int(self.trajectory[i]),
        )

    def to_candidates(self) -> Iterator[Candidate]:
        """Every row as a `Candidate` (for tests and small tables: one Python object per row)."""
        return (self.row(i) for i in range(len(self)))


def _recode(codes: np.ndarray, values: tuple, into: _Interner) -> np.ndarray:
    """`codes` into `values`, re-expressed as codes of `into` (which learns the new values)."""
    mapping = np.array([into.code(value) for value in values] + [NO_GRID], dtype=np.int32)
    return mapping[codes]  # code -1 picks the trailing NO_GRID


def _dictionary(codes: np.ndarray, values: tuple, value_type: pa.DataType) -> pa.DictionaryArray:
    indices = pa.array(codes, type=pa.int32(), mask=codes < 0)
    return pa.DictionaryArray.from_arrays(indices, pa.array(values, type=value_type))


def to_arrow(table: CandidateTable) -> pa.Table:
    """The Parquet layout described in the module docstring."""
    columns = {
        "task_id": _dictionary(table.task, table.task_ids, pa.string()),
        "test_index": table.test_index,
        "augmentation": table.augmentation,
        "step": table.step,
        "q_halt": table.q_halt,
        "checkpoint": _dictionary(table.checkpoint, table.checkpoints, pa.string()),
        "grid": _dictionary(table.grid, table.grids, pa.binary()),
    }
    if table.trajectory.any():  # without trajectories the file stays as it was before they existed
        columns["trajectory"] = table.trajectory
    return pa.table(columns).replace_schema_metadata({FORMAT_KEY: CANDIDATES_FORMAT})


def _codes(column: pa.ChunkedArray) -> tuple[np.ndarray, tuple]:
    """Codes and values of a dictionary column read back (chunks may carry different dictionaries)."""
    column = column.unify_dictionaries() if column.num_chunks > 1 else column
    array = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    if not pa.types.is_dictionary(array.type):
        array = array.dictionary_encode()
    codes = array.indices.fill_null(NO_GRID).to_numpy(zero_copy_only=False)
    return codes.astype(np.int32), tuple(array.dictionary.to_pylist())


def from_arrow(arrow: pa.Table, source: str = "candidates") -> CandidateTable:
    """A table from the Parquet layout; a missing column is a `DataError` naming `source`."""
    wanted = ["task_id", "test_index", "augmentation", "step", "q_halt", "checkpoint", "grid"]
    missing = [name for name in wanted if name not in arrow.column_names]
    if missing:
        raise DataError(f"{source}: not a candidates file (no column {', '.join(missing)})")
    task, task_ids = _codes(arrow["task_id"])
    checkpoint, checkpoints = _codes(arrow["checkpoint"])
    grid, grids = _codes(arrow["grid"])
    check_grid_keys(grids, source)
    kinds = {"test_index": pa.types.is_integer, "augmentation": pa.types.is_integer, "step": pa.types.is_integer,
             "q_halt": pa.types.is_floating, "trajectory": pa.types.is_integer}
    if "trajectory" not in arrow.column_names:  # a file of deterministic runs only
        arrow = arrow.append_column("trajectory", pa.array(np.zeros(arrow.num_rows, np.int16)))
    for name, is_kind in kinds.items():
        if not is_kind(arrow.schema.field(name).type) or arrow[name].null_count:
            kind = "floats" if name == "q_halt" else "whole numbers of an integer type"
            raise DataError(f"{source}: column {name} must hold {kind} without nulls, not {arrow.schema.field(name).type}")
    numeric = {name: arrow[name].to_numpy() for name in kinds}
    check_values(numeric, source)
    try:
        return CandidateTable(task_ids, checkpoints, grids, task=task, checkpoint=checkpoint, grid=grid, **numeric)
    except ValueError as error:
        raise DataError(f"{source}: {error}") from None


LOWEST = {"test_index": 0, "augmentation": 0, "step": 1, "trajectory": 0}


def check_values(columns: Mapping[str, np.ndarray], source: str) -> None:
    """Refuse what voting would silently misread: a q_halt that is no probability (NaN, inf or negative
    reorder the answers) and an index below its first value (steps count from 1). Names file and row."""
    q_halt = columns["q_halt"]
    bad = np.flatnonzero(~((q_halt >= 0) & (q_halt <= 1)))  # NaN fails both comparisons
    if bad.size:
        raise DataError(f"{source}: row {bad[0]} (counted from 0) has q_halt {q_halt[bad[0]]}: "
                        "it must be a probability from 0 to 1 (the sigmoid of the halt logit)")
    for name, lowest in LOWEST.items():
        bad = np.flatnonzero(columns[name] < lowest)
        if bad.size:
            raise DataError(f"{source}: row {bad[0]} (counted from 0) has {name} {columns[name][bad[0]]}: it must be >= {lowest}")


def exact_column(name: str, values: Sequence | np.ndarray, dtype: type) -> np.ndarray:
    """`values` as a `dtype` column. An integer column refuses what the cast would change (1.5 read as 1,
    70000 wrapped into int16): distinct candidates would otherwise become duplicates."""
    array = np.asarray(values)
    if not np.issubdtype(dtype, np.integer) or array.dtype == dtype:
        return array.astype(dtype, copy=False)
    with np.errstate(invalid="ignore"):  # nan and inf are refused below, not warned about
        cast = array.astype(dtype)
    changed = np.flatnonzero(cast != array)
    if changed.size:
        limits = np.iinfo(dtype)
        raise ValueError(
            f"column {name} holds {array[changed[0]].item()}: {name} must be a whole number from {limits.min} to {limits.max}"
        )
    return cast


def check_grid_keys(keys: Sequence, source: str) -> None:
    """Every stored grid decodes (`grid_from_key`) to an ARC grid: a `DataError` naming the first that does not."""
    for i, key in enumerate(keys):
        if not isinstance(key, bytes) or len(key) < 3 or key[0] == 0 or key[0] * key[1] != len(key) - 2:
            raise DataError(f"{source}: grid {i} of the file cannot be decoded (not a rows, columns, cells key)")
        if max(key[2:]) > 9:
            raise DataError(f"{source}: grid {i} of the file holds the value {max(key[2:])} (ARC colours are 0..9)")


def _write_parquet(arrow: pa.Table, path: str | os.PathLike) -> Path:
    """Write atomically: readers see the old file or the whole new one, never a partial file."""
    buffer = io.BytesIO()
    # A large dictionary page limit keeps the grid column dictionary-encoded at full scale
    # (hundreds of thousands of distinct grids); the default 1 MB falls back to plain encoding.
    pq.write_table(arrow, buffer, compression="zstd", dictionary_pagesize_limit=256 << 20)
    return atomic_write_bytes(path, buffer.getvalue())


def _read_parquet(path: str | os.PathLike, dictionary_columns: list[str], fmt: bytes) -> pa.Table:
    path = Path(path)
    if path.is_dir():
        raise DataError(f"{path}: is a folder, expected a {fmt.decode().split('/')[0]} Parquet file (e.g. OUT/{fmt.decode().split('/')[0]}.parquet)")
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    try:
        arrow = pq.read_table(path, read_dictionary=dictionary_columns)
    except (pa.ArrowException, OSError) as error:
        raise DataError(f"{path}: not a readable Parquet file ({error})") from None
    found = (arrow.schema.metadata or {}).get(FORMAT_KEY)
    if found != fmt:
        raise DataError(f"{path}: expected an arc_trm {fmt.decode()} file, found {found!r}")
    return arrow


def save_candidates(table: CandidateTable, path: str | os.PathLike) -> Path:
    """Write `table` to a Parquet file atomically."""
    return _write_parquet(to_arrow(table), path)


def load_candidates(path: str | os.PathLike) -> CandidateTable:
    """Read a file written by `save_candidates`; problems are a one-line `DataError`."""
    arrow = _read_parquet(path, ["task_id", "checkpoint", "grid"], CANDIDATES_FORMAT)
    with column_errors(path):
        return from_arrow(arrow, str(path))


@contextlib.contextmanager
def column_errors(path: str | os.PathLike) -> Iterator[None]:
    """A column of the wrong type or with nulls, in a file that has the right format marker, is one
    `DataError` naming the file."""
    try:
        yield
    except (ValueError, TypeError, KeyError, pa.ArrowException) as error:
        text = " ".join(str(error).split())[:160]
        raise DataError(f"{path}: a column has the wrong type or missing values ({type(error).__name__}: {text})") from None


# (task_id, test_index, grid_key) -> log-probability of that grid under each augmentation
LogProbs = Mapping[tuple[str, int, bytes], Sequence[float]]


def save_log_probs(log_probs: LogProbs, path: str | os.PathLike) -> Path:
    """Write product-of-experts log-probabilities (columns task_id, test_index, grid, log_probs)."""
    keys = list(log_probs)
    arrow = pa.table(
        {
            "task_id": pa.array([k[0] for k in keys], type=pa.string()),
            "test_index": pa.array([k[1] for k in keys], type=pa.int32()),
            "grid": pa.array([k[2] for k in keys], type=pa.binary()),
            "log_probs": pa.array([list(map(float, log_probs[k])) for k in keys], type=pa.list_(pa.float64())),
        }
    )
    return _write_parquet(arrow.replace_schema_metadata({FORMAT_KEY: LOG_PROBS_FORMAT}), path)


def load_log_probs(path: str | os.PathLike) -> dict[tuple[str, int, bytes], np.ndarray]:
    """Read a file written by `save_log_probs`."""
    arrow = _read_parquet(path, [], LOG_PROBS_FORMAT)
    with column_errors(path):
        rows = zip(
            arrow["task_id"].to_pylist(), arrow["test_index"].to_pylist(), arrow["grid"].to_pylist(),
            arrow["log_probs"].to_pylist(),
        )
        loaded = {(task, int(test), key): np.asarray(values, dtype=np.float64) for task, test, key, values in rows}
        if any(not isinstance(task, str) or not isinstance(key, bytes) for task, _, key in loaded):
            raise TypeError("task_id must be strings and grid bytes")
        return loaded


__all__ = [
    "Candidate",
    "CandidateTable",
    "LogProbs",
    "grid_key",
    "grid_from_key",
    "save_candidates",
    "load_candidates",
    "save_log_probs",
    "load_log_probs",
    "to_arrow",
    "from_arrow",
]
