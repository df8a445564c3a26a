"""Test-time compute: steps past halt_max_steps, noisy trajectories, q_select, early exit, cost.

A small float32 TRM with random weights (its halting head randomised so that q_halt depends on the
input) predicts a hand-made task on a 6x6 canvas; stubs with scripted halting logits test early exit.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from arc_trm.augment import Augmentation
from arc_trm.candidates import Candidate, CandidateTable, grid_key, load_candidates, save_candidates
from arc_trm.data.stream import Examples
from arc_trm.errors import ConfigError, DataError
from arc_trm.grids import parse_task
from arc_trm.inference import (
    ForwardPasses,
    LatentNoise,
    PuzzleIndex,
    TestTimeCompute,
    Version,
    forward_passes,
    predict_puzzles,
    predict_queries,
    queries,
    query_key,
    recursions_per_pass,
    run_steps,
    trajectory_seed,
)
from arc_trm.model.puzzle_embedding import PuzzleEmbedding
from arc_trm.model.trm import TRM, ModelConfig
from arc_trm.vote import CandidateError, compare_policies, vote

CPU = torch.device("cpu")
HALT_MAX_STEPS = 3
NOISY = TestTimeCompute(trajectories=3, noise=0.5, noise_seed=7)


def small_model() -> tuple[TRM, PuzzleEmbedding]:
    torch.manual_seed(0)
    config = ModelConfig(seq_len=36, hidden=32, heads=2, T=2, n=2, puzzle_emb_len=4, forward_dtype="float32",
                         halt_max_steps=HALT_MAX_STEPS)
    model = TRM(config).eval()
    with torch.no_grad():
        model.q_head.weight.normal_(0, 0.5)  # make q_halt depend on the input
    table = PuzzleEmbedding(5, 32)
    table.weights.normal_()
    return model, table


def hand_queries() -> list:
    """Two test inputs x three versions of one task, on a 6x6 canvas."""
    grids = [[[1, 0, 2], [3, 4, 5]], [[6, 7], [8, 9]]]
    task = parse_task("hand", {"train": [{"input": grids[0], "output": grids[0]}],
                               "test": [{"input": g} for g in grids]}, "test")
    versions = [Version(0, 1, Augmentation.identity()), Version(1, 2, Augmentation(1, (0, 3, 1, 2, 5, 4, 7, 6, 9, 8))),
                Version(2, 3, Augmentation(6, tuple(range(10))))]
    return list(queries([task], PuzzleIndex({"hand": versions}, canvas=6), None))


def key(c: Candidate) -> tuple:
    return (c.task_id, c.test_index, c.augmentation, c.trajectory, c.step, c.q_halt,
            None if c.grid is None else grid_key(c.grid))


def predict(items, steps=HALT_MAX_STEPS, batch_size=4, compute=TestTimeCompute(), spent=None, model_and_table=None):
    model, table = model_and_table or small_model()
    return predict_queries(model, table, items, batch_size, steps, CPU, compute=compute, spent=spent)[0]


# ------------------------------------------------------------------------------------- the options


@pytest.mark.parametrize("options, message", [
    ({"trajectories": 0}, "trajectories=0: must be an integer from 1 to 32767"),
    ({"trajectories": 40000, "noise": 0.1}, "trajectories=40000: must be an integer from 1 to 32767"),
    ({"trajectories": 2}, "trajectories=2 needs noise > 0"),
    ({"noise": 0.1}, "noise=0.1 needs trajectories >= 2"),
    ({"trajectories": 2, "noise": -1.0}, "noise=-1.0: must be a finite number >= 0"),
    ({"trajectories": 2, "noise": float("nan")}, "noise=nan: must be a finite number >= 0"),
    ({"trajectories": 2, "noise": 0.1, "noise_seed": 1.5}, "noise_seed=1.5: must be an integer"),
])
def test_the_options_are_checked(options, message):
    with pytest.raises(ConfigError, match=message):
        TestTimeCompute(**options)


def test_the_cost_in_forward_passes():
    assert forward_passes(6, 16) == 96
    assert forward_passes(6, 16, NOISY) == 6 * 3 * 16
    assert recursions_per_pass(ModelConfig(T=3, n=4)) == 15


# ------------------------------------------------------------------------------------- the model


def test_noise_is_added_to_z_after_every_latent_update():
    model, _ = small_model()
    x, y, z = (torch.randn(2, 40, 32) for _ in range(3))
    shift = torch.randn(2, 40, 32)
    calls = []

    def noise(latent: torch.Tensor) -> torch.Tensor:
        calls.append(latent.clone())
        return shift

    with torch.no_grad():
        expected_z = z
        for _ in range(model.config.n):
            expected_z = model.f(expected_z, y + x) + shift
        expected_y = model.f(y, expected_z)
        got_y, got_z = model.cycle(y, z, x, noise)
        assert torch.equal(got_z, expected_z) and torch.equal(got_y, expected_y)
        assert torch.equal(calls[0], model.f(z, y + x))  # it sees z after the update

        calls.clear()
        inputs, rows = torch.randint(0, 12, (2, 36)), torch.randn(2, 32)
        model(y, z, inputs, rows, noise=noise)
        assert len(calls) == model.config.T * model.config.n
        plain, no_noise = model(y, z, inputs, rows), model(y, z, inputs, rows, noise=None)
        assert torch.equal(plain.z, no_noise.z) and torch.equal(plain.q_halt, no_noise.q_halt)


def test_a_rows_noise_does_not_depend_on_its_batch():
    first, second = trajectory_seed(7, ("t", 0, 1), 1), trajectory_seed(7, ("t", 0, 1), 2)
    assert first != second and first == trajectory_seed(7, ("t", 0, 1), 1) != trajectory_seed(8, ("t", 0, 1), 1)
    z = torch.zeros(3, 5, 4)
    together = LatentNoise(0.5, [first, None, second], CPU)
    apart = LatentNoise(0.5, [second, first], CPU)
    for _ in range(3):  # three latent updates: each row's stream goes on where it was
        a, b = together(z), apart(z[:2])
        assert torch.equal(a[0], b[1]) and torch.equal(a[2], b[0])
        assert torch.equal(a[1], torch.zeros(5, 4)) and a[0].abs().sum() > 0
        assert 0.3 < float(a[0].std()) < 0.7  # scale 0.5


# ------------------------------------------------------------------------------------- trajectories


def test_noisy_trajectories_are_seeded_and_reproducible():
    items = hand_queries()
    first, again = predict(items, compute=NOISY), predict(items, compute=NOISY)
    assert [key(c) for c in first] == [key(c) for c in again]
    assert len(first) == len(items) * NOISY.trajectories * HALT_MAX_STEPS
    assert {c.trajectory for c in first} == {0, 1, 2}

    other_seed = predict(items, compute=TestTimeCompute(trajectories=3, noise=0.5, noise_seed=8))
    deterministic = predict(items)
    by_trajectory = {t: sorted(key(c) for c in first if c.trajectory == t) for t in range(3)}
    # trajectory 0 is the deterministic run; the noisy ones differ from it, from each other and with the seed
    assert by_trajectory[0] == sorted(key(c) for c in deterministic)
    q = {t: [k[5] for k in by_trajectory[t]] for t in range(3)}
    assert q[0] != q[1] != q[2] != q[0]
    assert sorted(key(c) for c in other_seed if c.trajectory == 1) != by_trajectory[1]


def same_up_to_rounding(a: list[tuple], b: list[tuple]) -> bool:
    """The same candidates, q_halt up to float rounding (matrix products round differently with the
    batch size: that much differs even without noise); noise drawn per batch would differ far more."""
    a, b = sorted(a), sorted(b)
    return ([k[:5] + k[6:] for k in a] == [k[:5] + k[6:] for k in b]
            and np.allclose([k[5] for k in a], [k[5] for k in b], rtol=1e-5, atol=1e-8))


def test_the_same_query_gets_the_same_candidates_in_any_batch():
    items = hand_queries()
    runs = [[key(c) for c in predict(items, steps=2, batch_size=size, compute=NOISY)] for size in (2, 18)]
    assert same_up_to_rounding(runs[0], runs[1])
    # and without the other queries: the second test input alone
    alone = predict([q for q in items if q.test_index == 1], steps=2, batch_size=4, compute=NOISY)
    assert same_up_to_rounding([key(c) for c in alone], [k for k in runs[0] if k[1] == 1])
    # the noisy trajectories differ from the deterministic one by much more than rounding
    assert not same_up_to_rounding([k for k in runs[0] if k[3] == 1], [k[:3] + (1,) + k[4:] for k in runs[0] if k[3] == 0])


def test_each_trajectory_is_one_more_expert_for_the_product_of_experts():
    model, table = small_model()
    items = hand_queries()
    _, log_probs = predict_queries(model, table, items, 6, 2, CPU, poe_top_n=2, compute=NOISY)
    assert log_probs and all(len(values) == 3 * NOISY.trajectories for values in log_probs.values())


# ------------------------------------------------------------------------------------- extra steps


@pytest.mark.parametrize("compute", [TestTimeCompute(), NOISY], ids=["deterministic", "noisy"])
def test_extra_steps_continue_the_recursion_exactly(compute):
    items = hand_queries()
    trained = predict(items, steps=HALT_MAX_STEPS, compute=compute)
    longer = predict(items, steps=HALT_MAX_STEPS + 4, compute=compute)
    assert {c.step for c in longer} == set(range(1, HALT_MAX_STEPS + 5))
    assert [key(c) for c in longer if c.step <= HALT_MAX_STEPS] == [key(c) for c in trained]
    assert len({key(c)[5] for c in longer if c.step > HALT_MAX_STEPS}) > 1  # the extra steps are computed


# ------------------------------------------------------------------------------------- early exit


class ScriptedHalting(torch.nn.Module):
    """Same interface as TRM for run_steps. y counts the steps; the halting logit of a row at step s is
    +1 when s is in its puzzle row's halting steps, else -1; the predicted token is the step number."""

    def __init__(self, halting_steps: list[set[int]]):
        super().__init__()
        self.halting_steps = halting_steps

    def initial_state(self, batch_size: int, device=None):
        return torch.zeros(batch_size, 1, 1), torch.zeros(batch_size, 1, 1)

    def forward(self, y, z, inputs, rows):
        y = y + 1
        step = int(y[0, 0, 0])
        q_halt = torch.tensor([1.0 if step in self.halting_steps[int(r[0])] else -1.0 for r in rows])
        logits = torch.nn.functional.one_hot(torch.full(inputs.shape, step), 12).float()
        return SimpleNamespace(y=y, z=z, logits=logits, q_halt=q_halt)


