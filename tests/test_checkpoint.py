"""The run directory's checkpoints: which one a run resumes from, and which ones rotation may drop."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pytest
from test_train import ENV, FAST, ROOT, metrics, run_train

from arc_trm.checkpoint import latest_checkpoint, publish_checkpoint
from arc_trm.errors import DataError


def fake_checkpoint(run: Path, step: int, complete: bool = True) -> Path:
    path = run / "checkpoints" / f"step_{step:07d}"
    path.mkdir(parents=True)
    (path / "model.safetensors").write_bytes(b"weights")
    if complete:
        (path / "rank_0.pt").write_bytes(b"state")
        (path / "puzzle_table_0.pt").write_bytes(b"table")
    return path


@pytest.mark.parametrize("pointer", [None, "", "step_0000500", "\x00\xffgarbage", "../../etc"])
def test_a_broken_latest_resumes_from_the_newest_complete_checkpoint(tmp_path, caplog, pointer):
    run = tmp_path / "run"
    fake_checkpoint(run, 100)
    newest = fake_checkpoint(run, 200)
    fake_checkpoint(run, 300, complete=False)  # half written: never resumed from
    if pointer is not None:
        (run / "latest").write_bytes(pointer.encode("latin-1"))
    with caplog.at_level(logging.WARNING, logger="arc_trm"):
        assert latest_checkpoint(run) == newest
    assert "resuming from the newest complete checkpoint" in caplog.text and str(run / "latest") in caplog.text


def test_latest_is_followed_when_it_names_a_complete_checkpoint(tmp_path, caplog):
    run = tmp_path / "run"
    older = fake_checkpoint(run, 100)
    fake_checkpoint(run, 200)
    (run / "latest").write_text("step_0000100")
    with caplog.at_level(logging.WARNING, logger="arc_trm"):
        assert latest_checkpoint(run) == older
    assert caplog.text == ""


def test_only_incomplete_checkpoints_stop_the_run_instead_of_starting_afresh(tmp_path):
    run = tmp_path / "run"
    fake_checkpoint(run, 100, complete=False)
    (run / "latest").write_text("step_0000100")
    with pytest.raises(DataError, match="none complete"):
        latest_checkpoint(run)


def test_no_checkpoint_starts_from_step_0(tmp_path):
    assert latest_checkpoint(tmp_path / "run") is None


def publish(run: Path, step: int, keep: int) -> Path:
    tmp = run / "checkpoints" / f"step_{step:07d}.tmp"
    tmp.mkdir(parents=True)
    (tmp / "rank_0.pt").write_bytes(b"state")
    (tmp / "puzzle_table_0.pt").write_bytes(b"table")
    return publish_checkpoint(run, tmp, step, keep)


def steps_on_disk(run: Path) -> list[str]:
    return sorted(p.name for p in (run / "checkpoints").iterdir())


def test_rotation_keeps_the_newest_ones(tmp_path):
    run = tmp_path / "run"
    for step in (1, 2, 3, 4):
        publish(run, step, keep=2)
    assert steps_on_disk(run) == ["step_0000003", "step_0000004"]
    assert (run / "latest").read_text() == "step_0000004"


def test_rotation_never_drops_the_checkpoint_just_written_nor_the_newest(tmp_path):
    # the old run's step 900 is newer by number than what this run writes after a broken `latest`
    run = tmp_path / "run"
    fake_checkpoint(run, 800)
    fake_checkpoint(run, 900)
    publish(run, 10, keep=1)
    assert steps_on_disk(run) == ["step_0000010", "step_0000900"]
    publish(run, 20, keep=1)
    assert steps_on_disk(run) == ["step_0000020", "step_0000900"]
    assert (run / "latest").read_text() == "step_0000020"


def test_training_resumes_past_a_dangling_latest(tmp_path):
    run = tmp_path / "run"
    run_train([f"run.dir={run}", "train.steps=4", "run.checkpoint_every=2"])
    (run / "latest").write_text("step_0009999")
    result = run_train([f"run.dir={run}", "train.steps=6", "run.checkpoint_every=2"])
    assert "names step_0009999, which is not in" in result.stderr
    assert "resumed from" in result.stdout and "step_0000004 at step 4" in result.stdout
    assert [m["step"] for m in metrics(run) if "train/loss" in m] == [1, 2, 3, 4, 5, 6]
    assert (run / "latest").read_text() == "step_0000006"


def test_a_corrupt_checkpoint_is_one_error_line(tmp_path):
    run = tmp_path / "run"
    run_train([f"run.dir={run}", "train.steps=2"])
    checkpoint = run / "checkpoints" / (run / "latest").read_text().strip()
    (checkpoint / "model.safetensors").write_bytes(b"not safetensors")
    result = subprocess.run([sys.executable, "-m", "arc_trm.train", *FAST, f"run.dir={run}", "train.steps=4"],
                            capture_output=True, text=True, timeout=300, env=ENV, cwd=ROOT)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"error: {checkpoint}: cannot resume from this checkpoint" in result.stderr
