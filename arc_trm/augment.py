"""ARC augmentations: a dihedral transform and a colour permutation (0 fixed), plus training translations.

As the reference: the colour map is applied first, then the dihedral transform; dihedral ids are
0 identity, 1-3 rotate 90 degrees k times (np.rot90), 4 flip left-right, 5 flip up-down, 6 transpose,
7 anti-transpose; their inverses are [0, 3, 2, 1, 4, 5, 6, 7]. The reference names a version
`<task>|||t<dihedral>|||<colour map as 10 digits>`; `reference_name` / `from_reference_name` speak that.

Augmentation k of task t is a pure function of (seed, t, k), k = 0 being the identity, so a version is
never stored, only recomputed. The draws come from a counter-based hash (splitmix64) rather than one
numpy Generator per (t, k): ARC-1 with 1000 augmentations has ~1M versions, and building a Generator
for each costs more than the whole data build.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from arc_trm.grids import NUM_COLORS, Grid

NUM_DIHEDRAL = 8
INVERSE_DIHEDRAL = (0, 3, 2, 1, 4, 5, 6, 7)
SEPARATOR = "|||"


def dihedral_transform(grid: Grid, dihedral: int) -> Grid:
    """One of the 8 symmetries of the square, numbered as the reference (a view where numpy allows)."""
    if dihedral == 0:
        return grid
    if dihedral in (1, 2, 3):
        return np.rot90(grid, k=dihedral)
    if dihedral == 4:
        return np.fliplr(grid)
    if dihedral == 5:
        return np.flipud(grid)
    if dihedral == 6:
        return grid.T
    if dihedral == 7:
        return np.fliplr(np.rot90(grid, k=1))
    raise ValueError(f"dihedral id {dihedral} is not in 0..7")


@dataclass(frozen=True)
class Augmentation:
    """A dihedral id (0..7) and a colour map: old colour c -> colors[c], a permutation with colors[0] == 0."""

    dihedral: int
    colors: tuple[int, ...]

    def __post_init__(self) -> None:
        if not 0 <= self.dihedral < NUM_DIHEDRAL:
            raise ValueError(f"dihedral id {self.dihedral} is not in 0..7")
        if sorted(self.colors) != list(range(NUM_COLORS)) or self.colors[0] != 0:
            raise ValueError(f"colour map {self.colors} is not a permutation of 0..9 that keeps 0")

    @classmethod
    def identity(cls) -> "Augmentation":
        return cls(0, tuple(range(NUM_COLORS)))

    @property
    def is_identity(self) -> bool:
        return self == Augmentation.identity()

    def apply(self, grid: Grid) -> Grid:
        """The augmented grid: colour map, then dihedral transform (a new contiguous uint8 array)."""
        lut = np.asarray(self.colors, dtype=np.uint8)
        return np.ascontiguousarray(dihedral_transform(lut[grid], self.dihedral))

    def invert(self, grid: Grid) -> Grid:
        """The original-frame grid of an augmented one: inverse dihedral, then inverse colour map."""
        inverse_lut = np.argsort(self.colors).astype(np.uint8)
        return np.ascontiguousarray(inverse_lut[dihedral_transform(np.asarray(grid), INVERSE_DIHEDRAL[self.dihedral])])

    def reference_name(self) -> str:
        """The reference's puzzle-name suffix, e.g. `t3|||0472918365`."""
        return f"t{self.dihedral}{SEPARATOR}{''.join(str(c) for c in self.colors)}"

    @staticmethod
    def from_reference_name(name: str) -> "Augmentation":
        """Parse `t<d>|||<10 digits>`, alone or at the end of a full reference id `<task>|||t<d>|||<map>`."""
        parts = name.split(SEPARATOR)
        if len(parts) < 2 or not parts[-2].startswith("t") or not parts[-2][1:].isdigit() or not parts[-1].isdigit():
            raise ValueError(f"'{name}' is not a reference augmentation name like t3|||0472918365")
        return Augmentation(int(parts[-2][1:]), tuple(int(c) for c in parts[-1]))


_MASK64 = (1 << 64) - 1


def _mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64: a bijective scrambler of uint64 arrays (wrapping arithmetic)."""
    x = x + np.uint64(0x9E3779B97F4A7C15)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def augmentation_table(seed: int, task_index: int, ks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Vectorised `sample_augmentation` for many k: dihedral ids [len(ks)] and colour maps [len(ks), 10]."""
    ks = np.asarray(ks, dtype=np.uint64)
    key = _mix64(_mix64(np.array([seed & _MASK64], dtype=np.uint64)) + np.uint64(task_index & _MASK64))
    per_k = _mix64(key + ks)
    # Draw 0 picks the dihedral (8 divides 2**64: unbiased); draws 1..9 are sort keys that shuffle colours 1..9.
    draws = _mix64(per_k[:, None] + np.arange(NUM_COLORS, dtype=np.uint64)[None, :])
    dihedrals = (draws[:, 0] % np.uint64(NUM_DIHEDRAL)).astype(np.int64)
    colors = np.zeros((len(ks), NUM_COLORS), dtype=np.uint8)
    colors[:, 1:] = 1 + np.argsort(draws[:, 1:], axis=1, kind="stable")
    is_identity = ks == 0
    dihedrals[is_identity] = 0
    colors[is_identity] = np.arange(NUM_COLORS, dtype=np.uint8)
    return dihedrals, colors


def sample_augmentation(seed: int, task_index: int, k: int) -> Augmentation:
    """Augmentation k of task `task_index` (pure): k = 0 is the identity, otherwise a random dihedral in
    0..7 (identity possible, as the reference) and a random permutation of colours 1..9."""
    dihedrals, colors = augmentation_table(seed, task_index, np.array([k]))
    return Augmentation(int(dihedrals[0]), tuple(int(c) for c in colors[0]))


def sample_offsets(rng: np.random.Generator, shapes: list[tuple[int, int]], canvas: int) -> list[tuple[int, int]]:
    """Training translations: one (row, column) offset per pair, shared by its input and output.

    `shapes` are per pair the max of input and output extents, so both stay inside the canvas. As the
    reference, one randomly chosen pair stays at (0, 0).
    """
    extents = np.asarray(shapes, dtype=np.int64).reshape(-1, 2)
    offsets = rng.integers(0, canvas - extents + 1)
    offsets[rng.integers(len(extents))] = 0
    return [(int(r), int(c)) for r, c in offsets]
