"""ARC training data: tasks -> groups of augmented examples with computed puzzle ids, a leak guard, presets,
and a build step that persists the base tasks as an HF `datasets` folder.

Build once, train anywhere (every rank memory-maps the same Arrow files):

    python -m arc_trm.data.arc --tasks arc1 --out data/arc1 [--num-aug 1000] [--seed 0] [--canvas 30]
        [--concept /path/to/arc-agi_concept_challenges.json]

As the reference (`build_arc_dataset.py`): the demonstration pairs of every task are trained on; the
test pairs of held-out tasks (the evaluation split) are not, those of the other tasks are. Version k of
task t is augmentation k = `sample_augmentation(seed, t, k)` (k = 0 the identity) and has puzzle id
`1 + t * (num_aug + 1) + k` (0 = blank). Versions whose augmented task equals an earlier version's are
never sampled. Augmentation and translation happen on the fly, never materialised on disk.

Deviations from the reference, on purpose: the dedup hash leaves out held-out test outputs (the
versions must not depend on hidden answers, and Kaggle tasks have none); duplicate versions are skipped
rather than redrawn, so ids stay a formula; training pairs equal to a held-out test pair are dropped by
the presets (ARC-AGI-1 training task 40853293 holds the test pair of evaluation task 070dd51e).
"""

from __future__ import annotations

import hashlib
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np
from tqdm import tqdm

from arc_trm.augment import Augmentation, augmentation_table, dihedral_transform, sample_offsets
from arc_trm.data.stream import Examples
from arc_trm.errors import ArgumentParser, ConfigError, DataError, check_options, exit_on_user_error, nonempty_path
from arc_trm.grids import MAX_SIDE, Grid, Pair, Task, grid_to_list
from arc_trm.io import atomic_write_json, ensure_folder, read_json, refuse_output_on_input
from arc_trm.splits import bundled_data_folder, resolve
from arc_trm.tokens import ARC_VOCAB, COLOR_OFFSET, EOS, PAD, encode_grid, encode_grids, labels_from_tokens

log = logging.getLogger(__name__)

PUZZLE_ID_SCHEME = "puzzle_id = 1 + task_index * (num_aug + 1) + k; 0 = blank; k = 0 is the identity"
FORMAT = "arc_trm.arc_tasks/1"
PRESETS = {
    "arc1": ("arc-agi-1/training", "arc-agi-1/evaluation"),
    "arc2": ("arc-agi-2/training", "arc-agi-2/evaluation"),
}


@dataclass
class TestExample:
    task_id: str
    test_index: int
    k: int
    puzzle_id: int
    inputs: np.ndarray  # int32 [L], not translated
    labels: np.ndarray | None  # int64 [L]; None when the output is unknown


def puzzle_id(task_index: int, k: int, num_aug: int) -> int:
    """The puzzle id of augmentation k of task `task_index` (see PUZZLE_ID_SCHEME)."""
    return 1 + task_index * (num_aug + 1) + k


def trained_pairs(task: Task, held_out: bool) -> list[Pair]:
    """The pairs a task contributes to training: its demos, plus its solved test pairs unless held out."""
    test = [] if held_out else [pair for pair in task.test if pair.output is not None]
    return list(task.train) + test


# ---------------------------------------------------------------------------------------------- dedup

# Random 64-bit weights of a linear hash over a pair's cells and shapes. Two different pairs collide with
# probability ~2**-61, so equal hashes mean equal pairs for every practical purpose.
_WEIGHTS = np.random.default_rng(20251008).integers(0, 2**63, size=2 * MAX_SIDE * MAX_SIDE + 4, dtype=np.uint64) * 2 + 1


