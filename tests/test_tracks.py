"""Sudoku/Maze track scoring: the metrics on hand-made cases and the predictions file format; the table of
tracks: every track's data, sources and scoring on tiny files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import orjson
import pytest
import yaml

from arc_trm.config import PRESETS_DIR, DataConfig
from arc_trm.data.sudoku import solve
from arc_trm.errors import ConfigError, DataError
from arc_trm.grids import write_kaggle_pair
from arc_trm.tracks import TRACKS, check_data, track
from arc_trm.tracks.maze import MAZE
from arc_trm.tracks.sudoku import SUDOKU
from evaluation import score as score_cli

QUESTION = "98.7..6..5...9......7..6...4..6.3.8...8.7.5.........42.1...7.3...9.6.8.....2....1"
ANSWER = "984721653563894127127356498452613789398472516671589342816947235239165874745238961"
# 3x3 open maze, S top-left, G bottom-right: 6 shortest paths of 5 cells; the answer marks the canonical one.
MAZE_Q = "S       G"
MAZE_A = "S  o  ooG"  # down, down, right, right


def _swap_digits(grid: str, a: str, b: str) -> str:
    return grid.translate(str.maketrans({a: b, b: a}))


# -------------------------------------------------------------------------------- metrics


def test_sudoku_exact_and_cell_accuracy():
    assert SUDOKU.metrics(QUESTION, ANSWER, ANSWER) == {"exact": 1.0, "cell_accuracy": 1.0, "valid_solution": 1.0}
    wrong = "." + ANSWER[1:]
    assert SUDOKU.metrics(QUESTION, ANSWER, wrong) == {"exact": 0.0, "cell_accuracy": 80 / 81, "valid_solution": 0.0}


def test_a_different_valid_sudoku_solution_is_valid_not_exact():
    looser = QUESTION.replace("9", ".").replace("8", ".")  # without its 9s and 8s the puzzle has other solutions
    first, second = solve(looser, limit=2)
    metrics = SUDOKU.metrics(looser, first, second)
    assert metrics["valid_solution"] == 1.0 and metrics["exact"] == 0.0 and metrics["cell_accuracy"] < 1.0


def test_a_valid_grid_that_breaks_a_given_or_the_rules_is_invalid():
    relabelled = _swap_digits(ANSWER, "1", "2")  # a valid Sudoku, but given 1s and 2s changed
    assert SUDOKU.metrics(QUESTION, ANSWER, relabelled)["valid_solution"] == 0.0
    swapped = ANSWER[1] + ANSWER[0] + ANSWER[2:]  # a column now repeats a digit
    assert SUDOKU.metrics("." * 81, ANSWER, swapped)["valid_solution"] == 0.0


def test_maze_exact_and_alternative_shortest_path():
    assert MAZE.metrics(MAZE_Q, MAZE_A, MAZE_A) == {"exact": 1.0, "cell_accuracy": 1.0, "valid_optimal_path": 1.0}
    other = "Soo  o  G"  # right, right, down, down: as short, not the canonical tie-break
    assert MAZE.metrics(MAZE_Q, MAZE_A, other) == {"exact": 0.0, "cell_accuracy": 3 / 9, "valid_optimal_path": 1.0}
    assert MAZE.metrics(MAZE_Q, MAZE_A, "So  oo  G")["valid_optimal_path"] == 1.0  # a zigzag is as short


@pytest.mark.parametrize(
    "question, prediction, why",
    [
        ("S       G", "Soooo ooG", "a detour: 7 cells where 5 do"),
        ("S       G", "So   o  G", "not connected"),
        ("S       G", "S  o  o G", "one cell short of G"),
        ("S       G", "S  oooooG", "extra cells beside a shortest path"),
        ("S  #    G", "S  o  ooG", "through a wall"),
        ("S       G", "S       G", "no path at all"),
    ],
)
def test_invalid_maze_paths(question, prediction, why):
    assert MAZE.metrics(question, MAZE_A, prediction)["valid_optimal_path"] == 0.0, why


# --------------------------------------------------------------------------------- files


@pytest.fixture()
def sudoku_solutions(tmp_path):
    path = tmp_path / "test.csv"
    rows = [("a", QUESTION, ANSWER), ("b", QUESTION, ANSWER), ("c", "." * 81, ANSWER)]
    path.write_text("source,question,answer,rating\n" + "".join(f"{s},{q},{a},1\n" for s, q, a in rows))
    return path


def _predictions(tmp_path, text: str):
    path = tmp_path / "predictions.csv"
    path.write_text(text)
    return path


def test_score_file_counts_missing_rows_as_wrong(tmp_path, sudoku_solutions):
    other = _swap_digits(ANSWER, "1", "2")  # valid for the blank puzzle, not the answer
    preds = _predictions(tmp_path, f"index,prediction\n2,{other}\n0,{ANSWER}\n")
    report = SUDOKU.score_file(preds, sudoku_solutions)
    cells = (81 + sum(a == b for a, b in zip(ANSWER, other))) / 81
    assert report == {
        "track": "sudoku", "n": 3, "predicted": 2, "missing": 1,
        "exact_accuracy": 1 / 3, "cell_accuracy": pytest.approx(cells / 3), "valid_solution": 2 / 3,
    }
    assert SUDOKU.score_file(preds, sudoku_solutions.parent) == report  # a folder holding test.csv
    text = SUDOKU.format_report(report)
    assert "exact_accuracy      0.3333  (1/3 whole grids)" in text and "1 missing" in text and "valid_solution" in text


def test_score_file_maze(tmp_path):
    solutions = tmp_path / "test.csv"
    solutions.write_text(f"source,question,answer,rating\ns,{MAZE_Q},{MAZE_A},5\ns,{MAZE_Q},{MAZE_A},5\n")
    preds = _predictions(tmp_path, "index,prediction\n0,Soo  o  G\n1,S  o  ooG\n")
    report = MAZE.score_file(preds, solutions)
    assert (report["exact_accuracy"], report["valid_optimal_path"], report["missing"]) == (0.5, 1.0, 0)
    assert "valid_optimal_path  1.0000  (2/2)" in MAZE.format_report(report)


@pytest.mark.parametrize(
    "text, message",
    [
        ("idx,prediction\n", r"predictions.csv:1: header must be index,prediction"),
        (f"index,prediction\n0,{ANSWER}\n0,{ANSWER}\n", r"predictions.csv:3: index 0 predicted twice"),
        (f"index,prediction\n3,{ANSWER}\n", r"predictions.csv:2: index 3 is not a row of the solutions \(0..2\)"),
        (f"index,prediction\nx,{ANSWER}\n", r"predictions.csv:2: index 'x' is not an integer"),
        (f"index,prediction\n0,{ANSWER[:-1]}\n", r"predictions.csv:2: prediction has 80 characters, expected 81"),
        (f"index,prediction\n0,{ANSWER[:-1]}x\n", r"predictions.csv:2: prediction has character 'x'"),
        (f"index,prediction\n0,{ANSWER},9\n", r"predictions.csv:2: expected 2 fields"),
    ],
)
def test_bad_predictions_file(tmp_path, sudoku_solutions, text, message):
    with pytest.raises(DataError, match=message):
        SUDOKU.score_file(_predictions(tmp_path, text), sudoku_solutions)


def test_score_cli_delegates_and_fails_in_one_line(tmp_path, sudoku_solutions, capsys):
    preds = _predictions(tmp_path, f"index,prediction\n0,{ANSWER}\n1,{ANSWER}\n2,{ANSWER}\n")
    assert score_cli.main([str(preds), "--solutions", str(sudoku_solutions), "--track", "sudoku"]) == 0
    assert "exact_accuracy      1.0000  (3/3 whole grids)" in capsys.readouterr().out
    bad = _predictions(tmp_path, "index\n")
    with pytest.raises(SystemExit) as exit_info:
        score_cli.main([str(bad), "--solutions", str(sudoku_solutions), "--track", "sudoku"])
    err = capsys.readouterr().err.strip()
    assert exit_info.value.code == 2 and err.startswith("error: ") and "\n" not in err


def test_a_json_submission_scored_as_a_track_is_one_short_line(tmp_path, sudoku_solutions, capsys):
    # a Kaggle submission.json is one long line: the error quotes it cut to a readable length
    submission = tmp_path / "submission.json"
    submission.write_text('{"' + "0" * 200_000 + '": []}')
    with pytest.raises(SystemExit) as exit_info:
        score_cli.main([str(submission), "--solutions", str(sudoku_solutions), "--track", "sudoku"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.startswith("error: ") and err.count("\n") == 1 and len(err) <= 602


def test_a_folder_given_as_json_report_is_named(tmp_path, sudoku_solutions, capsys):
    preds = _predictions(tmp_path, f"index,prediction\n0,{ANSWER}\n")
    (tmp_path / "report").mkdir()
    with pytest.raises(SystemExit) as exit_info:
        score_cli.main([str(preds), "--solutions", str(sudoku_solutions), "--track", "sudoku", "--json", str(tmp_path / "report")])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err == f"error: {tmp_path / 'report'}: is a folder, expected a file path\n"


# ------------------------------------------------------------------------------- the table


def test_every_name_in_the_table_resolves_and_others_are_one_clear_error():
    for name, entry in TRACKS.items():
        assert track(name) is entry and entry.name == name
    with pytest.raises(ConfigError, match="unknown track 'chess': must be arc, sudoku or maze"):
        track("chess")


def test_every_preset_trains_a_track_of_the_table():
    for preset in sorted(PRESETS_DIR.glob("*.yaml")):
        named = (yaml.safe_load(preset.read_text()).get("data") or {}).get("track", DataConfig.track)
        assert named in TRACKS, f"{preset.name}: data.track {named} is not in the track table"


@pytest.mark.parametrize("data, message", [
    (DataConfig(track="chess"), "data.track must be arc, sudoku or maze"),
    (DataConfig(track="sudoku", path=""), "data.path must name a folder with train.csv/test.csv for track sudoku"),
    (DataConfig(track="maze", path=""), "data.path must name a folder with train.csv/test.csv for track maze"),
    (DataConfig(track="arc", tasks=" "), "data.tasks must be arc1, arc2 or a path"),
    (DataConfig(track="arc", path="built", hold_out_training_tests=True), "works with data.tasks, not with a built data.path folder"),
])
def test_the_data_section_is_checked_by_its_track(data, message):
    with pytest.raises(ConfigError, match=message):
        check_data(data)


def arc_case(folder: Path, arc1_tasks) -> tuple[DataConfig, Path, Path]:
    """Three ARC-AGI-1 tasks that fit a 10x10 canvas as a Kaggle pair (test outputs held out), and a
    submission.json of their true outputs."""
    training, evaluation = arc1_tasks
    tasks = [t for t in training if t.fits(10)][:2] + [t for t in evaluation if t.fits(10)][:1]
    challenges, _ = write_kaggle_pair(tasks, folder, "tiny")
    answers = {t.id: [{"attempt_1": p.output.tolist(), "attempt_2": p.output.tolist()} for p in t.test] for t in tasks}
    (folder / "submission.json").write_bytes(orjson.dumps(answers))
    return DataConfig(track="arc", tasks=str(challenges), canvas=10, num_aug=2), folder / "submission.json", challenges


def puzzle_case(folder: Path, name: str, question: str, answer: str) -> tuple[DataConfig, Path, Path]:
    """A train.csv and a test.csv of two puzzles each, and the answers as a predictions file."""
    rows = "source,question,answer,rating\n" + f"s,{question},{answer},1\n" * 2
    (folder / "train.csv").write_text(rows)
    (folder / "test.csv").write_text(rows)
    (folder / "predictions.csv").write_text(f"index,prediction\n0,{answer}\n1,{answer}\n")
    return DataConfig(track=name, path=str(folder), num_aug=1), folder / "predictions.csv", folder / "test.csv"


CASES = {
    "arc": lambda folder, arc1_tasks: arc_case(folder, arc1_tasks),
    "sudoku": lambda folder, arc1_tasks: puzzle_case(folder, "sudoku", QUESTION, ANSWER),
    "maze": lambda folder, arc1_tasks: puzzle_case(folder, "maze", MAZE_Q, MAZE_A),
}
"""Per track, tiny data: (the `data` section naming it, perfect predictions, their solutions)."""


def test_every_track_has_a_case_below():
    assert set(CASES) == set(TRACKS)


@pytest.mark.parametrize("name", list(CASES))
def test_each_track_trains_evaluates_and_scores_through_the_table(name, tmp_path, arc1_tasks, capsys):
    data, predictions, solutions = CASES[name](tmp_path, arc1_tasks)
    entry = track(name)
    check_data(data)
    source = entry.training_source(data, seed=0)
    assert len(source) > 0 and source.vocab_size == entry.vocab_size
    examples = source.sample(0, np.random.default_rng(0))
    assert examples.inputs.shape[1] == source.seq_len and examples.inputs.max() < entry.vocab_size
    test = entry.test_source(data, source.seq_len)
    assert test is None if name == "arc" else len(test) == 2  # ARC's held-out test inputs are in `source`
    info = entry.model_info(source, data)
    assert info.track == name and info.seq_len == source.seq_len and info.num_puzzle_ids == source.num_puzzle_ids
    report = tmp_path / "report.json"
    text = entry.score_files(predictions, solutions, None, json=report)
    exact = "score" if name == "arc" else "exact_accuracy"
    assert orjson.loads(report.read_bytes())[exact] == 1.0, text
    assert score_cli.main([str(predictions), "--solutions", str(solutions), "--track", name]) == 0
    assert capsys.readouterr().out.strip() == text
