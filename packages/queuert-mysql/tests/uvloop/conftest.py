"""Every test in this directory runs on uvloop's event loop (fixtures included) instead of asyncio's.

pytest-asyncio asks this hook which loop factories the tests here run with; uvloop does not exist on
Windows, where the directory is skipped.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from typing import Any

import pytest

if sys.platform == "win32":  # pragma: no cover - uvloop supports POSIX only
    collect_ignore_glob = ["test_*.py"]


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> Mapping[str, Callable[[], Any]]:
    import uvloop

    return {"uvloop": uvloop.new_event_loop}
