"""pytest plugin of queuert-conformance (registered through the ``pytest11`` entry point).

It marks the suites' coroutine tests for pytest-asyncio, so a third party does not need
``asyncio_mode = "auto"``. Adapter authors provide the fixtures named in :mod:`queuert_conformance`.
"""

from __future__ import annotations

import inspect
from typing import Any

import pytest
import pytest_asyncio


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "queuert_conformance: a case of the queuert conformance suites"
    )


@pytest.hookimpl(tryfirst=True)
def pytest_pycollect_makeitem(collector: pytest.Collector, name: str, obj: object) -> None:
    """Mark the suites' coroutine tests before pytest-asyncio looks at them (strict mode too)."""
    module = getattr(obj, "__module__", "") or ""
    if not module.startswith("queuert_conformance") or not inspect.iscoroutinefunction(obj):
        return
    marks = getattr(obj, "pytestmark", [])
    if not any(getattr(mark, "name", None) == "asyncio" for mark in marks):
        pytest.mark.asyncio(obj)
    if not any(getattr(mark, "name", None) == "queuert_conformance" for mark in marks):
        pytest.mark.queuert_conformance(obj)


@pytest_asyncio.fixture
async def queuert_notify_factory() -> Any:
    """Default notify adapter of the behaviour suites: one in-process adapter shared by the test.

    Override this fixture to run the behaviour suites with another notify adapter: it must return an
    async function that returns a notify adapter (a new connection each call for cross-process
    adapters); the suites do not close what it returns, so close it in the fixture's teardown.
    """
    from queuert.in_memory.notify import InProcessNotifyAdapter

    adapter = InProcessNotifyAdapter()

    async def factory() -> InProcessNotifyAdapter:
        return adapter

    yield factory
    await adapter.close()
