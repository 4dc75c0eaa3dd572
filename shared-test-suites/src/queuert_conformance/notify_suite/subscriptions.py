"""Unsubscribing: it stops exactly one listener, can be repeated, and subscribing again works."""

from __future__ import annotations

from queuert_conformance.harness import NotifyHarness
from queuert_conformance.notify_suite._support import (
    Recorder,
    Topic,
    barrier,
    by_topic,
    expect_exactly,
    unique,
)

__all__ = ["TestSubscriptions"]


@by_topic
class TestSubscriptions:
    async def test_unsubscribe_stops_delivery(
        self, queuert_notify_harness: NotifyHarness, topic: Topic
    ) -> None:
        harness = queuert_notify_harness
        adapter = harness.adapter
        key = unique("key")
        recorder = Recorder()
        unsubscribe = await topic.listen(adapter, key, recorder)
        await topic.notify(adapter, key)
        await expect_exactly(harness, topic, recorder, [key], adapter)

        await unsubscribe()
        await topic.notify(adapter, key)
        await barrier(harness, topic, adapter)

        assert recorder.calls == ([key] if harness.delivers else [])

    async def test_unsubscribing_one_listener_keeps_the_other(
        self, queuert_notify_harness: NotifyHarness, topic: Topic
    ) -> None:
        harness = queuert_notify_harness
        adapter = harness.adapter
        key = unique("key")
        leaving, staying = Recorder(), Recorder()
        unsubscribe = await topic.listen(adapter, key, leaving)
        await topic.listen(adapter, key, staying)

        await unsubscribe()
        await topic.notify(adapter, key)

        await expect_exactly(harness, topic, staying, [key], adapter)
        assert leaving.calls == []

    async def test_unsubscribe_is_idempotent(
        self, queuert_notify_harness: NotifyHarness, topic: Topic
    ) -> None:
        harness = queuert_notify_harness
        adapter = harness.adapter
        key = unique("key")
        gone, other = Recorder(), Recorder()
        unsubscribe = await topic.listen(adapter, key, gone)
        await topic.listen(adapter, key, other)

        await unsubscribe()
        await unsubscribe()
        await unsubscribe()
        await topic.notify(adapter, key)

        # Repeated calls removed nothing but the one listener.
        await expect_exactly(harness, topic, other, [key], adapter)
        assert gone.calls == []

    async def test_subscribing_again_after_unsubscribe_works(
        self, queuert_notify_harness: NotifyHarness, topic: Topic
    ) -> None:
        harness = queuert_notify_harness
        adapter = harness.adapter
        key = unique("key")
        first = Recorder()
        unsubscribe = await topic.listen(adapter, key, first)
        await unsubscribe()

        second = Recorder()
        await topic.listen(adapter, key, second)
        await topic.notify(adapter, key)

        await expect_exactly(harness, topic, second, [key], adapter)
        assert first.calls == []

    async def test_a_new_key_after_the_last_listener_left(
        self, queuert_notify_harness: NotifyHarness, topic: Topic
    ) -> None:
        # An adapter that tears its subscription down when the last local listener leaves must set it up
        # again for the next one.
        harness = queuert_notify_harness
        adapter = harness.adapter
        for round_number in range(3):
            key = unique(f"round{round_number}")
            recorder = Recorder()
            unsubscribe = await topic.listen(adapter, key, recorder)
            await topic.notify(adapter, key)
            await expect_exactly(harness, topic, recorder, [key], adapter)
            await unsubscribe()
