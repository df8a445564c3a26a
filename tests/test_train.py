"""Training on real ARC tasks on the CPU: loss falls, resume is exact, processes agree, nodes connect."""

from __future__ import annotations

import copy
import os
import signal
import subprocess
import sys
import time
from contextlib import nullcontext
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import orjson
import pytest
import torch
from safetensors.torch import load_file

from arc_trm.config import load_config
from arc_trm.distributed import free_port

# small and fast: 8 + 8 ARC-AGI-1 tasks on a 10x10 canvas
FAST = [
    "data.max_tasks=8", "data.num_aug=4", "model.hidden=32", "model.heads=2", "model.halt_max_steps=3",
    "train.global_batch=16", "run.tracker=none", "run.log_every=1", "run.eval_aug=2",
]
ROOT = Path(__file__).resolve().parents[1]
CPU_CONFIG = ROOT / "accelerate_configs" / "cpu.yaml"
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}


def run_train(args: list[str], launcher: list[str] | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    command = (launcher or [sys.executable, "-m"]) + ["arc_trm.train", *FAST, *args]
    # from the repository root: the DeepSpeed configs name their JSON relative to it
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=ENV, cwd=ROOT)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def metrics(run_dir: Path) -> list[dict]:
    return [orjson.loads(line) for line in (run_dir / "metrics.jsonl").read_bytes().splitlines()]


def latest_weights(run_dir: Path) -> dict[str, torch.Tensor]:
    checkpoint = run_dir / "checkpoints" / (run_dir / "latest").read_text().strip()
    weights = load_file(str(checkpoint / "model.safetensors"))
    shards = [torch.load(path) for path in sorted(checkpoint.glob("puzzle_table_*.pt"))]
    table = torch.full((shards[0]["num_ids"], shards[0]["weights"].shape[1]), float("nan"))
    for shard in shards:
        table[shard["rank"] :: shard["world"]] = shard["weights"]
    return {**weights, "puzzle_table": table}


def exported_weights(run_dir: Path) -> dict[str, torch.Tensor]:
    """The exported model (EMA weights and puzzle table): the same files whatever the engine."""
    return {**load_file(str(run_dir / "model" / "weights.safetensors")),
            **load_file(str(run_dir / "model" / "puzzle_table.safetensors"))}



def accelerate_cpu(processes: int, *extra: str) -> list[str]:
    # the shipped accelerate_configs/cpu.yaml for several processes (the multi-GPU launcher: with no GPU
    # arc_trm builds Accelerator(cpu=True), so they form one gloo group)
    mode = ["--config_file", str(CPU_CONFIG)] if processes > 1 else ["--cpu"]
    return [sys.executable, "-m", "accelerate.commands.launch", *mode, "--num_processes", str(processes),
            "--main_process_port", str(free_port()), *extra, "-m"]


def accelerate_deepspeed(stage: int, processes: int) -> list[str]:
    # the shipped ZeRO config; without CUDA DeepSpeed runs on its CPU accelerator over gloo
    return [sys.executable, "-m", "accelerate.commands.launch", "--config_file",
            str(ROOT / "accelerate_configs" / f"deepspeed_zero{stage}.yaml"), "--num_processes", str(processes),
            "--main_process_port", str(free_port()), "-m"]


def test_loss_falls_on_tiny_arc(tmp_path):
    run = tmp_path / "run"
    run_train([f"run.dir={run}", "train.steps=80", "train.lr=3e-3", "train.lr_warmup_steps=5", "model.halt_max_steps=2"])
    logged = [m for m in metrics(run) if "train/loss" in m]
    assert len(logged) == 80

    def mean(key: str, rows: list[dict]) -> float:
        return sum(m[key] for m in rows) / len(rows)

    assert mean("train/loss", logged[-10:]) < 0.8 * mean("train/loss", logged[:10])
    assert mean("train/accuracy", logged[-10:]) > mean("train/accuracy", logged[:10]) + 0.1
    exported = run / "model"
    assert {p.name for p in exported.iterdir()} >= {"weights.safetensors", "puzzle_table.safetensors", "config.json", "data.json"}


