"""PNG pictures of ARC tasks, submitted attempts and voting candidates.

    from arc_trm.render import render_task_result, render_candidates
    render_task_result(task, [[attempt_1, attempt_2]], "pictures/007bbfb7.png")
    render_candidates(task, 0, [(grid, 12, "rank 1"), (other, 3, "rank 2")], "votes.png")

A picture is one canvas of pixels, every grid drawn cell by cell with numpy, shown by a single
matplotlib Axes (Agg, no pyplot) with text labels on top. One image instead of one Axes per grid
keeps a picture at tens of milliseconds, so `evaluation.score --render` can draw hundreds.
Files are written atomically.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from arc_trm.grids import Grid, Task
from arc_trm.io import atomic_write_bytes


def _rgb(hex_color: str) -> np.ndarray:
    return np.array([int(hex_color[i:i + 2], 16) for i in (1, 3, 5)], dtype=np.uint8)


# ARC's standard palette, colours 0..9.
PALETTE_HEX = ("#000000", "#0074D9", "#FF4136", "#2ECC40", "#FFDC00",
               "#AAAAAA", "#F012BE", "#FF851B", "#7FDBFF", "#870C25")
PALETTE = np.stack([_rgb(h) for h in PALETTE_HEX])

SLOT = 120          # px: side of the square a grid is drawn in (a 30x30 grid gets 4 px cells)
MAX_CELL = 16       # px: small grids stop growing here
LABEL = 16          # px: band above each slot for its label
TITLE = 22          # px: band at the top for the picture's title
TITLE_CHAR = 9      # px: width reserved per title character, so a narrow picture still shows its title
GAP = 12            # px between slots
FRAME = 3           # px: correct/wrong frame drawn around a grid
DPI = 100
FONT_SIZE = 8
MAX_LABEL_CHARS = 20  # about what fits in SLOT + GAP px at FONT_SIZE
MAX_COLUMNS = 6     # demos and candidates wrap after this many columns

LINE = np.array([85, 85, 85], dtype=np.uint8)        # cell separators
EMPTY = np.array([232, 232, 232], dtype=np.uint8)    # slot of a missing grid
TEXT_COLOR = "#222222"
# Frame and label colour of a judged grid: correct / wrong (darker than palette green/red, to stand apart).
JUDGED_HEX = {True: "#1A7F37", False: "#CF222E"}
JUDGED_RGB = {correct: _rgb(h) for correct, h in JUDGED_HEX.items()}


@dataclass(frozen=True)
class _Panel:
    row: int
    col: int
    grid: Grid | None
    label: str
    correct: bool | None = None  # None: nothing to judge (demo, input, unknown truth)


def grid_pixels(grid: Grid, cell: int) -> np.ndarray:
    """RGB image of `grid` with `cell` px per cell, separator lines when cells are big enough to spare one."""
    height, width = grid.shape
    image = np.empty((height * cell + 1, width * cell + 1, 3), dtype=np.uint8)
    image[:-1, :-1] = PALETTE[grid].repeat(cell, axis=0).repeat(cell, axis=1)
    if cell >= 4:
        image[::cell] = LINE
        image[:, ::cell] = LINE
    else:
        image[[0, -1]] = LINE
        image[:, [0, -1]] = LINE
    return image


def _cell_size(grid: Grid) -> int:
    return max(1, min(MAX_CELL, (SLOT - 2 * FRAME - 1) // max(grid.shape)))


def _slot_origin(panel: _Panel) -> tuple[int, int]:
    """Top-left pixel (y, x) of a panel's slot, below its label band."""
    return TITLE + panel.row * (LABEL + SLOT + GAP) + LABEL, GAP + panel.col * (SLOT + GAP)


def _canvas(panels: list[_Panel], min_width: int) -> np.ndarray:
    rows = 1 + max(panel.row for panel in panels)
    cols = 1 + max(panel.col for panel in panels)
    width = max(min_width, GAP + cols * (SLOT + GAP))
    canvas = np.full((TITLE + rows * (LABEL + SLOT + GAP), width, 3), 255, dtype=np.uint8)
    for panel in panels:
        top, left = _slot_origin(panel)
        if panel.grid is None:
            canvas[top:top + SLOT, left:left + SLOT] = EMPTY
            continue
        image = grid_pixels(panel.grid, _cell_size(panel.grid))
        y = top + (SLOT - image.shape[0]) // 2
        x = left + (SLOT - image.shape[1]) // 2
        if panel.correct is not None:
            canvas[y - FRAME:y + image.shape[0] + FRAME, x - FRAME:x + image.shape[1] + FRAME] = JUDGED_RGB[panel.correct]
        canvas[y:y + image.shape[0], x:x + image.shape[1]] = image
    return canvas


