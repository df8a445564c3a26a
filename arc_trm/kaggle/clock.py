"""The Kaggle flow's clock: the time budget, and the time spent per phase for the summary. Its own module
because the flow (`arc_trm.kaggle.flow`) and the runners (`arc_trm.kaggle.runners`, which kill a launch that
outlives it) both read it."""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator


@dataclass
class Clock:
    """The time budget, and the time spent per phase for the summary."""

    budget_s: float
    start: float = field(default_factory=time.monotonic)
    phases: dict[str, float] = field(default_factory=dict)

    def remaining(self) -> float:
        return self.budget_s - (time.monotonic() - self.start)

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        begin = time.monotonic()
        try:
            yield
        finally:
            self.phases[name] = self.phases.get(name, 0.0) + time.monotonic() - begin