def distinct_versions(pairs: Sequence[Pair], dihedrals: np.ndarray, colors: np.ndarray) -> np.ndarray:
    """The ks (ascending, 0 first) whose augmented task differs from every earlier k's.

    A task is compared as the reference does: as the multiset of its (input, output) pairs. Vectorised:
    per pair and dihedral, one gather of the colour maps of all ks with that dihedral, one dot product.
    """
    pair_hashes = np.zeros((len(dihedrals), len(pairs)), dtype=np.uint64)
    for dihedral in np.unique(dihedrals):
        ks = np.flatnonzero(dihedrals == dihedral)
        for p, pair in enumerate(pairs):
            grids = [dihedral_transform(g, int(dihedral)) for g in (pair.input, pair.output) if g is not None]
            cells = np.concatenate([g.reshape(-1) for g in grids])
            shapes = np.array([s for g in grids for s in g.shape] + [0] * (4 - 2 * len(grids)), dtype=np.uint64)
            mapped = colors[ks][:, cells].astype(np.uint64)
            shape_term = (shapes * _WEIGHTS[len(cells) : len(cells) + 4]).sum()
            pair_hashes[ks, p] = (mapped * _WEIGHTS[: len(cells)]).sum(axis=1) + shape_term
    pair_hashes.sort(axis=1)  # pair order does not make a different task
    _, first = np.unique(pair_hashes, axis=0, return_index=True)
    return np.sort(first)


# --------------------------------------------------------------------------------------------- source


