"""Sudoku: CSV validation, solver, rating, canonical form, augmentation, source and generator."""

from __future__ import annotations

import numpy as np
import pytest

from arc_trm.data import sudoku
from arc_trm.data.sudoku import (
    SudokuPuzzle,
    SudokuSource,
    analyse,
    canonical_form,
    dig,
    generate,
    grid_string,
    grid_values,
    load_sudoku_csv,
    random_full_grid,
    rate,
    shuffle_sudoku,
    solve,
    split,
    subsample,
    tokens_to_string,
    units_complete,
    write_sudoku_csv,
)
from arc_trm.errors import DataError

HEADER = "source,question,answer,rating\n"


@pytest.fixture(scope="module")
def train(shared_data) -> list[SudokuPuzzle]:
    return load_sudoku_csv(shared_data / "sudoku" / "train.csv")


def values(text: str) -> np.ndarray:
    return np.array(grid_values(text), dtype=np.uint8)


def is_solution(question: str, answer: str) -> bool:
    given_ok = all(q in ".0" or q == a for q, a in zip(question, answer))
    return given_ok and bool(units_complete(values(answer)[None])[0])


# ------------------------------------------------------------------------------------ CSV


def test_loads_shipped_files(train, shared_data):
    test = load_sudoku_csv(shared_data / "sudoku" / "test.csv")
    assert (len(train), len(test)) == (1001, 998)
    assert [p.index for p in train[:3]] == [0, 1, 2]
    assert all(len(p.question) == 81 and set(p.question) <= set(".123456789") for p in train)
    hard = load_sudoku_csv(shared_data / "sudoku" / "train.csv", min_rating=40)
    assert 0 < len(hard) < len(train) and all(p.rating >= 40 for p in hard)
    assert hard[0].index == next(p.index for p in train if p.rating >= 40)  # rows keep their file index


def _bad_file(tmp_path, question: str, answer: str, rating: str = "3") -> str:
    good = load_good_row()
    path = tmp_path / "train.csv"
    path.write_text(HEADER + f"s,{good[0]},{good[1]},1\n" + f"s,{question},{answer},{rating}\n")
    return str(path)


def load_good_row() -> tuple[str, str]:
    return (
        "98.7..6..5...9......7..6...4..6.3.8...8.7.5.........42.1...7.3...9.6.8.....2....1",
        "984721653563894127127356498452613789398472516671589342816947235239165874745238961",
    )


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda q, a: (q[:-1], a), "question has 80 characters, expected 81"),
        (lambda q, a: (q, a + "1"), "answer has 82 characters"),
        (lambda q, a: ("x" + q[1:], a), "question has character 'x'"),
        (lambda q, a: (q, "0" + a[1:]), "answer has character '0'"),
        (lambda q, a: ("1" + q[1:], a), "contradicts the given 1 at row 1, column 1"),
        (lambda q, a: ("." * 81, a[1] + a[0] + a[2:]), "not a valid Sudoku"),
    ],
)
def test_bad_rows_name_file_line_and_problem(tmp_path, change, message):
    question, answer = change(*load_good_row())
    path = _bad_file(tmp_path, question, answer)
    with pytest.raises(DataError, match=f"^{path}:3: .*{message}"):
        load_sudoku_csv(path)


def test_bad_header_fields_and_rating(tmp_path):
    q, a = load_good_row()
    path = tmp_path / "x.csv"
    path.write_text("source,question,answer\n")
    with pytest.raises(DataError, match=r"x.csv:1: header must be source,question,answer,rating"):
        load_sudoku_csv(path)
    path.write_text(HEADER + f"s,{q},{a}\n")
    with pytest.raises(DataError, match=r"x.csv:2: expected 4 fields"):
        load_sudoku_csv(path)
    with pytest.raises(DataError, match=r"train.csv:3: rating 'hard' is not an integer"):
        load_sudoku_csv(_bad_file(tmp_path, q, a, rating="hard"))
    with pytest.raises(DataError, match="no such file"):
        load_sudoku_csv(tmp_path / "missing.csv")


