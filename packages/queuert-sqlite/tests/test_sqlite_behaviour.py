"""The shared behaviour suites (client + worker) on a SQLite file, with and without a table prefix."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from queuert_conformance import StateHarness
from queuert_conformance.behaviour import *  # noqa: F403
from sqlite_harness import sqlite_harness


@pytest.fixture
async def queuert_state_harness(db_path: Path, table_prefix: str) -> AsyncIterator[StateHarness]:
    async with sqlite_harness(db_path, table_prefix) as harness:
        yield harness