class ArcSource:
    """ARC as an `ExampleSource`: group t = task t, with versions k in 0..num_aug (duplicates skipped).

    Build with `from_tasks` (in memory) or `load` (a folder written by `build`).
    """

    vocab_size = ARC_VOCAB

    def __init__(
        self,
        tasks: list[Task],
        held_out: Iterable[str],
        num_aug: int,
        seed: int,
        canvas: int,
        distinct: list[np.ndarray] | None = None,
        skipped: Sequence[str] = (),
        progress: bool = False,
        translate: bool = True,
        held_out_training: Iterable[str] = (),
    ):
        """`tasks` must fit the canvas; `distinct` (ks per task) is computed when not given. `translate`:
        training pairs at random offsets (the reference), else top-left like the test inputs.
        `held_out_training`: the held-out tasks that come from a training split (reported apart)."""
        self.tasks = tasks
        self.translate = translate
        self.held_out = frozenset(held_out) & {task.id for task in tasks}
        self.held_out_training = frozenset(held_out_training) & self.held_out
        self.num_aug = num_aug
        self.seed = seed
        self.canvas = canvas
        self.seq_len = canvas * canvas
        self.num_puzzle_ids = 1 + len(tasks) * (num_aug + 1)
        self.skipped = list(skipped)
        self._pairs = [trained_pairs(task, task.id in self.held_out) for task in tasks]
        all_ks = np.arange(num_aug + 1)
        tables = [augmentation_table(seed, t, all_ks) for t in range(len(tasks))]
        self._dihedrals = np.array([d for d, _ in tables], dtype=np.int64).reshape(len(tasks), num_aug + 1)
        self._colors = np.array([c for _, c in tables], dtype=np.uint8).reshape(len(tasks), num_aug + 1, -1)
        # Colour map as a token map: PAD and EOS stay, colour token c + 2 -> colors[c] + 2.
        specials = np.broadcast_to(np.array([PAD, EOS], dtype=np.uint8), (*self._colors.shape[:2], 2))
        self._token_maps = np.concatenate([specials, self._colors + COLOR_OFFSET], axis=2)
        if distinct is None:
            distinct = [
                distinct_versions(self._hashed_pairs(task), self._dihedrals[t], self._colors[t])
                for t, task in enumerate(tqdm(tasks, desc="dedup augmentations", unit="task", disable=not progress))
            ]
        self.distinct = distinct

    @classmethod
    def from_tasks(
        cls,
        train_tasks: list[Task],
        held_out: set[str],
        num_aug: int = 1000,
        seed: int = 0,
        canvas: int = 30,
        progress: bool = False,
        translate: bool = True,
        held_out_training: Iterable[str] = (),
    ) -> "ArcSource":
        """Source over the tasks that fit the canvas (the others are skipped and listed in `metadata`)."""
        if num_aug < 0:
            raise ConfigError(f"num_aug must be >= 0, got {num_aug}")
        if not 1 <= canvas <= MAX_SIDE:
            raise ConfigError(f"canvas must be 1..{MAX_SIDE}, got {canvas}")
        seen: set[str] = set()
        for task in train_tasks:
            if task.id in seen:
                raise DataError(f"task id {task.id} appears twice in the training tasks")
            seen.add(task.id)
        kept = [task for task in train_tasks if task.fits(canvas)]
        skipped = [task.id for task in train_tasks if not task.fits(canvas)]
        if not kept:
            raise ConfigError(f"none of the {len(train_tasks)} tasks fits a {canvas}x{canvas} canvas (every grid must fit)")
        return cls(kept, held_out, num_aug, seed, canvas, skipped=skipped, progress=progress, translate=translate,
                   held_out_training=held_out_training)

    def _hashed_pairs(self, task: Task) -> list[Pair]:
        """What a version is compared on: everything except the held-out answers."""
        if task.id in self.held_out:
            return list(task.train) + [Pair(pair.input, None) for pair in task.test]
        return list(task.train) + list(task.test)

    # ExampleSource

    def __len__(self) -> int:
        return len(self.tasks)

    def group_size(self, group: int) -> int:
        return len(self._pairs[group])

    def sample(self, group: int, rng: np.random.Generator) -> Examples:
        """A random distinct version of task `group`: its trained pairs augmented, translated, tokenised."""
        ks = self.distinct[group]
        k = int(ks[rng.integers(len(ks))])
        # Same result as Augmentation.apply on every grid, cheaper: the dihedral views are tokenised
        # as they are, and the colour map becomes one token lookup over the whole board.
        dihedral = int(self._dihedrals[group, k])
        inputs = [dihedral_transform(pair.input, dihedral) for pair in self._pairs[group]]
        outputs = [dihedral_transform(pair.output, dihedral) for pair in self._pairs[group]]
        shapes = [(max(i.shape[0], o.shape[0]), max(i.shape[1], o.shape[1])) for i, o in zip(inputs, outputs)]
        offsets = sample_offsets(rng, shapes, self.canvas) if self.translate else [(0, 0)] * len(shapes)
        tokens = self._token_maps[group, k][encode_grids(inputs + outputs, self.canvas, offsets + offsets)]
        n = len(inputs)
        return Examples(
            inputs=tokens[:n].astype(np.int32),
            labels=labels_from_tokens(tokens[n:]),
            puzzle_ids=np.full(n, self.puzzle_id(group, k), dtype=np.int64),
        )

    # puzzle ids and versions

    def puzzle_id(self, task_index: int, k: int) -> int:
        return puzzle_id(task_index, k, self.num_aug)

    def decode_puzzle_id(self, puzzle_id: int) -> tuple[int, int]:
        """(task index, k) of a puzzle id; ValueError for the blank id or one out of range."""
        if not 1 <= puzzle_id < self.num_puzzle_ids:
            raise ValueError(f"puzzle id {puzzle_id} is not in 1..{self.num_puzzle_ids - 1}")
        return divmod(puzzle_id - 1, self.num_aug + 1)

    def augmentation(self, task_index: int, k: int) -> Augmentation:
        """Augmentation k of task `task_index` (equal to `sample_augmentation(seed, task_index, k)`)."""
        return Augmentation(int(self._dihedrals[task_index, k]), tuple(self._colors[task_index, k].tolist()))

    def test_examples(self, max_aug: int | None = None) -> Iterator[TestExample]:
        """Every distinct version k <= max_aug (identity first) of every held-out test input, top-left."""
        for t, task in enumerate(self.tasks):
            if task.id not in self.held_out:
                continue
            ks = [int(k) for k in self.distinct[t] if max_aug is None or k <= max_aug]
            for test_index, pair in enumerate(task.test):
                for k in ks:
                    augmentation = self.augmentation(t, k)
                    inputs = encode_grid(augmentation.apply(pair.input), self.canvas).astype(np.int32)
                    labels = None
                    if pair.output is not None:
                        labels = labels_from_tokens(encode_grid(augmentation.apply(pair.output), self.canvas))
                    yield TestExample(task.id, test_index, k, self.puzzle_id(t, k), inputs, labels)

    def metadata(self) -> dict[str, Any]:
        """What a trained model needs to map puzzle ids back to tasks and augmentations (JSON-ready).

        `distinct_versions` lists the ks only for tasks that lost versions to dedup; the others have all
        of 0..num_aug.
        """
        counts = [len(ks) for ks in self.distinct]
        return {
            "task_ids": [task.id for task in self.tasks],
            "held_out": sorted(self.held_out),
            "held_out_training": sorted(self.held_out_training),
            "num_groups": len(self.tasks),
            "num_aug": self.num_aug,
            "seed": self.seed,
            "canvas": self.canvas,
            "seq_len": self.seq_len,
            "vocab_size": self.vocab_size,
            "num_puzzle_ids": self.num_puzzle_ids,
            "puzzle_id_scheme": PUZZLE_ID_SCHEME,
            "examples_per_epoch": int(sum(len(pairs) for pairs in self._pairs)),
            "num_distinct_versions": counts,
            "distinct_versions": {
                task.id: ks.tolist() for task, ks in zip(self.tasks, self.distinct) if len(ks) < self.num_aug + 1
            },
            "skipped_tasks": self.skipped,
        }

    # persistence

    def save(self, out_dir: str | Path, **provenance: Any) -> None:
        """Write `tasks/` (HF datasets, Arrow) and `metadata.json` (with `provenance` added) to `out_dir`."""
        import datasets  # heavy import, only needed here

        grids = datasets.List(datasets.List(datasets.List(datasets.Value("uint8"))))
        features = datasets.Features(
            {
                "task_id": datasets.Value("string"),
                "held_out": datasets.Value("bool"),
                "train_inputs": grids,
                "train_outputs": grids,
                "test_inputs": grids,
                "test_outputs": grids,
                "distinct_k": datasets.List(datasets.Value("int32")),
            }
        )
        rows = [_task_row(task, task.id in self.held_out, ks) for task, ks in zip(self.tasks, self.distinct)]
        table = datasets.Dataset.from_list(rows, features=features)
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        # Readers trust metadata.json, so it goes first and comes back last, after tasks/ is complete.
        (out_dir / "metadata.json").unlink(missing_ok=True)
        staging = out_dir / "tasks.partial"
        shutil.rmtree(staging, ignore_errors=True)
        try:
            table.save_to_disk(str(staging))
        except BaseException as error:  # a full or unwritable disk: leave no half-written folder
            shutil.rmtree(staging, ignore_errors=True)
            if isinstance(error, OSError) and not error.filename:
                raise OSError(error.errno, error.strerror or str(error), str(out_dir)) from error
            raise
        shutil.rmtree(out_dir / "tasks", ignore_errors=True)
        staging.rename(out_dir / "tasks")
        atomic_write_json(out_dir / "metadata.json", {"format": FORMAT, **provenance, **self.metadata()})

    @classmethod
    def load(cls, out_dir: str | Path) -> "ArcSource":
        """Read a folder written by `build` (Arrow, memory-mapped)."""
        import datasets  # heavy import, only needed here

        out_dir = Path(out_dir)
        meta = read_json(out_dir / "metadata.json")
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise DataError(f"{out_dir / 'metadata.json'}: not an arc_trm ARC data folder (format {FORMAT})")
        try:
            table = datasets.load_from_disk(str(out_dir / "tasks"))
        except FileNotFoundError:
            raise DataError(f"{out_dir / 'tasks'}: missing; rebuild with python -m arc_trm.data.arc") from None
        rows = table.to_list()
        try:
            if [row["task_id"] for row in rows] != meta["task_ids"]:
                raise DataError(f"{out_dir}: tasks/ and metadata.json disagree on the tasks; rebuild the folder")
            tasks = [_task_from_row(row) for row in rows]
            distinct = [np.asarray(row["distinct_k"], dtype=np.int64) for row in rows]
            return cls(tasks, meta["held_out"], int(meta["num_aug"]), int(meta["seed"]), int(meta["canvas"]), distinct,
                       meta["skipped_tasks"], held_out_training=meta.get("held_out_training", []))
        except (KeyError, TypeError, ValueError) as error:  # a hand-edited metadata.json
            raise DataError(f"{out_dir / 'metadata.json'}: a field is missing or of the wrong type "
                            f"({type(error).__name__}: {error}); rebuild the folder") from None


