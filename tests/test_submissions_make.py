"""`python -m submissions.make` on real ARC tasks with a tiny model, on CPU:
`pytest tests/test_submissions_make.py -q`.

One tiny model is trained once per module (10 steps, seconds). The challenges are three ARC-AGI-1
evaluation tasks that model knows (their demos fit its 10x10 canvas) and one task whose test inputs
do not fit (it must keep the fallback). Faults are injected in-process with monkeypatch.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import torch

from arc_trm.candidates import load_candidates
from arc_trm.distributed import ErrorOutput, Launched, run_on_processes
from arc_trm.grids import kaggle_challenges, load_challenges, write_kaggle_pair
from arc_trm.io import read_json
from arc_trm.kaggle import flow, runners
from arc_trm.kaggle.clock import Clock
from arc_trm.kaggle.provenance import Answers
from arc_trm.kaggle.submission import fallback_submission, validate_submission
from arc_trm.predict import PredictArgs, predict_split
from submissions import make

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
SMALL = ["--finetune-aug", "2", "--predict-aug", "2", "--batch-size", "16"]


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("tiny")
    command = [
        sys.executable, "-m", "arc_trm.train", "preset=tiny", f"run.dir={run}", "run.tracker=none",
        "train.steps=10", "data.max_tasks=4", "data.num_aug=2",
    ]
    subprocess.run(command, cwd=ROOT, env=ENV, check=True, capture_output=True, timeout=300)
    return run / "model"


@pytest.fixture(scope="module")
def files(tiny_model, arc1_tasks, tmp_path_factory) -> dict:
    """challenges.json + solutions.json (named so that neither is picked up beside the other)."""
    kaggle = tmp_path_factory.mktemp("kaggle")
    pair = write_kaggle_pair(arc1_tasks[1], kaggle, "arc-agi_evaluation")
    challenges, solutions = read_json(pair[0]), read_json(pair[1])
    fitting = [t for t in read_json(tiny_model / "data.json")["task_ids"] if t in challenges][:3]
    too_big = next(
        t for t in sorted(challenges)
        if len(challenges[t]["test"]) > 1 and all(len(p["input"]) > 10 for p in challenges[t]["test"])
    )
    ids = [*fitting, too_big]
    folder = tmp_path_factory.mktemp("challenges")
    (folder / "challenges.json").write_text(json.dumps({t: challenges[t] for t in ids}))
    (folder / "solutions.json").write_text(json.dumps({t: solutions[t] for t in ids}))
    assert len(fitting) == 3
    return {"challenges": folder / "challenges.json", "solutions": folder / "solutions.json", "fitting": fitting, "too_big": too_big}


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def args(model: Path, files: dict, tmp_path: Path, *extra: str) -> list[str]:
    return [
        "--checkpoint", str(model), "--challenges", str(files["challenges"]), "--out", str(tmp_path / "submission.json"),
        "--work", str(tmp_path / "work"), *extra,
    ]


def assert_complete(submission: dict, files: dict) -> None:
    tasks = load_challenges(files["challenges"])
    assert validate_submission(submission, tasks) == []
    for task in tasks:
        assert len(submission[task.id]) == len(task.test)
        for entry in submission[task.id]:
            assert set(entry) == {"attempt_1", "attempt_2"} and entry["attempt_1"] != entry["attempt_2"]
            for grid in entry.values():
                assert all(isinstance(row, list) and all(isinstance(v, int) and 0 <= v <= 9 for v in row) for row in grid)


def fallback(files: dict) -> dict:
    return json.loads(json.dumps(fallback_submission(load_challenges(files["challenges"]))))


# ------------------------------------------------------------------------------------------- tests


@pytest.mark.parametrize("text, seconds", [("11h", 39600), ("1.5h", 5400), ("90m", 5400), ("3600s", 3600), ("3600", 3600), ("0", 0)])
def test_time_budgets_parse(text, seconds):
    assert make.parse_duration(text) == seconds


def test_end_to_end_writes_a_valid_scored_submission(tiny_model, files, tmp_path):
    command = [sys.executable, "-m", "submissions.make", *args(tiny_model, files, tmp_path, "--finetune-steps", "4", *SMALL,
               "--set", "train.global_batch=16")]
    result = subprocess.run(command, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "3 by the fine-tuned model" in result.stdout and "larger than the model's 10x10 canvas" in result.stdout
    submission = read_json(tmp_path / "submission.json")
    assert_complete(submission, files)
    assert submission[files["too_big"]] == fallback(files)[files["too_big"]]
    score = subprocess.run(
        [sys.executable, "-m", "evaluation.score", str(tmp_path / "submission.json"), "--solutions", str(files["solutions"]),
         "--json", str(tmp_path / "report.json")],
        cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=120,
    )
    assert score.returncode == 0, score.stderr
    report = read_json(tmp_path / "report.json")
    assert (report["n_tasks"], report["n_outputs"]) == (4, 5)


def test_embeddings_only_leaves_the_dense_weights_alone(tiny_model, files, tmp_path, capsys):
    from safetensors.torch import load_file

    assert make.main(args(tiny_model, files, tmp_path, "--embeddings-only", "--finetune-steps", "2", *SMALL,
                          "--set", "train.global_batch=16")) == 0
    assert "3 by the fine-tuned model" in capsys.readouterr().out
    (tuned,) = (tmp_path / "work").glob("finetune-*/model")
    before, after = load_file(tiny_model / "weights.safetensors"), load_file(tuned / "weights.safetensors")
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    table = load_file(tuned / "puzzle_table.safetensors")["weights"]
    assert not torch.allclose(table[1:], table[1:].mean(0))  # embeddings moved away from their common start


def test_work_folders_are_named_after_their_inputs(tiny_model, files, tmp_path):
    def run_dir(*extra: str) -> str:
        parsed = make.parse_args(args(tiny_model, files, tmp_path, *extra))
        return flow.finetune_config(parsed, tiny_model, tmp_path / "tasks.json", "key").run.dir

    assert run_dir() == run_dir("--time-budget", "2h")  # the same job resumes whatever the budget
    assert len({run_dir(), run_dir("--finetune-aug", "4"), run_dir("--set", "train.lr=1e-3"), run_dir("--embeddings-only")}) == 4


def test_zero_budget_writes_the_fallback_quickly(tiny_model, files, tmp_path, capsys):
    start = time.monotonic()
    assert make.main(args(tiny_model, files, tmp_path, "--time-budget", "0")) == 0
    assert time.monotonic() - start < 10
    assert read_json(tmp_path / "submission.json") == fallback(files)
    assert not (tmp_path / "work").exists()
    assert "fallback file stands" in capsys.readouterr().out


def test_failed_finetuning_predicts_with_the_original_checkpoint(tiny_model, files, tmp_path, monkeypatch, capsys):
    def broken_train(config):
        raise RuntimeError("CUDA out of memory (injected)")

    used = []

    def spy(predict_args, accelerator):
        used.append(predict_args.checkpoint)
        return make_predict(predict_args, accelerator)

    make_predict = flow.predict_split
    monkeypatch.setattr(flow, "train", broken_train)
    monkeypatch.setattr(flow, "predict_split", spy)
    assert make.main(args(tiny_model, files, tmp_path, *SMALL)) == 0
    assert used and set(used) == {str(tiny_model)}
    out = capsys.readouterr().out
    assert "Fine-tuning failed (RuntimeError: CUDA out of memory (injected))" in out and "3 by the original model" in out
    submission = read_json(tmp_path / "submission.json")
    assert_complete(submission, files)
    assert any(submission[t] != fallback(files)[t] for t in files["fitting"])  # predictions replaced fallbacks


def test_test_time_compute_reaches_prediction(tiny_model, files, tmp_path, monkeypatch):
    """--steps / --trajectories / --noise / --early-exit are what prediction runs with, and they name the
    prediction folder (a re-run with other settings never reuses parts made with these)."""
    seen = []

    def recording_predict(predict_args, accelerator):
        seen.append(predict_args)
        return predict_split(predict_args, accelerator)

    monkeypatch.setattr(flow, "predict_split", recording_predict)
    extra = ["--steps", "3", "--trajectories", "2", "--noise", "0.3", "--noise-seed", "7", "--early-exit"]
    assert make.main(args(tiny_model, files, tmp_path, "--no-finetune", *SMALL, *extra)) == 0
    assert seen and all((a.steps, a.trajectories, a.noise, a.noise_seed, a.early_exit) == (3, 2, 0.3, 7, True) for a in seen)
    candidates = list(load_candidates(next(Path(seen[0].out).parent.rglob("candidates.parquet"))).to_candidates())
    assert {c.trajectory for c in candidates} == {0, 1}
    plain_work = tmp_path / "plain"
    assert make.main(args(tiny_model, files, tmp_path, "--no-finetune", *SMALL, "--work", str(plain_work), "--fresh")) == 0
    assert {p.name for p in plain_work.glob("predict-*")}.isdisjoint(p.name for p in (tmp_path / "work").glob("predict-*"))


def test_failed_prediction_keeps_the_fallback_file(tiny_model, files, tmp_path, monkeypatch, capsys):
    def broken_predict(predict_args, accelerator):
        raise ValueError("decoder exploded (injected)")

    monkeypatch.setattr(flow, "predict_split", broken_predict)
    assert make.main(args(tiny_model, files, tmp_path, "--no-finetune", *SMALL)) == 0
    assert read_json(tmp_path / "submission.json") == fallback(files)
    assert "4 prediction failed (ValueError: decoder exploded (injected))" in capsys.readouterr().out


@pytest.mark.parametrize(
    "error", [torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"), RuntimeError("CUDA error: out of memory")]
)
def test_out_of_memory_retries_with_half_the_batch(tiny_model, files, tmp_path, monkeypatch, capsys, error):
    batches = []

    def first_call_fails(predict_args, accelerator):
        batches.append(predict_args.batch_size)
        if len(batches) == 1:
            raise error
        return real(predict_args, accelerator)

    real = flow.predict_split
    monkeypatch.setattr(flow, "predict_split", first_call_fails)
    assert make.main(args(tiny_model, files, tmp_path, "--no-finetune", *SMALL)) == 0
    assert batches == [16, 8]
    assert "3 by the original model" in capsys.readouterr().out
    assert_complete(read_json(tmp_path / "submission.json"), files)


def test_out_of_memory_at_batch_one_gives_up_on_the_chunk(tiny_model, files, tmp_path, monkeypatch, capsys):
    batches = []

    def always_fails(predict_args, accelerator):
        batches.append(predict_args.batch_size)
        raise torch.cuda.OutOfMemoryError("CUDA out of memory")

    monkeypatch.setattr(flow, "predict_split", always_fails)
    assert make.main(args(tiny_model, files, tmp_path, "--no-finetune", *SMALL)) == 0
    assert batches == [16, 8, 4, 2, 1]
    assert read_json(tmp_path / "submission.json") == fallback(files)
    assert "prediction failed (OutOfMemoryError" in capsys.readouterr().out


def test_flaky_writes_are_retried(tiny_model, files, tmp_path, monkeypatch):
    calls = []

    def flaky_write(submission, path, tasks):
        calls.append(path)
        if len(calls) == 1:
            raise OSError(5, "Input/output error (injected)")
        return real(submission, path, tasks)

    real = flow.write_submission
    monkeypatch.setattr(flow, "write_submission", flaky_write)
    assert make.main(args(tiny_model, files, tmp_path, "--time-budget", "0")) == 0
    assert len(calls) == 2 and read_json(tmp_path / "submission.json") == fallback(files)


BAD_CHALLENGES = {
    "missing": None,
    "not json": "{not json",
    "empty": "{}",
    "ragged grid": json.dumps({"t": {"train": [{"input": [[1, 2], [3]], "output": [[1]]}], "test": [{"input": [[1]]}]}}),
    "colour 10": json.dumps({"t": {"train": [{"input": [[10]], "output": [[1]]}], "test": [{"input": [[1]]}]}}),
    "no test": json.dumps({"t": {"train": [{"input": [[1]], "output": [[1]]}], "test": []}}),
}


@pytest.mark.parametrize("case", sorted(BAD_CHALLENGES))
def test_bad_challenges_exit_2_and_write_nothing(tiny_model, tmp_path, capsys, case):
    challenges = tmp_path / "bad.json"
    if BAD_CHALLENGES[case] is not None:
        challenges.write_text(BAD_CHALLENGES[case])
    files = {"challenges": challenges}
    with pytest.raises(SystemExit) as exit_info:
        make.main(args(tiny_model, files, tmp_path))
    assert exit_info.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "bad.json" in lines[0]
    assert not (tmp_path / "submission.json").exists()


@pytest.mark.parametrize("extra", [["--checkpoint", "/nonexistent/model"], ["--set", "train.no_such_key=1"], ["--time-budget", "soon"],
                                   ["--trajectories", "4"], ["--noise", "0.1"], ["--steps", "5000"]])
def test_bad_options_exit_2_and_write_nothing(tiny_model, files, tmp_path, capsys, extra):
    with pytest.raises(SystemExit) as exit_info:
        make.main(args(tiny_model, files, tmp_path) + extra)
    assert exit_info.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert not (tmp_path / "submission.json").exists()


@pytest.mark.slow
def test_two_processes_fine_tune_and_predict_under_accelerate_launch(tiny_model, files, tmp_path):
    """--processes 2: fine-tuning and every prediction chunk run as 2-process launches (gloo here, GPUs
    on Kaggle); the submission is complete and predicted by the fine-tuned model."""
    command = [sys.executable, "-m", "submissions.make", *args(tiny_model, files, tmp_path, "--finetune-steps", "4", *SMALL,
               "--set", "train.global_batch=16", "--processes", "2")]
    result = subprocess.run(command, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "3 by the fine-tuned model" in result.stdout and "2 process(es)" in result.stdout
    (run,) = (tmp_path / "work").glob("finetune-*/checkpoints/step_*")
    assert (run / "rank_1.pt").exists()  # the fine-tuning run had two processes
    assert_complete(read_json(tmp_path / "submission.json"), files)


def test_a_failed_launch_reads_out_of_memory_from_its_output(monkeypatch):
    """A launch that died of an out-of-memory error is retried like one; any other failure is one line."""
    replies = iter([Launched(1, True, "ChildFailedError ...\n"), Launched(1, False, "Traceback ...\nValueError: bad\n\n")])
    monkeypatch.setattr(runners, "run_on_processes", lambda *args, **kwargs: next(replies))
    runner, settings = runners.LaunchedRunner(2, Clock(60.0)), PredictArgs(checkpoint="m", split="s", out="o")
    with pytest.raises(torch.cuda.OutOfMemoryError, match="ran out of memory"):
        runner.predict(settings)
    with pytest.raises(RuntimeError, match="exited with 1: ValueError: bad"):
        runner.predict(settings)


@pytest.mark.slow
@pytest.mark.timeout(120)  # without the kill, waiting for the servers' output never ends
def test_a_launch_past_its_time_is_killed_with_its_workers():
    """The launcher and the processes it started all end at the timeout (two servers that never stop)."""
    marker = f"--directory={ROOT / 'tests'}"  # names these servers' command lines
    with pytest.raises(subprocess.TimeoutExpired):
        run_on_processes("http.server", ["0", "--bind", "127.0.0.1", marker], 2, timeout=20)
    time.sleep(1)
    assert not [p for p in psutil.process_iter(["cmdline"]) if marker in (p.info["cmdline"] or [])]


def test_processes_keep_the_presets_micro_batch(tiny_model, tmp_path):
    """The finetune preset accumulates 4 micro-batches of 96 on one GPU; on 4 it takes one on each."""
    def grad_accum(*extra: str) -> int:
        parsed = make.parse_args(["--checkpoint", str(tiny_model), "--challenges", "c", "--out", "o", *extra])
        return flow.finetune_config(parsed, tiny_model, tmp_path / "tasks.json", "key").train.grad_accum

    assert grad_accum() == 4
    assert grad_accum("--processes", "4") == 1
    assert grad_accum("--processes", "2") == 2
    assert grad_accum("--processes", "3") == 2  # rounded up: micro-batch 64, not 128
    assert grad_accum("--processes", "4", "--set", "train.grad_accum=2") == 2


def test_out_of_memory_is_found_however_far_up_the_error_output_it_is():
    """The worker's own error comes first; the launcher then reports every other process (pages of it),
    and the phrase may be split between two reads of the pipe."""
    read, write = os.pipe()
    with os.fdopen(read, "rb") as stream:
        errors = ErrorOutput(stream, keep=100)
        with os.fdopen(write, "wb") as pipe:
            for chunk in (b"rank 1: torch.OutOfMemoryError: CUDA out of mem", b"ory. Tried to allocate\n", b"x" * 20000):
                pipe.write(chunk)
                pipe.flush()
                time.sleep(0.05)
        errors.thread.join(timeout=10)
    assert errors.out_of_memory and errors.tail == "x" * 100
    read, write = os.pipe()
    with os.fdopen(read, "rb") as stream:
        errors = ErrorOutput(stream)
        with os.fdopen(write, "wb") as pipe:
            pipe.write(b"ValueError: out of range\n")
        errors.thread.join(timeout=10)
    assert not errors.out_of_memory


def test_a_rerun_killed_while_fine_tuning_keeps_the_earlier_answers(earlier, files, tmp_path, monkeypatch, caplog):
    first = copy_earlier(earlier, files, tmp_path)

    def killed(config):
        # the file as the user would find it at that moment
        assert read_json(tmp_path / "submission.json") == first
        raise KeyboardInterrupt

    monkeypatch.setattr(flow, "train", killed)
    with pytest.raises(SystemExit) as exit_info:
        make.main(args(earlier / "model", {"challenges": earlier / "challenges.json"}, tmp_path, "--finetune-steps", "2", *SMALL,
                       "--set", "train.global_batch=16"))
    assert exit_info.value.code == 130
    assert read_json(tmp_path / "submission.json") == first
    assert "3 task(s) keep the answers" in caplog.text


# ------------------------------------------------------------------------- re-runs never make it worse


@pytest.fixture(scope="module")
def earlier(tiny_model, files, arc1_tasks, tmp_path_factory) -> Path:
    """A finished run predicted by the original model (--no-finetune): submission.json, its provenance
    and the work folder, beside its own copies of the model and the challenges, another checkpoint
    (`other`, a copy) and `superset.json` (the challenges and one more task)."""
    folder = tmp_path_factory.mktemp("earlier")
    shutil.copytree(tiny_model, folder / "model")
    shutil.copytree(tiny_model, folder / "other")
    shutil.copy(files["challenges"], folder / "challenges.json")
    challenges = read_json(files["challenges"])
    more = next(task for task in arc1_tasks[1] if task.id not in challenges)
    (folder / "superset.json").write_text(json.dumps({**challenges, **kaggle_challenges([more])}))
    assert make.main(args(folder / "model", {"challenges": folder / "challenges.json"}, folder, "--no-finetune", *SMALL)) == 0
    return folder


def copy_earlier(earlier: Path, files: dict, tmp_path: Path) -> dict:
    """The earlier run's files in tmp_path; returns its submission, checked to hold predictions."""
    for name in ("submission.json", "submission.json.provenance.json"):
        shutil.copy(earlier / name, tmp_path / name)
    shutil.copytree(earlier / "work", tmp_path / "work")
    submission = read_json(tmp_path / "submission.json")
    assert all(submission[t] != fallback(files)[t] for t in files["fitting"])
    return submission


