"""ARC scoring: conformance cases with hand-computed scores, bad submissions, the CLI end to end.

Run: `pytest tests/test_score.py -q` (the end-to-end test reads the bundled arc-agi-1/evaluation split).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import orjson
import pytest

from arc_trm.errors import DataError
from arc_trm.grids import Pair, Task
from arc_trm.scoring import (
    format_report,
    has_inputs,
    load_submission,
    load_truth,
    outputs_only_tasks,
    score_submission,
    task_attempts,
)
from arc_trm.splits import resolve
from arc_trm.tracks import TRACKS
from evaluation import score as score_cli

REPO = Path(__file__).resolve().parents[1]
A = [[1, 2], [3, 4]]
B = [[5]]
C = [[0, 0, 7]]
WRONG = [[9, 9], [9, 9]]


def task(task_id: str, *truths: list) -> Task:
    """A task with one demo and one test pair per truth grid."""
    demo = Pair(np.array([[1]], np.uint8), np.array([[2]], np.uint8))
    tests = tuple(Pair(np.array([[0]], np.uint8), np.array(truth, np.uint8)) for truth in truths)
    return Task(task_id, (demo,), tests)


def entry(attempt_1, attempt_2=WRONG) -> dict:
    return {"attempt_1": attempt_1, "attempt_2": attempt_2}


def run_cli(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "evaluation.score", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=120)


# ---------------------------------------------------------------- scoring rules


def test_all_right_scores_one():
    tasks = [task("t1", A), task("t2", B, C)]
    report = score_submission({"t1": [entry(A)], "t2": [entry(B), entry(C)]}, tasks)
    assert (report["score"], report["output_score"], report["strict_score"]) == (1.0, 1.0, 1.0)
    assert (report["n_tasks"], report["n_outputs"]) == (2, 3)
    assert report["tasks"] == {"t1": {"score": 1.0, "outputs": [True]}, "t2": {"score": 1.0, "outputs": [True, True]}}
    assert report["missing"] == report["extra"] == report["warnings"] == []


def test_attempt_2_alone_solves_the_output():
    report = score_submission({"t1": [entry(WRONG, A)]}, [task("t1", A)])
    assert report["score"] == 1.0 and report["tasks"]["t1"]["outputs"] == [True]


def test_exact_match_only_shape_and_values():
    tasks = [task("t1", A)]
    for attempt in ([[1, 2, 3, 4]], [[1, 3], [2, 4]], [[1, 2], [3, 5]], [[1, 2]], [[1, 2], [3, 4], [0, 0]]):
        assert score_submission({"t1": [entry(attempt, attempt)]}, tasks)["score"] == 0.0, attempt


def test_partial_multi_output_task_macro_and_micro_differ():
    # t1: 2 outputs, 1 solved -> 0.5; t2: 1 output solved -> 1.0; t3: 1 output unsolved -> 0.
    tasks = [task("t1", A, B), task("t2", C), task("t3", A)]
    submission = {"t1": [entry(A), entry(WRONG, A)], "t2": [entry(C)], "t3": [entry(B, C)]}
    report = score_submission(submission, tasks)
    assert report["tasks"]["t1"] == {"score": 0.5, "outputs": [True, False]}
    assert report["score"] == pytest.approx((0.5 + 1.0 + 0.0) / 3)   # macro: 0.5
    assert report["output_score"] == pytest.approx(2 / 4)              # micro: 2 of 4 outputs
    assert report["strict_score"] == pytest.approx(1 / 3)              # only t2 fully solved
    # A 3-output task with 1 solved next to a solved 1-output task: macro 2/3, micro 2/4.
    report = score_submission({"u": [entry(A), entry(A), entry(A)], "v": [entry(B)]}, [task("u", A, B, C), task("v", B)])
    assert (report["score"], report["output_score"], report["strict_score"]) == pytest.approx((2 / 3, 1 / 2, 1 / 2))


def test_entries_are_matched_to_test_inputs_in_order():
    report = score_submission({"t1": [entry(B), entry(A)]}, [task("t1", A, B)])
    assert report["tasks"]["t1"]["outputs"] == [False, False]


def test_missing_task_scores_zero_and_is_listed():
    report = score_submission({"t1": [entry(A)]}, [task("t1", A), task("t2", B, C)])
    assert report["missing"] == ["t2"]
    assert report["tasks"]["t2"] == {"score": 0.0, "outputs": [False, False]}
    assert (report["score"], report["output_score"], report["strict_score"]) == pytest.approx((0.5, 1 / 3, 0.5))
    empty = score_submission({}, [task("t1", A)])
    assert empty["score"] == 0.0 and empty["missing"] == ["t1"]


@pytest.mark.parametrize("name, attempt", [
    ("ragged", [[1, 2], [3]]),
    ("empty", []),
    ("empty-row", [[]]),
    ("value-10", [[1, 2], [3, 10]]),
    ("value-minus-1", [[1, 2], [3, -1]]),
    ("float", [[1.0, 2.0], [3.0, 4.0]]),
    ("bool", [[True]]),
    ("string", "[[1, 2], [3, 4]]"),
    ("string-cells", [["1", "2"], ["3", "4"]]),
    ("null", None),
    ("flat", [1, 2, 3, 4]),
    ("31-wide", [[0] * 31]),
    ("object", {"grid": A}),
])
def test_malformed_attempt_is_wrong_with_a_warning(name, attempt):
    tasks = [task("t1", A)]
    report = score_submission({"t1": [entry(attempt, WRONG)]}, tasks)
    assert report["score"] == 0.0, name
    assert len(report["warnings"]) == 1, report["warnings"]
    assert report["warnings"][0].startswith("task t1 output 0 attempt_1: ")
    # The other attempt still counts.
    report = score_submission({"t1": [entry(attempt, A)]}, tasks)
    assert report["score"] == 1.0 and len(report["warnings"]) == 1, name


def test_missing_attempt_key_is_wrong_with_a_warning_and_extra_keys_never_count():
    tasks = [task("t1", A)]
    report = score_submission({"t1": [{"attempt_1": A}]}, tasks)
    assert report["score"] == 1.0 and report["warnings"] == ["task t1 output 0: attempt_2 is missing; counted wrong"]
    report = score_submission({"t1": [{"attempt_2": WRONG, "attempt_3": A}]}, tasks)
    assert report["score"] == 0.0
    assert report["warnings"] == [
        "task t1 output 0: ignored attempt_3 (only attempt_1 and attempt_2 count)",
        "task t1 output 0: attempt_1 is missing; counted wrong",
    ]


def test_numpy_attempts_are_accepted():
    report = score_submission({"t1": [entry(np.array(A, np.uint8), np.array(B))]}, [task("t1", A)])
    assert report["score"] == 1.0 and report["warnings"] == []


def test_extra_unknown_task_is_ignored_and_listed():
    report = score_submission({"t1": [entry(A)], "zz": [entry(A)], "yy": []}, [task("t1", A)])
    assert report["score"] == 1.0 and report["n_tasks"] == 1
    assert report["extra"] == ["zz", "yy"]
    assert "zz" not in report["tasks"]


def test_fewer_entries_than_test_inputs_and_extra_entries():
    tasks = [task("t1", A, B, C), task("t2", A)]
    report = score_submission({"t1": [entry(A)], "t2": [entry(A), entry(B)]}, tasks)
    assert report["tasks"]["t1"]["outputs"] == [True, False, False]
    assert report["tasks"]["t2"]["outputs"] == [True]
    assert (report["score"], report["output_score"], report["strict_score"]) == pytest.approx((2 / 3, 2 / 4, 1 / 2))
    assert report["warnings"] == [
        "task t1: 1 entries for 3 test inputs; the missing outputs count as wrong",
        "task t2: 2 entries for 1 test inputs; the extra entries are ignored",
    ]
    assert score_submission({"t1": []}, tasks)["tasks"]["t1"]["outputs"] == [False, False, False]


def test_task_without_solutions_cannot_be_scored():
    unsolved = Task("nosol", task("x", A).train, (Pair(np.array(A, np.uint8), None),))
    with pytest.raises(DataError, match="task nosol has no test outputs"):
        score_submission({}, [task("t1", A), unsolved])
    with pytest.raises(DataError, match="no tasks"):
        score_submission({}, [])


def test_submission_structure_is_checked_in_memory_too():
    with pytest.raises(DataError, match="submission: task t1 entry \\[0\\]"):
        score_submission({"t1": [[A]]}, [task("t1", A)])


def test_task_attempts_and_outputs_only_tasks():
    tasks = outputs_only_tasks({"t1": [np.array(A, np.uint8), np.array(B, np.uint8)]})
    assert not has_inputs(tasks[0]) and has_inputs(task("t2", A))
    assert score_submission({"t1": [entry(A), entry(B)]}, tasks)["score"] == 1.0
    attempts = task_attempts({"t1": [{"attempt_1": A, "attempt_2": [[10]]}]}, tasks[0])
    assert len(attempts) == 2 and attempts[1] == [None, None] and attempts[0][1] is None
    assert np.array_equal(attempts[0][0], A)


def test_format_report_is_short_and_truncates():
    tasks = [task("two", A, B)] + [task(f"t{i:02d}", A) for i in range(30)]
    submission = {"t00": [entry(A)], "two": [entry(A), entry([[3]])], "zz": []}
    submission.update({f"t{i:02d}": [entry("bad", "bad")] for i in range(1, 5)})
    text = format_report(score_submission(submission, tasks))
    assert text.splitlines()[0].startswith("score         0.0484")
    assert "output_score  0.0625" in text and "strict_score  0.0323" in text
    assert "31: 1 solved, 1 partly, 29 unsolved (25 missing from the submission)" in text
    assert "wrong         two(0.50) t01 t02 t03 t04\n" in text
    assert "missing       t05 t06" in text and "(+5 more)" in text and "zz" in text
    assert "warnings      8" in text and "(+3 more in the --json report)" in text
    assert len(text.splitlines()) < 20


# ---------------------------------------------------------------- submission files

BAD_SUBMISSIONS = [
    ("not-json", b'{"t1": [', "not valid JSON"),
    ("not-object", b"[1, 2]", "expected an object mapping task id"),
    ("task-not-list", b'{"t1": [], "t2": {"attempt_1": [[1]]}}', "task t2: expected a list"),
    ("entry-not-object", b'{"t1": [{"attempt_1": [[1]]}, [[1]]]}', "task t1 entry [1]: expected an object"),
]


@pytest.mark.parametrize("name, content, problem", BAD_SUBMISSIONS)
def test_malformed_submission_file_is_one_data_error(tmp_path, name, content, problem):
    path = tmp_path / f"{name}.json"
    path.write_bytes(content)
    with pytest.raises(DataError) as caught:
        load_submission(path)
    assert str(caught.value).startswith(f"{path}: ") and problem in str(caught.value)


def test_missing_submission_file(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        load_submission(tmp_path / "absent.json")


def test_cli_rejects_bad_submissions_and_usage_cleanly(tmp_path):
    (tmp_path / "good").mkdir()
    (tmp_path / "good" / "t1.json").write_bytes(orjson.dumps({
        "train": [{"input": [[1]], "output": [[2]]}], "test": [{"input": [[0]], "output": A}]}))
    report = tmp_path / "report.json"
    cases = []
    for name, content, problem in BAD_SUBMISSIONS:
        path = tmp_path / f"{name}.json"
        path.write_bytes(content)
        cases.append(([str(path), "--solutions", str(tmp_path / "good")], problem))
    good = tmp_path / "good.json"
    good.write_bytes(orjson.dumps({"t1": [entry(A)]}))
    cases += [
        ([str(tmp_path / "absent.json"), "--solutions", str(tmp_path / "good")], "no such file"),
        ([str(good)], "one of the arguments --solutions --split is required"),
        ([str(good), "--solutions", str(tmp_path / "good"), "--split", "arc-agi-1/evaluation"], "not allowed"),
        ([str(good), "--split", "arc-agi-9/evaluation"], "not a split name"),
        ([str(good), "--split", "arc-agi-1/evaluation", "--track", "sudoku"], "--track sudoku takes --solutions"),
        ([str(good), "--solutions", str(tmp_path / "good"), "--track", "chess"], "invalid choice"),
        ([str(good), "--solutions", str(tmp_path / "good"), "--json", str(good / "x.json")], "cannot write"),
    ]
    for args, problem in cases:
        run = run_cli(*args, "--json", str(report)) if "--json" not in args else run_cli(*args)
        lines = run.stderr.strip().splitlines()
        assert run.returncode == 2, (args, run.stderr)
        assert "Traceback" not in run.stderr and len(lines) == 1 and lines[0].startswith("error: "), run.stderr
        assert problem in lines[0], (problem, lines[0])
        assert not report.exists()


# ---------------------------------------------------------------- solutions sources


def test_every_solutions_source_gives_the_same_report(shared_data, tmp_path):
    split = resolve("arc-agi-1/evaluation")
    submission = {t.id: [entry(p.output.tolist()) for p in t.test] for t in split[:50]}
    expected = score_submission(submission, split)
    kaggle = shared_data / "kaggle"
    alone = tmp_path / "truth.json"
    shutil.copy(kaggle / "arc-agi_evaluation_solutions.json", alone)
    sources = [
        (None, "arc-agi-1/evaluation"),
        (shared_data / "arc-agi-1/evaluation", None),
        (kaggle / "arc-agi_evaluation_challenges.json", None),
        (kaggle / "arc-agi_evaluation_solutions.json", None),
        (alone, None),
    ]
    for solutions, split_name in sources:
        tasks = load_truth(solutions, split_name)
        assert has_inputs(tasks[0]) == (solutions != alone)
        report = score_submission(submission, tasks)
        assert report["score"] == expected["score"] == pytest.approx(50 / 400), solutions
        assert report["tasks"] == expected["tasks"]


def test_render_with_outputs_only_solutions_is_refused_before_writing(shared_data, tmp_path):
    alone = tmp_path / "truth.json"
    shutil.copy(shared_data / "kaggle/arc-agi_evaluation2_solutions.json", alone)
    submission = tmp_path / "submission.json"
    submission.write_bytes(b"{}")
    run = run_cli(str(submission), "--solutions", str(alone), "--render", str(tmp_path / "pics"),
                  "--json", str(tmp_path / "r.json"))
    assert run.returncode == 2 and "--render needs the task inputs" in run.stderr
    assert not (tmp_path / "pics").exists() and not (tmp_path / "r.json").exists()


def test_track_is_delegated_to_the_tracks_scoring(tmp_path, monkeypatch, capsys):
    calls = []

    def score_file(predictions, solutions):
        calls.append((predictions, solutions))
        return {"exact": 0.5}

    monkeypatch.setattr(TRACKS["maze"], "score_file", score_file)
    monkeypatch.setattr(TRACKS["maze"], "format_report", lambda report: f"exact {report['exact']}")
    out = tmp_path / "track.json"
    assert score_cli.main(["p.csv", "--solutions", "s.csv", "--track", "maze", "--json", str(out)]) == 0
    assert calls == [(Path("p.csv"), Path("s.csv"))]
    assert capsys.readouterr().out.strip() == "exact 0.5"
    assert orjson.loads(out.read_bytes()) == {"exact": 0.5}
    with pytest.raises(SystemExit) as exit_info:
        score_cli.main(["p.csv", "--solutions", "s.csv", "--track", "sudoku", "--render", str(tmp_path)])
    assert exit_info.value.code == 2


# ---------------------------------------------------------------- end to end


def _wrong(grid: np.ndarray) -> list:
    changed = grid.copy()
    changed[0, 0] = (changed[0, 0] + 1) % 10
    return changed.tolist()


def test_cli_end_to_end_on_arc_agi_1_evaluation(tmp_path):
    tasks = resolve("arc-agi-1/evaluation")
    submission = {t.id: [entry(p.output.tolist(), [[0]]) for p in t.test] for t in tasks}
    singles = [t for t in tasks if len(t.test) == 1]
    double = next(t for t in tasks if len(t.test) == 2)
    wrong, missing, rescued = singles[0], singles[1], singles[2]
    submission[wrong.id] = [entry(_wrong(wrong.test[0].output), [[0]])]
    submission[double.id][1] = entry(_wrong(double.test[1].output), "not a grid")
    del submission[missing.id]
    submission[rescued.id] = [entry([[1, 2], [3]], rescued.test[0].output.tolist())]  # right despite a bad attempt_1
    submission["ffffffff"] = [entry([[1]])]
    path = tmp_path / "submission.json"
    path.write_bytes(orjson.dumps(submission))

    run = run_cli(str(path), "--split", "arc-agi-1/evaluation", "--json", "r.json", "--render", "pics", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    report = orjson.loads((tmp_path / "r.json").read_bytes())
    n_outputs = sum(len(t.test) for t in tasks)
    assert (report["n_tasks"], report["n_outputs"]) == (400, n_outputs)
    assert report["score"] == pytest.approx((397 + 0.5) / 400)
    assert report["output_score"] == pytest.approx((n_outputs - 3) / n_outputs)
    assert report["strict_score"] == pytest.approx(397 / 400)
    assert report["tasks"][double.id] == {"score": 0.5, "outputs": [True, False]}
    assert report["missing"] == [missing.id] and report["extra"] == ["ffffffff"]
    assert len(report["warnings"]) == 2
    assert f"score         {report['score']:.4f}" in run.stdout
    pictures = sorted(p.name for p in (tmp_path / "pics").iterdir())
    assert pictures == sorted(f"{t.id}.png" for t in (wrong, double, missing))
