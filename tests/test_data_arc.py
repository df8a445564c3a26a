"""ARC source, training stream, dedup, leak guard, presets and the Arrow build.
Run: pytest tests/test_data_arc.py -q"""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from arc_trm.augment import sample_augmentation
from arc_trm.data.arc import ArcSource, arc_tasks, check_no_leak, load_preset, main, trained_pairs
from arc_trm.data.stream import TrainStream, batched
from arc_trm.errors import ConfigError, DataError
from arc_trm.grids import Pair, Task
from arc_trm.splits import resolve
from arc_trm.tokens import COLOR_OFFSET, IGNORE_LABEL, PAD, decode_grid, encode_grid

NUM_AUG = 8


@pytest.fixture(scope="module")
def arc1(arc1_tasks):
    return arc1_tasks


@pytest.fixture(scope="module")
def small(arc1):
    """10 training + 5 evaluation tasks (held out), 8 augmentations."""
    training, evaluation = arc1
    tasks = training[:10] + evaluation[:5]
    return ArcSource.from_tasks(tasks, {t.id for t in evaluation[:5]}, num_aug=NUM_AUG, seed=3, canvas=30)


def grid_at(tokens: np.ndarray, canvas: int) -> tuple[tuple[int, int], np.ndarray]:
    """(offset, grid) of a translated tokenised grid: its top-left cell is the first colour token."""
    board = np.asarray(tokens).reshape(canvas, canvas)
    rows, cols = np.nonzero((board >= COLOR_OFFSET) & (board < 12))
    r, c = int(rows.min()), int(cols.min())
    shifted = np.zeros_like(board)
    shifted[: canvas - r, : canvas - c] = board[r:, c:]
    return (r, c), decode_grid(shifted.reshape(-1), canvas)


# ------------------------------------------------------------------------------------- puzzle ids


def test_puzzle_ids_unique_and_invertible(small):
    ids = [small.puzzle_id(t, k) for t in range(len(small)) for k in range(NUM_AUG + 1)]
    assert len(set(ids)) == len(ids) == small.num_puzzle_ids - 1 and min(ids) == 1
    assert ids == list(range(1, small.num_puzzle_ids))
    assert all(small.decode_puzzle_id(small.puzzle_id(t, k)) == (t, k) for t in range(len(small)) for k in range(9))
    for bad in (0, small.num_puzzle_ids):
        with pytest.raises(ValueError):
            small.decode_puzzle_id(bad)


def test_two_builds_agree(arc1, small):
    training, evaluation = arc1
    again = ArcSource.from_tasks(training[:10] + evaluation[:5], {t.id for t in evaluation[:5]}, NUM_AUG, 3, 30)
    assert again.metadata() == small.metadata()
    for t in range(len(small)):
        assert (again.distinct[t] == small.distinct[t]).all()
        for k in range(NUM_AUG + 1):
            assert again.augmentation(t, k) == small.augmentation(t, k) == sample_augmentation(3, t, k)


# ----------------------------------------------------------------------------------------- samples


def test_sample_is_an_augmented_translated_version(small):
    rng = np.random.default_rng(0)
    for t, task in enumerate(small.tasks):
        pairs = trained_pairs(task, task.id in small.held_out)
        for _ in range(3):
            examples = small.sample(t, rng)
            assert len(examples) == small.group_size(t) == len(pairs)
            assert examples.inputs.dtype == np.int32 and examples.inputs.shape == (len(pairs), 900)
            assert examples.labels.dtype == np.int64 and examples.puzzle_ids.dtype == np.int64
            task_index, k = small.decode_puzzle_id(int(examples.puzzle_ids[0]))
            assert task_index == t and k in small.distinct[t] and (examples.puzzle_ids == examples.puzzle_ids[0]).all()
            assert (examples.labels[examples.labels != IGNORE_LABEL] != PAD).all()
            augmentation = small.augmentation(t, k)
            offsets = []
            for inputs, labels, pair in zip(examples.inputs, examples.labels, pairs):
                in_offset, in_grid = grid_at(inputs, 30)
                out_offset, out_grid = grid_at(np.where(labels == IGNORE_LABEL, PAD, labels), 30)
                assert in_offset == out_offset  # a pair shares its translation
                offsets.append(in_offset)
                assert (augmentation.invert(in_grid) == pair.input).all()
                assert (augmentation.invert(out_grid) == pair.output).all()
            assert (0, 0) in offsets