def test_stop_and_rerun_continues_the_same_run(tmp_path):
    """Training 6 steps, then re-running to 12, equals training 12 steps at once."""
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    common = ["run.checkpoint_every=3", "train.lr_warmup_steps=2"]
    run_train([f"run.dir={straight}", "train.steps=12", *common])
    run_train([f"run.dir={resumed}", "train.steps=6", *common])
    result = run_train([f"run.dir={resumed}", "train.steps=12", *common])
    assert "resumed from" in result.stdout and "step 6" in result.stdout
    a, b = latest_weights(straight), latest_weights(resumed)
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name
    loss_a = [m["train/loss"] for m in metrics(straight) if "train/loss" in m]
    loss_b = [m["train/loss"] for m in metrics(resumed) if "train/loss" in m]
    assert loss_a == loss_b


def test_resuming_with_another_model_is_refused(tmp_path):
    run = tmp_path / "run"
    run_train([f"run.dir={run}", "train.steps=2"])
    result = subprocess.run([sys.executable, "-m", "arc_trm.train", *FAST, f"run.dir={run}", "model.hidden=64"],
                            capture_output=True, text=True, timeout=300, env=ENV)
    assert result.returncode == 2 and "model.hidden" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.slow
def test_kill_and_resume_reproduces_the_uninterrupted_run(tmp_path):
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    common = ["train.steps=30", "run.checkpoint_every=5", "train.lr_warmup_steps=2"]
    run_train([f"run.dir={straight}", *common])
    process = subprocess.Popen([sys.executable, "-m", "arc_trm.train", *FAST, f"run.dir={killed}", *common],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV)
    deadline = time.time() + 300
    while not (killed / "checkpoints" / "step_0000010").exists() and time.time() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert (killed / "latest").exists()
    run_train([f"run.dir={killed}", *common])
    a, b = latest_weights(straight), latest_weights(killed)
    for name in a:
        assert torch.equal(a[name], b[name]), name


@pytest.mark.slow
def test_two_processes_match_one_process(tmp_path):
    """Same global batch over 2 gloo processes, with and without accumulation, puzzle table sharded or
    replicated: same losses and weights as 1 process."""
    one, two = tmp_path / "one", tmp_path / "two"
    common = ["train.steps=3", "train.lr_warmup_steps=0", "model.halt_exploration_prob=0", "run.checkpoint_every=3"]
    run_train([f"run.dir={one}", *common], launcher=accelerate_cpu(1))
    result = run_train([f"run.dir={two}", *common], launcher=accelerate_cpu(2))
    assert "2 process(es)" in result.stdout
    assert (result.stdout + result.stderr).count("dropped a training pair") == 1  # the main process warns, once
    loss_one = [m["train/loss"] for m in metrics(one) if "train/loss" in m]
    loss_two = [m["train/loss"] for m in metrics(two) if "train/loss" in m]
    assert loss_one == pytest.approx(loss_two, rel=1e-5)
    a, b = latest_weights(one), latest_weights(two)
    for name in a:
        assert torch.allclose(a[name], b[name], atol=1e-5), name
    # the same global batch as 2 processes x 2 accumulated micro-batches
    accumulated = tmp_path / "accumulated"
    run_train([f"run.dir={accumulated}", *common, "train.grad_accum=2"], launcher=accelerate_cpu(2))
    loss_accumulated = [m["train/loss"] for m in metrics(accumulated) if "train/loss" in m]
    assert loss_one == pytest.approx(loss_accumulated, rel=1e-5)
    c = latest_weights(accumulated)
    for name in a:
        assert torch.allclose(a[name], c[name], atol=1e-5), name
    # 2 processes shard the puzzle table by default; replicated, every number is the same
    assert "sharded" in result.stdout
    replicated = tmp_path / "replicated"
    run_train([f"run.dir={replicated}", *common, "train.puzzle_table=replicated"], launcher=accelerate_cpu(2))
    d = latest_weights(replicated)
    for name in a:
        assert torch.equal(b[name], d[name]), name


