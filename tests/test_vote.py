"""Voting policies, pass@K and the candidates file: `pytest tests/test_vote.py -q`."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from arc_trm.candidates import (
    Candidate,
    CandidateTable,
    grid_from_key,
    grid_key,
    load_candidates,
    load_log_probs,
    save_candidates,
    save_log_probs,
)
from arc_trm.errors import ConfigError, DataError
from arc_trm.grids import Pair, Task
from arc_trm.io import atomic_write_json
from arc_trm.vote import (
    DEFAULT_POLICY,
    CandidateError,
    compare_policies,
    format_comparison,
    main,
    pass_at_k,
    poe_candidates,
    vote,
)

A = np.zeros((2, 2), dtype=np.uint8)
B = np.ones((2, 2), dtype=np.uint8)
C = np.full((1, 3), 2, dtype=np.uint8)
D = np.full((3, 1), 3, dtype=np.uint8)


def runs(task_id: str, test_index: int, per_aug: list[list[tuple]], checkpoint: str = "") -> list[Candidate]:
    """Candidates from per-augmentation lists of (grid, q_halt), one per step in order."""
    return [
        Candidate(task_id, test_index, k, step, q, grid, checkpoint)
        for k, steps in enumerate(per_aug)
        for step, (grid, q) in enumerate(steps, start=1)
    ]


def table_of(*groups: list[Candidate]) -> CandidateTable:
    return CandidateTable.from_candidates([c for group in groups for c in group])


def summary(ranked) -> list[tuple]:
    return [(r.grid.tolist(), r.votes, round(r.score, 6), round(r.mean_q, 6)) for r in ranked]


def same(a, b) -> bool:
    return a.shape == b.shape and np.array_equal(a, b)


# The three-augmentation example the policy tests compute by hand:
#   aug 0: A(.1) A(.6) B(.9)    aug 1: A(.2) B(.3) B(.4)    aug 2: C(.7) C(.8) A(.9)
EXAMPLE = runs("t", 0, [[(A, 0.1), (A, 0.6), (B, 0.9)], [(A, 0.2), (B, 0.3), (B, 0.4)], [(C, 0.7), (C, 0.8), (A, 0.9)]])


def test_grid_key_distinguishes_shapes_and_round_trips():
    flat = np.arange(4, dtype=np.uint8)
    keys = {grid_key(flat.reshape(shape)) for shape in [(1, 4), (2, 2), (4, 1)]}
    assert len(keys) == 3
    grid = np.arange(30 * 7, dtype=np.uint8).reshape(30, 7) % 10
    assert same(grid_from_key(grid_key(grid)), grid)
    assert grid_key(grid.astype(np.int64)) == grid_key(grid)  # dtype does not change identity


def test_majority_wins():
    table = table_of(runs("t", 0, [[(A, 0.1)], [(B, 0.9)], [(A, 0.2)]]))
    assert summary(vote(table, "reference")[("t", 0)]) == [([[0, 0], [0, 0]], 2, 2.0, 0.15), ([[1, 1], [1, 1]], 1, 1.0, 0.9)]


def test_tie_broken_by_mean_q_then_first_appearance():
    table = table_of(runs("t", 0, [[(A, 0.3)], [(B, 0.9)], [(C, 0.5)], [(D, 0.5)]]))
    ranked = vote(table, "reference")[("t", 0)]
    assert [r.grid.tolist() for r in ranked] == [B.tolist(), C.tolist(), D.tolist(), A.tolist()]


def test_reference_uses_only_the_last_step():
    # A wins every early step (3 of 3) but only one augmentation ends on it.
    table = table_of(runs("t", 0, [[(A, 0.9), (B, 0.1)], [(A, 0.9), (B, 0.1)], [(A, 0.9), (A, 0.1)]]))
    ranked = vote(table, "reference")[("t", 0)]
    assert summary(ranked) == [([[1, 1], [1, 1]], 2, 2.0, 0.1), ([[0, 0], [0, 0]], 1, 1.0, 0.1)]
    assert summary(vote(table_of(EXAMPLE), "reference")[("t", 0)]) == [([[1, 1], [1, 1]], 2, 2.0, 0.65), ([[0, 0], [0, 0]], 1, 1.0, 0.9)]


def test_last_step_is_the_highest_step_whatever_the_row_order():
    table = table_of(list(reversed(EXAMPLE)))
    assert [r.votes for r in vote(table, "reference")[("t", 0)]] == [2, 1]


def test_halt_weighted_by_hand():
    # A: .1+.6+.2+.9 = 1.8 (4 votes); B: .9+.3+.4 = 1.6 (3); C: .7+.8 = 1.5 (2)
    ranked = vote(table_of(EXAMPLE), "halt_weighted")[("t", 0)]
    assert summary(ranked) == [
        ([[0, 0], [0, 0]], 4, 1.8, 0.45),
        ([[1, 1], [1, 1]], 3, 1.6, round(1.6 / 3, 6)),
        ([[2, 2, 2]], 2, 1.5, 0.75),
    ]


def test_first_halt_by_hand():
    # aug 0 halts first at step 2 (A, .6); aug 1 never halts -> last step (B, .4); aug 2 at step 1 (C, .7)
    ranked = vote(table_of(EXAMPLE), "first_halt")[("t", 0)]
    assert summary(ranked) == [([[2, 2, 2]], 1, 1.0, 0.7), ([[0, 0], [0, 0]], 1, 1.0, 0.6), ([[1, 1], [1, 1]], 1, 1.0, 0.4)]
    # q exactly 0.5 is not a halt (logit 0)
    ranked = vote(table_of(runs("t", 0, [[(A, 0.5), (B, 0.2)]])), "first_halt")[("t", 0)]
    assert ranked[0].grid.tolist() == B.tolist()


def test_poe_ranks_by_summed_log_prob_against_majority():
    table = table_of(runs("t", 0, [[(A, 0.9)], [(A, 0.9)], [(A, 0.9)], [(B, 0.1)]]))
    log_probs = {("t", 0, grid_key(A)): [-5.0, -5.0], ("t", 0, grid_key(B)): [-1.0, -2.0]}
    ranked = vote(table, "poe", log_probs=log_probs)[("t", 0)]
    assert [(r.grid.tolist(), r.score, r.votes) for r in ranked] == [(B.tolist(), -3.0, 1), (A.tolist(), -10.0, 3)]


def test_poe_uses_the_mean_when_counts_differ_and_ranks_unscored_last():
    table = table_of(runs("t", 0, [[(A, 0.9)], [(A, 0.9)], [(B, 0.1)], [(C, 0.2)]]))
    # sums would put B first (-1.5 > -3); means put A first (-1 > -1.5)
    log_probs = {("t", 0, grid_key(A)): [-1.0, -1.0, -1.0], ("t", 0, grid_key(B)): [-1.5]}
    ranked = vote(table, "poe", log_probs=log_probs)[("t", 0)]
    assert [(r.grid.tolist(), r.score) for r in ranked] == [(A.tolist(), -1.0), (B.tolist(), -1.5), (C.tolist(), -math.inf)]
    assert len(vote(table, "poe", log_probs=log_probs, top_n=2)[("t", 0)]) == 2
    with pytest.raises(ValueError, match="log_probs"):
        vote(table, "poe")


def test_poe_candidates_lists_top_n_of_each_input():
    table = table_of(runs("t", 0, [[(A, 0.9)], [(A, 0.9)], [(B, 0.1)], [(C, 0.2)]]), runs("t", 1, [[(D, 0.5)]]))
    chosen = poe_candidates(vote(table), top_n=2)
    assert [(task, test, grid.tolist()) for task, test, grid in chosen] == [
        ("t", 0, A.tolist()),
        ("t", 0, C.tolist()),
        ("t", 1, D.tolist()),
    ]
    assert len(poe_candidates(vote(table, "reference"))) == 4


def test_none_grids_never_rank_and_do_not_fall_back_to_earlier_steps():
    table = table_of(
        runs("t", 0, [[(A, 0.9), (None, 0.9)], [(B, 0.9), (None, 0.9)], [(None, 0.1), (C, 0.1)]]),
        runs("t", 1, [[(None, 0.5)]]),
    )
    rankings = vote(table, "reference")
    assert summary(rankings[("t", 0)]) == [([[2, 2, 2]], 1, 1.0, 0.1)]
    assert rankings[("t", 1)] == []  # present, nothing decoded
    assert [r.grid.tolist() for r in vote(table, "halt_weighted")[("t", 0)]] == [A.tolist(), B.tolist(), C.tolist()]


def test_identical_test_inputs_are_kept_apart_by_index():
    table = table_of(runs("t", 0, [[(A, 0.5)], [(A, 0.5)]]), runs("t", 1, [[(B, 0.5)]]))
    rankings = vote(table)
    assert [r.grid.tolist() for r in rankings[("t", 0)]] == [A.tolist()]
    assert [r.grid.tolist() for r in rankings[("t", 1)]] == [B.tolist()]


def test_multiple_checkpoints_raise_unless_pooled():
    table = table_of(runs("t", 0, [[(A, 0.5)], [(B, 0.5)]], "ckpt1"), runs("t", 0, [[(A, 0.5)], [(C, 0.9)]], "ckpt2"))
    with pytest.raises(ValueError, match="2 checkpoints"):
        vote(table)
    pooled = vote(table, "reference", pool_checkpoints=True)[("t", 0)]  # each checkpoint's augmentation 0 votes
    assert summary(pooled)[0] == ([[0, 0], [0, 0]], 2, 2.0, 0.5)
    assert sum(r.votes for r in pooled) == 4


def test_duplicate_rows_raise():
    table = CandidateTable.concat([table_of(EXAMPLE), table_of(EXAMPLE)])
    with pytest.raises(CandidateError, match="duplicate candidate"):
        vote(table)


def test_unknown_policy_and_empty_table():
    with pytest.raises(ConfigError, match="unknown voting policy"):
        vote(table_of(EXAMPLE), "nope")
    assert vote(CandidateTable.empty()) == {}


def make_task(task_id: str, outputs: list[np.ndarray]) -> Task:
    demo = Pair(np.zeros((2, 2), np.uint8), np.zeros((2, 2), np.uint8))
    return Task(task_id, (demo,), tuple(Pair(np.zeros((2, 2), np.uint8), out) for out in outputs))


def test_pass_at_k_by_hand():
    tasks = [make_task("one", [A, B]), make_task("two", [C])]
    rankings = {
        ("one", 0): vote(table_of(runs("one", 0, [[(A, 0.9)]])))[("one", 0)],
        ("one", 1): vote(table_of(runs("one", 1, [[(A, 0.9)], [(A, 0.9)], [(C, 0.8)], [(C, 0.7)], [(B, 0.1)]])))[("one", 1)],
        # task "two" has no rankings at all: it counts as 0
    }
    # task one: input 0 at rank 0, input 1 at rank 2; task two: nothing
    assert pass_at_k(rankings, tasks, ks=(1, 2, 3, 1000)) == {1: 0.25, 2: 0.25, 3: 0.5, 1000: 0.5}
    with pytest.raises(DataError, match="no test outputs"):
        pass_at_k(rankings, [Task("x", tasks[0].train, (Pair(A),))])


def test_compare_policies_and_format():
    tasks = [make_task("t", [B])]
    rows = compare_policies(table_of(EXAMPLE), tasks, ks=(1, 2))
    assert rows == [
        {"policy": "reference", "pass@1": 1.0, "pass@2": 1.0},
        {"policy": "halt_weighted", "pass@1": 0.0, "pass@2": 1.0},
        {"policy": "first_halt", "pass@1": 0.0, "pass@2": 0.0},
    ]
    text = format_comparison(rows)
    assert text.splitlines()[0].split() == ["policy", "pass@1", "pass@2"]
    assert "100.00%" in text.splitlines()[1]
    with pytest.raises(DataError, match="not in the split"):
        compare_policies(table_of(EXAMPLE), [make_task("other", [B])])
    with pytest.raises(ConfigError, match="log-prob"):
        compare_policies(table_of(EXAMPLE), tasks, policies=["poe"])


def test_parquet_round_trip_preserves_every_column(tmp_path):
    rng = np.random.default_rng(0)
    grids = [
        np.array([[7]], np.uint8),
        rng.integers(0, 10, (30, 30), dtype=np.uint8),
        rng.integers(0, 10, (3, 7), dtype=np.uint8),
        rng.integers(0, 10, (7, 3), dtype=np.uint8),
        None,
    ]
    candidates = [
        Candidate(f"task{i % 3}", i % 2, 1000 + i, 1 + i % 16, float(rng.random()), grids[i % len(grids)], f"ck{i % 2}")
        for i in range(40)
    ]
    path = save_candidates(CandidateTable.from_candidates(candidates), tmp_path / "sub" / "candidates.parquet")
    loaded = list(load_candidates(path).to_candidates())
    assert len(loaded) == len(candidates)
    for got, want in zip(loaded, candidates):
        assert (got.task_id, got.test_index, got.augmentation, got.step, got.q_halt, got.checkpoint) == (
            want.task_id, want.test_index, want.augmentation, want.step, want.q_halt, want.checkpoint
        )
        assert (got.grid is None) == (want.grid is None)
        if want.grid is not None:
            assert got.grid.dtype == np.uint8 and same(got.grid, want.grid)
    assert [p.name for p in path.parent.iterdir()] == ["candidates.parquet"]  # no temp file left


def test_concat_merges_dictionaries_and_round_trips(tmp_path):
    first, second = table_of(runs("a", 0, [[(A, 0.1)], [(None, 0.2)]], "x")), table_of(runs("b", 0, [[(B, 0.3)], [(A, 0.4)]], "y"))
    both = CandidateTable.concat([first, CandidateTable.empty(), second])
    assert [(c.task_id, c.checkpoint, None if c.grid is None else c.grid.tolist()) for c in both.to_candidates()] == [
        ("a", "x", A.tolist()), ("a", "x", None), ("b", "y", B.tolist()), ("b", "y", A.tolist())
    ]
    assert len(both.grids) == 2  # A stored once
    empty = load_candidates(save_candidates(CandidateTable.empty(), tmp_path / "empty.parquet"))
    assert len(empty) == 0


def test_log_probs_round_trip(tmp_path):
    log_probs = {("t", 0, grid_key(A)): [-1.0, -2.5], ("t", 1, grid_key(C)): [-0.25]}
    loaded = load_log_probs(save_log_probs(log_probs, tmp_path / "lp.parquet"))
    assert {key: value.tolist() for key, value in loaded.items()} == log_probs


def test_load_rejects_bad_files(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        load_candidates(tmp_path / "missing.parquet")
    (tmp_path / "junk.parquet").write_text("not parquet")
    with pytest.raises(DataError, match="not a readable Parquet"):
        load_candidates(tmp_path / "junk.parquet")
    save_log_probs({}, tmp_path / "lp.parquet")
    with pytest.raises(DataError, match="expected an arc_trm candidates"):
        load_candidates(tmp_path / "lp.parquet")


def write_split(tmp_path, truth: np.ndarray):
    task = {"train": [{"input": [[0]], "output": [[0]]}], "test": [{"input": [[0]], "output": truth.tolist()}]}
    folder = tmp_path / "split"
    atomic_write_json(folder / "t.json", task)
    return folder


def test_cli_prints_the_comparison(tmp_path, capsys):
    save_candidates(table_of(EXAMPLE), tmp_path / "c.parquet")
    save_log_probs({("t", 0, grid_key(A)): [-0.1]}, tmp_path / "lp.parquet")
    main([str(tmp_path / "c.parquet"), "--split", str(write_split(tmp_path, A)), "--log-probs", str(tmp_path / "lp.parquet")])
    out = capsys.readouterr().out
    lines = {line.split()[0]: line.split()[1:] for line in out.splitlines()[2:]}
    assert lines["reference"][:2] == ["0.00%", "100.00%"]
    assert lines["poe"][0] == "100.00%"


def test_cli_names_each_policy_once(tmp_path, capsys):
    save_candidates(table_of(EXAMPLE), tmp_path / "c.parquet")
    main([str(tmp_path / "c.parquet"), "--split", str(write_split(tmp_path, A)), "--policies", "reference, halt_weighted,reference"])
    rows = [line.split()[0] for line in capsys.readouterr().out.splitlines()[2:] if line.strip()]
    assert rows == ["reference", "halt_weighted"]


def test_cli_renders_each_test_input_with_its_candidates(tmp_path, capsys):
    import matplotlib.image

    save_candidates(table_of(EXAMPLE), tmp_path / "c.parquet")
    main([str(tmp_path / "c.parquet"), "--split", str(write_split(tmp_path, A)), "--render", str(tmp_path / "pics")])
    assert [p.name for p in (tmp_path / "pics").iterdir()] == ["t_0.png"]
    image = matplotlib.image.imread(tmp_path / "pics" / "t_0.png")
    assert image.shape[0] > 50 and image.std() > 0.05
    assert "wrote 1 pictures" in capsys.readouterr().out


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--policies", "reference,bogus"], "unknown voting policy 'bogus'"),
        (["--policies", "poe"], "needs log-probabilities"),
        (["--mixed"], "2 checkpoints"),
        (["--missing"], "no such file"),
        (["--top", "-1"], "--top -1: must be an integer >= 1"),
        (["--undecodable"], "grid 0 of the file cannot be decoded"),
        (["--colour-10"], "grid 0 of the file holds the value 10"),
        (["--render", "UNDER_A_FILE"], "a_file is a file, not a folder"),
    ],
)
def test_cli_errors_are_one_line_exit_2(tmp_path, capsys, extra, message):
    table = table_of(EXAMPLE)
    if extra == ["--mixed"]:
        table, extra = table_of(runs("t", 0, [[(A, 0.5)]], "x"), runs("t", 0, [[(A, 0.5)]], "y")), []
    if extra in (["--undecodable"], ["--colour-10"]):
        key = b"\x02\x02\x00\x01\x02" if extra == ["--undecodable"] else b"\x01\x02\x00\x0a"
        table, extra = dataclasses.replace(table, grids=(key, *table.grids[1:])), []
    if "UNDER_A_FILE" in extra:
        (tmp_path / "a_file").write_text("")
        extra = ["--render", str(tmp_path / "a_file" / "pics")]
    path = save_candidates(table, tmp_path / "c.parquet")
    if extra == ["--missing"]:
        path, extra = tmp_path / "absent.parquet", []
    with pytest.raises(SystemExit) as exit_info:
        main([str(path), "--split", str(write_split(tmp_path, A)), *extra])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2
    assert err.count("\n") == 1 and message in err


def test_in_training_evaluation_scores_the_default_vote():
    """Training's held-out pass@k is what `arc_trm.predict` would submit (halt_weighted over every
    augmentation and step), not the reference vote: here they disagree."""
    from arc_trm.held_out import held_out_metrics

    right, wrong = np.array([[1, 2], [3, 4]], np.uint8), np.array([[5]], np.uint8)
    task = Task("t", (Pair(right, right),), (Pair(right, right),))
    # every augmentation: confident and right at step 1, unsure and wrong at the last step
    candidates = [Candidate("t", 0, k, step, q, grid) for k in range(3) for step, q, grid in ((1, 0.9, right), (2, 0.1, wrong))]
    assert pass_at_k(vote(CandidateTable.from_candidates(candidates), "reference"), [task], ks=(1, 2))[1] == 0.0
    metrics = held_out_metrics(candidates, [task], last_step=2)
    assert metrics == {"pass@1": 1.0, "pass@2": 1.0, "exact_accuracy": 0.0}


@pytest.mark.parametrize(
    "column, value, message",
    [
        ("q_halt", math.nan, "q_halt nan: it must be a probability from 0 to 1"),
        ("q_halt", math.inf, "q_halt inf: it must be a probability from 0 to 1"),
        ("q_halt", -0.5, "q_halt -0.5: it must be a probability from 0 to 1"),
        ("step", -1, "step -1: it must be >= 1"),
        ("step", 0, "step 0: it must be >= 1"),
        ("augmentation", -2, "augmentation -2: it must be >= 0"),
    ],
)
def test_a_candidates_file_with_values_voting_would_misread_is_refused(tmp_path, capsys, column, value, message):
    """A NaN, infinite or negative q_halt silently reordered the answers; a negative step was reported
    as a duplicate without the file's name."""
    from test_hostile_inputs import run_main, task_with_outputs

    from arc_trm.grids import write_kaggle_pair

    grid = np.ones((1, 1), dtype=np.uint8)
    rows = [Candidate("t", 0, k, step, 0.5, grid, "c") for k in range(2) for step in (1, 2)]
    rows[3] = dataclasses.replace(rows[3], **{column: value})
    path = save_candidates(CandidateTable.from_candidates(rows), tmp_path / "candidates.parquet")
    with pytest.raises(DataError, match=f"{path}: row 3 \\(counted from 0\\) has {message}"):
        load_candidates(path)
    challenges, solutions = write_kaggle_pair([task_with_outputs("t")], tmp_path, "x")
    err = run_main(main, [path, "--split", challenges, "--solutions", solutions], capsys)
    assert err.startswith(f"error: {path}: row 3")


def test_a_duplicate_in_a_candidates_file_names_the_file(tmp_path, capsys):
    from test_hostile_inputs import run_main, task_with_outputs

    from arc_trm.grids import write_kaggle_pair

    grid = np.ones((1, 1), dtype=np.uint8)
    path = save_candidates(CandidateTable.from_candidates([Candidate("t", 0, 0, 1, 0.5, grid, "c")] * 2), tmp_path / "c.parquet")
    challenges, solutions = write_kaggle_pair([task_with_outputs("t")], tmp_path, "x")
    err = run_main(main, [path, "--split", challenges, "--solutions", solutions], capsys)
    assert err.startswith(f"error: {path}: duplicate candidate: task t test 0 augmentation 0 step 1")


def test_vote_defaults_to_the_default_policy():
    """vote() without a policy is what predict and submissions.make submit."""
    table = table_of(EXAMPLE)
    assert summary(vote(table)[("t", 0)]) == summary(vote(table, DEFAULT_POLICY)[("t", 0)])
    assert DEFAULT_POLICY == "halt_weighted"