def test_without_translation_every_pair_is_top_left_like_the_test_inputs(arc1):
    training, evaluation = arc1
    tasks = training[:10] + evaluation[:5]
    source = ArcSource.from_tasks(tasks, {t.id for t in evaluation[:5]}, num_aug=NUM_AUG, seed=3, canvas=30, translate=False)
    rng = np.random.default_rng(0)
    for t, task in enumerate(source.tasks):
        pairs = trained_pairs(task, task.id in source.held_out)
        for _ in range(3):
            examples = source.sample(t, rng)
            augmentation = source.augmentation(*source.decode_puzzle_id(int(examples.puzzle_ids[0])))
            for inputs, labels, pair in zip(examples.inputs, examples.labels, pairs):
                assert (inputs == encode_grid(augmentation.apply(pair.input), 30)).all()
                assert grid_at(np.where(labels == IGNORE_LABEL, PAD, labels), 30)[0] == (0, 0)


def test_test_examples_are_held_out_versions(small):
    examples = list(small.test_examples(max_aug=4))
    held = [task for task in small.tasks if task.id in small.held_out]
    assert {e.task_id for e in examples} == {task.id for task in held}
    by_task = {task.id: task for task in held}
    t_of = {task.id: t for t, task in enumerate(small.tasks)}
    for e in examples:
        t = t_of[e.task_id]
        assert e.k <= 4 and e.k in small.distinct[t] and e.puzzle_id == small.puzzle_id(t, e.k)
        augmentation = small.augmentation(t, e.k)
        pair = by_task[e.task_id].test[e.test_index]
        assert e.inputs.dtype == np.int32 and (decode_grid(e.inputs, 30) == augmentation.apply(pair.input)).all()
        assert (decode_grid(e.labels, 30) == augmentation.apply(pair.output)).all()
    firsts = {}
    for e in examples:
        firsts.setdefault((e.task_id, e.test_index), e.k)
    assert set(firsts.values()) == {0}  # identity first
    assert len(list(small.test_examples())) >= len(examples)


def test_held_out_test_pairs_are_not_trained_on(small):
    for t, task in enumerate(small.tasks):
        expected = len(task.train) + (0 if task.id in small.held_out else len(task.test))
        assert small.group_size(t) == expected


def test_tasks_too_large_for_canvas_are_skipped(arc1):
    training, _ = arc1
    source = ArcSource.from_tasks(training[:40], set(), num_aug=2, canvas=10)
    assert 0 < len(source.skipped) < 40 and len(source) + len(source.skipped) == 40
    assert source.metadata()["skipped_tasks"] == source.skipped
    assert all(max(g.shape) <= 10 for task in source.tasks for p in task.train + task.test for g in (p.input, p.output))


def test_bad_source_settings(arc1):
    training, _ = arc1
    with pytest.raises(ConfigError):
        ArcSource.from_tasks(training[:2], set(), canvas=31)
    with pytest.raises(ConfigError):
        ArcSource.from_tasks(training[:2], set(), num_aug=-1)
    with pytest.raises(DataError):
        ArcSource.from_tasks([training[0], training[0]], set(), num_aug=1)


# ------------------------------------------------------------------------------------------- dedup


def reference_distinct(task: Task, source: ArcSource, t: int) -> list[int]:
    """The reference's rule, written independently: sha256 of the sorted per-pair hashes of all pairs."""

    def grid_hash(grid) -> str:
        return hashlib.sha256(bytes(grid.shape) + grid.tobytes()).hexdigest()

    seen, kept = set(), []
    for k in range(source.num_aug + 1):
        augmentation = source.augmentation(t, k)
        outputs = [None if task.id in source.held_out else p.output for p in task.test]
        pairs = [(p.input, p.output) for p in task.train] + [(p.input, o) for p, o in zip(task.test, outputs)]
        hashes = sorted(
            grid_hash(augmentation.apply(i)) + "|" + ("-" if o is None else grid_hash(augmentation.apply(o)))
            for i, o in pairs
        )
        digest = hashlib.sha256("|".join(hashes).encode()).hexdigest()
        if digest not in seen:
            seen.add(digest)
            kept.append(k)
    return kept