@pytest.mark.slow
def test_two_node_launch_on_one_machine(tmp_path):
    """Two launches, --num_machines 2, ranks 0 and 1 on 127.0.0.1: one 2-process run trains."""
    run = tmp_path / "run"
    port = str(free_port())
    args = [*FAST, f"run.dir={run}", "train.steps=4", "run.checkpoint_every=2"]
    launches = []
    for rank in (0, 1):
        command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_machines", "2",
                   "--num_processes", "2", "--machine_rank", str(rank), "--main_process_ip", "127.0.0.1",
                   "--main_process_port", port, "-m", "arc_trm.train", *args]
        launches.append(subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=ENV))
    outputs = [p.communicate(timeout=600)[0] for p in launches]
    assert all(p.returncode == 0 for p in launches), outputs[0][-2000:] + outputs[1][-2000:]
    assert "2 process(es)" in outputs[0]
    assert (run / "checkpoints" / "step_0000004" / "rank_1.pt").exists()
    assert len([m for m in metrics(run) if "train/loss" in m]) == 4


@pytest.mark.slow
def test_sudoku_training_improves_cell_accuracy(tmp_path, shared_data):
    """The MLP-mixer Sudoku model learns on real puzzles: test cell accuracy rises well above its start."""
    def cell_accuracy(steps: int) -> float:
        run = tmp_path / f"sudoku{steps}"
        subprocess.run(
            [sys.executable, "-m", "arc_trm.train", "preset=sudoku", f"data.path={shared_data / 'sudoku'}", "data.max_test=128",
             "data.subsample=256", "model.hidden=64", "model.heads=4", "model.T=2", "model.n=2", "model.halt_max_steps=2",
             "model.forward_dtype=float32", "train.compile=false", "train.global_batch=64", f"train.steps={steps}",
             "train.lr=2e-3", "train.lr_warmup_steps=10", "train.weight_decay=0.1", "train.ema_rate=0.9",
             "run.tracker=none", f"run.dir={run}"],
            check=True, capture_output=True, env=ENV, timeout=900,
        )
        return [m for m in metrics(run) if "eval/cell_accuracy" in m][-1]["eval/cell_accuracy"]

    start, trained = cell_accuracy(1), cell_accuracy(200)
    assert start < 0.2  # chance is 1/9
    assert trained > start + 0.15


@pytest.mark.slow
def test_checkpoints_do_not_depend_on_compile(tmp_path):
    """A run trained compiled (GPU presets) resumes eagerly and vice versa: parameter names are the same."""
    run = tmp_path / "run"
    run_train([f"run.dir={run}", "train.steps=2", "run.checkpoint_every=2", "train.compile=true"])
    assert not any(name.startswith("_orig_mod.") for name in latest_weights(run))
    result = run_train([f"run.dir={run}", "train.steps=4", "run.checkpoint_every=2", "train.compile=false"])
    assert "resumed from" in result.stdout


@pytest.mark.slow
@pytest.mark.parametrize("stage", [1, 2])
def test_deepspeed_zero_matches_one_process(tmp_path, stage):
    """ZeRO-1/2 over 2 processes (optimizer state / gradients sharded), with and without accumulation:
    the same losses and exported weights as one plain process on the same global batch."""
    common = ["train.steps=3", "train.lr_warmup_steps=0", "model.halt_exploration_prob=0"]
    plain = tmp_path / "plain"
    run_train([f"run.dir={plain}", *common], launcher=accelerate_cpu(1))
    expected_loss = [m["train/loss"] for m in metrics(plain) if "train/loss" in m]
    expected = exported_weights(plain)
    for grad_accum in (1, 2):
        zero = tmp_path / f"zero_accum{grad_accum}"
        result = run_train([f"run.dir={zero}", *common, f"train.grad_accum={grad_accum}"],
                           launcher=accelerate_deepspeed(stage, 2))
        assert "2 process(es)" in result.stdout
        assert [m["train/loss"] for m in metrics(zero) if "train/loss" in m] == pytest.approx(expected_loss, rel=1e-5)
        got = exported_weights(zero)
        assert got.keys() == expected.keys()
        for name in expected:
            assert torch.allclose(expected[name], got[name], atol=1e-5), (grad_accum, name)


@pytest.mark.slow
def test_deepspeed_resume_continues_the_same_run(tmp_path):
    """A ZeRO-2 run stopped at step 3 and re-run to 6 equals 6 steps at once (DeepSpeed's sharded state)."""
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    common = ["run.checkpoint_every=3", "train.lr_warmup_steps=2"]
    run_train([f"run.dir={straight}", "train.steps=6", *common], launcher=accelerate_deepspeed(2, 2))
    run_train([f"run.dir={resumed}", "train.steps=3", *common], launcher=accelerate_deepspeed(2, 2))
    result = run_train([f"run.dir={resumed}", "train.steps=6", *common], launcher=accelerate_deepspeed(2, 2))
    assert "resumed from" in result.stdout and "step 3" in result.stdout
    a, b = exported_weights(straight), exported_weights(resumed)
    for name in a:
        assert torch.equal(a[name], b[name]), name


