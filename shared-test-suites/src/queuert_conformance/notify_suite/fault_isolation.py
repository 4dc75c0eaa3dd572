"""A callback that raises hurts nobody: not the publisher, not its sibling listeners, not later messages."""

from __future__ import annotations

import logging

import pytest

from queuert_conformance.harness import NotifyHarness
from queuert_conformance.notify_suite._support import (
    Recorder,
    Topic,
    by_topic,
    expect_exactly,
    unique,
)

__all__ = ["TestFaultIsolation"]


class ListenerBoomError(RuntimeError):
    """What the misbehaving listener raises."""


@by_topic
class TestFaultIsolation:
    async def test_a_throwing_callback_is_isolated_and_logged(
        self,
        queuert_notify_harness: NotifyHarness,
        topic: Topic,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        harness = queuert_notify_harness
        adapter = harness.adapter
        key = unique("key")
        thrown: list[str] = []

        def explode(called_with: str) -> None:
            thrown.append(called_with)
            raise ListenerBoomError(f"listener for {called_with} failed on purpose")

        before, after = Recorder(), Recorder()
        caplog.set_level(logging.ERROR)
        await topic.listen(adapter, key, before)
        await topic.listen(adapter, key, explode)
        await topic.listen(adapter, key, after)

        await topic.notify(adapter, key)  # must not raise
        await topic.notify(adapter, key)  # and the adapter keeps delivering afterwards

        await expect_exactly(harness, topic, before, [key, key], adapter)
        await expect_exactly(harness, topic, after, [key, key], adapter)
        if harness.delivers:
            assert thrown == [key, key]
            logged = [
                record
                for record in caplog.records
                if record.exc_info is not None and isinstance(record.exc_info[1], ListenerBoomError)
            ]
            assert logged, "the listener's exception was not logged with its traceback"
        else:
            assert thrown == []