def sources(out: Path) -> dict[str, list[str]]:
    """Task id -> the source of each answer, from the provenance beside `out`."""
    records = read_json(out.with_name(out.name + ".provenance.json"))["tasks"]
    return {task_id: [r["source"] for r in record["answers"]] for task_id, record in records.items()}


def rerun_args(case: str, earlier: Path, tmp_path: Path) -> list[str]:
    """The options (beside the earlier run's) of each re-run that used to start from the fallbacks."""
    if case == "work folder deleted":
        shutil.rmtree(tmp_path / "work")
    if case == "work folder damaged":
        for path in (tmp_path / "work").rglob("*"):
            if path.is_file():
                path.write_bytes(b"\x00garbage")
    if case == "re-exported checkpoint":
        os.utime(earlier / "model" / "weights.safetensors")  # same bytes, a new time
    relative = ["--checkpoint", os.path.relpath(earlier / "model", tmp_path), "--work", "work", "--out", "submission.json",
                "--challenges", os.path.relpath(earlier / "challenges.json", tmp_path)]
    return {
        "spelled relatively": relative, "--predict-aug": ["--predict-aug", "1"], "--policy": ["--policy", "reference"],
        "fine-tuning on": ["--finetune-steps", "3"], "another checkpoint": ["--checkpoint", str(earlier / "other")],
        "a superset of the challenges": ["--challenges", str(earlier / "superset.json")],
    }.get(case, [])


