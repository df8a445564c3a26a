"""Maze: CSV validation, BFS and the canonical path, dihedral augmentation, source and generator."""

from __future__ import annotations

import numpy as np
import pytest

from arc_trm.augment import INVERSE_DIHEDRAL, NUM_DIHEDRAL
from arc_trm.data import maze
from arc_trm.data.maze import (
    MazePuzzle,
    MazeSource,
    bfs,
    canonical_path,
    dihedral_flat,
    generate,
    load_maze_csv,
    maze_tokens,
    parse_maze,
    pick_endpoints,
    random_layout,
    render,
    tokens_to_string,
    write_maze_csv,
)
from arc_trm.errors import DataError
from arc_trm.tracks.maze import is_optimal_path

HEADER = "source,question,answer,rating\n"
# 3x3, all open: S top-left, G bottom-right; 6 shortest paths of 5 cells.
OPEN_Q = "S       G"


@pytest.fixture(scope="module")
def mazes() -> list[MazePuzzle]:
    return generate(6, seed=0, progress=False)


def test_canonical_path_prefers_up_down_left_right():
    free, side, start, goal = parse_maze(OPEN_Q)
    assert canonical_path(free, side, start, goal) == [0, 3, 6, 7, 8]  # down first, then right
    assert canonical_path(free, side, goal, start) == [8, 5, 2, 1, 0]  # up first, then left
    assert canonical_path(*parse_maze("S#  #   G")) == [0, 3, 6, 7, 8]
    assert canonical_path(*parse_maze("S#G######")) == []


def test_bfs_counts_moves_through_open_cells():
    free, side, start, goal = parse_maze("S#  #   G")
    dist = bfs(free, side, start)
    assert dist[goal] == 4 and dist[1] == -1 and dist[2] == 6


def test_generated_mazes_are_hard_shortest_and_canonical(mazes):
    for m in mazes:
        free, side, start, goal = parse_maze(m.question)
        assert side == 30 and m.rating > 110
        assert m.rating == bfs(free, side, start)[goal] + 1  # rating = shortest path in cells
        path = canonical_path(free, side, start, goal)
        assert render(free, start, goal, path) == (m.question, m.answer)
        assert m.answer.count("o") == m.rating - 2 and is_optimal_path(m.question, m.answer)
        assert 270 <= m.question.count("#") <= 450
    assert len(walls(mazes)) == len(mazes)


def test_generator_is_deterministic_and_worker_independent(mazes):
    assert generate(6, seed=0, progress=False) == mazes
    assert generate(6, seed=0, workers=2, progress=False) == mazes
    assert generate(2, seed=1, progress=False) != mazes[:2]


def test_a_huge_worker_count_starts_one_process_per_cpu(monkeypatch):
    """`--workers 99999` used to start 99999 processes (thousands appeared before it was stopped)."""
    from arc_trm.data import generation

    sizes = []

    class Pool:  # runs in this process and records the size asked for
        def __init__(self, size):
            sizes.append(size)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def imap(self, function, chunk):
            return map(function, chunk)

    monkeypatch.setattr(generation.multiprocessing, "Pool", Pool)
    monkeypatch.setattr(generation.os, "cpu_count", lambda: 2)
    assert len(generate(1, seed=0, side=8, min_length=1, workers=99_999, progress=False)) == 1
    assert sizes == [2]


def test_pick_endpoints_respects_the_length_and_rejects_short_layouts():
    rng = np.random.default_rng(5)
    open_grid = np.ones(100, dtype=bool)
    assert pick_endpoints(open_grid, 10, 19, rng) is None  # the longest path in an open 10x10 has 19 cells
    ends = pick_endpoints(open_grid, 10, 17, rng)
    assert ends is not None and bfs(open_grid.tolist(), 10, ends[0])[ends[1]] + 1 > 17
    layout = random_layout(np.random.default_rng(0), 30)
    assert 270 <= (~layout).sum() <= 450


def test_generate_cli_writes_disjoint_layouts(tmp_path, capsys):
    assert maze.main(["generate", "--n", "4", "--out", str(tmp_path), "--size", "12", "--min-length", "25"]) == 0
    train, test = load_maze_csv(tmp_path / "train.csv"), load_maze_csv(tmp_path / "test.csv")
    assert (len(train), len(test)) == (2, 2) and all(len(m.question) == 144 and m.rating > 25 for m in train + test)
    assert walls(train).isdisjoint(walls(test))
    assert "wrote 2 train + 2 test mazes" in capsys.readouterr().out


def walls(mazes: list[MazePuzzle]) -> set[str]:
    return {m.question.replace("S", " ").replace("G", " ") for m in mazes}


