"""Tokenisation: EOS placement by hand, encode/decode round trips on real grids, the reference crop,
garbage predictions.  Run: pytest tests/test_tokens.py -q"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from arc_trm.tokens import EOS, IGNORE_LABEL, PAD, decode_grid, encode_grid, encode_grids, labels_from_tokens

G = np.array([[0, 1], [2, 9]], dtype=np.uint8)  # tokens 2, 3 / 4, 11


def board(tokens: np.ndarray, canvas: int) -> list[list[int]]:
    return tokens.reshape(canvas, canvas).tolist()


@pytest.fixture(scope="module")
def arc1_grids(arc1_tasks):
    tasks = arc1_tasks[0] + arc1_tasks[1]
    return [g for task in tasks for pair in task.train + task.test for g in (pair.input, pair.output)]


def test_eos_below_and_right_corner_unset():
    assert board(encode_grid(G, 4), 4) == [
        [2, 3, 1, 0],
        [4, 11, 1, 0],
        [1, 1, 0, 0],
        [0, 0, 0, 0],
    ]
    assert board(encode_grid(G, 4, (1, 1)), 4) == [
        [0, 0, 0, 0],
        [0, 2, 3, 1],
        [0, 4, 11, 1],
        [0, 1, 1, 0],
    ]


def test_no_eos_where_grid_touches_border():
    assert board(encode_grid(G, 4, (2, 2)), 4) == [[0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 2, 3], [0, 0, 4, 11]]
    assert board(encode_grid(G, 4, (2, 0)), 4) == [[0, 0, 0, 0], [0, 0, 0, 0], [2, 3, 1, 0], [4, 11, 1, 0]]
    assert board(encode_grid(G, 4, (0, 2)), 4) == [[0, 0, 2, 3], [0, 0, 4, 11], [0, 0, 1, 1], [0, 0, 0, 0]]
    assert board(encode_grid(G, 2), 2) == [[2, 3], [4, 11]]


def test_encode_rejects_grid_off_canvas():
    with pytest.raises(ValueError):
        encode_grid(G, 4, (3, 0))
    with pytest.raises(ValueError):
        encode_grid(np.zeros((5, 1), dtype=np.uint8), 4)


def test_labels_ignore_pad_keep_eos():
    tokens = encode_grid(G, 4)
    labels = labels_from_tokens(tokens)
    assert labels.dtype == np.int64
    assert (labels[tokens == PAD] == IGNORE_LABEL).all()
    assert (labels[tokens != PAD] == tokens[tokens != PAD]).all() and (labels == EOS).sum() == 4


def simple_encode(grid: np.ndarray, canvas: int, offset: tuple[int, int]) -> np.ndarray:
    """The rule written the obvious way, one grid at a time."""
    out = np.zeros((canvas, canvas), dtype=np.uint8)
    (r, c), (h, w) = offset, grid.shape
    out[r : r + h, c : c + w] = grid + 2
    if r + h < canvas:
        out[r + h, c : c + w] = EOS
    if c + w < canvas:
        out[r : r + h, c + w] = EOS
    return out.reshape(-1)


def test_batch_encoder_matches_simple_rule():
    rng = np.random.default_rng(0)
    for _ in range(200):
        canvas = int(rng.integers(1, 31))
        grids, offsets = [], []
        for _ in range(int(rng.integers(1, 9))):
            h, w = (int(x) for x in rng.integers(1, canvas + 1, size=2))
            grids.append(rng.integers(0, 10, size=(h, w)).astype(np.uint8))
            offsets.append((int(rng.integers(0, canvas - h + 1)), int(rng.integers(0, canvas - w + 1))))
        encoded = encode_grids(grids, canvas, offsets)
        assert encoded.shape == (len(grids), canvas * canvas) and encoded.dtype == np.uint8
        for row, grid, offset in zip(encoded, grids, offsets):
            assert (row == simple_encode(grid, canvas, offset)).all()


def test_round_trip_every_arc1_grid(arc1_grids):
    encoded = encode_grids(arc1_grids, 30)
    for grid, tokens in zip(arc1_grids, encoded):
        decoded = decode_grid(tokens, 30)
        assert decoded is not None and decoded.shape == grid.shape and (decoded == grid).all()


def test_round_trip_every_offset(arc1_grids):
    for grid in arc1_grids[:: len(arc1_grids) // 4][:4]:
        h, w = grid.shape
        for r in range(30 - h + 1):
            for c in range(30 - w + 1):
                tokens = encode_grid(grid, 30, (r, c))
                shifted = np.zeros((30, 30), dtype=np.uint8)  # undo the translation, then decode
                shifted[: 30 - r, : 30 - c] = tokens.reshape(30, 30)[r:, c:]
                assert (decode_grid(shifted.reshape(-1), 30) == grid).all()
                assert (tokens.reshape(30, 30)[r : r + h, c : c + w] == grid + 2).all()


def reference_crop(tokens: np.ndarray, canvas: int) -> tuple[int, int]:
    """The reference `_crop` loop (largest top-left colour rectangle), as (rows, cols)."""
    board = tokens.reshape(canvas, canvas)
    best, best_size, num_c = 0, (0, 0), canvas
    for num_r in range(1, canvas + 1):
        for c in range(1, num_c + 1):
            if not 2 <= board[num_r - 1, c - 1] <= 11:
                num_c = c - 1
                break
        if num_r * num_c > best:
            best, best_size = num_r * num_c, (num_r, num_c)
    return best_size


def test_decode_matches_reference_crop_on_noisy_predictions():
    rng = np.random.default_rng(1)
    for _ in range(500):
        canvas = int(rng.integers(1, 12))
        tokens = rng.choice([0, 1, 2, 5, 11, 12], p=[0.05, 0.1, 0.3, 0.3, 0.2, 0.05], size=canvas * canvas)
        rows, cols = reference_crop(tokens, canvas)
        decoded = decode_grid(tokens, canvas)
        if rows * cols == 0:
            assert decoded is None
        else:
            assert (decoded == tokens.reshape(canvas, canvas)[:rows, :cols] - 2).all()


def test_decode_prefers_larger_area_over_first_row_width():
    tokens = np.zeros((4, 4), dtype=np.int64)
    tokens[0, :4] = 3  # width 4, area 4
    tokens[1, :2] = 4  # width 2 over two rows: area 4 (not larger)
    tokens[2, :2] = 5  # width 2 over three rows: area 6, the crop
    assert decode_grid(tokens.reshape(-1), 4).tolist() == [[1, 1], [2, 2], [3, 3]]


@pytest.mark.parametrize(
    "tokens",
    [
        np.zeros(900, dtype=np.int64),  # all PAD
        np.ones(900, dtype=np.int64),  # all EOS
        np.concatenate([[1], np.full(899, 5)]),  # first token not a colour
        np.full(899, 5),  # wrong length
        np.full((30, 30), 5),  # not 1-D
        np.concatenate([[12], np.full(899, 5)]),  # out of vocabulary
        np.concatenate([[-3], np.full(899, 5)]),
    ],
)
def test_decode_garbage_is_none(tokens):
    assert decode_grid(tokens, 30) is None


def test_decode_accepts_torch():
    tokens = torch.from_numpy(encode_grid(G, 30).astype(np.int64))
    assert decode_grid(tokens, 30).tolist() == G.tolist()
    assert decode_grid(torch.zeros(900, dtype=torch.long), 30) is None