RERUNS = ["work folder deleted", "work folder damaged", "spelled relatively", "re-exported checkpoint", "--predict-aug",
          "--policy", "fine-tuning on", "another checkpoint", "a superset of the challenges"]


@pytest.mark.parametrize("case", RERUNS)
def test_a_rerun_never_replaces_answers_with_fallbacks(earlier, files, tmp_path, monkeypatch, capsys, case):
    """Each of these re-runs used to start the file from the fallbacks. Stopped before it predicts
    (budget 0), the re-run must leave every earlier answer in place, and its summary counts them."""
    first = copy_earlier(earlier, files, tmp_path)
    monkeypatch.chdir(tmp_path)
    command = args(earlier / "model", {"challenges": earlier / "challenges.json"}, tmp_path, "--no-finetune", *SMALL)
    change = rerun_args(case, earlier, tmp_path)
    for option, value in zip(change[::2], change[1::2]):
        if option in command:
            command[command.index(option) + 1] = value
        else:
            command += [option, value]
    if case == "fine-tuning on":
        command.remove("--no-finetune")
    assert make.main([*command, "--time-budget", "0"]) == 0
    now = read_json(tmp_path / "submission.json")
    assert {task_id: now[task_id] for task_id in first} == first
    out = capsys.readouterr().out
    assert "predicted: 3 by the original model (3 kept from an earlier run)" in out
    assert f"Fallback guesses: {len(now) - 3} task(s)" in out
    if case == "a superset of the challenges":
        assert_complete(now, {"challenges": earlier / "superset.json"}) and len(now) == 5


