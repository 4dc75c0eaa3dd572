"""Run a directory of suites on uvloop's event loop (fixtures included) instead of asyncio's.

pytest-asyncio asks the ``pytest_asyncio_loop_factories`` hook which loop factories the tests of a
directory run with. A ``conftest.py`` that imports it from here runs its directory on uvloop::

    from queuert_conformance.uvloop_loop import collect_ignore_glob, pytest_asyncio_loop_factories

uvloop does not exist on Windows, where ``collect_ignore_glob`` skips the directory's tests.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from typing import Any

import pytest

__all__ = ["collect_ignore_glob", "pytest_asyncio_loop_factories"]

collect_ignore_glob: list[str] = ["test_*.py"] if sys.platform == "win32" else []


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> Mapping[str, Callable[[], Any]]:
    import uvloop

    return {"uvloop": uvloop.new_event_loop}
