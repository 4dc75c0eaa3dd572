"""The notify adapter conformance suite.

An adapter author provides one fixture and imports every case class::

    # tests/conftest.py
    import pytest
    from queuert_conformance import NotifyHarness

    @pytest.fixture
    async def queuert_notify_harness():
        adapter = MyNotifyAdapter(url, prefix=unique_prefix())
        yield NotifyHarness(
            adapter=adapter,
            open_another=lambda: make_another_adapter_with_the_same_prefix(),
            interrupt=drop_the_adapters_connections,
        )
        await adapter.close()

    # tests/test_notify_conformance.py
    from queuert_conformance.notify import *  # noqa: F403

The harness says what applies (see :class:`~queuert_conformance.NotifyHarness`): ``delivers=False`` for
an adapter that never calls listeners, ``wake_hint_budgets=False`` for one without a counter. Cases
that need a hook the harness does not offer (``open_another``, ``interrupt``) are skipped with the
reason; the adapters of ``queuert`` itself offer both. The fixture must give every
test its own namespace (channel or subject prefix) when test runs share a server; cases also use fresh
random keys.

Coroutine cases are marked for pytest-asyncio by the ``queuert_conformance`` plugin; an async fixture in
pytest-asyncio's strict mode needs ``@pytest_asyncio.fixture``.
"""

from queuert_conformance.notify_suite.delivery import TestDelivery, TestJobScheduledTypes
from queuert_conformance.notify_suite.fan_out import TestFanOut
from queuert_conformance.notify_suite.fault_isolation import TestFaultIsolation
from queuert_conformance.notify_suite.lifecycle import TestClose
from queuert_conformance.notify_suite.recovery import TestRecovery
from queuert_conformance.notify_suite.subscriptions import TestSubscriptions
from queuert_conformance.notify_suite.timeliness import TestTimeliness
from queuert_conformance.notify_suite.wake_hints import TestWakeHints

__all__ = [
    "TestClose",
    "TestDelivery",
    "TestFanOut",
    "TestFaultIsolation",
    "TestJobScheduledTypes",
    "TestRecovery",
    "TestSubscriptions",
    "TestTimeliness",
    "TestWakeHints",
]
