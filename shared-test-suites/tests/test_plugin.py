"""The plugin works for a third party: a plain test directory with only the state fixture, in
pytest-asyncio's strict mode (no ``asyncio_mode = "auto"`` needed)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

THIRD_PARTY_TESTS = textwrap.dedent(
    """
    from collections.abc import AsyncIterator

    import pytest_asyncio

    from queuert import InMemoryStateAdapter
    from queuert_conformance import StateHarness
    from queuert_conformance.behaviour import *  # noqa: F403
    from queuert_conformance.state import *  # noqa: F403


    @pytest_asyncio.fixture
    async def queuert_state_harness() -> AsyncIterator[StateHarness]:
        adapter = InMemoryStateAdapter()
        yield StateHarness(adapter=adapter, poison=adapter.poison)
        await adapter.close()
    """
)


def test_suites_run_in_a_third_party_directory_in_strict_mode(tmp_path: Path) -> None:
    (tmp_path / "test_my_adapter.py").write_text(THIRD_PARTY_TESTS)
    (tmp_path / "pytest.ini").write_text("[pytest]\nasyncio_mode = strict\n")
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-k",
            "TestPatterns or TestCreate",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert " passed" in completed.stdout and "error" not in completed.stdout.lower()