def test_a_rerun_replaces_answers_only_with_better_founded_ones(earlier, files, tmp_path, monkeypatch, capsys):
    """A fine-tuned model's predictions replace the original model's; a later run without fine-tuning
    has nothing to improve, predicts nothing and changes nothing; --fresh starts over."""
    copy_earlier(earlier, files, tmp_path)
    assert set(sources(tmp_path / "submission.json")[files["fitting"][0]]) == {"predicted"}
    tuned = args(earlier / "model", {"challenges": earlier / "challenges.json"}, tmp_path, "--finetune-steps", "2", *SMALL,
                 "--set", "train.global_batch=16")
    assert make.main(tuned) == 0
    assert "predicted: 3 by the fine-tuned model." in capsys.readouterr().out
    second = read_json(tmp_path / "submission.json")
    recorded = sources(tmp_path / "submission.json")
    assert all("finetuned" in recorded[t] for t in files["fitting"]) and set(recorded[files["too_big"]]) == {"fallback"}

    def never(predict_args, accelerator):
        raise AssertionError("predicted, though nothing could improve")

    monkeypatch.setattr(flow, "predict_split", never)
    assert make.main(args(earlier / "model", {"challenges": earlier / "challenges.json"}, tmp_path, "--no-finetune", *SMALL)) == 0
    assert read_json(tmp_path / "submission.json") == second
    out = capsys.readouterr().out
    assert "Nothing to improve" in out and "predicted: 3 by the fine-tuned model (3 kept from an earlier run)" in out
    assert make.main([*tuned, "--fresh", "--time-budget", "0"]) == 0
    assert read_json(tmp_path / "submission.json") == fallback(files)
    assert {s for answers in sources(tmp_path / "submission.json").values() for s in answers} == {"fallback"}