@pytest.mark.slow
def test_resume_with_another_number_of_processes(tmp_path):
    """A 2-process checkpoint (sharded puzzle table) resumes in 1 process: the whole table and the data
    position carry over, the ACT carries restart (said once), and training goes on."""
    run = tmp_path / "run"
    common = ["run.checkpoint_every=3", "train.lr_warmup_steps=0"]
    run_train([f"run.dir={run}", "train.steps=3", *common], launcher=accelerate_cpu(2))
    saved = latest_weights(run)["puzzle_table"]
    result = run_train([f"run.dir={run}", "train.steps=3", *common])  # nothing left to train: export what was loaded
    assert "step 3" in result.stdout and result.stdout.count("examples that were between supervision steps") == 1
    assert torch.equal(exported_weights(run)["weights"], saved)
    run_train([f"run.dir={run}", "train.steps=5", *common])
    assert [m["step"] for m in metrics(run) if "train/loss" in m] == [1, 2, 3, 4, 5]


def test_a_checkpoint_without_table_shards_is_refused_clearly(tmp_path):
    """A run directory from before the sharded table (its table was Accelerate's custom_checkpoint_0.pkl)."""
    run = tmp_path / "run"
    run_train([f"run.dir={run}", "train.steps=2"])
    checkpoint = run / "checkpoints" / (run / "latest").read_text().strip()
    for shard in checkpoint.glob("puzzle_table_*.pt"):
        shard.unlink()
    result = subprocess.run([sys.executable, "-m", "arc_trm.train", *FAST, f"run.dir={run}", "train.steps=4"],
                            capture_output=True, text=True, timeout=300, env=ENV, cwd=ROOT)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "none complete" in result.stderr and "before the sharded puzzle table" in result.stderr


def test_resume_with_another_global_batch_restarts_the_carries(tmp_path):
    run = tmp_path / "run"
    run_train([f"run.dir={run}", "train.steps=2"])
    result = run_train([f"run.dir={run}", "train.steps=4", "train.global_batch=8"])
    assert "examples that were between supervision steps are dropped" in result.stdout
    assert [m["step"] for m in metrics(run) if "train/loss" in m] == [1, 2, 3, 4]


def test_max_minutes_counts_from_the_start_then_checkpoints_and_exports(tmp_path):
    """A budget already spent by loading stops the run after its first step, with a checkpoint and an
    exported model."""
    run = tmp_path / "run"
    result = run_train([f"run.dir={run}", "train.steps=1000", "train.max_minutes=0.001"])
    assert "train.max_minutes=0.001 reached at step 1" in result.stdout
    assert (run / "latest").read_text().strip() == "step_0000001" and (run / "model" / "weights.safetensors").exists()