def test_dedup_matches_reference_rule(arc1):
    training, evaluation = arc1
    by_id = {task.id: task for task in training + evaluation}
    tasks = [by_id["332efdb3"], by_id["6f8cd79b"]] + training[10:16] + evaluation[:2]
    source = ArcSource.from_tasks(tasks, {evaluation[0].id}, num_aug=60, seed=1)
    for t, task in enumerate(source.tasks):
        assert source.distinct[t].tolist() == reference_distinct(task, source, t)


def test_symmetric_task_has_few_versions(arc1):
    training, evaluation = arc1
    tasks = training + evaluation
    source = ArcSource.from_tasks(tasks, set(), num_aug=200, seed=0)
    counts = {task.id: len(ks) for task, ks in zip(source.tasks, source.distinct)}
    # 332efdb3: every grid is invariant under all 8 dihedrals and uses one colour besides black,
    # so its versions are exactly its 9 recolourings.
    assert counts["332efdb3"] == 9
    for task, ks in zip(source.tasks, source.distinct):
        assert ks[0] == 0 and (np.diff(ks) > 0).all()
        grids = [g for p in task.train + task.test for g in (p.input, p.output)]
        colours = len(set(np.unique(np.concatenate([g.ravel() for g in grids]))) - {0})
        recolourings = int(np.prod(np.arange(9, 9 - colours, -1)))
        assert len(ks) <= min(201, 8 * recolourings)
    assert sum(counts.values()) > 0.9 * 201 * len(tasks)


# ------------------------------------------------------------------------------------------ stream


def collect(stream: TrainStream, n: int) -> list[dict]:
    return [{k: v.numpy().copy() for k, v in next(stream).items()} for _ in range(n)]


def test_rank_shards_are_disjoint_and_complete(small):
    whole = collect(TrainStream(small, 12, seed=5), 12)  # ~3 epochs of this small source
    for world in (2, 3, 4):
        shards = [collect(TrainStream(small, 12, rank=r, world=world, seed=5), 12) for r in range(world)]
        for b, batch in enumerate(whole):
            for key in batch:
                joined = np.concatenate([shards[r][b][key] for r in range(world)])
                assert (joined == batch[key]).all()
    batch = whole[0]
    assert batch["inputs"].dtype == np.int32 and batch["inputs"].shape == (12, 900)
    assert batch["labels"].dtype == np.int64 and batch["puzzle_ids"].shape == (12,)


def test_batches_fill_group_by_group(small):
    batch = collect(TrainStream(small, 40, seed=0), 1)[0]
    ids = batch["puzzle_ids"]
    runs = [ids[0]] + [b for a, b in zip(ids, ids[1:]) if a != b]
    assert len(runs) == len(set(runs))  # each visited version is one contiguous run
    sizes = [int((ids == pid).sum()) for pid in runs]
    expected = [small.group_size(small.decode_puzzle_id(int(pid))[0]) for pid in runs]
    assert sizes[:-1] == expected[:-1] and sizes[-1] <= expected[-1]  # only the last group is truncated


