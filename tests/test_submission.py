"""Two-attempt submissions: `pytest tests/test_submission.py -q`."""

from __future__ import annotations

import numpy as np
import pytest

from arc_trm.candidates import Candidate, CandidateTable
from arc_trm.grids import Pair, Task, grid_to_list
from arc_trm.io import read_json
from arc_trm.kaggle.submission import (
    attempts_from_rankings,
    fallback_guesses,
    fallback_submission,
    validate_submission,
    write_submission,
)
from arc_trm.scoring import score_submission
from arc_trm.splits import resolve
from arc_trm.vote import Ranked, pass_at_k, vote

INPUT = np.array([[1, 2, 0], [0, 0, 0]], dtype=np.uint8)
A = np.full((2, 2), 4, dtype=np.uint8)
B = np.full((3, 1), 5, dtype=np.uint8)
C = np.array([[6]], dtype=np.uint8)


def task(task_id: str = "t", tests: int = 1, demo_out: np.ndarray | None = None) -> Task:
    """A task whose demos keep their shape (or map to `demo_out`) and whose test inputs are INPUT."""
    demo_in = np.array([[0, 3], [3, 3]], dtype=np.uint8)
    demo = Pair(demo_in, demo_in if demo_out is None else demo_out)
    return Task(task_id, (demo, demo), tuple(Pair(INPUT, A) for _ in range(tests)))


def ranked(*grids: np.ndarray) -> list[Ranked]:
    return [Ranked(grid, float(len(grids) - i), len(grids) - i, 0.5) for i, grid in enumerate(grids)]


def test_zero_candidates_use_the_documented_fallback():
    tasks = [task("one"), task("two", tests=2)]
    submission = fallback_submission(tasks)
    assert validate_submission(submission, tasks) == []
    assert list(submission) == ["one", "two"] and len(submission["two"]) == 2
    entry = submission["one"][0]
    assert entry["attempt_1"] == INPUT.tolist()  # identity
    assert entry["attempt_2"] == [[3, 3, 3], [3, 3, 3]]  # input's shape, demo outputs' most frequent colour


def test_one_candidate_gets_a_distinct_fallback_second_attempt():
    tasks = [task()]
    submission = attempts_from_rankings({("t", 0): ranked(A)}, tasks)
    assert submission["t"][0] == {"attempt_1": A.tolist(), "attempt_2": INPUT.tolist()}
    # the candidate equals the first fallback guess: the second guess is used instead
    submission = attempts_from_rankings({("t", 0): ranked(INPUT)}, tasks)
    assert submission["t"][0] == {"attempt_1": INPUT.tolist(), "attempt_2": [[3, 3, 3], [3, 3, 3]]}


def test_many_candidates_take_the_top_two_in_order():
    tasks = [task(tests=2)]
    rankings = {("t", 0): ranked(A, B, C), ("t", 1): ranked(C, A)}
    submission = attempts_from_rankings(rankings, tasks)
    assert submission["t"] == [
        {"attempt_1": A.tolist(), "attempt_2": B.tolist()},
        {"attempt_1": C.tolist(), "attempt_2": A.tolist()},
    ]


def test_attempts_are_always_two_distinct_valid_grids():
    # every guess coincides: the last resort [[0]] / [[1]] still gives two distinct attempts
    uniform = Task("u", (Pair(np.zeros((1, 1), np.uint8), np.zeros((1, 1), np.uint8)),), (Pair(np.zeros((1, 1), np.uint8)),))
    assert fallback_submission([uniform])["u"][0] == {"attempt_1": [[0]], "attempt_2": [[1]]}
    # invalid ranked grids (a decoder bug) are skipped, never emitted
    bad = [np.full((2, 2), 12, np.uint8), np.zeros((31, 2), np.uint8), np.zeros((0, 0), np.uint8)]
    entry = attempts_from_rankings({("t", 0): ranked(*bad, B)}, [task()])["t"][0]
    assert entry == {"attempt_1": B.tolist(), "attempt_2": INPUT.tolist()}
    # a custom fallback that offers nothing still yields two attempts
    entry = attempts_from_rankings({}, [task()], fallback=lambda t, i: [])["t"][0]
    assert entry == {"attempt_1": [[0]], "attempt_2": [[1]]}