def test_cli_reports_bad_file_in_one_line(tmp_path, capsys):
    q, a = load_good_row()
    path = _bad_file(tmp_path, q[:-1], a)
    with pytest.raises(SystemExit) as exit_info:
        sudoku.main(["rate", path])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {path}:3: question has 80") and "\n" not in err


def test_write_then_load_round_trip(tmp_path, train):
    write_sudoku_csv(tmp_path / "out.csv", train[:5])
    assert load_sudoku_csv(tmp_path / "out.csv") == train[:5]


def test_subsample_is_seeded(train):
    a, b, c = subsample(train, 50, seed=1), subsample(train, 50, seed=1), subsample(train, 50, seed=2)
    assert a == b and a != c and len(a) == 50 and len(set(p.index for p in a)) == 50
    assert [p.index for p in a] == sorted(p.index for p in a)
    assert subsample(train, 5000, seed=0) == train


# --------------------------------------------------------------------------------- solver


def test_solver_on_a_fast_subset(train):
    for puzzle in train[::20]:  # every source, about 1 s
        assert solve(puzzle.question) == [puzzle.answer]


@pytest.mark.slow
def test_solver_on_every_shipped_train_puzzle(train):
    for puzzle in train:  # about 10 s
        assert solve(puzzle.question) == [puzzle.answer], puzzle.index


def test_removing_a_clue_of_a_17_clue_puzzle_gives_two_solutions(train):
    puzzle = next(p for p in train if p.source == "puzzles2_17_clue")
    clue = next(i for i, ch in enumerate(puzzle.question) if ch != ".")
    looser = puzzle.question[:clue] + "." + puzzle.question[clue + 1 :]  # 16 clues never fix a unique grid
    solutions = solve(looser, limit=2)
    assert len(solutions) == 2 and solutions[0] != solutions[1]
    assert all(is_solution(looser, s) for s in solutions + [puzzle.answer])
    assert len(solve(looser, limit=5)) == 5


def test_rating_is_first_solution_guesses(train):
    puzzle = next(p for p in train if p.rating > 20)
    full = analyse(puzzle.question, limit=2)
    assert rate(puzzle.question) == full.rating == analyse(puzzle.question, limit=1).branches
    assert 0 < full.rating <= full.branches
    almost = "." + puzzle.answer[1:]
    assert rate(almost) == 0  # singles alone
    assert rate("11" + "." * 79) == -1 and solve("11" + "." * 79) == []


def test_random_full_grid_and_dig():
    rng = np.random.default_rng(3)
    solution = random_full_grid(rng)
    assert units_complete(np.array([solution], dtype=np.uint8))[0]
    assert solution != random_full_grid(rng)
    clues = dig(solution, rng)
    assert solve(clues) == [grid_string(solution)]
    for cell in [c for c in range(81) if clues[c]][:8]:  # minimal: no clue can go
        looser = list(clues)
        looser[cell] = 0
        assert len(solve(looser)) == 2


# -------------------------------------------------------------------------- canonical form


def _symmetric_copy(question: str, rng: np.random.Generator) -> str:
    copy, _ = shuffle_sudoku(values(question), values(question), rng)
    return grid_string(copy)


def test_canonical_form_is_invariant_and_separates(train):
    rng = np.random.default_rng(0)
    for puzzle in train[:10]:
        key = canonical_form(puzzle.question)
        assert all(canonical_form(_symmetric_copy(puzzle.question, rng)) == key for _ in range(3))
        assert len(key) == 81 and key.count("0") == puzzle.question.count(".")
    assert len({canonical_form(p.question) for p in train[:40]}) == 40


def test_dedup_drops_symmetric_copies(train):
    rng = np.random.default_rng(1)
    pool = [p.question for p in train[:5]] + [_symmetric_copy(p.question, rng) for p in train[:5]]
    assert len({canonical_form(q) for q in pool}) == 5


# --------------------------------------------------------------------------- augmentation


