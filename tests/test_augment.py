"""Augmentations: hand-checked transforms, exact inverses on every ARC-AGI-1 grid, reference names,
seeded sampling, training translations.  Run: pytest tests/test_augment.py -q"""

from __future__ import annotations

import numpy as np
import pytest

from arc_trm.augment import (
    INVERSE_DIHEDRAL,
    Augmentation,
    augmentation_table,
    dihedral_transform,
    sample_augmentation,
    sample_offsets,
)

GRID = np.array([[1, 2, 3], [4, 5, 6]], dtype=np.uint8)
EXPECTED = {
    0: [[1, 2, 3], [4, 5, 6]],
    1: [[3, 6], [2, 5], [1, 4]],  # np.rot90: counter-clockwise
    2: [[6, 5, 4], [3, 2, 1]],
    3: [[4, 1], [5, 2], [6, 3]],
    4: [[3, 2, 1], [6, 5, 4]],  # flip left-right
    5: [[4, 5, 6], [1, 2, 3]],  # flip up-down
    6: [[1, 4], [2, 5], [3, 6]],  # transpose
    7: [[6, 3], [5, 2], [4, 1]],  # anti-transpose
}
SWAP_1_2 = (0, 2, 1, 3, 4, 5, 6, 7, 8, 9)


@pytest.fixture(scope="module")
def arc1_grids(arc1_tasks):
    tasks = arc1_tasks[0] + arc1_tasks[1]
    return [g for task in tasks for pair in task.train + task.test for g in (pair.input, pair.output)]


@pytest.mark.parametrize("dihedral", range(8))
def test_dihedral_matches_hand_computed(dihedral):
    assert Augmentation(dihedral, tuple(range(10))).apply(GRID).tolist() == EXPECTED[dihedral]


def test_colour_map_then_dihedral():
    augmented = Augmentation(1, SWAP_1_2).apply(GRID)
    assert augmented.tolist() == [[3, 6], [1, 5], [2, 4]]
    assert augmented.dtype == np.uint8 and augmented.flags.c_contiguous


def test_inverse_table():
    for dihedral in range(8):
        assert (dihedral_transform(dihedral_transform(GRID, dihedral), INVERSE_DIHEDRAL[dihedral]) == GRID).all()


def test_invert_apply_every_arc1_grid(arc1_grids):
    rng = np.random.default_rng(0)
    colour_maps = [tuple(range(10)), SWAP_1_2] + [(0, *map(int, rng.permutation(9) + 1)) for _ in range(2)]
    augmentations = [Augmentation(d, colors) for d in range(8) for colors in colour_maps]
    for grid in arc1_grids:
        for augmentation in augmentations:
            augmented = augmentation.apply(grid)
            restored = augmentation.invert(augmented)
            assert restored.shape == grid.shape and (restored == grid).all(), augmentation


def test_reference_name_round_trip():
    for k in range(200):
        augmentation = sample_augmentation(42, 3, k)
        name = augmentation.reference_name()
        assert name.startswith(f"t{augmentation.dihedral}|||") and len(name.split("|||")[1]) == 10
        assert Augmentation.from_reference_name(name) == augmentation
        assert Augmentation.from_reference_name(f"007bbfc7|||{name}") == augmentation
    assert Augmentation.identity().reference_name() == "t0|||0123456789"


@pytest.mark.parametrize("name", ["", "t9|||0123456789", "t1|||1023456789", "x1|||0123456789", "t1|||012345678"])
def test_bad_reference_names(name):
    with pytest.raises(ValueError):
        Augmentation.from_reference_name(name)


def test_invalid_augmentation_rejected():
    with pytest.raises(ValueError):
        Augmentation(8, tuple(range(10)))
    with pytest.raises(ValueError):
        Augmentation(0, (0, 1, 1, 3, 4, 5, 6, 7, 8, 9))


def test_sample_augmentation_is_pure_and_seeded():
    assert sample_augmentation(0, 5, 0).is_identity and sample_augmentation(7, 1, 0) == Augmentation.identity()
    draws = [sample_augmentation(0, 5, k) for k in range(1, 400)]
    assert draws == [sample_augmentation(0, 5, k) for k in range(1, 400)]
    assert {a.dihedral for a in draws} == set(range(8))
    assert all(a.colors[0] == 0 and sorted(a.colors) == list(range(10)) for a in draws)
    assert len({a.colors for a in draws}) > 390  # 9! maps: almost all different
    assert draws != [sample_augmentation(1, 5, k) for k in range(1, 400)]
    assert draws != [sample_augmentation(0, 6, k) for k in range(1, 400)]


def test_table_matches_single_draws():
    dihedrals, colors = augmentation_table(3, 11, np.arange(50))
    for k in range(50):
        assert sample_augmentation(3, 11, k) == Augmentation(int(dihedrals[k]), tuple(colors[k].tolist()))
    # Row k does not depend on which other ks are asked for.
    d_subset, c_subset = augmentation_table(3, 11, np.array([49, 7]))
    assert d_subset.tolist() == [dihedrals[49], dihedrals[7]] and (c_subset == colors[[49, 7]]).all()


def test_sample_offsets_inside_canvas_with_one_untranslated_pair():
    rng = np.random.default_rng(0)
    for _ in range(300):
        shapes = [(int(h), int(w)) for h, w in rng.integers(1, 31, size=(int(rng.integers(1, 8)), 2))]
        offsets = sample_offsets(rng, shapes, 30)
        assert len(offsets) == len(shapes)
        assert (0, 0) in offsets
        assert all(0 <= r and 0 <= c and r + h <= 30 and c + w <= 30 for (r, c), (h, w) in zip(offsets, shapes))
    assert sample_offsets(np.random.default_rng(1), [(3, 4), (5, 5)], 10) == sample_offsets(
        np.random.default_rng(1), [(3, 4), (5, 5)], 10
    )
    assert sample_offsets(rng, [(30, 30), (30, 30)], 30) == [(0, 0), (0, 0)]
