"""ARC grids <-> token sequences, exactly as the reference tokenises them.

A grid is placed on a `canvas x canvas` board (30 for ARC) at an offset and flattened row-major:
PAD = 0 everywhere else, colour c -> token c + 2, and EOS = 1 on the row just below the grid (over its
column span) and on the column just right of it (over its row span), the corner cell left PAD. Where the
grid touches the bottom or right border there is no room, and no EOS is written there. Labels ignore
PAD (-100) but keep EOS: predicting EOS is how the model states the output's shape.

`encode_grids` places many grids at once with numpy index arithmetic (no per-cell Python), which is
what keeps the training stream far ahead of the GPU.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from arc_trm.grids import Grid

PAD = 0
EOS = 1
COLOR_OFFSET = 2
ARC_VOCAB = 12
IGNORE_LABEL = -100


def encode_grids(grids: Sequence[Grid], canvas: int, offsets: Sequence[tuple[int, int]] | None = None) -> np.ndarray:
    """Tokenise many grids, each at its (row, column) offset (default top-left): uint8 [n, canvas*canvas].

    Raises ValueError when a grid does not fit the canvas at its offset.
    """
    n = len(grids)
    board = np.zeros((n, canvas * canvas), dtype=np.uint8)
    if n == 0:
        return board
    shapes = np.array([g.shape for g in grids], dtype=np.int64)
    starts = np.zeros((n, 2), dtype=np.int64) if offsets is None else np.asarray(offsets, dtype=np.int64).reshape(n, 2)
    if starts.min() < 0 or (starts + shapes).max() > canvas:
        raise ValueError(f"a grid does not fit the {canvas}x{canvas} canvas at its offset")
    heights, widths = shapes[:, 0], shapes[:, 1]
    rows0, cols0 = starts[:, 0], starts[:, 1]
    flat = board.reshape(-1)
    base = np.arange(n, dtype=np.int64) * canvas * canvas

    # Colour cells: cell j of grid g lands at (row0 + j // w, col0 + j % w) of board g.
    sizes = heights * widths
    grid_of_cell = np.repeat(np.arange(n), sizes)
    row, col = np.divmod(np.arange(sizes.sum()) - np.repeat(np.cumsum(sizes) - sizes, sizes), widths[grid_of_cell])
    dest = base[grid_of_cell] + (rows0[grid_of_cell] + row) * canvas + cols0[grid_of_cell] + col
    flat[dest] = np.concatenate([np.asarray(g, dtype=np.uint8).reshape(-1) for g in grids]) + COLOR_OFFSET

    # EOS row below the grid (column span only), where the grid does not touch the bottom border.
    below = rows0 + heights < canvas
    flat[_spans(base[below] + (rows0 + heights)[below] * canvas + cols0[below], widths[below], 1)] = EOS
    # EOS column right of the grid (row span only), where the grid does not touch the right border.
    right = cols0 + widths < canvas
    flat[_spans(base[right] + rows0[right] * canvas + (cols0 + widths)[right], heights[right], canvas)] = EOS
    return board


def _spans(starts: np.ndarray, lengths: np.ndarray, stride: int) -> np.ndarray:
    """Concatenated index runs start, start + stride, ... (length items each)."""
    step = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    return np.repeat(starts, lengths) + step * stride


def encode_grid(grid: Grid, canvas: int, offset: tuple[int, int] = (0, 0)) -> np.ndarray:
    """One grid as uint8 tokens [canvas*canvas], its top-left corner at `offset` (row, column)."""
    return encode_grids([grid], canvas, [offset])[0]


def labels_from_tokens(tokens: np.ndarray) -> np.ndarray:
    """Training labels (int64, any shape): PAD is not supervised (IGNORE_LABEL), EOS and colours are."""
    labels = np.asarray(tokens).astype(np.int64)
    labels[labels == PAD] = IGNORE_LABEL
    return labels


def decode_grid(tokens: Any, canvas: int) -> Grid | None:
    """The grid a predicted token sequence (numpy or torch, 1-D) describes, or None when it has none.

    The reference crop: row r's width is the run of colour tokens at its start, capped by the widths of
    the rows above; the crop is the top-left rectangle of largest area (first found on ties). Colours are
    tokens 2..11, anything else (PAD, EOS, out of range) ends a run. Never raises.
    """
    if hasattr(tokens, "detach"):
        tokens = tokens.detach().cpu().numpy()
    board = np.asarray(tokens)
    if board.ndim != 1 or board.size != canvas * canvas:
        return None
    board = board.reshape(canvas, canvas)
    is_color = (board >= COLOR_OFFSET) & (board < ARC_VOCAB)
    run = np.where(is_color.all(axis=1), canvas, np.argmin(is_color, axis=1))
    widths = np.minimum.accumulate(run)
    areas = widths * np.arange(1, canvas + 1)
    height = int(np.argmax(areas)) + 1
    if areas[height - 1] == 0:
        return None
    return (board[:height, : widths[height - 1]] - COLOR_OFFSET).astype(np.uint8)
