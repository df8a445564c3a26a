"""The run directory's checkpoints: which one a run resumes from, and which ones rotation may drop."""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from test_train import ENV, FAST, ROOT, metrics, run_train

from arc_trm.checkpoint import latest_checkpoint, lock_run_dir, publish_checkpoint, unlock_run_dir
from arc_trm.errors import ConfigError, DataError


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


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A run of 2 steps with its checkpoint; tests change copies of it."""
    run = tmp_path_factory.mktemp("trained") / "run"
    run_train([f"run.dir={run}", "train.steps=2"])
    return run


def train_on(run: Path, *args: str, code: str = "") -> subprocess.CompletedProcess:
    """`arc_trm.train` on `run` after `code` (a monkeypatch) in the same process."""
    argv = [*FAST, f"run.dir={run}", *args]
    command = [sys.executable, "-c", f"{code}\nfrom arc_trm.train import main; main({argv!r})"]
    return subprocess.run(command, capture_output=True, text=True, timeout=300, env=ENV, cwd=ROOT)


def error_lines(result: subprocess.CompletedProcess) -> list[str]:
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-3000:]
    return [line for line in result.stderr.splitlines() if line.startswith("error: ")]


@pytest.mark.parametrize("damage", ["model.safetensors", "puzzle_table_0.pt"])
def test_a_corrupt_or_truncated_checkpoint_is_one_error_line(trained, tmp_path, damage):
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    checkpoint = run / "checkpoints" / (run / "latest").read_text().strip()
    if damage == "model.safetensors":
        (checkpoint / damage).write_bytes(b"not safetensors")
    else:
        data = (checkpoint / damage).read_bytes()
        (checkpoint / damage).write_bytes(data[: len(data) // 2])
    [line] = error_lines(train_on(run, "train.steps=4"))
    assert line.startswith(f"error: {checkpoint}: cannot resume from this checkpoint")


def test_resuming_another_model_size_says_to_use_another_run_dir(trained, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    (run / "config.yaml").unlink()  # else the config check refuses first; a copied checkpoint has no config
    [line] = error_lines(train_on(run, "train.steps=4", "model.hidden=64"))
    assert "of another size than this config's" in line and line.endswith("use another run.dir")


def test_a_budget_raised_on_resume_warns_when_the_schedule_follows_it(trained, tmp_path):
    """With the reference's constant lr, more steps only continue the run; with a cosine decay the past steps
    followed another schedule than a fresh run of the new budget, and the run says so."""
    constant, cosine = tmp_path / "constant", tmp_path / "cosine"
    shutil.copytree(trained, constant)
    shutil.copytree(trained, cosine)
    plain = train_on(constant, "train.steps=3")
    assert plain.returncode == 0 and "warning" not in plain.stdout + plain.stderr, plain.stderr[-2000:]
    decayed = train_on(cosine, "train.steps=3", "train.lr_min_ratio=0.1")
    assert decayed.returncode == 0, decayed.stderr[-2000:]
    assert f"warning: {cosine / 'config.yaml'}: train.steps was 2 and is now 3; the cosine decay follows the new total" in decayed.stdout


def test_a_full_disk_while_checkpointing_names_the_checkpoint(trained, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    full_disk = (
        "import errno, torch\n"
        "def full(*args, **kwargs): raise OSError(errno.ENOSPC, 'No space left on device')\n"
        "torch.save = full"
    )
    [line] = error_lines(train_on(run, "train.steps=3", code=full_disk))
    assert line == f"error: {run / 'checkpoints' / 'step_0000003.tmp'}: cannot write (No space left on device)"
    assert (run / "latest").read_text() == "step_0000002"


def test_rotation_counts_only_complete_checkpoints(tmp_path):
    run = tmp_path / "run"
    fake_checkpoint(run, 1)
    fake_checkpoint(run, 2, complete=False)  # a partial copy: cannot be resumed
    publish(run, 3, keep=2)
    assert steps_on_disk(run) == ["step_0000001", "step_0000003"]
    fake_checkpoint(run, 9, complete=False)  # the newest folder is kept, but does not count
    publish(run, 4, keep=1)
    assert steps_on_disk(run) == ["step_0000004", "step_0000009"]


def test_a_latest_that_is_a_folder_stops_the_run_at_the_start(tmp_path):
    run = tmp_path / "run"
    fake_checkpoint(run, 100)
    (run / "latest").mkdir()  # the run would replace it only after its first checkpoint
    with pytest.raises(DataError, match=f"{run / 'latest'}: is a folder or special file"):
        latest_checkpoint(run)


def hold_lock(run: Path) -> subprocess.Popen:
    """Another process holding the run's lock until killed."""
    code = f"import time; from pathlib import Path; from arc_trm.checkpoint import lock_run_dir; lock_run_dir(Path({str(run)!r})); print('locked', flush=True); time.sleep(600)"
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=ENV)
    assert holder.stdout.readline() == "locked\n"
    return holder