@pytest.mark.parametrize("provenance", ["deleted", "damaged", "stale"])
def test_without_its_provenance_an_earlier_answer_is_kept(earlier, files, tmp_path, monkeypatch, capsys, provenance):
    """A provenance file lost, damaged or not describing the file's answers (here: one of a fallback
    file) never lets a fallback or the original model's prediction replace a real-looking answer."""
    first = copy_earlier(earlier, files, tmp_path)
    record = tmp_path / "submission.json.provenance.json"
    if provenance == "deleted":
        record.unlink()
    elif provenance == "damaged":
        record.write_text("{not json")
    else:
        Answers.fallback(load_challenges(files["challenges"])).save_records(tmp_path / "submission.json")

    def never(predict_args, accelerator):
        raise AssertionError("predicted over answers of unknown origin")

    monkeypatch.setattr(flow, "predict_split", never)
    assert make.main(args(earlier / "model", {"challenges": earlier / "challenges.json"}, tmp_path, "--no-finetune", *SMALL)) == 0
    assert read_json(tmp_path / "submission.json") == first
    assert "predicted: 3 of unknown origin (3 kept from an earlier run)" in capsys.readouterr().out
    recorded = sources(tmp_path / "submission.json")
    assert recorded[files["fitting"][0]][0] == "unknown" and set(recorded[files["too_big"]]) == {"fallback"}


