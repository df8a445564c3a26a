"""Two-attempt submissions in the Kaggle ARC Prize format, always complete and valid.

    submission = fallback_submission(tasks)                       # every task answered by the fallback
    submission.update(attempts_from_rankings(vote(table), done))   # overwrite the tasks that were predicted
    write_submission(submission, "submission.json", tasks)         # validates, then writes atomically

Format: `{task_id: [{"attempt_1": grid, "attempt_2": grid}, ...]}` with one entry per test input, in
test-input order, a grid being a list of lists of ints 0..9. Every task of the challenges is present.

Attempts for one test input are the first two *distinct* valid grids of: the ranked grids (best
first), then the fallback guesses, then `[[0]]` and `[[1]]` (so two distinct attempts always exist).
The default fallback (`fallback_guesses`) is, in order:

1. the test input itself: identity, or a light edit of the input, is a common ARC answer, and the
   input's shape is right whenever the demos keep their shape;
2. a blank grid of the expected output shape (the test input's shape when every demo output has its
   input's shape, otherwise the most common demo output shape) filled with the most frequent colour
   of the demo outputs (usually the background).
"""

from __future__ import annotations

import os
from collections import Counter
from itertools import chain
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from arc_trm.candidates import grid_key
from arc_trm.grids import Grid, Task, grid_problem, grid_to_list
from arc_trm.io import atomic_write_json
from arc_trm.vote import Ranked, Rankings

Fallback = Callable[[Task, int], Sequence[Grid]]
Entry = dict[str, list[list[int]]]
"""One test input's answer: `{"attempt_1": grid, "attempt_2": grid}`."""
Submission = dict[str, list[Entry]]
"""Task id -> its entries, one per test input in order."""
ATTEMPTS = ("attempt_1", "attempt_2")
# Always distinct from each other, so a second attempt exists even when every guess coincides.
LAST_RESORT = (np.zeros((1, 1), dtype=np.uint8), np.ones((1, 1), dtype=np.uint8))


def fallback_guesses(task: Task, test_index: int) -> list[Grid]:
    """Guesses for a test input without (enough) predictions: the input, then a blank grid of the
    expected shape in the demo outputs' most frequent colour (see the module docstring)."""
    test_input = task.test[test_index].input
    outputs = [pair.output for pair in task.train]
    if all(pair.output.shape == pair.input.shape for pair in task.train):
        shape = test_input.shape
    else:
        shape = Counter(output.shape for output in outputs).most_common(1)[0][0]
    counts = np.bincount(np.concatenate([output.ravel() for output in outputs]), minlength=10)
    return [test_input, np.full(shape, int(np.argmax(counts)), dtype=np.uint8)]


def two_attempts(ranked: Iterable[Ranked], guesses: Iterable[Grid]) -> Entry:
    """`{"attempt_1", "attempt_2"}`: the first two distinct valid grids of ranked, guesses, LAST_RESORT."""
    chosen: dict[bytes, list[list[int]]] = {}
    for grid in chain((r.grid for r in ranked), guesses, LAST_RESORT):
        as_list = grid_to_list(grid)
        if grid_problem(as_list) is None:  # never emit an invalid grid, whatever the decoder produced
            chosen.setdefault(grid_key(grid), as_list)
        if len(chosen) == 2:
            break
    return dict(zip(ATTEMPTS, chosen.values()))


def attempts_from_rankings(rankings: Rankings, tasks: Sequence[Task], fallback: Fallback = fallback_guesses) -> Submission:
    """The submission entries of `tasks`: every task, every test input in order, two distinct attempts.

    A test input missing from `rankings` (or with one ranked grid) is completed by `fallback(task, i)`.
    """
    return {
        task.id: [two_attempts(rankings.get((task.id, i), ()), fallback(task, i)) for i in range(len(task.test))]
        for task in tasks
    }


def fallback_submission(tasks: Sequence[Task]) -> Submission:
    """Every task answered by the fallback: the always-valid start that predictions overwrite."""
    return attempts_from_rankings({}, tasks)


def validate_submission(submission: Any, tasks: Sequence[Task]) -> list[str]:
    """Problems with `submission` for these tasks, one line each; an empty list means valid."""
    if not isinstance(submission, dict):
        return ["submission must be an object mapping task id -> list of test-input entries"]
    known = {task.id for task in tasks}
    problems = [f"task {task_id}: not in the challenges" for task_id in submission if task_id not in known]
    for task in tasks:
        if task.id not in submission:
            problems.append(f"task {task.id}: missing")
            continue
        entries = submission[task.id]
        if not isinstance(entries, list):
            problems.append(f"task {task.id}: expected a list of entries, one per test input")
            continue
        if len(entries) != len(task.test):
            problems.append(f"task {task.id}: {len(entries)} entries for {len(task.test)} test inputs")
        for i, entry in enumerate(entries):
            problems.extend(f"task {task.id} test {i}: {p}" for p in _entry_problems(entry))
    return problems


def _entry_problems(entry: Any) -> list[str]:
    if not isinstance(entry, dict):
        return ["entry must be an object with attempt_1 and attempt_2"]
    problems = []
    for name in ATTEMPTS:
        if name not in entry:
            problems.append(f"{name} missing")
        elif (problem := grid_problem(entry[name])) is not None:
            problems.append(f"{name}: {problem}")
    return problems


def write_submission(submission: dict, path: str | os.PathLike, tasks: Sequence[Task]) -> Path:
    """Validate, then write `submission` atomically as JSON.

    An invalid submission is a programming error (everything here builds valid ones): ValueError.
    """
    problems = validate_submission(submission, tasks)
    if problems:
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        raise ValueError(f"refusing to write an invalid submission: {'; '.join(problems[:3])}{more}")
    return atomic_write_json(path, submission)
