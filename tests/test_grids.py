"""Every real ARC file loads, all copies of a task agree, and bad files are rejected cleanly.

Run: `pytest tests/test_grids.py -q` (reads ../shared/data, see conftest.py).
"""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from arc_trm.errors import DataError
from arc_trm.grids import Task, load_challenges, load_tasks
from arc_trm.splits import load_split

REPO = Path(__file__).resolve().parents[1]


def _key(task: Task) -> tuple:
    """Everything that defines a task (grids by shape and bytes), comparable with ==."""
    grids = [grid for pair in task.train + task.test for grid in (pair.input, pair.output)]
    return tuple(None if grid is None else (grid.shape, grid.tobytes()) for grid in grids)


def _by_id(tasks: list[Task]) -> dict[str, tuple]:
    return {task.id: _key(task) for task in tasks}


def _kaggle(shared_data: Path, subset: str) -> list[Task]:
    return load_tasks(shared_data / "kaggle" / f"arc-agi_{subset}_challenges.json")


# ---------------------------------------------------------------- the real data


@pytest.mark.parametrize("folder, subset, count", [
    ("arc-agi-1/training", "training", 400),
    ("arc-agi-1/evaluation", "evaluation", 400),
    ("arc-agi-2/training", "training2", 1000),
])
def test_folder_and_kaggle_copies_are_identical(shared_data, folder, subset, count):
    from_folder = load_tasks(shared_data / folder)
    from_kaggle = _kaggle(shared_data, subset)  # picks up the *_solutions.json beside it
    assert len(from_folder) == len(from_kaggle) == count
    assert all(task.has_solutions for task in from_folder + from_kaggle)
    assert _by_id(from_folder) == _by_id(from_kaggle)


def test_arc_agi_2_evaluation_kaggle_copy_has_six_older_tasks(shared_data):
    from_folder = _by_id(load_tasks(shared_data / "arc-agi-2/evaluation"))
    from_kaggle = _by_id(_kaggle(shared_data, "evaluation2"))
    assert from_folder.keys() == from_kaggle.keys()
    same = [task_id for task_id in from_folder if from_folder[task_id] == from_kaggle[task_id]]
    assert (len(same), len(from_folder) - len(same)) == (114, 6)


@pytest.mark.parametrize("split, count", [
    ("arc-agi-1/training", 400),
    ("arc-agi-1/evaluation", 400),
    ("arc-agi-2/training", 1000),
    ("arc-agi-2/evaluation", 120),
])
def test_named_split_has_its_count_and_equals_the_folder(shared_data, split, count):
    tasks = load_split(split)
    assert len(tasks) == count
    assert [task.id for task in tasks] == sorted(task.id for task in tasks)
    assert _by_id(tasks) == _by_id(load_tasks(shared_data / split))