def test_a_diverging_run_stops_with_one_line_and_keeps_the_last_good_checkpoint(tmp_path):
    # lr 0 at step 1 (warmup from 0) keeps the first checkpoint finite; 1e30 then overflows the weights
    run = tmp_path / "run"
    result = subprocess.run(
        [sys.executable, "-m", "arc_trm.train", *FAST, f"run.dir={run}", "train.steps=8", "run.checkpoint_every=1",
         "train.lr=1e30", "train.lr_warmup_steps=4"],
        capture_output=True, text=True, timeout=300, env=ENV, cwd=ROOT,
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "became NaN or infinite" in result.stderr and "the last good checkpoint is" in result.stderr
    assert not (run / "model").exists()
    weights = latest_weights(run)
    assert all(torch.isfinite(t).all() for t in weights.values())


def test_progress_bar_total_under_a_time_budget_is_the_budgets():
    """Under train.max_minutes the bar's total (so its ETA) is the step the run reaches by the
    deadline, not train.steps (a 60-minute run showed an ETA of days against steps=1000000)."""
    from arc_trm.train import steps_within

    # 100 steps took 10 s; 50 s are left: 500 more steps, far below train.steps
    assert steps_within(step=100, steps=1_000_000, done=100, seconds=10.0, seconds_left=50.0) == 600
    assert steps_within(step=100, steps=300, done=100, seconds=10.0, seconds_left=50.0) == 300  # train.steps first
    assert steps_within(step=100, steps=1_000, done=100, seconds=10.0, seconds_left=-5.0) == 100  # past the deadline


def test_each_component_acts_at_its_own_steps():
    """Metrics every run.log_every steps and at the last; checkpoints every run.checkpoint_every steps, at
    the last and when the time budget stops the run; evaluations every run.eval_every steps before the
    last (the run evaluates once more after its export)."""
    from arc_trm.train import Checkpointer, Evaluator, log_step

    config = load_config(["train.steps=10", "run.log_every=4", "run.checkpoint_every=3", "run.eval_every=5"])
    steps = range(1, 11)
    assert [step for step in steps if log_step(config, step)] == [4, 8, 10]
    checkpointer = Checkpointer(config)
    assert [step for step in steps if checkpointer.due(step, stopping=False)] == [3, 6, 9, 10]
    assert checkpointer.due(7, stopping=True)
    assert [step for step in steps if Evaluator(config, metrics=None).due(step)] == [5]
    never = load_config(["train.steps=10", "run.eval_every=0"])
    assert not any(Evaluator(never, metrics=None).due(step) for step in steps)


class Votes:
    """An Accelerator's process count and reduce, as seen by one process whose clock is the only late one."""

    def __init__(self, processes: int):
        self.num_processes, self.device, self.reductions = processes, torch.device("cpu"), 0

    def reduce(self, tensor: torch.Tensor, reduction: str) -> torch.Tensor:
        self.reductions += 1
        return tensor


def test_the_time_budget_stops_several_processes_only_at_log_steps():
    """Alone, a process stops at the first step past its deadline; several processes vote (a wait for the
    device) only at log steps, so they stop together up to run.log_every steps later."""
    from tqdm import tqdm

    from arc_trm.train import TimeBudget

    config = load_config(["train.steps=100", "train.max_minutes=1", "run.log_every=4"])
    spent = time.perf_counter() - 120  # started two minutes ago
    bar = tqdm(total=100, disable=True)
    alone = TimeBudget(config, Votes(1), bar, started=spent, first_step=0)
    assert alone.spent_at(1)
    votes = Votes(2)
    together = TimeBudget(config, votes, bar, started=spent, first_step=0)
    assert [step for step in range(1, 10) if together.spent_at(step)] == [4, 8] and votes.reductions == 2
    assert not TimeBudget(config, Votes(2), bar, started=time.perf_counter(), first_step=0).spent_at(4)
    unlimited = Votes(2)
    no_budget = TimeBudget(load_config(["train.steps=100"]), unlimited, bar, started=spent, first_step=0)
    assert not any(no_budget.spent_at(step) for step in range(1, 10)) and unlimited.reductions == 0


def test_load_source_returns_the_configs_it_derives_and_changes_none():
    """The model's vocabulary and sequence length come from the data; fine-tuning takes the model config
    and the ARC canvas from the exported model. The config passed in stays as it was."""
    from arc_trm.exported import DataInfo, ExportedModel
    from arc_trm.model.puzzle_embedding import PuzzleEmbedding
    from arc_trm.model.trm import TRM
    from arc_trm.train import load_source

    config = load_config(["data.max_tasks=2", "data.num_aug=0", "data.canvas=12", "model.hidden=16", "model.heads=2"])
    before = copy.deepcopy(config)
    one_process = SimpleNamespace(num_processes=1, main_process_first=nullcontext)
    source, model, data = load_source(config, one_process)
    assert (source.seq_len, model.seq_len, model.vocab_size, model.hidden, data.canvas) == (144, 144, 12, 16, 12)
    assert config == before
    trained = TRM(replace(config.model, hidden=32, vocab_size=12, seq_len=100))
    initial = ExportedModel(trained, PuzzleEmbedding(3, 32), DataInfo(canvas=10), Path("model"))
    source, model, data = load_source(config, one_process, initial)
    assert (source.seq_len, data.canvas) == (100, 10) and model == trained.config
    assert config == before