def _grids(grids: Iterable[Grid | None]) -> list[list[list[int]]]:
    return [[] if g is None else grid_to_list(g) for g in grids]


def _task_row(task: Task, held_out: bool, distinct: np.ndarray) -> dict[str, Any]:
    return {
        "task_id": task.id,
        "held_out": held_out,
        "train_inputs": _grids(p.input for p in task.train),
        "train_outputs": _grids(p.output for p in task.train),
        "test_inputs": _grids(p.input for p in task.test),
        "test_outputs": _grids(p.output for p in task.test),  # [] = unknown
        "distinct_k": distinct.tolist(),
    }


def _task_from_row(row: dict[str, Any]) -> Task:
    def grid(obj: list) -> Grid | None:
        return np.array(obj, dtype=np.uint8) if obj else None

    train = tuple(Pair(grid(i), grid(o)) for i, o in zip(row["train_inputs"], row["train_outputs"]))
    test = tuple(Pair(grid(i), grid(o)) for i, o in zip(row["test_inputs"], row["test_outputs"]))
    return Task(row["task_id"], train, test)


# ------------------------------------------------------------------------------------ leak guard


def _pair_key(pair: Pair) -> str:
    digest = hashlib.sha256()
    for grid in (pair.input, pair.output):
        digest.update(np.asarray(grid.shape, dtype=np.int32).tobytes())
        digest.update(np.ascontiguousarray(grid).tobytes())
    return digest.hexdigest()


