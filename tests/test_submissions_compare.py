"""benchmarks/submissions_compare.py: two sets of submissions (one per seed) scored on the same real
ARC tasks and paired per task, as the ladder pairs two arms."""

from __future__ import annotations

import sys
from pathlib import Path

import orjson
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import submissions_compare  # noqa: E402

WRONG = [[9]]


def write(path: Path, value: object) -> Path:
    path.write_bytes(orjson.dumps(value))
    return path


def submission(tasks, solved: set[str]) -> dict:
    """Every test output of the `solved` tasks right (as attempt 2), every other one wrong."""
    return {t.id: [{"attempt_1": WRONG, "attempt_2": pair.output.tolist() if t.id in solved else WRONG} for pair in t.test]
            for t in tasks}


@pytest.fixture
def four_tasks(arc1_tasks, tmp_path):
    tasks = [t for t in arc1_tasks[1] if len(t.test) == 1][:4]
    solutions = write(tmp_path / "solutions.json", {t.id: [pair.output.tolist() for pair in t.test] for t in tasks})
    return tasks, solutions


def test_each_task_scored_per_seed_then_paired(four_tasks, tmp_path, capsys):
    tasks, solutions = four_tasks
    first, second, third, fourth = (t.id for t in tasks)
    a = [write(tmp_path / f"a{seed}.json", submission(tasks, {first})) for seed in (0, 1)]
    # B solves what A solves, plus the second task with both seeds and the third with one; a task
    # outside the solutions is ignored
    b_solved = ({first, second, third}, {first, second})
    b = [write(tmp_path / f"b{seed}.json", {**submission(tasks, solved), "00000000": [{"attempt_1": WRONG, "attempt_2": WRONG}]})
         for seed, solved in enumerate(b_solved)]
    results = tmp_path / "RESULTS.md"
    argv = ["--solutions", str(solutions), "--a", *map(str, a), "--b", *map(str, b), "--a-name", "rung", "--b-name", "flow",
            "--results", str(results)]
    assert submissions_compare.main(argv) == 0
    text = results.read_text()
    assert "- seeds: 2" in text and "- A: rung;" in text and "- B: flow;" in text
    # per task, averaged over seeds: A 1, 0, 0, 0; B 1, 1, 0.5, 0
    assert "| `solutions.json` | 4 | 25.0% | 62.5% | +37.5 points (" in text and "| 2 / 0 |" in text
    assert f"A {first} (1.00); B {first} (1.00), {second} (1.00), {third} (0.50)." in text
    assert fourth not in text.split("Tasks scored")[1]
    assert "+37.5 points" in capsys.readouterr().out  # printed as well as appended


def test_unequal_seed_counts_are_one_line_and_exit_2(four_tasks, tmp_path, capsys):
    tasks, solutions = four_tasks
    a = write(tmp_path / "a.json", submission(tasks, set()))
    results = tmp_path / "RESULTS.md"
    with pytest.raises(SystemExit) as exit_info:
        submissions_compare.main(["--solutions", str(solutions), "--a", str(a), "--b", str(a), str(a), "--results", str(results)])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip() == "error: --a has 1 submission(s) and --b 2: give one per seed on each side"
    assert not results.exists()


def test_a_broken_submission_names_its_file(four_tasks, tmp_path, capsys):
    tasks, solutions = four_tasks
    good = write(tmp_path / "good.json", submission(tasks, set()))
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    with pytest.raises(SystemExit) as exit_info:
        submissions_compare.main(["--solutions", str(solutions), "--a", str(good), "--b", str(broken), "--no-record"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "broken.json" in err


def test_results_on_an_input_is_refused_and_the_input_kept(four_tasks, tmp_path, capsys):
    tasks, solutions = four_tasks
    a = write(tmp_path / "a.json", submission(tasks, set()))
    before = solutions.read_bytes()
    link = tmp_path / "link.md"
    link.symlink_to(solutions)  # another spelling of the same file
    with pytest.raises(SystemExit) as exit_info:
        submissions_compare.main(["--solutions", str(solutions), "--a", str(a), "--b", str(a), "--results", str(link)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--results" in err and "the solutions" in err
    assert solutions.read_bytes() == before
