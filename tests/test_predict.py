"""Test-time-augmentation prediction: run_steps, candidates, the CLI's outputs, restarts and product of experts.

A tiny model is trained once for the module (the tiny preset for 10 steps, in a subprocess); the CLI
then predicts 3 of its held-out ARC-AGI-1 evaluation tasks from a Kaggle-format challenges +
solutions pair written to tmp.
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import orjson
import pytest
import torch

from arc_trm.augment import Augmentation
from arc_trm.candidates import Candidate, grid_key, load_candidates, load_log_probs
from arc_trm.distributed import free_port
from arc_trm.exported import DataInfo, PuzzleIndex, Version, load_model
from arc_trm.grids import parse_task, write_kaggle_pair
from arc_trm.inference import predict_queries, queries, run_steps
from arc_trm.kaggle.submission import attempts_from_rankings, validate_submission
from arc_trm.model.losses import log_stablemax
from arc_trm.model.puzzle_embedding import PuzzleEmbedding
from arc_trm.model.trm import TRM, ModelConfig
from arc_trm.scoring import load_submission, score_submission
from arc_trm.splits import resolve
from arc_trm.tokens import decode_grid
from arc_trm.vote import pass_at_k, vote

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
NUM_AUG = 2  # augmentations besides the identity, in training and prediction
STEPS = 2  # of the tiny preset's 4 supervision steps
BATCH, TASKS_PER_PART = 4, 2  # 3 tasks -> 2 parts, several batches per part


def run(module: str, *args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", module, *map(str, args)], capture_output=True, text=True, env=ENV, timeout=timeout)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("tiny")
    result = run("arc_trm.train", "preset=tiny", f"run.dir={run_dir}", "run.tracker=none", "train.steps=10",
                 "data.max_tasks=4", f"data.num_aug={NUM_AUG}")
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    return run_dir / "model"


@pytest.fixture(scope="module")
def info(model_dir) -> DataInfo:
    return DataInfo.read(model_dir / "data.json")


@pytest.fixture(scope="module")
def challenges(model_dir, info, arc1_tasks, tmp_path_factory) -> Path:
    """3 held-out ARC-AGI-1 evaluation tasks the model was trained on (demos), as a Kaggle pair; one of
    them has a rotated version (dihedral 1..3) among its first NUM_AUG augmentations."""
    index = PuzzleIndex.from_data(info)
    held_out = [t for t in info.task_ids if t in info.held_out]

    def rotated(task_id: str) -> bool:
        return any(v.augmentation.dihedral in (1, 2, 3) for v in index.for_task(task_id, NUM_AUG))

    with_rotation = [t for t in held_out if rotated(t)]
    assert with_rotation, "no held-out task has a rotated version; pick another seed"
    chosen = [with_rotation[0]] + [t for t in held_out if t != with_rotation[0]][:2]
    by_id = {task.id: task for task in arc1_tasks[1]}
    challenges, _ = write_kaggle_pair([by_id[t] for t in chosen], tmp_path_factory.mktemp("kaggle"), "small")
    return challenges


def predict_args(model_dir: Path, challenges: Path, out: Path, *extra: str) -> list[str]:
    return [f"checkpoint={model_dir}", f"split={challenges}", f"out={out}", f"num_aug={NUM_AUG}", f"steps={STEPS}",
            f"batch_size={BATCH}", f"tasks_per_part={TASKS_PER_PART}", *extra]


@pytest.fixture(scope="module")
def predicted(model_dir, challenges, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("predicted")
    result = run("arc_trm.predict", *predict_args(model_dir, challenges, out))
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    return out


def rows(table) -> list[tuple]:
    return [(c.task_id, c.test_index, c.augmentation, c.step, c.q_halt, None if c.grid is None else grid_key(c.grid), c.checkpoint)
            for c in table.to_candidates()]


# ------------------------------------------------------------------------------------------ run_steps


def test_run_steps_equals_stepping_the_model_by_hand():
    torch.manual_seed(0)
    config = ModelConfig(seq_len=36, hidden=32, heads=2, T=2, n=2, puzzle_emb_len=4, forward_dtype="float32")
    model = TRM(config).eval()
    with torch.no_grad():
        model.q_head.weight.normal_(0, 0.5)  # make q_halt depend on the input
    table = PuzzleEmbedding(5, 32)
    table.weights.normal_()
    inputs = torch.randint(0, 12, (3, 36))
    ids = torch.tensor([1, 4, 2])

    tokens, confidences, logprobs = run_steps(model, table, inputs, ids, steps=3)

    assert tokens.shape == (3, 3, 36) and tokens.dtype == torch.uint8
    assert confidences.shape == (3, 3) and logprobs.shape == (3, 36, 12)
    y, z = model.initial_state(3)
    with torch.no_grad():
        for step in range(3):
            out = model(y, z, inputs, table.weights[ids])
            y, z = out.y, out.z
            assert torch.equal(tokens[step], out.logits.argmax(-1).to(torch.uint8))
            assert torch.equal(confidences[step], torch.sigmoid(out.q_halt))
    assert torch.equal(logprobs, log_stablemax(out.logits.float()))
    assert not torch.equal(confidences[0], confidences[2])  # the carry matters: steps differ


def test_predicting_the_same_query_twice_is_deterministic(model_dir, challenges, info):
    model, table = (loaded := load_model(model_dir)).model, loaded.table
    index = PuzzleIndex.from_data(info)
    query = next(q for q in queries(resolve(challenges), index, NUM_AUG) if q.version.k == 1)
    first, _ = predict_queries(model, table, [query, query], 2, STEPS, torch.device("cpu"))
    second, _ = predict_queries(model, table, [query, query], 2, STEPS, torch.device("cpu"))

    def key(c: Candidate) -> tuple:
        return (c.task_id, c.test_index, c.augmentation, c.step, c.q_halt, None if c.grid is None else grid_key(c.grid))

    assert [key(c) for c in first] == [key(c) for c in second]
    by_step = [key(c) for c in first]
    assert by_step[0::2] == by_step[1::2]  # the two copies in one batch agree too
    assert len(first) == 2 * STEPS


# ------------------------------------------------------------------------ product of experts, by hand


class CopyStub(torch.nn.Module):
    """Same interface as TRM for run_steps. Puzzle row (a, shift): logit `a` on the target token and 0
    elsewhere, the target being the input token, with colours moved c -> c+1 mod 10 when shift = 1.
    Under stablemax the target has probability (a+1)/(a+12), every other token 1/(a+12)."""

    def initial_state(self, batch_size: int, device=None):
        return torch.zeros(batch_size, 1, 1), torch.zeros(batch_size, 1, 1)

    def forward(self, y, z, inputs, rows):
        a, shift = rows[:, 0], rows[:, 1].long()
        target = inputs.long()
        colour = target >= 2
        target = torch.where(colour, 2 + (target - 2 + shift[:, None]) % 10, target)
        logits = torch.zeros(*target.shape, 12)
        logits.scatter_(-1, target.unsqueeze(-1), a[:, None, None].expand(*target.shape, 1).clone())
        return SimpleNamespace(y=y, z=z, logits=logits, q_halt=torch.zeros(inputs.shape[0]))


def test_expert_log_probs_by_hand():
    grid = np.array([[1, 0, 2], [3, 4, 5]], dtype=np.uint8)  # 2x3: 6 cells + 2 + 3 EOS on a 6x6 canvas
    task = parse_task("hand", {"train": [{"input": grid.tolist(), "output": grid.tolist()}], "test": [{"input": grid.tolist()}]}, "test")
    rotate = Augmentation(1, (0, 3, 1, 2, 5, 4, 7, 6, 9, 8))
    transpose = Augmentation(6, (0, 9, 8, 7, 6, 5, 4, 3, 2, 1))
    index = PuzzleIndex({"hand": [Version(0, 1, Augmentation.identity()), Version(1, 2, rotate), Version(2, 3, transpose)]}, canvas=6)
    table = PuzzleEmbedding(4, 2)
    table.weights[1:] = torch.tensor([[3.0, 0.0], [1.0, 0.0], [2.0, 1.0]])  # (a, shift) per puzzle id
    items = list(queries([task], index, None))

    candidates, log_probs = predict_queries(CopyStub(), table, items, 3, 1, torch.device("cpu"), poe_top_n=2)

    # the two copying experts predict the grid itself; the shifting one predicts another grid
    copied = [c.grid for c in candidates if c.augmentation in (0, 1)]
    assert all(np.array_equal(g, grid) for g in copied)
    other = next(c.grid for c in candidates if c.augmentation == 2)
    assert other.shape == grid.shape and (other != grid).all()

    cells, eos = grid.size, sum(grid.shape)

    def agrees(a: float) -> float:  # every cell and EOS is the expert's target
        return (cells + eos) * math.log((a + 1) / (a + 12))

    def disagrees(a: float) -> float:  # every cell differs from the target, EOS agrees
        return cells * math.log(1 / (a + 12)) + eos * math.log((a + 1) / (a + 12))

    expected = {
        ("hand", 0, grid_key(grid)): [agrees(3), agrees(1), disagrees(2)],  # 2 votes: ranked first
        ("hand", 0, grid_key(other)): [disagrees(3), disagrees(1), agrees(2)],
    }
    assert set(log_probs) == set(expected)
    for key, values in expected.items():
        assert np.allclose(log_probs[key], values, rtol=1e-3), (log_probs[key], values)  # stored as float16

    _, top_one = predict_queries(CopyStub(), table, items, 3, 1, torch.device("cpu"), poe_top_n=1)
    assert list(top_one) == [("hand", 0, grid_key(grid))]


# ------------------------------------------------------------------------------------------ the CLI


def test_candidates_cover_every_test_input_version_and_step(predicted, model_dir, challenges, info):
    tasks = resolve(challenges)
    index = PuzzleIndex.from_data(info)
    table = load_candidates(predicted / "candidates.parquet")
    expected = {
        (task.id, i, v.k, step)
        for task in tasks
        for i in range(len(task.test))
        for v in index.for_task(task.id, NUM_AUG)
        for step in range(1, STEPS + 1)
    }
    assert all(1 <= len(index.for_task(t.id, NUM_AUG)) <= NUM_AUG + 1 for t in tasks)
    found = [r[:4] for r in rows(table)]
    assert len(found) == len(expected) and set(found) == expected
    assert all(0.0 <= q <= 1.0 for q in table.q_halt)
    assert table.checkpoints == (str(model_dir.resolve()),)


def test_candidate_grids_are_in_the_original_frame(predicted, model_dir, challenges, info):
    """Re-run the model on the same batches as the CLI (same parts, same batch size, one thread) and
    check each candidate against the decoded prediction: identity versions keep it as is; for the
    others, applying the augmentation to the candidate gives the prediction back exactly."""
    model, table = (loaded := load_model(model_dir)).model, loaded.table
    index = PuzzleIndex.from_data(info)
    tasks = resolve(challenges)
    canvas = info.canvas
    predictions = {}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for start in range(0, len(tasks), TASKS_PER_PART):
            items = list(queries(tasks[start : start + TASKS_PER_PART], index, NUM_AUG))
            for b in range(0, len(items), BATCH):
                batch = items[b : b + BATCH]
                inputs = torch.from_numpy(np.stack([q.inputs for q in batch]))
                ids = torch.tensor([q.version.puzzle_id for q in batch])
                tokens, _, _ = run_steps(model, table, inputs, ids, STEPS)
                for i, q in enumerate(batch):
                    for step in range(STEPS):
                        predictions[(q.task_id, q.test_index, q.version.k, step + 1)] = (q.version, decode_grid(tokens[step, i], canvas))
    finally:
        torch.set_num_threads(threads)

    checked_rotation = checked_identity = 0
    for c in load_candidates(predicted / "candidates.parquet").to_candidates():
        version, decoded = predictions[(c.task_id, c.test_index, c.augmentation, c.step)]
        if decoded is None:
            assert c.grid is None
            continue
        if version.augmentation.is_identity:
            assert np.array_equal(c.grid, decoded)
            checked_identity += 1
        else:
            assert np.array_equal(version.augmentation.apply(c.grid), decoded)
            assert np.array_equal(c.grid, version.augmentation.invert(decoded))
            checked_rotation += version.augmentation.dihedral in (1, 2, 3)
    assert checked_identity > 0 and checked_rotation > 0


def test_submission_and_report(predicted, challenges):
    tasks = resolve(challenges)
    submission = load_submission(predicted / "submission.json")
    assert validate_submission(submission, tasks) == []
    report = score_submission(submission, tasks)
    assert report["n_tasks"] == 3 and report["n_outputs"] == sum(len(t.test) for t in tasks)
    # the submission is the default (halt_weighted) vote of the candidates
    rankings = vote(load_candidates(predicted / "candidates.parquet"), "halt_weighted")
    assert orjson.loads(orjson.dumps(attempts_from_rankings(rankings, tasks))) == orjson.loads((predicted / "submission.json").read_bytes())
    written = orjson.loads((predicted / "report.json").read_bytes())
    assert written["score"] == report["score"] and set(written["tasks"]) == {t.id for t in tasks}
    assert set(written["pass_at_k"]) >= {"1", "2"}


def test_rerun_with_parts_recomputes_nothing(predicted, model_dir, challenges, tmp_path):
    out = tmp_path / "again"
    shutil.copytree(predicted, out)  # copy2 keeps the mtimes
    parts = sorted((out / "parts").iterdir())
    assert [p.name for p in parts] == ["part_00000.parquet", "part_00001.parquet", "settings.json"]
    before = {p.name: p.stat().st_mtime_ns for p in parts}
    (out / "candidates.parquet").unlink()
    (out / "submission.json").unlink()

    result = run("arc_trm.predict", *predict_args(model_dir, challenges, out))

    assert result.returncode == 0, result.stderr[-2000:]
    assert {p.name: p.stat().st_mtime_ns for p in (out / "parts").iterdir()} == before
    assert (out / "submission.json").read_bytes() == (predicted / "submission.json").read_bytes()
    assert rows(load_candidates(out / "candidates.parquet")) == rows(load_candidates(predicted / "candidates.parquet"))


def test_rerun_recomputes_only_a_missing_part(predicted, model_dir, challenges, tmp_path):
    out = tmp_path / "killed"
    shutil.copytree(predicted, out)
    kept = out / "parts" / "part_00000.parquet"
    mtime = kept.stat().st_mtime_ns
    (out / "parts" / "part_00001.parquet").unlink()  # as if killed while predicting the second part
    (out / "candidates.parquet").unlink()

    result = run("arc_trm.predict", *predict_args(model_dir, challenges, out))

    assert result.returncode == 0, result.stderr[-2000:]
    assert kept.stat().st_mtime_ns == mtime
    redone, original = out / "parts" / "part_00001.parquet", predicted / "parts" / "part_00001.parquet"
    assert rows(load_candidates(redone)) == rows(load_candidates(original))
    assert (out / "submission.json").read_bytes() == (predicted / "submission.json").read_bytes()


def test_poe_policy_writes_log_probs_and_a_valid_submission(model_dir, challenges, info, tmp_path):
    out = tmp_path / "poe"
    result = run("arc_trm.predict", *predict_args(model_dir, challenges, out, "policy=poe", "poe_top_n=3"))
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]

    tasks = resolve(challenges)
    index = PuzzleIndex.from_data(info)
    log_probs = load_log_probs(out / "log_probs.parquet")
    per_input: dict[tuple[str, int], int] = {}
    for (task_id, test_index, _), values in log_probs.items():
        per_input[(task_id, test_index)] = per_input.get((task_id, test_index), 0) + 1
        assert len(values) == len(index.for_task(task_id, NUM_AUG))  # one score per augmentation
        assert np.all(values <= 0) and np.all(np.isfinite(values))
    assert set(per_input) == {(t.id, i) for t in tasks for i in range(len(t.test))}
    assert all(1 <= n <= 3 for n in per_input.values())

    submission = load_submission(out / "submission.json")
    assert validate_submission(submission, tasks) == []
    by_hand = pass_at_k(vote(load_candidates(out / "candidates.parquet"), "poe", log_probs=log_probs, top_n=3), tasks, ks=(2,))[2]
    assert score_submission(submission, tasks)["score"] == pytest.approx(by_hand)  # two attempts = the top 2
    rankings = vote(load_candidates(out / "candidates.parquet"), "poe", log_probs=log_probs, top_n=3)
    assert orjson.loads(orjson.dumps(attempts_from_rankings(rankings, tasks))) == orjson.loads((out / "submission.json").read_bytes())


BAD_ARGUMENTS = {
    "unknown key": ["foo=1"],
    "not an int": ["num_aug=abc"],
    "no such checkpoint": ["checkpoint={tmp}/nowhere"],
    "no such split": ["split={tmp}/nowhere_challenges.json"],
}


@pytest.mark.parametrize("case", [*BAD_ARGUMENTS, "out missing"])
def test_bad_arguments_are_one_error_line_and_exit_2(model_dir, challenges, tmp_path, case):
    out = tmp_path / "out"
    args = predict_args(model_dir, challenges, out)
    if case == "out missing":
        args = [a for a in args if not a.startswith("out=")]
    else:
        extra = [a.format(tmp=tmp_path) for a in BAD_ARGUMENTS[case]]
        keys = {a.split("=")[0] for a in extra}
        args = [a for a in args if a.split("=")[0] not in keys] + extra
    result = run("arc_trm.predict", *args)
    assert result.returncode == 2, result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert not (out / "parts").exists()


@pytest.mark.parametrize("bad", ["batch_size=0", "tasks_per_part=0", "steps=-1", "num_aug=-1", "policy=bogus"])
def test_bad_values_are_refused_before_predicting(model_dir, challenges, tmp_path, bad):
    out = tmp_path / "out"
    key = bad.split("=")[0]
    args = [a for a in predict_args(model_dir, challenges, out) if a.split("=")[0] != key] + [bad]
    result = run("arc_trm.predict", *args)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert not (out / "parts").exists()


def test_parts_made_with_other_settings_are_refused(model_dir, challenges, tmp_path):
    out = tmp_path / "out"
    assert run("arc_trm.predict", *predict_args(model_dir, challenges, out)).returncode == 0
    args = [a for a in predict_args(model_dir, challenges, out) if not a.startswith("num_aug=")] + ["num_aug=1"]
    result = run("arc_trm.predict", *args)
    assert result.returncode == 2 and "num_aug" in result.stderr and "Traceback" not in result.stderr


def test_trajectories_add_noisy_runs_beside_the_deterministic_one(model_dir, challenges, predicted, tmp_path):
    """trajectories=3 noise=0.5: trajectory 0 is exactly the plain prediction, 1 and 2 are noisy runs of
    every query; the cost line counts them; other noise on the same out= is refused as other settings."""
    out = tmp_path / "noisy"
    result = run("arc_trm.predict", *predict_args(model_dir, challenges, out, "trajectories=3", "noise=0.5", "early_exit=false"))
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    candidates = list(load_candidates(out / "candidates.parquet").to_candidates())
    plain = rows(load_candidates(predicted / "candidates.parquet"))
    by_trajectory = {t: [c for c in candidates if c.trajectory == t] for t in (0, 1, 2)}
    assert [len(found) for found in by_trajectory.values()] == [len(plain)] * 3
    deterministic = [(c.task_id, c.test_index, c.augmentation, c.step, None if c.grid is None else grid_key(c.grid)) for c in by_trajectory[0]]
    assert sorted(deterministic, key=str) == sorted([r[:4] + r[5:6] for r in plain], key=str)
    assert [c.q_halt for c in by_trajectory[1]] != [c.q_halt for c in by_trajectory[0]]
    planned = len(plain) * 3
    assert f"forward passes: {planned:,} run of {planned:,} planned" in result.stdout

    again = run("arc_trm.predict", *predict_args(model_dir, challenges, out, "trajectories=3", "noise=0.25"))
    assert again.returncode == 2 and "noise" in again.stderr and "Traceback" not in again.stderr


@pytest.mark.parametrize("extra", [["trajectories=2"], ["noise=0.1"], ["trajectories=0", "noise=0.1"]])
def test_test_time_compute_mistakes_are_one_line(model_dir, challenges, tmp_path, extra):
    result = run("arc_trm.predict", *predict_args(model_dir, challenges, tmp_path / "out", *extra))
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_compiled_prediction_gives_the_eager_candidates(model_dir, challenges, predicted, tmp_path):
    """`compile=true` (torch.compile of the whole model, the GPU path) predicts the same grids and votes;
    halting confidences agree within 1e-5."""
    out = tmp_path / "compiled"
    result = run("arc_trm.predict", *predict_args(model_dir, challenges, out, "compile=true"), timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    eager, compiled = rows(load_candidates(predicted / "candidates.parquet")), rows(load_candidates(out / "candidates.parquet"))
    assert [r[:4] + r[5:] for r in compiled] == [r[:4] + r[5:] for r in eager]
    assert np.allclose([r[4] for r in compiled], [r[4] for r in eager], atol=1e-5)
    assert (out / "submission.json").read_bytes() == (predicted / "submission.json").read_bytes()


@pytest.mark.slow
def test_two_processes_predict_what_one_process_predicts(model_dir, challenges, predicted, tmp_path):
    """`accelerate launch` with 2 gloo processes: the parts are split between them, and the gathered
    candidates and the submission are those of one process."""
    out = tmp_path / "two"
    launch = ["accelerate.commands.launch", "--config_file", str(Path(__file__).resolve().parents[1] / "accelerate_configs" / "cpu.yaml"),
              "--num_processes", "2", "--main_process_port", str(free_port()), "-m", "arc_trm.predict"]
    result = run(*launch, *predict_args(model_dir, challenges, out), timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert rows(load_candidates(out / "candidates.parquet")) == rows(load_candidates(predicted / "candidates.parquet"))
    assert (out / "submission.json").read_bytes() == (predicted / "submission.json").read_bytes()



@pytest.mark.parametrize("case", ["corrupt model", "out under a file"])
def test_a_corrupt_model_or_unwritable_out_is_one_error_line(model_dir, challenges, tmp_path, case):
    import shutil

    model, out = model_dir, tmp_path / "out"
    if case == "corrupt model":
        model = tmp_path / "model"
        shutil.copytree(model_dir, model)
        (model / "puzzle_table.safetensors").write_bytes(b"{}")
    else:
        (tmp_path / "a_file").write_text("")
        out = tmp_path / "a_file" / "out"
    result = run("arc_trm.predict", *predict_args(model, challenges, out))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert str(model / "puzzle_table.safetensors" if case == "corrupt model" else tmp_path / "a_file") in lines[0]


def test_compiled_prediction_compiles_once_per_shape(model_dir, challenges, info):
    """Every supervision step, short last batches and parts of different sizes reuse one graph: the
    start state is dense like the carried one, and every batch is padded to one size (padding dropped)."""
    graphs = []

    def counting_backend(graph_module, example_inputs):
        graphs.append([tuple(t.shape) for t in example_inputs if isinstance(t, torch.Tensor)])
        return graph_module.forward

    items = list(queries(resolve(challenges), PuzzleIndex.from_data(info), NUM_AUG))
    parts = [items[: len(items) // 3], items[len(items) // 3 :]]  # two sizes, as parts of a split have

    def predict(batch_size: int, compiled: bool) -> list:
        model, table = (loaded := load_model(model_dir)).model, loaded.table
        pad_to = min(batch_size, max(len(part) for part in parts)) if compiled else 0
        if compiled:
            torch._dynamo.reset()
            model.compile(backend=counting_backend)
        return [c for part in parts for c in predict_queries(model, table, part, batch_size, STEPS, torch.device("cpu"), pad_to=pad_to)[0]]

    for batch_size in (4, len(items)):  # short last batches; one batch per part, smaller than batch_size
        eager = predict(batch_size, compiled=False)
        graphs.clear()
        compiled = predict(batch_size, compiled=True)
        assert len(graphs) == 1, (batch_size, graphs)
        assert len(compiled) == len(eager) == len(items) * STEPS
        assert [(c.task_id, c.test_index, c.augmentation, c.step) for c in compiled] == [
            (c.task_id, c.test_index, c.augmentation, c.step) for c in eager
        ]
    assert len(items) % 4 and len(parts[0]) != len(parts[1])
    torch._dynamo.reset()


def test_flag_style_arguments_mean_the_same():
    from arc_trm.predict import parse_predict_args

    flags = parse_predict_args(["--checkpoint", "m", "--split=s", "--out", "o", "--batch-size", "8", "policy=poe"])
    pairs = parse_predict_args(["checkpoint=m", "split=s", "out=o", "batch_size=8", "policy=poe"])
    assert flags == pairs and flags.batch_size == 8


@pytest.mark.parametrize("steps, ok", [("0", True), ("1024", True), ("1025", False), ("1000000", False)])
def test_steps_has_an_upper_bound(steps, ok):
    from arc_trm.errors import ConfigError
    from arc_trm.predict import parse_predict_args

    argv = ["checkpoint=m", "split=s", "out=o", f"steps={steps}"]
    if ok:
        assert parse_predict_args(argv).steps == int(steps)
    else:
        with pytest.raises(ConfigError, match=f"steps={steps}: must be from 0 \\(the model's halt_max_steps\\) to 1024"):
            parse_predict_args(argv)


@pytest.mark.parametrize("changed", ["weights", "puzzle table"])
def test_parts_of_an_older_model_in_the_same_folder_are_refused(tmp_path, changed):
    """Exporting a newer model over the old one's folder and predicting into the same out= used to reuse
    the old model's parts."""
    from arc_trm.errors import ConfigError
    from arc_trm.exported import DataInfo, export_model
    from arc_trm.predict import PredictArgs, check_parts_settings

    torch.manual_seed(0)
    model = TRM(ModelConfig(hidden=32, heads=2, seq_len=4, puzzle_emb_len=1))
    table = torch.zeros(3, 32)
    folder = export_model(tmp_path / "model", model, table, DataInfo())
    args = PredictArgs(checkpoint=str(folder), split="arc-agi-1/evaluation", out=str(tmp_path / "out"))
    check_parts_settings(tmp_path / "out", args, [])
    check_parts_settings(tmp_path / "out", args, [])  # the same model: its parts are reused
    if changed == "weights":
        model = TRM(ModelConfig(hidden=32, heads=2, seq_len=4, puzzle_emb_len=1))
    else:  # fine-tuning the embeddings alone leaves the dense weights as they were
        table = torch.ones(3, 32)
    export_model(folder, model, table, DataInfo())
    with pytest.raises(ConfigError, match="holds predictions made with other model; use another out= or delete"):
        check_parts_settings(tmp_path / "out", args, [])


def test_parts_of_other_tasks_under_the_same_split_path_are_refused(model_dir, challenges, tmp_path):
    """A challenges file replaced by other tasks under the same path, then predicted into the same out=,
    used to reuse the old tasks' parts: their candidates went into candidates.parquet and the new tasks
    got fallback answers, with exit code 0."""
    split = tmp_path / "tasks_challenges.json"
    shutil.copy(challenges, split)
    out = tmp_path / "out"
    first = run("arc_trm.predict", *predict_args(model_dir, split, out))
    assert first.returncode == 0, first.stderr[-2000:]
    tasks = orjson.loads(split.read_bytes())
    kept = dict(list(tasks.items())[:1])
    for task in kept.values():  # the same id, another test input
        task["test"][0]["input"] = [[(v + 1) % 10 for v in row] for row in task["test"][0]["input"]]
    split.write_bytes(orjson.dumps(kept))
    before = (out / "submission.json").read_bytes()
    again = run("arc_trm.predict", *predict_args(model_dir, split, out))
    assert again.returncode == 2 and again.stderr.strip().splitlines()[-1].startswith("error: "), again.stderr[-2000:]
    assert "holds predictions made with other tasks" in again.stderr
    assert (out / "submission.json").read_bytes() == before