def _held_out_answers(held_out_tasks: Iterable[Task]) -> dict[str, str]:
    """Content hash of each held-out solved test pair -> `task id test[i]`."""
    return {
        _pair_key(pair): f"{task.id} test[{i}]"
        for task in held_out_tasks
        for i, pair in enumerate(task.test)
        if pair.output is not None
    }


def _leaks(train_tasks: list[Task], held_out_tasks: list[Task]) -> list[tuple[str, str]]:
    """(task id, why) for every trained-on task that shares an id or a solved pair with the held-out test pairs."""
    held_ids = {task.id for task in held_out_tasks}
    answers = _held_out_answers(held_out_tasks)
    leaks = []
    for task in train_tasks:
        if task.id in held_ids:
            leaks.append((task.id, "same id as a held-out task"))
            continue
        for pair in trained_pairs(task, held_out=False):
            if _pair_key(pair) in answers:
                leaks.append((task.id, f"holds the test pair of {answers[_pair_key(pair)]}"))
                break
    for task in held_out_tasks:  # their demos are trained on too
        for pair in task.train:
            if _pair_key(pair) in answers:
                leaks.append((task.id, f"demo equals the test pair of {answers[_pair_key(pair)]}"))
                break
    return leaks


def check_no_leak(train_tasks: list[Task], held_out_tasks: list[Task]) -> None:
    """Raise DataError if training would see a held-out answer.

    `train_tasks` are the tasks whose test pairs are trained on. A leak is such a task with the id of a
    held-out task, or any trained pair (input, output) equal, by content hash, to a held-out test pair.
    Pairs are compared one by one because whole-task hashes miss edited copies (ARC-AGI-2 training holds
    376 ARC-AGI-1 evaluation tasks, several with changed demos).
    """
    leaks = _leaks(train_tasks, held_out_tasks)
    if leaks:
        task_id, why = leaks[0]
        raise DataError(
            f"leak: {len(leaks)} trained-on task(s) would reveal held-out test answers, e.g. task {task_id} "
            f"({why}); train and evaluate on disjoint splits"
        )


def drop_leaked_pairs(train_tasks: list[Task], held_out_tasks: list[Task]) -> tuple[list[Task], list[str]]:
    """Remove from `train_tasks` every pair equal to a held-out test pair; also say which were removed."""
    answers = _held_out_answers(held_out_tasks)
    cleaned, dropped = [], []
    for task in train_tasks:
        kept = {"train": [], "test": []}
        for part, pairs in (("train", task.train), ("test", task.test)):
            for i, pair in enumerate(pairs):
                if pair.output is not None and _pair_key(pair) in answers:
                    dropped.append(f"{task.id} {part}[{i}] = {answers[_pair_key(pair)]}")
                else:
                    kept[part].append(pair)
        cleaned.append(Task(task.id, tuple(kept["train"]), tuple(kept["test"])))
    return cleaned, dropped


def hold_out_every_test(tasks: list[Task]) -> tuple[list[Task], list[str]]:
    """Every task's test pairs held out: drop each demo equal to a solved test pair of any task (its own
    or another's), so that the leak guard holds; also say which demos were dropped."""
    cleaned, dropped = drop_leaked_pairs([Task(t.id, t.train, ()) for t in tasks], tasks)
    cleaned = [Task(task.id, kept.train, task.test) for task, kept in zip(tasks, cleaned)]
    check_no_leak([], cleaned)
    return cleaned, dropped