def test_a_corrupt_part_file_is_set_aside_and_made_again(tiny_model, files, tmp_path, capsys, caplog):
    command = args(tiny_model, files, tmp_path, "--no-finetune", *SMALL, "--fresh")
    assert make.main(command) == 0
    (part,) = (tmp_path / "work").glob("predict-*/chunk_00000/parts/part_00000.parquet")
    part.write_bytes(part.read_bytes()[:100])  # a write cut short
    caplog.clear()
    assert make.main(command) == 0
    assert "predicted: 3 by the original model." in capsys.readouterr().out
    warnings = [r for r in caplog.records if "set aside" in r.getMessage()]
    assert len(warnings) == 1 and "\n" not in warnings[0].getMessage() and warnings[0].exc_info is None
    assert (part.parent / "part_00000.parquet.corrupt").exists() and load_candidates(part).task_ids


def test_the_work_folder_is_keyed_by_content_not_by_spelling_or_time(tiny_model, tmp_path, monkeypatch):
    """A relative checkpoint and work folder resume the run the absolute ones made; an identical
    re-export resumes too; other weights start afresh."""
    model = tmp_path / "runs" / "x" / "model"
    shutil.copytree(tiny_model, model)
    (tmp_path / "inside").mkdir()

    def run_dir(checkpoint: str, work: str) -> str:
        parsed = make.parse_args(["--checkpoint", checkpoint, "--challenges", "c.json", "--out", "o.json", "--work", work])
        return flow.finetune_config(parsed, Path(checkpoint), Path(work) / "tasks.json", "key").run.dir

    absolute = run_dir(str(model), str(tmp_path / "work"))
    monkeypatch.chdir(tmp_path / "inside")
    assert run_dir("../runs/x/model", "../work") == absolute
    os.utime(model / "weights.safetensors", (1, 1))
    assert run_dir("../runs/x/model", "../work") == absolute
    weights = model / "weights.safetensors"
    weights.write_bytes(weights.read_bytes()[:-1] + b"\x01")
    assert run_dir("../runs/x/model", "../work") != absolute