def test_a_split_written_as_a_kaggle_pair_reads_back_as_the_split(tmp_path):
    """`python -m arc_trm.splits SPLIT --out DIR`: the challenges file alone finds its solutions beside it."""
    result = subprocess.run([sys.executable, "-m", "arc_trm.splits", "arc-agi-2/evaluation", "--out", str(tmp_path / "kaggle")],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    tasks = load_tasks(tmp_path / "kaggle" / "arc-agi-2_evaluation_challenges.json")
    assert all(task.has_solutions for task in tasks)
    assert _by_id(tasks) == _by_id(load_split("arc-agi-2/evaluation"))


def test_canvas_keeps_only_the_tasks_that_fit_and_names_the_files(tmp_path):
    """`--canvas 8` writes the 8x8 rung's evaluation tasks (the ladder's Kaggle miniature): every kept task
    fits, every dropped one does not."""
    result = subprocess.run([sys.executable, "-m", "arc_trm.splits", "arc-agi-1/evaluation", "--canvas", "8",
                             "--out", str(tmp_path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    kept = load_tasks(tmp_path / "arc-agi-1_evaluation_canvas8_challenges.json")
    everything = load_split("arc-agi-1/evaluation")
    assert {task.id for task in kept} == {task.id for task in everything if task.fits(8)}
    assert len(kept) == 21 and all(task.has_solutions for task in kept)
    bad = subprocess.run([sys.executable, "-m", "arc_trm.splits", "arc-agi-1/evaluation", "--canvas", "0",
                          "--out", str(tmp_path / "bad")], capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "--canvas" in bad.stderr
    assert not (tmp_path / "bad").exists()


def test_challenges_without_solutions_have_unknown_outputs(shared_data):
    tasks = load_challenges(shared_data / "kaggle/arc-agi_concept_challenges.json")
    assert len(tasks) == 160
    assert not any(task.has_solutions for task in tasks)


# ---------------------------------------------------------------- bad files

GOOD_TASK = {
    "train": [{"input": [[1, 2], [3, 4]], "output": [[4, 3], [2, 1]]}],
    "test": [{"input": [[5, 6], [7, 8]], "output": [[8, 7], [6, 5]]}],
}


def _with(path: tuple, value) -> dict:
    """GOOD_TASK with the item at `path` (keys/indices) replaced by `value`."""
    task = copy.deepcopy(GOOD_TASK)
    target = task
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    return task


# (name, broken task, expected words in the message)
BAD_TASKS = [
    ("ragged", _with(("train", 0, "input"), [[1, 2], [3]]), "rows have different lengths"),
    ("empty", _with(("train", 0, "output"), []), "non-empty list of rows"),
    ("empty-row", _with(("test", 0, "input"), [[]]), "non-empty list"),
    ("value-10", _with(("train", 0, "input", 0, 0), 10), "value 10 is not an integer 0..9"),
    ("value-minus-1", _with(("test", 0, "input", 1, 1), -1), "value -1 is not an integer 0..9"),
    ("float", _with(("train", 0, "output", 0, 1), 1.5), "value 1.5 is not an integer 0..9"),
    ("31-wide", _with(("train", 0, "input"), [[0] * 31]), "larger than 30x30"),
    ("no-demos", _with(("train",), []), "'train' must be a non-empty list"),
    ("no-test", _with(("test",), []), "'test' must be a non-empty list"),
]


def write_bad_task_file(folder: Path, task: dict) -> Path:
    """A one-task file; its id is the file stem, `badtask`."""
    path = folder / "badtask.json"
    path.write_bytes(orjson.dumps(task))
    return path


def write_bad_challenges(folder: Path, task: dict) -> Path:
    """A Kaggle challenges + solutions pair holding the broken task as `k1` (after a good task)."""
    challenges = {"k0": GOOD_TASK, "k1": {"train": task["train"], "test": [{"input": p["input"]} for p in task["test"]]}}
    solutions = {"k0": [GOOD_TASK["test"][0]["output"]], "k1": [p["output"] for p in task["test"]]}
    (folder / "bad_solutions.json").write_bytes(orjson.dumps(solutions))
    path = folder / "bad_challenges.json"
    path.write_bytes(orjson.dumps(challenges))
    return path


def bad_sources(folder: Path) -> list[tuple[str, Path, list[str]]]:
    """Every bad input as (name, path to load, words its error line must contain)."""
    cases = []
    for name, task, problem in BAD_TASKS:
        sub = folder / name
        (sub / "file").mkdir(parents=True)
        (sub / "kaggle").mkdir()
        task_file = write_bad_task_file(sub / "file", task)
        challenges = write_bad_challenges(sub / "kaggle", task)
        cases.append((f"{name}-file", task_file, [str(task_file), "task badtask", problem]))
        cases.append((f"{name}-kaggle", challenges, [str(challenges), "task k1", problem]))

    mismatch = folder / "mismatch"
    mismatch.mkdir()
    challenges = write_bad_challenges(mismatch, GOOD_TASK)
    (mismatch / "bad_solutions.json").write_bytes(orjson.dumps({"k0": [[[1]]], "k1": [[[1]], [[2]]]}))
    cases.append(("solutions-count", challenges, [str(mismatch / "bad_solutions.json"), "task k1", "solutions give 2 outputs for 1 test inputs"]))

    bad_solution = folder / "bad-solution"
    bad_solution.mkdir()
    challenges = write_bad_challenges(bad_solution, _with(("test", 0, "output", 0, 0), 10))
    cases.append(("solution-value-10", challenges, [str(bad_solution / "bad_solutions.json"), "task k1 solution[0]", "value 10"]))

    invalid = folder / "invalid" / "badtask.json"
    invalid.parent.mkdir()
    invalid.write_text('{"train": [')
    cases.append(("invalid-json", invalid, [str(invalid), "not valid JSON"]))

    missing = folder / "missing" / "badtask.json"
    cases.append(("missing-file", missing, [str(missing), "no such file"]))
    return cases


@pytest.fixture(scope="module")
def bad_cases(tmp_path_factory) -> list[tuple[str, Path, list[str]]]:
    return bad_sources(tmp_path_factory.mktemp("bad"))


def test_every_bad_input_is_one_data_error_naming_file_task_and_problem(bad_cases):
    assert len(bad_cases) == 2 * len(BAD_TASKS) + 4
    for name, path, words in bad_cases:
        with pytest.raises(DataError) as caught:
            load_tasks(path)
        message = str(caught.value)
        assert "\n" not in message, name
        for word in words:
            assert word in message, f"{name}: {word!r} not in {message!r}"


def test_every_bad_input_exits_2_with_one_error_line_and_no_report(bad_cases, tmp_path):
    submission = tmp_path / "submission.json"
    submission.write_bytes(b"{}")
    report = tmp_path / "report.json"
    for name, path, words in bad_cases:
        run = subprocess.run(
            [sys.executable, "-m", "evaluation.score", str(submission), "--solutions", str(path), "--json", str(report)],
            cwd=REPO, capture_output=True, text=True, timeout=60,
        )
        assert run.returncode == 2, (name, run.stderr)
        assert "Traceback" not in run.stderr, name
        lines = run.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), (name, run.stderr)
        assert words[-1] in lines[0], (name, lines[0])
        assert run.stdout == ""
        assert not report.exists(), name