# --------------------------------------------------------------------------------------------- presets


@dataclass
class PresetTasks:
    tasks: list[Task]  # trained-on (demos) tasks, in task-index order
    held_out: set[str]  # ids whose test pairs are held out
    dropped_pairs: list[str]  # training pairs removed because they equal a held-out test pair


def load_preset(preset: str, concept: str | Path | None = None) -> PresetTasks:
    """The preset's tasks (training split, evaluation split, ConceptARC), leak-cleaned and checked."""
    if preset not in PRESETS:
        raise ConfigError(f"unknown ARC preset '{preset}' (known: {', '.join(PRESETS)})")
    train_split, eval_split = PRESETS[preset]
    held_out_tasks = resolve(eval_split)
    trained = resolve(train_split) + (resolve(Path(concept)) if concept is not None else [])
    trained, dropped = drop_leaked_pairs(trained, held_out_tasks)
    for line in dropped:
        log.warning("dropped a training pair equal to a held-out test pair: %s", line)
    check_no_leak(trained, held_out_tasks)
    return PresetTasks(trained + held_out_tasks, {task.id for task in held_out_tasks}, dropped)


def arc_tasks(preset: str, concept: str | Path | None = None) -> tuple[list[Task], set[str]]:
    """`arc1`: ARC-AGI-1 training + evaluation, evaluation held out. `arc2`: ARC-AGI-2 training +
    evaluation, evaluation held out. ConceptARC (a Kaggle-format file) is added to training when given."""
    loaded = load_preset(preset, concept)
    return loaded.tasks, loaded.held_out


# ----------------------------------------------------------------------------------------------- build


def build(
    preset: str, out_dir: str | Path, num_aug: int = 1000, seed: int = 0, canvas: int = 30, concept: str | Path | None = None
) -> ArcSource:
    """Write the preset's base tasks (`tasks/`, an HF datasets folder) and `metadata.json` to `out_dir`."""
    loaded = load_preset(preset, concept)
    source = ArcSource.from_tasks(loaded.tasks, loaded.held_out, num_aug, seed, canvas, progress=True)
    source.save(out_dir, preset=preset, concept=None if concept is None else str(concept), dropped_pairs=loaded.dropped_pairs)
    return source


@exit_on_user_error
def main(argv: list[str] | None = None) -> None:
    parser = ArgumentParser(
        prog="python -m arc_trm.data.arc", description="Build an ARC training data folder (base tasks + metadata)."
    )
    parser.add_argument("--tasks", "--preset", dest="tasks", required=True, choices=sorted(PRESETS),
                        help="task set, as train's data.tasks (--preset, its first name, still works)")
    parser.add_argument("--out", required=True, type=nonempty_path, help="output folder")
    parser.add_argument("--num-aug", type=int, default=1000, help="augmented versions per task besides the identity")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--canvas", type=int, default=30, help="board side; tasks with larger grids are skipped")
    parser.add_argument("--concept", default=None, help="ConceptARC Kaggle-format challenges file to add to training")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    check_options(parser, args, {
        "--canvas": (1 <= args.canvas <= MAX_SIDE, f"in [1, {MAX_SIDE}]"), "--num-aug": (args.num_aug >= 0, ">= 0"),
        "--seed": (args.seed >= 0, ">= 0"),
    })
    refuse_output_on_input(args.out, {"the ConceptARC file": args.concept, "the bundled data": bundled_data_folder()})
    created = not Path(args.out).exists()
    ensure_folder(args.out)
    try:
        source = build(args.tasks, args.out, args.num_aug, args.seed, args.canvas, args.concept)
    except BaseException:
        if created:  # leave nothing behind that this command made
            shutil.rmtree(args.out, ignore_errors=True)
        raise
    meta = source.metadata()
    print(
        f"{args.out}: {meta['num_groups']} tasks ({len(source.held_out)} held out, {len(source.skipped)} skipped), "
        f"{meta['examples_per_epoch']} examples per epoch, {sum(meta['num_distinct_versions'])} distinct versions, "
        f"{meta['num_puzzle_ids']} puzzle ids"
    )


if __name__ == "__main__":
    main()
