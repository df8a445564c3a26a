"""What each answer in the Kaggle flow's --out rests on (`python -m submissions.make`), so that a re-run
only ever improves the file.

Beside OUT lies OUT.provenance.json (written atomically after OUT):

    {"format": 1, "tasks": {TASK_ID: {"task": HASH, "answers": [
        {"source": "fallback" | "predicted" | "finetuned", "weights": HASH | null, "answer": HASH}, ...]}}}

one record per test input, in test-input order: `predicted` is a prediction of the original
checkpoint, `finetuned` one of the model fine-tuned on the tasks; `weights` is a hash of the
predicting model's weights file, `answer` a hash of the entry the record describes and `task` a
hash of the task.

A run starts from what OUT holds (`Answers.start`) and replaces an entry only with a better-founded
one (`Answers.offer`: a higher RANK). A record that does not describe OUT's entry (provenance file
lost, damaged or older than OUT) is inferred: an entry equal to the fallback is `fallback`, any other
is `unknown`, which only a fine-tuned prediction replaces. A task whose recorded hash differs (the
challenges changed under the same id) starts from its fallback.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import orjson

from arc_trm.errors import DataError
from arc_trm.grids import Task, kaggle_challenges
from arc_trm.io import atomic_write_json, read_json
from arc_trm.kaggle.submission import Entry, Submission, fallback_submission, validate_submission

log = logging.getLogger("submissions.make")  # the command's logger: these lines are the command's

FORMAT = 1
RANK = {"fallback": 0, "predicted": 1, "unknown": 1, "finetuned": 2}
"""How well founded an answer is; an entry is replaced only by one of a higher rank. An answer of
unknown origin ranks with an original-model prediction: only a fine-tuned prediction replaces it."""


def digest(obj: Any) -> str:
    """Short stable hash of a JSON-able object."""
    return hashlib.sha256(orjson.dumps(obj, option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]


def provenance_path(out: Path) -> Path:
    return out.with_name(f"{out.name}.provenance.json")


def task_digest(task: Task) -> str:
    return digest(kaggle_challenges([task]))


@dataclass
class Answers:
    """The submission as it stands in --out, with each entry's record; `changed` holds the tasks this
    run answered anew."""

    tasks: Sequence[Task]
    entries: Submission
    records: dict[str, list[dict[str, Any]]]
    changed: set[str] = field(default_factory=set)

    @classmethod
    def fallback(cls, tasks: Sequence[Task]) -> Answers:
        entries = fallback_submission(tasks)
        records = {t.id: [record("fallback", None, e) for e in entries[t.id]] for t in tasks}
        return cls(tasks, entries, records)

    @classmethod
    def start(cls, tasks: Sequence[Task], out: Path, note: Callable[[str], None]) -> Answers:
        """The fallback, overlaid with every task's entries from an existing `out` that are valid for
        that task (tasks of `out` not in the challenges are dropped)."""
        answers = cls.fallback(tasks)
        earlier = read_earlier(out, note)
        if not earlier:
            return answers
        recorded = read_records(provenance_path(out))
        kept = 0
        for task in tasks:
            entries = earlier.get(task.id)
            if validate_submission({task.id: entries}, [task]):
                continue
            known = recorded.get(task.id)
            if isinstance(known, dict) and known.get("task") not in (None, task_digest(task)):
                continue  # the same id, another task: its earlier answers answer something else
            answers.adopt(task.id, entries, known.get("answers") if isinstance(known, dict) else None)
            kept += any(r["source"] != "fallback" for r in answers.records[task.id])
        if kept:
            log.info(f"{kept} task(s) keep the answers {out} already holds")
        return answers

    def adopt(self, task_id: str, entries: list[Entry], recorded: Any) -> None:
        fallback = self.entries[task_id]
        records = recorded if isinstance(recorded, list) and len(recorded) == len(entries) else [None] * len(entries)
        self.entries[task_id] = entries
        self.records[task_id] = [
            describe(entry, given, entry == fallback[i]) for i, (entry, given) in enumerate(zip(entries, records))
        ]

    def source(self, task_id: str) -> str:
        """The task's best-founded entry's source: what the summary counts it as."""
        return max((r["source"] for r in self.records[task_id]), key=RANK.__getitem__)

    def wants(self, task_id: str, source: str) -> bool:
        """Whether a prediction from `source` could replace any of the task's entries."""
        return any(RANK[source] > RANK[r["source"]] for r in self.records[task_id])

    def better(self, task_id: str, entries: Any, founded: set[int], source: str) -> list[int]:
        """Test indices where `entries` (a prediction from `source`, predicted at `founded`) rank above
        what the file holds; none when `entries` is not a valid answer to the task."""
        if validate_submission({task_id: entries}, [self.task(task_id)]):
            return []
        return [i for i in sorted(founded) if i < len(entries) and RANK[source] > RANK[self.records[task_id][i]["source"]]]

    def merged(self, task_id: str, entries: list[Entry], indices: list[int]) -> list[Entry]:
        return [entries[i] if i in indices else old for i, old in enumerate(self.entries[task_id])]

    def take(self, task_id: str, entries: list[Entry], indices: list[int], source: str, weights: str) -> None:
        """Record `entries` at `indices` as written to the file (call after the write succeeded)."""
        self.entries[task_id] = self.merged(task_id, entries, indices)
        for i in indices:
            self.records[task_id][i] = record(source, weights, entries[i])
        self.changed.add(task_id)

    def task(self, task_id: str) -> Task:
        return next(task for task in self.tasks if task.id == task_id)

    def save_records(self, out: Path) -> None:
        """Write the provenance beside `out` (after `out` itself: a record it lacks is inferred)."""
        tasks = {t.id: {"task": task_digest(t), "answers": self.records[t.id]} for t in self.tasks}
        try:
            atomic_write_json(provenance_path(out), {"format": FORMAT, "tasks": tasks})
        except OSError as error:  # the submission itself is written; a re-run infers the records
            log.warning(f"cannot write {provenance_path(out)} ({error.strerror or error})")


def record(source: str, weights: str | None, entry: Entry) -> dict[str, Any]:
    return {"source": source, "weights": weights, "answer": digest(entry)}


def describe(entry: Entry, given: Any, looks_like_fallback: bool) -> dict[str, Any]:
    """`given` when it is a record of exactly this entry, otherwise the conservative inference."""
    if isinstance(given, dict) and given.get("source") in RANK and given.get("answer") == digest(entry):
        return record(given["source"], given.get("weights"), entry)
    return record("fallback" if looks_like_fallback else "unknown", None, entry)


def read_earlier(out: Path, note: Callable[[str], None]) -> dict[str, Any]:
    """What `out` holds, or {} (with a note when it exists but cannot be read as a submission)."""
    if not out.exists():
        return {}
    try:
        earlier = read_json(out)
    except DataError as error:
        note(f"{out} was not reused ({error}).")
        return {}
    if not isinstance(earlier, dict):
        note(f"{out} was not reused (not a submission object).")
        return {}
    return earlier


def read_records(path: Path) -> dict[str, Any]:
    """The provenance file's records by task, or {} when it is missing or unreadable (then inferred)."""
    try:
        stored = read_json(path) if path.exists() else {}
    except DataError as error:
        log.warning(f"provenance not read ({error}); the earlier answers' sources are inferred")
        return {}
    if not isinstance(stored, dict) or stored.get("format") != FORMAT or not isinstance(stored.get("tasks"), dict):
        return {}
    return stored["tasks"]