def test_a_corrupt_checkpoint_is_one_error_line_and_nothing_written(tiny_model, files, tmp_path, capsys):
    broken = tmp_path / "model"
    shutil.copytree(tiny_model, broken)
    (broken / "weights.safetensors").write_bytes(b"\x00" * 64)
    with pytest.raises(SystemExit) as exit_info:
        make.main(args(broken, files, tmp_path, *SMALL))
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {broken / 'weights.safetensors'}: cannot load") and err.count("\n") == 1
    assert not (tmp_path / "submission.json").exists()


def test_a_second_run_on_the_same_out_is_refused_while_the_first_runs(tiny_model, files, tmp_path, capsys):
    """Two runs on one --out used to both write it: the later one's writes put back the answers it had
    started from over the ones the first had improved meanwhile. The lock is held by another open file
    here, as by another process; the file stays as it was."""
    import fcntl

    out = tmp_path / "submission.json"
    out.write_text(json.dumps(fallback(files)))
    before = out.read_bytes()
    with open(tmp_path / "submission.json.lock", "a+") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        held.write("4242\n")
        held.flush()
        with pytest.raises(SystemExit) as exit_info:
            make.main(args(tiny_model, files, tmp_path, "--no-finetune", *SMALL))
    lines = capsys.readouterr().err.strip().splitlines()
    assert exit_info.value.code == 2 and lines[-1].startswith(f"error: --out {out}: another submissions.make (PID 4242)"), lines
    assert out.read_bytes() == before and not (tmp_path / "work").exists()