class Rows:
    """A puzzle table whose row i is [i]."""

    def rows(self, ids: torch.Tensor, requires_grad: bool = False) -> torch.Tensor:
        return ids.float().unsqueeze(-1)


def test_early_exit_stops_once_every_row_has_halted():
    # row 0 halts at step 2 only (a halted row stays halted), row 1 at step 4, row 2 never before step 9
    model = ScriptedHalting([{2}, {4, 5}, {9}])
    inputs, ids = torch.zeros(3, 4, dtype=torch.int32), torch.tensor([0, 1, 2])
    full = run_steps(model, Rows(), inputs, ids, 6)
    early = run_steps(model, Rows(), inputs, ids, 6, early_exit=True)
    assert len(full[0]) == len(early[0]) == 6  # row 2 has not halted by step 6
    two_rows = run_steps(model, Rows(), inputs[:2], ids[:2], 6, early_exit=True)
    assert len(two_rows[0]) == 4 and torch.equal(two_rows[0], full[0][:4, :2]) and torch.equal(two_rows[1], full[1][:4, :2])
    assert len(run_steps(model, Rows(), inputs[:1], ids[:1], 6, early_exit=True)[0]) == 2


def test_early_exit_keeps_the_candidates_of_the_steps_run_and_counts_them():
    items = hand_queries()
    model, table = small_model()
    steps, batch_size = 8, 2
    with torch.no_grad():  # halting logits around 0: some queries halt at once, others never
        model.q_head.bias.fill_(0.0)
    full_spent, early_spent = ForwardPasses(), ForwardPasses()
    full = predict(items, steps=steps, batch_size=batch_size, spent=full_spent, model_and_table=(model, table))
    early = predict(items, steps=steps, batch_size=batch_size, compute=TestTimeCompute(early_exit=True), spent=early_spent,
                    model_and_table=(model, table))
    position = {query_key(q): i for i, q in enumerate(items)}
    first_halt = [steps] * len(items)  # the step each query halts at first in the full run (steps: never)
    for c in reversed(full):
        if c.q_halt > 0.5:
            first_halt[position[(c.task_id, c.test_index, c.augmentation)]] = c.step
    exits = [max(first_halt[b : b + batch_size]) for b in range(0, len(items), batch_size)]
    assert min(exits) < steps and max(exits) == steps, exits  # some batch saves steps, another does not
    exit_of = {key: exits[i // batch_size] for key, i in position.items()}
    assert [key(c) for c in early] == [key(c) for c in full if c.step <= exit_of[(c.task_id, c.test_index, c.augmentation)]]
    assert full_spent.count == forward_passes(len(items), steps)
    assert early_spent.count == batch_size * sum(exits) < full_spent.count
    # every row has halted by the exit, so the first halting step of each is among the steps run
    first_halt_vote = [vote(CandidateTable.from_candidates(c), "first_halt") for c in (full, early)]
    assert {k: [(r.key, r.votes) for r in v] for k, v in first_halt_vote[0].items()} == {
        k: [(r.key, r.votes) for r in v] for k, v in first_halt_vote[1].items()}


def test_early_exit_with_a_model_that_halts_at_once_or_never():
    items = hand_queries()
    model, table = small_model()
    with torch.no_grad():
        model.q_head.weight.zero_()
        model.q_head.bias.fill_(5.0)
    spent = ForwardPasses()
    at_once = predict(items, steps=8, compute=TestTimeCompute(early_exit=True), spent=spent, model_and_table=(model, table))
    assert {c.step for c in at_once} == {1} and spent.count == len(items)
    with torch.no_grad():
        model.q_head.bias.fill_(-5.0)
    never = predict(items, steps=8, compute=TestTimeCompute(early_exit=True), model_and_table=(model, table))
    assert {c.step for c in never} == set(range(1, 9))


# ------------------------------------------------------------------------------------- Sudoku / Maze


class PuzzleSource:
    """`test_examples` as the Sudoku / Maze sources: (CSV row indices, Examples) in batches."""

    def __init__(self, inputs: np.ndarray, first_index: int = 10):
        self.inputs, self.first_index = inputs, first_index

    def test_examples(self, batch_size: int):
        for start in range(0, len(self.inputs), batch_size):
            chunk = self.inputs[start : start + batch_size]
            index = np.arange(start, start + len(chunk), dtype=np.int64) + self.first_index
            yield index, Examples(chunk, np.zeros(chunk.shape, np.int64), np.full(len(chunk), 1, np.int64))


def test_puzzles_take_the_trajectory_whose_last_step_halts_most_surely():
    model, table = small_model()
    inputs = np.random.default_rng(0).integers(0, 12, (4, 36)).astype(np.int32)
    source = PuzzleSource(inputs)
    spent = ForwardPasses()
    indices, predicted, _ = predict_puzzles(model, table, source, 3, 2, CPU)
    deterministic = run_steps(model, table, torch.from_numpy(inputs), torch.ones(4, dtype=torch.int64), 2)[0][-1]
    assert indices.tolist() == [10, 11, 12, 13] and np.array_equal(predicted, deterministic.numpy())

    _, chosen, _ = predict_puzzles(model, table, source, 3, 2, CPU, compute=NOISY, spent=spent)
    assert spent.count == forward_passes(4, 2, NOISY)
    selected = 0
    for i in range(4):  # each puzzle alone, trajectory by trajectory
        runs = [run_steps(model, table, torch.from_numpy(inputs[i : i + 1]), torch.ones(1, dtype=torch.int64), 2,
                          noise=NOISY.latent_noise([((10 + i,), t)], CPU)) for t in range(NOISY.trajectories)]
        best = int(np.argmax([float(r[1][-1, 0]) for r in runs]))
        assert np.array_equal(chosen[i], runs[best][0][-1, 0].numpy())
        selected += best != 0
    assert selected, "no puzzle chose a noisy trajectory; the test shows nothing"


# ------------------------------------------------------------------------------------- voting


def candidate(grid: list, k: int, step: int, q: float, trajectory: int = 0, test_index: int = 0) -> Candidate:
    return Candidate("t", test_index, k, step, q, np.array(grid, np.uint8), "c", trajectory)


A, B, C = [[1]], [[2]], [[3]]


def test_q_select_picks_the_highest_halting_logit():
    table = CandidateTable.from_candidates([
        candidate(A, 0, 1, 0.6), candidate(A, 0, 2, 0.7), candidate(A, 1, 2, 0.7),  # most votes and q mass
        candidate(B, 0, 1, 0.2, trajectory=1), candidate(B, 0, 2, 0.95, trajectory=1),  # the surest halt
        candidate(C, 1, 1, 0.8),
    ])
    assert [r.key for r in vote(table, "q_select")[("t", 0)]] == [grid_key(np.array(g, np.uint8)) for g in (B, C, A)]
    assert [r.score for r in vote(table, "q_select")[("t", 0)]] == [0.95, 0.8, 0.7]
    assert vote(table, "halt_weighted")[("t", 0)][0].key == grid_key(np.array(A, np.uint8))


def test_q_select_breaks_ties_by_votes_then_first_appearance():
    table = CandidateTable.from_candidates([
        candidate(A, 0, 1, 0.9), candidate(B, 0, 2, 0.9), candidate(B, 1, 2, 0.5), candidate(C, 1, 1, 0.9),
    ])
    ranked = vote(table, "q_select")[("t", 0)]
    assert [(r.key, r.votes) for r in ranked] == [(grid_key(np.array(B, np.uint8)), 2), (grid_key(np.array(A, np.uint8)), 1),
                                                   (grid_key(np.array(C, np.uint8)), 1)]


def test_each_trajectory_votes_as_another_augmentation():
    # one augmentation, three trajectories: the reference vote takes the last step of each trajectory
    table = CandidateTable.from_candidates([
        candidate(A, 0, 1, 0.1), candidate(A, 0, 2, 0.1),
        candidate(A, 0, 1, 0.9, trajectory=1), candidate(B, 0, 2, 0.2, trajectory=1),
        candidate(B, 0, 1, 0.1, trajectory=2), candidate(B, 0, 2, 0.3, trajectory=2),
    ])
    ranked = vote(table, "reference")[("t", 0)]
    assert [(r.key, r.votes) for r in ranked] == [(grid_key(np.array(B, np.uint8)), 2), (grid_key(np.array(A, np.uint8)), 1)]
    # first_halt: trajectory 1 halts at step 1 (A); the others never halt, so their last step votes
    ranked = vote(table, "first_halt")[("t", 0)]
    assert [(r.key, r.votes) for r in ranked] == [(grid_key(np.array(A, np.uint8)), 2), (grid_key(np.array(B, np.uint8)), 1)]
    with pytest.raises(CandidateError, match="augmentation 0 trajectory 1 step 2"):
        vote(CandidateTable.concat([table, table.select(np.array([3]))]))


def test_q_select_is_compared_when_named():
    from arc_trm.grids import Pair, Task

    task = Task("t", (Pair(np.array(A, np.uint8), np.array(A, np.uint8)),), (Pair(np.array(A, np.uint8), np.array(B, np.uint8)),))
    table = CandidateTable.from_candidates([candidate(A, 0, 1, 0.6), candidate(A, 1, 1, 0.6), candidate(B, 0, 1, 0.9, trajectory=1)])
    assert [row["policy"] for row in compare_policies(table, [task], ks=(1,))] == ["reference", "halt_weighted", "first_halt"]
    assert compare_policies(table, [task], policies=["q_select"], ks=(1,)) == [{"policy": "q_select", "pass@1": 1.0}]


# ------------------------------------------------------------------------------------- the candidates file


def test_trajectories_round_trip_and_a_file_without_them_is_as_before(tmp_path):
    with_trajectories = CandidateTable.from_candidates([candidate(A, 0, 1, 0.5), candidate(B, 0, 1, 0.5, trajectory=3)])
    path = save_candidates(with_trajectories, tmp_path / "noisy.parquet")
    assert [c.trajectory for c in load_candidates(path).to_candidates()] == [0, 3]

    plain = CandidateTable.from_candidates([candidate(A, 0, 1, 0.5), candidate(B, 1, 1, 0.5)])
    path = save_candidates(plain, tmp_path / "plain.parquet")
    assert "trajectory" not in pq.read_table(path).column_names  # the columns of files made before trajectories
    assert [c.trajectory for c in load_candidates(path).to_candidates()] == [0, 0]


def test_a_negative_trajectory_is_refused(tmp_path):
    path = save_candidates(CandidateTable.from_candidates([candidate(A, 0, 1, 0.5, trajectory=1)]), tmp_path / "c.parquet")
    arrow = pq.read_table(path)
    arrow = arrow.set_column(arrow.schema.get_field_index("trajectory"), "trajectory", [np.array([-1], np.int16)])
    pq.write_table(arrow.replace_schema_metadata(pq.read_table(path).schema.metadata), path)
    with pytest.raises(DataError, match="has trajectory -1: it must be >= 0"):
        load_candidates(path)


def test_query_keys_name_task_input_and_augmentation():
    assert [query_key(q) for q in hand_queries()[:4]] == [("hand", 0, 0), ("hand", 0, 1), ("hand", 0, 2), ("hand", 1, 0)]