# ------------------------------------------------------------------------------------ CSV


def _file(tmp_path, *rows: tuple[str, str]) -> str:
    path = tmp_path / "test.csv"
    path.write_text(HEADER + "".join(f"s,{q},{a},5\n" for q, a in rows))
    return str(path)


@pytest.mark.parametrize(
    "question, answer, message",
    [
        ("S       ", "S       ", "question length 8 is not a square"),
        ("S   x   G", "S   x   G", "question has character 'x'"),
        ("S  S    G", "S  S    G", "2 'S' cells, expected 1"),
        ("S        ", "S        ", "0 'G' cells, expected 1"),
        ("S#      G", "So      G", "answer has 'o' at row 1, column 2 where the question has '#'"),
        ("S       G", "S      #G", "answer has '#' at row 3, column 2"),
        ("S       G", "S  o   G", "answer has 8 characters"),
        ("S       G", "S  o   Gx", "answer has character 'x'"),
    ],
)
def test_bad_rows_name_file_line_and_problem(tmp_path, question, answer, message):
    path = _file(tmp_path, ("S       G", "So  o  oG"), (question, answer))
    with pytest.raises(DataError, match=f"^{path}:3: .*{message}"):
        load_maze_csv(path)


def test_mazes_of_a_file_share_a_side(tmp_path):
    path = _file(tmp_path, (OPEN_Q, OPEN_Q), ("S" + " " * 14 + "G", "S" + " " * 14 + "G"))
    with pytest.raises(DataError, match=r"test.csv:3: maze side 4 differs from the first maze's 3"):
        load_maze_csv(path)


def test_write_then_load_round_trip(tmp_path, mazes):
    write_maze_csv(tmp_path / "m.csv", mazes[:3])
    loaded = load_maze_csv(tmp_path / "m.csv")
    assert [(m.question, m.answer, m.rating, m.source) for m in loaded] == [(m.question, m.answer, m.rating, m.source) for m in mazes[:3]]
    assert [m.index for m in loaded] == [0, 1, 2]


# ---------------------------------------------------------------------- tokens, source, aug


def test_tokens_follow_the_reference():
    assert maze_tokens(["# SGo"]).tolist() == [[1, 2, 3, 4, 5]]
    assert tokens_to_string(np.array([1, 2, 3, 4, 5, 0])) == "# SGo."


@pytest.mark.parametrize("dihedral", range(NUM_DIHEDRAL))
def test_dihedral_is_invertible_and_keeps_the_path_valid(mazes, dihedral):
    m = mazes[0]
    for tokens in maze_tokens([m.question, m.answer]):
        assert np.array_equal(dihedral_flat(dihedral_flat(tokens, 30, dihedral), 30, INVERSE_DIHEDRAL[dihedral]), tokens)
    question, answer = (tokens_to_string(dihedral_flat(t, 30, dihedral)) for t in maze_tokens([m.question, m.answer]))
    assert is_optimal_path(question, answer) and answer.count("o") == m.answer.count("o")
    asymmetric = np.arange(9)
    assert len({dihedral_flat(asymmetric, 3, d).tobytes() for d in range(NUM_DIHEDRAL)}) == NUM_DIHEDRAL


def test_source_protocol_and_augmentation(mazes):
    plain, augmented = MazeSource(mazes), MazeSource(mazes, augment=True)
    assert (len(plain), plain.seq_len, plain.vocab_size, plain.num_puzzle_ids, plain.group_size(0)) == (6, 900, 6, 1, 1)
    rng = np.random.default_rng(0)
    ex = plain.sample(1, rng)
    assert ex.inputs.dtype == np.int32 and ex.labels.dtype == np.int64 and ex.puzzle_ids.tolist() == [0]
    assert tokens_to_string(ex.inputs[0]) == mazes[1].question and tokens_to_string(ex.labels[0]) == mazes[1].answer
    versions = set()
    for _ in range(40):
        ex = augmented.sample(1, rng)
        question, answer = tokens_to_string(ex.inputs[0]), tokens_to_string(ex.labels[0])
        assert is_optimal_path(question, answer)
        versions.add(question)
    assert len(versions) == NUM_DIHEDRAL


def test_test_examples_keep_file_indices(tmp_path, mazes):
    write_maze_csv(tmp_path / "test.csv", mazes)
    batches = list(MazeSource(load_maze_csv(tmp_path / "test.csv")[1:]).test_examples(batch_size=3))
    assert [i.tolist() for i, _ in batches] == [[1, 2, 3], [4, 5]]
    assert tokens_to_string(batches[1][1].labels[1]) == mazes[5].answer
    assert tokens_to_string(batches[0][1].inputs[0]) == mazes[1].question
