"""Shared test fixtures: the real ARC/Sudoku files in ../shared/data (never copied into the project)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED_DATA = Path(os.environ.get("ARC_TRM_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.fail(f"shared data not found at {SHARED_DATA}; set ARC_TRM_SHARED_DATA")
    return SHARED_DATA