def _short(text: str) -> str:
    return text if len(text) <= MAX_LABEL_CHARS else text[: MAX_LABEL_CHARS - 1] + "…"


def _png(panels: list[_Panel], title: str) -> bytes:
    """Draw the panels and their labels into one PNG."""
    canvas = _canvas(panels, 2 * GAP + TITLE_CHAR * len(title))
    height, width = canvas.shape[:2]
    figure = Figure(figsize=(width / DPI, height / DPI), dpi=DPI)
    FigureCanvasAgg(figure)
    axes = figure.add_axes((0, 0, 1, 1))
    axes.imshow(canvas, interpolation="nearest")
    axes.set_axis_off()
    axes.text(GAP, TITLE / 2, title, fontsize=FONT_SIZE + 1, fontweight="bold", va="center", color=TEXT_COLOR)
    for panel in panels:
        top, left = _slot_origin(panel)
        color = TEXT_COLOR if panel.correct is None else JUDGED_HEX[panel.correct]
        axes.text(left, top - 3, _short(panel.label), fontsize=FONT_SIZE, color=color, va="bottom")
        if panel.grid is None:
            axes.text(left + SLOT / 2, top + SLOT / 2, "none", fontsize=FONT_SIZE, color=TEXT_COLOR,
                      ha="center", va="center")
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()


def _correct(grid: Grid | None, truth: Grid | None) -> bool | None:
    """Whether `grid` equals `truth`; None when the truth is unknown."""
    return None if truth is None else grid is not None and np.array_equal(grid, truth)


def _demo_panels(task: Task) -> list[_Panel]:
    """Demonstrations as columns (input above output), wrapping after MAX_COLUMNS."""
    panels = []
    for j, pair in enumerate(task.train):
        row, col = 2 * (j // MAX_COLUMNS), j % MAX_COLUMNS
        panels.append(_Panel(row, col, pair.input, f"demo {j + 1} input"))
        panels.append(_Panel(row + 1, col, pair.output, f"demo {j + 1} output"))
    return panels


def render_task_result(task: Task, attempts: list[list[Grid | None]], path: str | Path) -> Path:
    """PNG of a task's demos, then per test input: input, truth, and each attempt marked correct/wrong.

    `attempts[i]` holds the attempts for test input i (None = missing or malformed); the truth is
    `task.test[i].output` (attempts are not judged when it is None).
    """
    panels = _demo_panels(task)
    first_row = 2 * -(-len(task.train) // MAX_COLUMNS)
    solved = 0
    for i, (pair, tries) in enumerate(zip(task.test, attempts, strict=True)):
        row = first_row + i
        panels.append(_Panel(row, 0, pair.input, f"test {i + 1} input"))
        panels.append(_Panel(row, 1, pair.output, "truth" if pair.output is not None else "truth unknown"))
        verdicts = [_correct(grid, pair.output) for grid in tries]
        for k, (grid, correct) in enumerate(zip(tries, verdicts)):
            label = f"attempt {k + 1}" + ("" if correct is None else f": {'correct' if correct else 'wrong'}")
            panels.append(_Panel(row, 2 + k, grid, label, correct))
        solved += any(verdicts)
    title = f"task {task.id}"
    if task.has_solutions:
        title += f": {solved}/{len(task.test)} test outputs solved"
    return atomic_write_bytes(path, _png(panels, title))


def _number(value: float) -> str:
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.3g}"


def render_candidates(task: Task, test_index: int, candidates: list[tuple[Grid, float, str]],
                      path: str | Path) -> Path:
    """PNG of one test input (and its truth when known) above its candidates, in the order given.

    Each candidate is `(grid, votes or score, label)`; when the truth is known its frame and label are
    green if it equals the truth, red otherwise.
    """
    pair = task.test[test_index]
    panels = [_Panel(0, 0, pair.input, f"test {test_index + 1} input")]
    if pair.output is not None:
        panels.append(_Panel(0, 1, pair.output, "truth"))
    for k, (grid, votes, label) in enumerate(candidates):
        panels.append(_Panel(1 + k // MAX_COLUMNS, k % MAX_COLUMNS, grid, f"{label} ({_number(votes)})",
                             _correct(grid, pair.output)))
    title = f"task {task.id} test {test_index + 1}: {len(candidates)} candidates"
    return atomic_write_bytes(path, _png(panels, title))