def test_resume_gives_identical_batches(small):
    stream = TrainStream(small, 16, seed=2)
    collect(stream, 5)
    state = stream.state_dict()
    assert set(state) == {"epoch", "cursor", "batches"} and state["batches"] == 5
    expected = collect(stream, 6)
    for world, rank in ((1, 0), (2, 1)):
        resumed = TrainStream(small, 16, rank=rank, world=world, seed=2)
        resumed.load_state_dict(state)
        got = collect(resumed, 6)
        for a, b in zip(got, expected):
            lo = rank * 16 // world
            assert all((a[k] == b[k][lo : lo + 16 // world]).all() for k in a)


def test_seeded_reproducibility(small):
    a = collect(TrainStream(small, 16, seed=7), 3)
    b = collect(TrainStream(small, 16, seed=7), 3)
    c = collect(TrainStream(small, 16, seed=8), 3)
    assert all((x[k] == y[k]).all() for x, y in zip(a, b) for k in x)
    assert any((x["inputs"] != z["inputs"]).any() for x, z in zip(a, c))


def test_stream_config_errors(small):
    with pytest.raises(ConfigError):
        TrainStream(small, 10, rank=0, world=3)
    with pytest.raises(ConfigError):
        TrainStream(small, 12, rank=2, world=2)
    stream = TrainStream(small, 12)
    with pytest.raises(ConfigError):
        stream.load_state_dict({"epoch": 0, "cursor": len(small), "batches": 0})


def test_batched():
    assert list(batched(range(7), 3)) == [[0, 1, 2], [3, 4, 5], [6]]
    assert list(batched([], 3)) == []


# -------------------------------------------------------------------------------------- leak guard


def test_leak_guard_fires_on_arc2_training_with_arc1_evaluation():
    with pytest.raises(DataError) as error:
        check_no_leak(resolve("arc-agi-2/training"), resolve("arc-agi-1/evaluation"))
    message = str(error.value)
    assert "\n" not in message and "e.g. task" in message
    assert int(message.split("leak: ")[1].split(" ")[0]) >= 376  # the shared ids, plus any copied pairs


def test_leak_guard_matches_by_id_and_by_pair(arc1):
    training, evaluation = arc1
    held = evaluation[:3]
    check_no_leak(training[:20], held)
    same_id = Task(held[0].id, training[0].train, training[0].test)
    with pytest.raises(DataError, match=held[0].id):
        check_no_leak([same_id], held)
    answer = held[1].test[0]
    copied = Task("copy", training[0].train + (Pair(answer.input.copy(), answer.output.copy()),), training[0].test)
    with pytest.raises(DataError, match="copy"):
        check_no_leak([copied], held)
    unsolved = Task("x", training[0].train, (Pair(answer.input, None),))
    check_no_leak([unsolved], held)  # the input alone reveals no answer


@pytest.mark.parametrize("preset", ["arc1", "arc2"])
def test_presets_pass_the_guard(preset):
    tasks, held_out = arc_tasks(preset)
    expected = {"arc1": (800, 400), "arc2": (1120, 120)}[preset]
    assert (len(tasks), len(held_out)) == expected and len({t.id for t in tasks}) == len(tasks)


def test_arc1_preset_trains_on_no_held_out_answer():
    loaded = load_preset("arc1")
    # The one upstream duplicate: training task 40853293's test pair is evaluation task 070dd51e's.
    assert loaded.dropped_pairs == ["40853293 test[0] = 070dd51e test[0]"]
    source = ArcSource.from_tasks(loaded.tasks, loaded.held_out, num_aug=0)
    answers = {
        (p.input.shape, p.input.tobytes(), p.output.shape, p.output.tobytes())
        for task in source.tasks
        if task.id in source.held_out
        for p in task.test
    }
    for t, task in enumerate(source.tasks):
        pairs = trained_pairs(task, task.id in source.held_out)
        assert source.group_size(t) == len(pairs)
        assert not any((p.input.shape, p.input.tobytes(), p.output.shape, p.output.tobytes()) in answers for p in pairs)


def test_unknown_preset():
    with pytest.raises(ConfigError):
        arc_tasks("arc3")


# ------------------------------------------------------------------------------------ build + load


def test_save_load_round_trip(small, tmp_path):
    small.save(tmp_path / "arc", preset="test")
    loaded = ArcSource.load(tmp_path / "arc")
    assert loaded.metadata() == small.metadata()
    assert [t.id for t in loaded.tasks] == [t.id for t in small.tasks] and loaded.held_out == small.held_out
    for a, b in zip(loaded.tasks, small.tasks):
        for pa, pb in zip(a.train + a.test, b.train + b.test):
            assert (pa.input == pb.input).all() and (pa.output == pb.output).all()
    for t in range(len(small)):
        x, y = loaded.sample(t, np.random.default_rng(t)), small.sample(t, np.random.default_rng(t))
        assert (x.inputs == y.inputs).all() and (x.labels == y.labels).all() and (x.puzzle_ids == y.puzzle_ids).all()
    stream_a, stream_b = TrainStream(loaded, 8, seed=1), TrainStream(small, 8, seed=1)
    assert all((next(stream_a)[k] == next(stream_b)[k]).all() for k in ("inputs", "labels", "puzzle_ids"))


def test_load_rejects_missing_folder(tmp_path):
    with pytest.raises(DataError):
        ArcSource.load(tmp_path / "nothing")


def test_cli_builds_and_reports_errors(tmp_path, capsys):
    main(["--tasks", "arc1", "--out", str(tmp_path / "arc1"), "--num-aug", "2", "--canvas", "6"])
    loaded = ArcSource.load(tmp_path / "arc1")
    assert loaded.canvas == 6 and loaded.num_aug == 2 and len(loaded) > 0 and len(loaded.skipped) > 0
    assert "puzzle ids" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_info:
        main(["--preset", "arc1", "--out", str(tmp_path / "bad"), "--canvas", "0"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip().count("\n") == 0
