"""Output locations a command cannot write: one `error:` line naming the path, exit 2, before the work
and with nothing half-written."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
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
    assert errors == [f"error: {out if command != 'training run.dir' else out / 'config.yaml'}: cannot write: "
                      f"{tmp_path / 'a_file'} is a file, not a folder"]


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
