"""Fan-out: one message reaches every listener, on this connection and on others."""

from __future__ import annotations

from queuert_conformance.harness import NotifyHarness
from queuert_conformance.notify_suite._support import (
    Recorder,
    Topic,
    by_topic,
    expect_exactly,
    open_another,
    unique,
)

__all__ = ["TestFanOut"]


@by_topic
class TestFanOut:
    async def test_many_listeners_on_one_connection(
        self, queuert_notify_harness: NotifyHarness, topic: Topic
    ) -> None:
        harness = queuert_notify_harness
        adapter = harness.adapter
        keys = [unique("key") for _ in range(3)]
        recorders = {key: [Recorder() for _ in range(4)] for key in keys}
        for key, listeners in recorders.items():
            for recorder in listeners:
                await topic.listen(adapter, key, recorder)

        for key in keys:
            await topic.notify(adapter, key)
        await topic.notify(adapter, keys[0])

        for key, listeners in recorders.items():
            expected = [key, key] if key == keys[0] else [key]
            for recorder in listeners:
                await expect_exactly(harness, topic, recorder, expected, adapter)

    async def test_listeners_on_other_connections_receive(
        self, queuert_notify_harness: NotifyHarness, topic: Topic
    ) -> None:
        harness = queuert_notify_harness
        adapter = harness.adapter
        key = unique("key")
        async with open_another(harness) as other:
            here, there, elsewhere = Recorder(), Recorder(), Recorder()
            await topic.listen(adapter, key, here)
            await topic.listen(other, key, there)
            await topic.listen(other, unique("other"), elsewhere)

            await topic.notify(adapter, key)
            await expect_exactly(harness, topic, there, [key], other, adapter)
            await topic.notify(other, key)

            await expect_exactly(harness, topic, here, [key, key], adapter, other)
            await expect_exactly(harness, topic, there, [key, key], other)
            assert elsewhere.calls == []

    async def test_several_connections_listen_to_one_publisher(
        self, queuert_notify_harness: NotifyHarness, topic: Topic
    ) -> None:
        harness = queuert_notify_harness
        adapter = harness.adapter
        key = unique("key")
        async with open_another(harness) as first, open_another(harness) as second:
            on_first, on_second = Recorder(), Recorder()
            await topic.listen(first, key, on_first)
            await topic.listen(second, key, on_second)

            for _ in range(3):
                await topic.notify(adapter, key)

            await expect_exactly(harness, topic, on_first, [key] * 3, first, adapter)
            await expect_exactly(harness, topic, on_second, [key] * 3, second, adapter)
