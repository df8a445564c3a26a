"""Output locations a command cannot write: one `error:` line naming the path, exit 2, before the work
and with nothing half-written."""

from __future__ import annotations

import errno
import os
import re
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}

COMMANDS = {
    "sudoku generator": ["arc_trm.data.sudoku", "generate", "--n", "2", "--min-rating", "0", "--workers", "1", "--out", "{out}"],
    "maze generator": ["arc_trm.data.maze", "generate", "--n", "2", "--size", "8", "--min-length", "1", "--workers", "1", "--out", "{out}"],
    "ARC data build": ["arc_trm.data.arc", "--tasks", "arc1", "--num-aug", "0", "--canvas", "4", "--out", "{out}"],
    "training run.dir": ["arc_trm.train", "data.max_tasks=2", "data.num_aug=0", "run.tracker=none", "run.dir={out}"],
}


@pytest.mark.parametrize("command", COMMANDS)
def test_an_output_under_a_file_is_one_error_line(tmp_path, command):
    (tmp_path / "a_file").write_text("")
    out = tmp_path / "a_file" / "out"
    argv = [arg.format(out=out) for arg in COMMANDS[command]]
    result = subprocess.run([sys.executable, "-m", *argv], capture_output=True, text=True, timeout=300, env=ENV, cwd=ROOT)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert errors == [f"error: {out}: cannot write: {tmp_path / 'a_file'} is a file, not a folder"]


def test_a_failed_arc_data_build_leaves_no_partial_folder(tmp_path, monkeypatch):
    import datasets

    from arc_trm.data.arc import build

    def full_disk(self, path, *args, **kwargs):
        Path(path).mkdir(parents=True)
        (Path(path) / "data-00000-of-00001.arrow").write_bytes(b"half")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(datasets.Dataset, "save_to_disk", full_disk)
    with pytest.raises(OSError, match="No space left") as error:
        build("arc1", tmp_path / "out", num_aug=0, canvas=4)
    assert error.value.filename == str(tmp_path / "out")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == []


def safetensors_writer(path: Path, data: bytes) -> None:
    import torch

    from arc_trm.exported import _atomic_save_safetensors

    _atomic_save_safetensors(path, {"x": torch.frombuffer(bytearray(data), dtype=torch.uint8)})


def bytes_writer(path: Path, data: bytes) -> None:
    from arc_trm.io import atomic_write_bytes

    atomic_write_bytes(path, data)


@pytest.mark.parametrize("write", [bytes_writer, safetensors_writer])
def test_a_symlinked_output_replaces_its_target_and_stays_a_link(tmp_path, write):
    (tmp_path / "real").mkdir()
    (tmp_path / "links").mkdir()
    target, link = tmp_path / "real" / "out.bin", tmp_path / "links" / "out.bin"
    target.write_bytes(b"old")
    link.symlink_to(Path("..") / "real" / "out.bin")  # relative, as `ln -s` makes them
    write(link, b"new contents")
    assert link.is_symlink() and os.readlink(link) == str(Path("..") / "real" / "out.bin")
    assert b"new contents" in target.read_bytes()
    assert oct(target.stat().st_mode & 0o777) == oct(0o666 & ~current_umask())
    assert sorted(p.name for p in (tmp_path / "real").iterdir()) == ["out.bin"]  # no temporary file left
    assert sorted(p.name for p in (tmp_path / "links").iterdir()) == ["out.bin"]


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def special_file(tmp_path: Path, kind: str) -> Path:
    path = tmp_path / kind
    if kind == "fifo":
        os.mkfifo(path)
    else:  # a device node of our own, never the machine's /dev/null
        if os.geteuid() != 0:
            pytest.skip("making a device node needs root")
        os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    return path


