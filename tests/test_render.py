"""PNG pictures of task results and voting candidates are valid, non-trivial and written atomically.

Run: `pytest tests/test_render.py -q`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from matplotlib.image import imread

from arc_trm.grids import Pair, Task
from arc_trm.render import JUDGED_RGB, PALETTE, grid_pixels, render_candidates, render_task_result
from arc_trm.splits import load_split


@pytest.fixture(scope="module")
def task() -> Task:
    """A real task with two test inputs (ARC-AGI-1 evaluation)."""
    return next(t for t in load_split("arc-agi-1/evaluation") if len(t.test) == 2)


def read_rgb(path: Path) -> np.ndarray:
    """The PNG as uint8 RGB, checking the file is a real PNG."""
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return (imread(path)[..., :3] * 255).round().astype(np.uint8)


def has_color(image: np.ndarray, rgb: np.ndarray) -> bool:
    return bool(np.all(image == rgb, axis=-1).any())


def test_task_result_picture_shows_grids_and_verdicts(task, tmp_path):
    first, second = task.test
    wrong = first.output.copy()
    wrong[0, 0] = (wrong[0, 0] + 1) % 10
    path = render_task_result(task, [[first.output, None], [wrong, second.output]], tmp_path / "sub" / "t.png")
    assert path == tmp_path / "sub" / "t.png"
    image = read_rgb(path)
    height, width = image.shape[:2]
    assert 300 < height < 2000 and 400 < width < 2000
    assert len(np.unique(image.reshape(-1, 3), axis=0)) > 10  # not one flat colour
    used = {int(v) for t in (task.train, task.test) for p in t for g in (p.input, p.output) for v in np.unique(g)}
    assert all(has_color(image, PALETTE[v]) for v in used)
    assert has_color(image, JUDGED_RGB[True]) and has_color(image, JUDGED_RGB[False])
    assert [p.name for p in path.parent.iterdir()] == ["t.png"]  # no temporary file left behind


def test_unknown_truth_is_drawn_without_verdicts(task, tmp_path):
    blind = Task(task.id, task.train, tuple(Pair(p.input) for p in task.test))
    image = read_rgb(render_task_result(blind, [[p.output, p.output] for p in task.test], tmp_path / "b.png"))
    assert not has_color(image, JUDGED_RGB[True]) and not has_color(image, JUDGED_RGB[False])


def test_attempts_must_match_test_inputs(task, tmp_path):
    with pytest.raises(ValueError):
        render_task_result(task, [[None, None]], tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


def test_candidates_picture(task, tmp_path):
    truth = task.test[1].output
    candidates = [(np.full_like(truth, k), 10 - k, f"rank {k + 1}") for k in range(7)] + [(truth, 0.25, "halt 0.25")]
    image = read_rgb(render_candidates(task, 1, candidates, tmp_path / "c.png"))
    assert image.shape[0] > 3 * 120 and image.shape[1] > 6 * 120  # 8 candidates wrap onto two rows of six
    assert has_color(image, JUDGED_RGB[True]) and has_color(image, JUDGED_RGB[False])
    assert read_rgb(render_candidates(task, 0, [], tmp_path / "none.png")).shape[0] > 100


def test_grid_pixels_cells_and_lines():
    grid = np.array([[0, 1, 2], [3, 4, 9]], np.uint8)
    image = grid_pixels(grid, 10)
    assert image.shape == (21, 31, 3)
    assert (image[5, 15] == PALETTE[1]).all() and (image[15, 25] == PALETTE[9]).all()
    assert (image[10, 5] == image[0, 0]).all()  # separator line between the rows
    big = grid_pixels(np.zeros((30, 30), np.uint8), 3)
    assert big.shape == (91, 91, 3) and (big[45, 45] == PALETTE[0]).all()
