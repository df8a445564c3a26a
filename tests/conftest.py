"""Shared test fixtures: the real ARC/Sudoku files in ../shared/data (never copied into the project);
and `free_port` for tests that start process groups (`from conftest import free_port`)."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

SHARED_DATA = Path(os.environ.get("ARC_TRM_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.fail(f"shared data not found at {SHARED_DATA}; set ARC_TRM_SHARED_DATA")
    return SHARED_DATA


def free_port() -> int:
    """A TCP port nothing listens on now, for a process group's rendezvous."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
