"""File I/O that users rely on: atomic writes (temp file in the same folder, then rename) and
JSON reading that reports problems as `DataError` naming the file."""

from __future__ import annotations

import contextlib
import csv
import errno
import fcntl
import io
import os
import stat
import tempfile
from pathlib import Path
from typing import IO, Any, Callable, Iterator, Mapping, Sequence

import orjson

from arc_trm.errors import ConfigError, DataError, error_summary


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write `data` to `path` so that readers see either the old file or the whole new one."""

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())

    return atomic_write(path, write)


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Let `write(tmp)` fill a temporary file beside the file `path` names, then rename it into place.
    A symlink at `path` stays: its target is replaced, in the target's folder. A folder, device, FIFO or
    socket there is refused. A failure (also a library's own error for a full disk) is an OSError naming `path`."""
    path = Path(path)
    target = output_target(path)
    tmp = None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        os.close(fd)
        write(Path(tmp))
        # mkstemp and safetensors (a file of its own, renamed onto tmp) make 0600; others must read outputs
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, target)
    except BaseException as error:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        failure = write_failure(error, path)  # the user's file, not the temporary one
        if failure is None:
            raise
        raise failure from error
    return path


def output_target(path: Path) -> Path:
    """The file an output at `path` replaces: `path`, or the final target of a symlink there. Only a
    regular file (or nothing yet) can be replaced: writing would turn a device or FIFO into a file."""
    target = Path(os.path.realpath(path)) if path.is_symlink() else path
    if target.is_dir():
        raise IsADirectoryError(errno.EISDIR, "is a folder, expected a file path", str(path))
    if target.exists() and not target.is_file():
        kind = special_file_kind(target.stat().st_mode)
        raise OSError(errno.EINVAL, f"is a {kind}, not a regular file; name a file to write", str(path))
    refuse_file_in_the_way(target.parent, path)
    return target


def special_file_kind(mode: int) -> str:
    kinds = {stat.S_ISCHR: "character device", stat.S_ISBLK: "block device", stat.S_ISFIFO: "FIFO (named pipe)",
             stat.S_ISSOCK: "socket"}
    return next((name for test, name in kinds.items() if test(mode)), "special file")


LIBRARY_WRITE_FAILURES = ("No space left", "os error", "I/O error", "unexpected pos", "file write failed")
"""Signs of a failed write in the errors torch and safetensors raise as their own types (a full disk
makes torch.save report only `unexpected pos`)."""

PERMANENT_ERRNOS = {errno.EACCES, errno.EPERM, errno.EISDIR, errno.ENOTDIR, errno.EROFS, errno.EINVAL, errno.ENAMETOOLONG}


def write_failure(error: BaseException, where: str | os.PathLike) -> OSError | None:
    """`error`, raised while writing `where`, as an OSError of the same kind naming `where`; None when it
    is not a failed write (an interrupt, a bug). A library's write error on a full file system is ENOSPC."""
    if isinstance(error, OSError):
        return type(error)(error.errno, f"cannot write ({error.strerror or error})", str(where))
    if not isinstance(error, Exception) or not any(sign in str(error) for sign in LIBRARY_WRITE_FAILURES):
        return None
    full = "No space left" in str(error) or "os error 28" in str(error) or disk_full(where)
    reason = "no space left on the disk" if full else error_summary(error)
    return OSError(errno.ENOSPC if full else errno.EIO, f"cannot write ({reason})", str(where))


def disk_full(where: str | os.PathLike) -> bool:
    """Whether the file system of `where` (or of its nearest existing parent) has less than 1 MiB left."""
    folder = next((p for p in (Path(where), *Path(where).parents) if p.exists()), Path("."))
    usage = os.statvfs(folder)
    return usage.f_bavail * usage.f_frsize < 1 << 20


@contextlib.contextmanager
def writing_to(where: str | os.PathLike) -> Iterator[None]:
    """Failed writes in the block, whatever the library's error type, as one OSError naming `where`."""
    try:
        yield
    except Exception as error:
        failure = write_failure(error, where)
        if failure is None:
            raise
        raise failure from error


def is_transient(error: BaseException) -> bool:
    """Whether a failed write may succeed if tried again (a network disk's hiccup, a full disk being
    cleaned); a missing permission, a folder or special file in the way or a read-only disk will not."""
    return isinstance(error, OSError) and error.errno not in PERMANENT_ERRNOS


def refuse_file_in_the_way(folder: Path, target: Path) -> None:
    """A NotADirectoryError naming `target` when `folder`, or the nearest of its parents that exists,
    is a file: then `folder` cannot be created and nothing can be written under it."""
    blocking = next((p for p in (folder, *folder.parents) if p.exists()), None)
    if blocking is not None and not blocking.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, f"cannot write: {blocking} is a file, not a folder", str(target))


def refuse_output_on_input(
    output: str | os.PathLike, inputs: Mapping[str, str | os.PathLike | None], option: str = "--out"
) -> None:
    """ConfigError naming both paths when `output` is one of `inputs` (`{what it is: path}`, None
    skipped) or lies inside one that is a folder (a model or run folder, a task folder). Paths are
    compared resolved, symlinks followed, so another spelling of the same file is caught too."""
    target = Path(output).resolve()
    named = f"{option}{output}" if option.endswith("=") else f"{option} {output}"
    sources = {what: (given, Path(given).resolve()) for what, given in inputs.items() if given is not None and str(given).strip()}
    for what, (given, source) in sources.items():
        if target == source:
            raise ConfigError(f"{named}: is {what} {given}; writing there would replace it")
    for what, (given, source) in sources.items():
        if source.is_dir() and source in target.parents:
            raise ConfigError(f"{named}: lies inside {what} {given}; writing there would change it")


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


_held_locks: dict[Path, IO[str]] = {}


def hold_lock(path: Path, busy: Callable[[str], str]) -> None:
    """Hold an exclusive lock on the file `path` (which then names this process's PID) until
    `release_lock` or the end of this process, so a killed process leaves no stale lock. When another
    process holds it: a ConfigError with `busy(its PID)`."""
    ensure_folder(path.parent)
    release_lock(path)  # this process's own lock from an earlier call (a run that failed): taken again below
    handle = open(path, "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "unknown"
        handle.close()
        raise ConfigError(busy(holder)) from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    _held_locks[path.resolve()] = handle


def release_lock(path: Path) -> None:
    """Release this process's lock on `path`, if it holds one."""
    handle = _held_locks.pop(path.resolve(), None)
    if handle is not None:
        handle.close()
