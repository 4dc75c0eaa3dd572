"""pytest plugin of queuert-conformance (registered through the ``pytest11`` entry point).

It marks the suites' coroutine tests for pytest-asyncio, so a third party does not need
``asyncio_mode = "auto"``. Adapter authors provide the fixtures named in :mod:`queuert_conformance`.
"""

from __future__ import annotations

import inspect
from typing import Any

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "queuert_conformance: a case of the queuert conformance suites"
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        function = getattr(item, "function", None)
        if function is None or not getattr(function, "__module__", "").startswith(
            "queuert_conformance"
        ):
            continue
        item.add_marker(pytest.mark.queuert_conformance)
        if inspect.iscoroutinefunction(function) and item.get_closest_marker("asyncio") is None:
            item.add_marker(pytest.mark.asyncio)


@pytest.fixture
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