@pytest.mark.parametrize("kind, name", [("fifo", "FIFO (named pipe)"), ("device", "character device")])
@pytest.mark.parametrize("write", [bytes_writer, safetensors_writer])
def test_a_device_or_fifo_as_output_is_refused_and_kept(tmp_path, kind, name, write):
    path = special_file(tmp_path, kind)
    link = tmp_path / "link"
    link.symlink_to(path)
    for out in (path, link):
        with pytest.raises(OSError, match=f"is a {re.escape(name)}, not a regular file") as error:
            write(out, b"data")
        assert error.value.filename == str(out)
    mode = path.stat().st_mode
    assert stat.S_ISFIFO(mode) if kind == "fifo" else stat.S_ISCHR(mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([kind, "link"])


def test_a_fifo_as_the_score_report_is_one_error_line(tmp_path, capsys):
    from test_hostile_inputs import run_main, task_with_outputs

    from arc_trm.grids import write_kaggle_pair
    from evaluation.score import main as score

    _, solutions = write_kaggle_pair([task_with_outputs("t")], tmp_path, "x")
    submission = tmp_path / "submission.json"
    submission.write_text('{"t": [{"attempt_1": [[1]], "attempt_2": [[2]]}]}')
    fifo = special_file(tmp_path, "fifo")
    err = run_main(score, [submission, "--solutions", solutions, "--json", fifo], capsys)
    assert err == f"error: {fifo}: is a FIFO (named pipe), not a regular file; name a file to write\n"
    assert stat.S_ISFIFO(fifo.stat().st_mode)


def test_a_full_disk_while_exporting_names_the_file_and_leaves_no_temporary(tmp_path, monkeypatch):
    import torch

    from arc_trm import exported
    from arc_trm.model.trm import TRM, ModelConfig

    def full_disk(tensors, filename, *args, **kwargs):
        Path(filename).write_bytes(b"half")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(exported, "save_file", full_disk)
    model = TRM(ModelConfig(hidden=32, heads=2, seq_len=4, puzzle_emb_len=1))
    with pytest.raises(OSError, match="No space left on device") as error:
        exported.export_model(tmp_path / "model", model, torch.zeros(2, 32), exported.DataInfo())
    assert error.value.filename == str(tmp_path / "model" / "weights.safetensors")
    assert list(tmp_path.iterdir()) == []  # no model folder, no staging folder, no temporary file


def test_a_library_error_on_a_full_disk_is_named_as_one(tmp_path, monkeypatch):
    """torch.save on a full disk says only `unexpected pos`; the error names the path and the cause."""
    from arc_trm import io

    monkeypatch.setattr(io, "disk_full", lambda where: True)
    with pytest.raises(OSError, match="no space left on the disk") as error:
        with io.writing_to(tmp_path / "step.tmp"):
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 640 vs 534")
    assert error.value.errno == errno.ENOSPC and error.value.filename == str(tmp_path / "step.tmp")
    with pytest.raises(KeyError):  # not a write failure: left as it is
        with io.writing_to(tmp_path / "step.tmp"):
            raise KeyError("bug")


def test_an_unwritable_submission_is_not_retried(tmp_path, monkeypatch):
    from arc_trm.kaggle import flow

    calls = []

    def refused(*args):
        calls.append(args)
        raise PermissionError(errno.EACCES, "Permission denied", str(tmp_path / "submission.json"))

    monkeypatch.setattr(flow, "write_submission", refused)
    monkeypatch.setattr(time, "sleep", lambda seconds: pytest.fail("retried a permission error"))
    with pytest.raises(PermissionError):
        flow.write_retrying({}, tmp_path / "submission.json", [])
    assert len(calls) == 1


EMPTY_OUTPUT = {
    "score --render ''": ("evaluation.score", ["s.json", "--split", "arc-agi-1/evaluation", "--render", ""], "--render"),
    "vote --render ''": ("arc_trm.vote", ["c.parquet", "--split", "arc-agi-1/evaluation", "--render", ""], "--render"),
    "import_reference --out ''": ("arc_trm.import_reference", ["ref.pt", "--out", ""], "--out"),
    "score --json and --render the same path": (
        "evaluation.score", ["s.json", "--split", "arc-agi-1/evaluation", "--json", "x", "--render", "./x"], "--json x and --render x: the same path"),
}


@pytest.mark.parametrize("case", EMPTY_OUTPUT)
def test_an_empty_or_doubled_output_path_is_refused_before_any_work(tmp_path, monkeypatch, capsys, case):
    """An empty path used to mean the current folder (score --render '' drew its pictures there, import_reference
    --out '' exported a model there) or to be ignored (vote); --json and --render on one path drew the pictures,
    then failed to write the report onto their folder."""
    import importlib

    module, argv, named = EMPTY_OUTPUT[case]
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        importlib.import_module(module).main(argv)
    lines = capsys.readouterr().err.strip().splitlines()
    assert exit_info.value.code == 2 and len(lines) == 1 and lines[0].startswith("error: ") and named in lines[0], lines
    assert list(tmp_path.iterdir()) == []