def test_fallback_shape_follows_the_demos():
    # demos map 2x2 -> 1x3 in colour 7: the blank guess is 1x3 of 7
    guesses = fallback_guesses(task(demo_out=np.array([[7, 7, 0]], np.uint8)), 0)
    assert [g.tolist() for g in guesses] == [INPUT.tolist(), [[7, 7, 7]]]


def test_identical_test_inputs_get_their_own_attempts():
    tasks = [task(tests=2)]  # both test inputs are INPUT
    table = CandidateTable.from_candidates(
        [Candidate("t", 0, 0, 16, 0.9, A), Candidate("t", 1, 0, 16, 0.9, B), Candidate("t", 1, 1, 16, 0.9, B)]
    )
    submission = attempts_from_rankings(vote(table), tasks)
    assert [entry["attempt_1"] for entry in submission["t"]] == [A.tolist(), B.tolist()]


@pytest.mark.parametrize(
    "mutate, problem",
    [
        (lambda s: s.pop("t"), "task t: missing"),
        (lambda s: s.update(extra=[]), "task extra: not in the challenges"),
        (lambda s: s.update(t={"attempt_1": [[0]]}), "expected a list of entries"),
        (lambda s: s["t"].pop(), "1 entries for 2 test inputs"),
        (lambda s: s["t"].__setitem__(0, [[0]]), "test 0: entry must be an object"),
        (lambda s: s["t"][0].pop("attempt_2"), "test 0: attempt_2 missing"),
        (lambda s: s["t"][1].update(attempt_1=[[1, 2], [3]]), "test 1: attempt_1: rows have different lengths"),
        (lambda s: s["t"][1].update(attempt_2=[[10]]), "test 1: attempt_2: value 10 is not an integer 0..9"),
        (lambda s: s["t"][1].update(attempt_2=[[np.int64(1)]]), "is not an integer 0..9"),
        (lambda s: s["t"][0].update(attempt_1=[]), "attempt_1: grid must be a non-empty list"),
        (lambda s: s["t"][0].update(attempt_1=[[0] * 31]), "larger than 30x30"),
    ],
)
def test_validate_catches_each_problem(mutate, problem):
    tasks = [task(tests=2)]
    submission = fallback_submission(tasks)
    mutate(submission)
    problems = validate_submission(submission, tasks)
    assert len(problems) == 1 and problem in problems[0], problems


def test_validate_rejects_a_non_object():
    assert validate_submission([], [task()]) == ["submission must be an object mapping task id -> list of test-input entries"]


def test_write_validates_and_round_trips(tmp_path):
    tasks = [task("one"), task("two", tests=3)]
    submission = attempts_from_rankings({("two", 1): ranked(A, B)}, tasks)
    path = write_submission(submission, tmp_path / "out" / "submission.json", tasks)
    assert read_json(path) == submission
    broken = {"one": submission["one"]}
    with pytest.raises(ValueError, match="task two: missing"):
        write_submission(broken, tmp_path / "bad.json", tasks)
    assert not (tmp_path / "bad.json").exists()


def test_true_outputs_score_perfectly_on_a_real_split(tmp_path):
    tasks = resolve("arc-agi-1/evaluation")
    assert len(tasks) == 400
    # One true vote per test input from the last step, plus a decoy that wins only at step 1.
    candidates = []
    for t in tasks:
        for i, pair in enumerate(t.test):
            candidates.append(Candidate(t.id, i, 0, 1, 0.9, np.zeros((1, 1), np.uint8)))
            candidates.append(Candidate(t.id, i, 0, 2, 0.9, pair.output))
    rankings = vote(CandidateTable.from_candidates(candidates), "reference")
    assert pass_at_k(rankings, tasks, ks=(1,)) == {1: 1.0}
    submission = attempts_from_rankings(rankings, tasks)
    path = write_submission(submission, tmp_path / "submission.json", tasks)
    assert all(
        entry["attempt_1"] == grid_to_list(pair.output)
        for t in tasks
        for entry, pair in zip(submission[t.id], t.test, strict=True)
    )
    report = score_submission(read_json(path), tasks)
    assert report["score"] == 1.0 and report["output_score"] == 1.0 and report["strict_score"] == 1.0
