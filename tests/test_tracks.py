"""Sudoku/Maze track scoring: the metrics on hand-made cases and the predictions file format."""

from __future__ import annotations

import pytest

from arc_trm.data.sudoku import solve
from arc_trm.errors import DataError
from evaluation import score as score_cli
from evaluation.tracks import format_track_report, maze_metrics, score_track_file, sudoku_metrics

QUESTION = "98.7..6..5...9......7..6...4..6.3.8...8.7.5.........42.1...7.3...9.6.8.....2....1"
ANSWER = "984721653563894127127356498452613789398472516671589342816947235239165874745238961"
# 3x3 open maze, S top-left, G bottom-right: 6 shortest paths of 5 cells; the answer marks the canonical one.
MAZE_Q = "S       G"
MAZE_A = "S  o  ooG"  # down, down, right, right


def _swap_digits(grid: str, a: str, b: str) -> str:
    return grid.translate(str.maketrans({a: b, b: a}))


# -------------------------------------------------------------------------------- metrics


def test_sudoku_exact_and_cell_accuracy():
    assert sudoku_metrics(QUESTION, ANSWER, ANSWER) == {"exact": 1.0, "cell_accuracy": 1.0, "valid_solution": 1.0}
    wrong = "." + ANSWER[1:]
    assert sudoku_metrics(QUESTION, ANSWER, wrong) == {"exact": 0.0, "cell_accuracy": 80 / 81, "valid_solution": 0.0}


def test_a_different_valid_sudoku_solution_is_valid_not_exact():
    looser = QUESTION.replace("9", ".").replace("8", ".")  # without its 9s and 8s the puzzle has other solutions
    first, second = solve(looser, limit=2)
    metrics = sudoku_metrics(looser, first, second)
    assert metrics["valid_solution"] == 1.0 and metrics["exact"] == 0.0 and metrics["cell_accuracy"] < 1.0


def test_a_valid_grid_that_breaks_a_given_or_the_rules_is_invalid():
    relabelled = _swap_digits(ANSWER, "1", "2")  # a valid Sudoku, but given 1s and 2s changed
    assert sudoku_metrics(QUESTION, ANSWER, relabelled)["valid_solution"] == 0.0
    swapped = ANSWER[1] + ANSWER[0] + ANSWER[2:]  # a column now repeats a digit
    assert sudoku_metrics("." * 81, ANSWER, swapped)["valid_solution"] == 0.0


def test_maze_exact_and_alternative_shortest_path():
    assert maze_metrics(MAZE_Q, MAZE_A, MAZE_A) == {"exact": 1.0, "cell_accuracy": 1.0, "valid_optimal_path": 1.0}
    other = "Soo  o  G"  # right, right, down, down: as short, not the canonical tie-break
    assert maze_metrics(MAZE_Q, MAZE_A, other) == {"exact": 0.0, "cell_accuracy": 3 / 9, "valid_optimal_path": 1.0}
    assert maze_metrics(MAZE_Q, MAZE_A, "So  oo  G")["valid_optimal_path"] == 1.0  # a zigzag is as short


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
    assert maze_metrics(question, MAZE_A, prediction)["valid_optimal_path"] == 0.0, why


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
    report = score_track_file(preds, sudoku_solutions, "sudoku")
    cells = (81 + sum(a == b for a, b in zip(ANSWER, other))) / 81
    assert report == {
        "track": "sudoku", "n": 3, "predicted": 2, "missing": 1,
        "exact_accuracy": 1 / 3, "cell_accuracy": pytest.approx(cells / 3), "valid_solution": 2 / 3,
    }
    assert score_track_file(preds, sudoku_solutions.parent, "sudoku") == report  # a folder holding test.csv
    text = format_track_report(report)
    assert "exact_accuracy      0.3333  (1/3 whole grids)" in text and "1 missing" in text and "valid_solution" in text


def test_score_file_maze(tmp_path):
    solutions = tmp_path / "test.csv"
    solutions.write_text(f"source,question,answer,rating\ns,{MAZE_Q},{MAZE_A},5\ns,{MAZE_Q},{MAZE_A},5\n")
    preds = _predictions(tmp_path, "index,prediction\n0,Soo  o  G\n1,S  o  ooG\n")
    report = score_track_file(preds, solutions, "maze")
    assert (report["exact_accuracy"], report["valid_optimal_path"], report["missing"]) == (0.5, 1.0, 0)
    assert "valid_optimal_path  1.0000  (2/2)" in format_track_report(report)


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
        score_track_file(_predictions(tmp_path, text), sudoku_solutions, "sudoku")


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