def test_augmentation_keeps_validity_and_pairs_question_with_answer(train):
    rng = np.random.default_rng(0)
    for puzzle in train[:30]:
        question, answer = shuffle_sudoku(values(puzzle.question), values(puzzle.answer), rng)
        q, a = grid_string(question), grid_string(answer)
        assert is_solution(q, a) and q.count(".") == puzzle.question.count(".")
        assert solve(q) == [a]  # still uniquely solvable, by the augmented answer
        assert sorted(np.bincount(question, minlength=10)[1:]) == sorted(np.bincount(values(puzzle.question), minlength=10)[1:])


def test_source_protocol_tokens_and_versions(train):
    source = SudokuSource(train[:4], num_aug=1)
    assert (len(source), source.seq_len, source.vocab_size, source.num_puzzle_ids, source.group_size(0)) == (4, 81, 11, 1, 1)
    original = values(train[2].question).astype(np.int32) + 1
    seen_original = seen_shuffled = 0
    rng = np.random.default_rng(0)
    for _ in range(40):
        ex = source.sample(2, rng)
        assert ex.inputs.shape == (1, 81) and ex.inputs.dtype == np.int32 and ex.labels.dtype == np.int64
        assert ex.puzzle_ids.tolist() == [0] and ex.inputs.min() >= 1 and ex.labels.min() >= 2 and ex.labels.max() <= 10
        given = ex.inputs[0] > 1
        assert (ex.inputs[0][given] == ex.labels[0][given]).all()
        assert is_solution(grid_string(ex.inputs[0] - 1), grid_string(ex.labels[0] - 1))
        same = np.array_equal(ex.inputs[0], original)
        seen_original += same
        seen_shuffled += not same
    assert seen_original > 5 and seen_shuffled > 5  # p = 1/2 each with num_aug = 1
    a, b = source.sample(1, np.random.default_rng(7)), source.sample(1, np.random.default_rng(7))
    assert np.array_equal(a.inputs, b.inputs)
    plain = SudokuSource(train[:4], num_aug=0)
    assert np.array_equal(plain.sample(2, rng).inputs[0], original)


def test_test_examples_are_the_puzzles_as_they_are(train):
    chosen = subsample(train, 5, seed=0)
    batches = list(SudokuSource(chosen, num_aug=1000).test_examples(batch_size=2))
    assert [len(i) for i, _ in batches] == [2, 2, 1]
    indices = np.concatenate([i for i, _ in batches])
    assert indices.tolist() == [p.index for p in chosen]
    first = batches[0][1]
    assert tokens_to_string(first.labels[0]) == chosen[0].answer
    assert tokens_to_string(first.inputs[0]) == chosen[0].question


# ------------------------------------------------------------------------------ generator


def test_generator_output_is_unique_hard_and_inequivalent():
    puzzles = generate(4, min_rating=10, seed=0, progress=False)
    assert len(puzzles) == 4
    for p in puzzles:
        assert solve(p.question) == [p.answer] and p.rating >= 10 and rate(p.question) == p.rating
    assert len({canonical_form(p.question) for p in puzzles}) == 4


def test_generator_depends_on_seed_not_workers():
    one = generate(3, min_rating=5, seed=4, progress=False)
    assert generate(3, min_rating=5, seed=4, workers=2, progress=False) == one
    assert generate(3, min_rating=5, seed=5, progress=False) != one


def test_generate_cli_writes_inequivalent_train_and_test(tmp_path, capsys):
    assert sudoku.main(["generate", "--n", "5", "--min-rating", "5", "--out", str(tmp_path), "--test-fraction", "0.4"]) == 0
    train, test = load_sudoku_csv(tmp_path / "train.csv"), load_sudoku_csv(tmp_path / "test.csv")
    assert (len(train), len(test)) == (3, 2)
    assert {canonical_form(p.question) for p in train}.isdisjoint(canonical_form(p.question) for p in test)
    assert all(p.source == "arc_trm_generator" and p.rating >= 5 for p in train + test)
    assert "wrote 3 train + 2 test" in capsys.readouterr().out
    assert split(train + test, 0.5, seed=0)[1][0].index == 0
