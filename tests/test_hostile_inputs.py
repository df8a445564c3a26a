"""Inputs a hostile user tried that used to give a traceback, a silent nonsense run or an overwritten
input: each is now one error naming the file or key (the CLI turns it into one `error:` line, exit 2)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from arc_trm.candidates import Candidate, CandidateTable, load_candidates, save_candidates
from arc_trm.config import load_config, load_config_file
from arc_trm.data.arc import ArcSource
from arc_trm.errors import ConfigError, DataError, UserError
from arc_trm.grids import Pair, Task


@pytest.mark.parametrize(
    "arg, message",
    [
        ("train.steps=1e400", "train.steps: cannot read '1e400' as int"),
        ("model.puzzle_emb_len=0", "model.puzzle_emb_len=0: must be an integer >= 1"),
        ("run.dir=", "run.dir must name a folder"),
        ("data.tasks= ", "data.tasks must be arc1, arc2 or a path"),
        # trained, then failed with a traceback at the export (orjson takes 64-bit integers)
        ("model.halt_max_steps=1e21", "model.halt_max_steps=1000000000000000000000: must be an integer of at most 64 bits"),
        # exhausted the machine's memory while the augmentation tables were built
        ("data.num_aug=100000000", "data.num_aug=100000000: must be"),
    ],
)
def test_nonsense_values_are_refused(arg, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")):
        load_config([arg])


@pytest.mark.parametrize("content", [b"data:\n  tasks: arc1\n\xff\xfe\n", b"a: {", b"- a\n- b\n"])
def test_a_damaged_config_file_is_one_error(tmp_path, content):
    path = tmp_path / "config.yaml"
    path.write_bytes(content)
    with pytest.raises(ConfigError, match=str(path)):
        load_config_file(path)


def test_a_canvas_no_task_fits_is_one_error():
    task = Task("t", (Pair(np.zeros((3, 3), np.uint8), np.zeros((3, 3), np.uint8)),), (Pair(np.zeros((3, 3), np.uint8), None),))
    with pytest.raises(ConfigError, match="none of the 1 tasks fits a 2x2 canvas"):
        ArcSource.from_tasks([task], set(), num_aug=0, canvas=2)


def candidates_file(tmp_path):
    grid = np.array([[1, 2]], dtype=np.uint8)
    table = CandidateTable.from_candidates([Candidate("t", 0, 0, 1, 0.5, grid, "c")])
    return save_candidates(table, tmp_path / "c.parquet")


@pytest.mark.parametrize("column, values", [("checkpoint", [None]), ("task_id", [None]), ("augmentation", ["x"]), ("q_halt", [None])])
def test_a_candidates_column_of_the_wrong_kind_is_one_error(tmp_path, column, values):
    path = candidates_file(tmp_path)
    arrow = pq.read_table(path)
    index = arrow.schema.get_field_index(column)
    kind = pa.string() if values == ["x"] else arrow.schema.field(column).type
    arrow = arrow.set_column(index, pa.field(column, kind), pa.array(values, type=kind))
    pq.write_table(arrow.replace_schema_metadata(pq.read_table(path).schema.metadata), path)
    with pytest.raises(DataError, match=str(path)):
        load_candidates(path)


def test_the_cli_refuses_to_overwrite_its_inputs(tmp_path, capsys):
    from evaluation.score import main as score

    submission = tmp_path / "submission.json"
    submission.write_text('{"t": [{"attempt_1": [[1]], "attempt_2": [[2]]}]}')
    before = submission.read_bytes()
    with pytest.raises(SystemExit) as exit_info:
        score([str(submission), "--split", "arc-agi-1/evaluation", "--json", str(submission)])
    assert exit_info.value.code == 2 and f"--json {submission}: is the submission {submission}" in capsys.readouterr().err
    assert submission.read_bytes() == before


def model_folders(tmp_path: Path) -> None:
    """runs/x (a run folder: config.yaml, model/) and a Kaggle pair in kaggle/; the files need not be
    real: every command refuses the output before it reads anything."""
    model = tmp_path / "runs" / "x" / "model"
    model.mkdir(parents=True)
    for name in ("config.json", "weights.safetensors", "puzzle_table.safetensors", "data.json"):
        (model / name).write_text(name)
    (tmp_path / "runs" / "x" / "config.yaml").write_text("run: {}")
    (tmp_path / "kaggle").mkdir()
    for name in ("e_challenges.json", "e_solutions.json", "submission.json", "candidates.parquet", "ids.json"):
        (tmp_path / "kaggle" / name).write_text("{}")
    (tmp_path / "tasks").mkdir()
    (tmp_path / "tasks" / "t.json").write_text("{}")
    (tmp_path / "link.json").symlink_to(tmp_path / "kaggle" / "e_challenges.json")


M, RUN, K = "runs/x/model", "runs/x", "kaggle"
OUTPUT_ON_INPUT = {
    "slim_export M --out M": ("arc_trm.slim_export", [M, "--out", M], M, M),
    "slim_export RUN --out RUN": ("arc_trm.slim_export", [RUN, "--out", RUN], RUN, RUN),
    "slim_export M --out RUN": ("arc_trm.slim_export", [M, "--out", RUN], RUN, "runs/x"),
    "score --json over the challenges beside": (
        "evaluation.score", [f"{K}/submission.json", "--solutions", f"{K}/e_solutions.json", "--json", f"{K}/e_challenges.json"],
        f"{K}/e_challenges.json", f"{K}/e_challenges.json"),
    "score --render inside the task folder": (
        "evaluation.score", [f"{K}/submission.json", "--solutions", "tasks", "--render", "tasks/pictures"], "tasks/pictures", "tasks"),
    "make --out MODEL/config.json": (
        "submissions.make", ["--checkpoint", M, "--challenges", f"{K}/e_challenges.json", "--out", f"{M}/config.json"],
        f"{M}/config.json", M),
    "make --out through a link to the challenges": (
        "submissions.make", ["--checkpoint", M, "--challenges", f"{K}/e_challenges.json", "--out", "link.json"],
        "link.json", f"{K}/e_challenges.json"),
    "make --work inside the run": (
        "submissions.make", ["--checkpoint", RUN, "--challenges", f"{K}/e_challenges.json", "--out", "s.json", "--work", f"{RUN}/w"],
        f"{RUN}/w", RUN),
    "predict out= the model": ("arc_trm.predict", [f"checkpoint={M}", f"split={K}/e_challenges.json", f"out={M}"], M, M),
    "predict out= inside the task folder": ("arc_trm.predict", [f"checkpoint={M}", "split=tasks", "out=tasks/p"], "tasks/p", "tasks"),
    "vote --render over the candidates": (
        "arc_trm.vote", [f"{K}/candidates.parquet", "--split", f"{K}/e_challenges.json", "--render", f"{K}/candidates.parquet"],
        f"{K}/candidates.parquet", f"{K}/candidates.parquet"),
    "data.arc --out the ConceptARC file": (
        "arc_trm.data.arc", ["--tasks", "arc1", "--concept", f"{K}/e_challenges.json", "--out", f"{K}/e_challenges.json"],
        f"{K}/e_challenges.json", f"{K}/e_challenges.json"),
    "import_reference --out the checkpoint file": (
        "arc_trm.import_reference", [f"{K}/ids.json", "--identifiers", f"{K}/ids.json", "--out", f"{K}/ids.json"],
        f"{K}/ids.json", f"{K}/ids.json"),
    "splits --out inside the bundled data": ("arc_trm.splits", ["arc-agi-1/evaluation", "--out", "bundled/k"], "bundled/k", "bundled"),
    "train exporting over the model it fine-tunes": (
        "arc_trm.train", [f"run.dir={RUN}", f"train.init_from={M}", "run.tracker=none"], M, M),
    "train run.dir= the run of train.init_from": ("arc_trm.train", [f"run.dir={RUN}", f"train.init_from={RUN}"], RUN, RUN),
    "train run.dir= inside the task folder": ("arc_trm.train", ["run.dir=tasks/r", "data.tasks=tasks"], "tasks/r", "tasks"),
}


@pytest.mark.parametrize("case", sorted(OUTPUT_ON_INPUT))
def test_no_output_lands_on_an_input(tmp_path, monkeypatch, capsys, case):
    """One `error:` line naming the output and the input it would overwrite, exit 2, and every file as
    it was (paths compared resolved: relative, through a symlink)."""
    import importlib

    model_folders(tmp_path)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bundled").mkdir()  # stands for the installed data, which no test may risk writing to
    monkeypatch.setattr("arc_trm.splits.bundled_data_folder", lambda: tmp_path / "bundled")
    module, argv, output, source = OUTPUT_ON_INPUT[case]
    before = {path: path.read_bytes() for path in tmp_path.rglob("*") if path.is_file()}
    with pytest.raises(SystemExit) as exit_info:
        importlib.import_module(module).main(argv)
    lines = capsys.readouterr().err.strip().splitlines()
    assert exit_info.value.code == 2 and len(lines) == 1 and lines[0].startswith("error: "), lines
    assert f"{output}: " in lines[0] and f"{source};" in lines[0], lines[0]
    assert {path: path.read_bytes() for path in tmp_path.rglob("*") if path.is_file()} == before


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--set", "train.init_from=/nope"], "--set train.init_from: set by submissions.make itself"),
        (["--set", "preset=tiny"], "--set preset: set by submissions.make itself"),
        (["--time-budget", "9" * 400], "is not a finite duration"),
        (["--out", "CHALLENGES"], "is the challenges file"),
        (["--out", "FOLDER"], "is a folder"),
        (["--work", ""], "an empty path"),
    ],
)
def test_submissions_make_refuses_nonsense_before_writing(tmp_path, extra, message):
    from submissions import make

    challenges = tmp_path / "c_challenges.json"
    challenges.write_text("{}")
    (tmp_path / "folder").mkdir()
    extra = [str(challenges) if e == "CHALLENGES" else str(tmp_path / "folder") if e == "FOLDER" else e for e in extra]
    out = ["--out", str(tmp_path / "submission.json")] if "--out" not in extra else []
    with pytest.raises(UserError, match=message.replace("(", r"\(")):
        make.parse_args(["--checkpoint", str(tmp_path / "model"), "--challenges", str(challenges), *out, *extra])
    assert not (tmp_path / "submission.json").exists() and challenges.read_text() == "{}"


@pytest.mark.parametrize(
    "module, argv, message",
    [
        ("arc_trm.data.maze", ["generate", "--n", "2", "--out", "OUT", "--workers", "0"], "--workers 0: must be >= 1"),
        ("arc_trm.data.sudoku", ["generate", "--n", "2", "--out", "OUT", "--test-fraction", "2"], "--test-fraction 2.0: must be in [0, 1]"),
        ("arc_trm.data.sudoku", ["generate", "--n", "2", "--out", "OUT", "--min-rating", "-5"], "--min-rating -5: must be >= 0"),
        ("arc_trm.data.sudoku", ["generate", "--n", "2", "--out", "OUT", "--seed", "-1"], "--seed -1: must be >= 0"),
        ("arc_trm.data.maze", ["generate", "--n", "2", "--out", "OUT", "--size", "9" * 20], f"--size {'9' * 20}: must be in [2, 100]"),
        ("arc_trm.data.maze", ["generate", "--n", "2", "--out", "OUT", "--seed", "-1"], "--seed -1: must be >= 0"),
        ("arc_trm.data.arc", ["--preset", "arc1", "--out", "OUT", "--canvas", "0"], "--canvas 0: must be in [1, 30]"),
    ],
)
def test_generator_options_are_named_one_by_one(tmp_path, capsys, module, argv, message):
    import importlib

    main = importlib.import_module(module).main
    with pytest.raises(SystemExit) as exit_info:
        main([str(tmp_path / "out") if a == "OUT" else a for a in argv])
    assert exit_info.value.code == 2 and message in capsys.readouterr().err and not (tmp_path / "out").exists()


def test_a_task_file_without_test_pairs_is_named_as_a_task_file(tmp_path):
    from arc_trm.splits import resolve

    path = tmp_path / "task.json"
    path.write_text('{"train": [{"input": [[1]], "output": [[2]]}]}')
    with pytest.raises(DataError, match="test") as error:
        resolve(path)
    assert "task train" not in str(error.value)


def test_solutions_with_a_split_name_are_refused(tmp_path):
    from arc_trm.splits import resolve

    with pytest.raises(DataError, match="goes with a challenges file"):
        resolve("arc-agi-1/evaluation", tmp_path / "solutions.json")


def run_main(main, argv, capsys) -> str:
    """The one `error:` line of a command line refused with exit code 2."""
    with pytest.raises(SystemExit) as exit_info:
        main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.startswith("error: ") and err.count("\n") == 1
    return err


def task_with_outputs(task_id: str) -> Task:
    return Task(task_id, (Pair(np.ones((1, 1), np.uint8), np.ones((1, 1), np.uint8)),),
                (Pair(np.ones((1, 1), np.uint8), np.ones((1, 1), np.uint8)),))


def test_score_names_the_solutions_that_hold_no_tasks_or_no_outputs(tmp_path, capsys):
    from evaluation.score import main as score

    submission = tmp_path / "submission.json"
    submission.write_text("{}")
    empty = tmp_path / "empty_solutions.json"
    empty.write_text("{}")
    assert f"{empty}: no tasks to score" in run_main(score, [submission, "--solutions", empty], capsys)
    challenges = tmp_path / "c_challenges.json"  # no c_solutions.json beside it
    challenges.write_text('{"t": {"train": [{"input": [[1]], "output": [[2]]}], "test": [{"input": [[1]]}]}}')
    assert f"{challenges}: task t has no test outputs" in run_main(score, [submission, "--solutions", challenges], capsys)


def test_vote_names_the_candidates_file_whose_tasks_the_split_lacks(tmp_path, capsys):
    from arc_trm.grids import write_kaggle_pair
    from arc_trm.vote import main as vote

    candidates = candidates_file(tmp_path)  # task "t"
    challenges, _ = write_kaggle_pair([task_with_outputs("other")], tmp_path, "x")
    err = run_main(vote, [candidates, "--split", challenges], capsys)
    assert f"{candidates}: names 1 task(s) not in the split" in err


def test_vote_refuses_solutions_that_a_task_folder_would_ignore(tmp_path, capsys):
    from arc_trm.grids import write_kaggle_pair
    from arc_trm.vote import main as vote

    folder = tmp_path / "tasks"
    folder.mkdir()
    (folder / "t.json").write_text('{"train": [{"input": [[1]], "output": [[1]]}], "test": [{"input": [[1]], "output": [[1]]}]}')
    _, solutions = write_kaggle_pair([task_with_outputs("t")], tmp_path, "x")
    err = run_main(vote, [candidates_file(tmp_path), "--split", folder, "--solutions", solutions], capsys)
    assert f"{solutions}: a solutions file goes with a challenges file, not with the task folder {folder}" in err


def test_a_fractional_or_wrapping_step_is_not_read_as_a_duplicate(tmp_path):
    path = candidates_file(tmp_path)
    arrow = pq.read_table(path)
    index = arrow.schema.get_field_index("step")
    for kind, step, message in [(pa.float64(), 1.5, "must hold whole numbers"), (pa.int64(), 65537, "holds 65537: step must be a whole number")]:
        changed = arrow.set_column(index, pa.field("step", kind), pa.array([step], type=kind))
        pq.write_table(changed.replace_schema_metadata(arrow.schema.metadata), path)
        with pytest.raises(DataError, match=f"{path}: .*{message}"):
            load_candidates(path)
    grid = np.array([[1]], dtype=np.uint8)
    with pytest.raises(ValueError, match="holds 1.5: step must be a whole number"):
        CandidateTable.from_candidates([Candidate("t", 0, 0, 1, 0.5, grid, "c"), Candidate("t", 0, 0, 1.5, 0.5, grid, "c")])


@pytest.mark.parametrize("module", ["arc_trm.train", "arc_trm.predict", "arc_trm.vote", "evaluation.score"])
def test_a_reader_that_leaves_early_is_not_an_error(module):
    """`--help | head`: the pipe is closed before the command writes; no traceback, no error, exit 0."""
    process = subprocess.Popen([sys.executable, "-m", module, "--help"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    process.stdout.close()  # before the interpreter has even started: every write meets a closed pipe
    _, stderr = process.communicate(timeout=120)
    assert (process.returncode, stderr.decode()) == (0, "")


def test_a_folder_given_as_the_candidates_file_is_named_as_a_folder(tmp_path):
    """`vote OUT --split ...` (the prediction folder, not OUT/candidates.parquet) used to say 'no such file'."""
    from arc_trm.candidates import load_log_probs

    with pytest.raises(DataError, match=f"{tmp_path}: is a folder, expected a candidates Parquet file"):
        load_candidates(tmp_path)
    with pytest.raises(DataError, match=f"{tmp_path}: is a folder, expected a log_probs Parquet file"):
        load_log_probs(tmp_path)


@pytest.mark.parametrize("arg, message", [
    ("model.hidden=400000", "need 14306.0 GiB before gradients and optimizer state"),  # used to be the allocator's traceback
    ("model.expansion=1e300", "no model of this size can be built"),  # used to be torch's TypeError traceback
])
def test_a_model_too_large_to_build_is_refused_before_allocating(arg, message):
    import torch

    from arc_trm.train import check_model_fits

    config = load_config(["model.heads=2", arg])
    with pytest.raises(ConfigError, match=f"model.hidden=.*{re.escape(message)}"):
        check_model_fits(config, 25, torch.device("cpu"))
    check_model_fits(load_config(["model.hidden=16", "model.heads=2"]), 25, torch.device("cpu"))  # a small one fits
