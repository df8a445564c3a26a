"""File I/O that users rely on: atomic writes (temp file in the same folder, then rename) and
JSON reading that reports problems as `DataError` naming the file."""

from __future__ import annotations

import csv
import errno
import io
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator, Sequence

import orjson

from arc_trm.errors import DataError


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write `data` to `path` so that readers see either the old file or the whole new one."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(errno.EISDIR, "is a folder, expected a file path", str(path))
    refuse_file_in_the_way(path.parent, path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; other users and nodes must read these files
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as error:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        if isinstance(error, OSError):  # name the user's file, not the temporary one or none (a full disk)
            raise type(error)(error.errno, f"cannot write ({error.strerror or error})", str(path)) from error
        raise
    return path


def refuse_file_in_the_way(folder: Path, target: Path) -> None:
    """A NotADirectoryError naming `target` when `folder`, or the nearest of its parents that exists,
    is a file: then `folder` cannot be created and nothing can be written under it."""
    blocking = next((p for p in (folder, *folder.parents) if p.exists()), None)
    if blocking is not None and not blocking.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, f"cannot write: {blocking} is a file, not a folder", str(target))


def ensure_folder(path: str | os.PathLike) -> Path:
    """Create the output folder `path` now, so that a command fails before its work, not after it; a
    file in the way is an OSError naming it."""
    path = Path(path)
    refuse_file_in_the_way(path, path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise type(error)(error.errno, f"cannot create the folder ({error.strerror or error})", str(path)) from error
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_json(path: str | os.PathLike, obj: Any, indent: bool = False) -> Path:
    """Serialise `obj` with orjson (numpy arrays allowed) and write it atomically."""
    option = orjson.OPT_SERIALIZE_NUMPY | (orjson.OPT_INDENT_2 if indent else 0)
    return atomic_write_bytes(path, orjson.dumps(obj, option=option))


def read_json(path: str | os.PathLike) -> Any:
    """Parse a JSON file; a missing or malformed file is a one-line `DataError`."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a folder, expected a JSON file") from None
    except OSError as error:
        raise DataError(f"{path}: cannot read ({error.strerror})") from None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        raise DataError(f"{path}: not valid JSON ({error})") from None


def read_csv_rows(path: str | os.PathLike, header: Sequence[str], what: str = "CSV file") -> Iterator[tuple[int, list[str]]]:
    """(line number, fields) of each data row of a CSV file whose first line must be `header`;
    a missing file, a wrong header or a row with another number of fields is a `DataError` naming file and line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a folder, expected a {what}") from None
    except (OSError, UnicodeDecodeError) as error:
        raise DataError(f"{path}: cannot read ({error})") from None
    reader = csv.reader(io.StringIO(text))
    try:
        found = next(reader, None)
        if found is None or tuple(found) != tuple(header):
            raise DataError(f"{path}:1: header must be {','.join(header)}, found {','.join(found or [])!r}")
        for row in reader:
            if len(row) != len(header):
                raise DataError(f"{path}:{reader.line_num}: expected {len(header)} fields ({','.join(header)}), found {len(row)}")
            yield reader.line_num, row
    except csv.Error as error:  # e.g. a one-line JSON file: a field past csv's size limit
        raise DataError(f"{path}:{reader.line_num}: not a {what} ({error})") from None


def write_csv(path: str | os.PathLike, header: Sequence[str], rows: Any) -> Path:
    """Write a header and rows as CSV, atomically."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return atomic_write_bytes(path, out.getvalue().encode("utf-8"))