def test_a_second_training_process_on_one_run_dir_fails_at_once(tmp_path):
    run = tmp_path / "run"
    holder = hold_lock(run)
    try:
        with pytest.raises(ConfigError, match=f"another training process \\(PID {holder.pid}\\) is using it"):
            lock_run_dir(run)
        [line] = error_lines(train_on(run, "train.steps=2"))
        assert f"PID {holder.pid}" in line and "use another run.dir" in line
        assert sorted(p.name for p in run.iterdir()) == [".lock"]  # nothing written
    finally:
        holder.kill()
        holder.wait()
    lock_run_dir(run)  # the lock died with its process
    lock_run_dir(run)  # and this process may take its own again (a failed run before, in-process)
    unlock_run_dir(run)


def _new_model(seed: int):
    import torch

    from arc_trm.model.trm import TRM, ModelConfig

    torch.manual_seed(seed)
    return TRM(ModelConfig(hidden=16, heads=2, vocab_size=12, seq_len=4, puzzle_emb_len=1))


def _export(folder: Path, seed: int) -> None:
    import torch

    from arc_trm.exported import DataInfo, export_model

    export_model(folder, _new_model(seed), torch.randn(3, 16), DataInfo(seed=seed))


def test_an_export_stopped_between_its_renames_loads_the_new_model(tmp_path, monkeypatch):
    """The export swaps a whole folder in: stopped after the old folder went aside, the complete new
    one is read from MODEL.partial, never a mix of the two exports; the next export tidies up."""
    import torch

    from arc_trm.exported import load_model

    folder = tmp_path / "run" / "model"
    _export(folder, 0)
    renames = []
    real_rename = Path.rename

    def stop_at_the_second(self, target):
        renames.append(self)
        if len(renames) == 2:
            raise KeyboardInterrupt  # a kill
        return real_rename(self, target)

    monkeypatch.setattr(Path, "rename", stop_at_the_second)
    with pytest.raises(KeyboardInterrupt):
        _export(folder, 1)
    monkeypatch.undo()
    new = _new_model(1).state_dict()
    assert not folder.exists() and (tmp_path / "run" / "model.partial").is_dir()
    for path in (folder, tmp_path / "run"):  # the folder itself or its run directory
        loaded = load_model(path)
        assert loaded.data.seed == 1 and all(torch.equal(loaded.model.state_dict()[k], new[k]) for k in new)
    _export(folder, 2)
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["model"]


def test_an_export_stopped_while_writing_leaves_the_old_model_whole(tmp_path, monkeypatch):
    import arc_trm.exported as exported

    folder = tmp_path / "model"
    _export(folder, 0)
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    monkeypatch.setattr(exported, "atomic_write_bytes", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt))
    with pytest.raises(KeyboardInterrupt):
        _export(folder, 1)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
