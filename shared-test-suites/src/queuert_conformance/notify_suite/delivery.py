"""Delivery on each topic: the right listener gets the right messages, and only those."""

from __future__ import annotations

import inspect

from queuert_conformance.harness import NotifyHarness
from queuert_conformance.notify_suite._support import (
    JOB_SCHEDULED,
    Recorder,
    Topic,
    barrier,
    by_topic,
    expect_exactly,
    unique,
)

__all__ = ["TestDelivery", "TestJobScheduledTypes"]


@by_topic
class TestDelivery:
    async def test_matching_key_reaches_the_listener(
        self, queuert_notify_harness: NotifyHarness, topic: Topic
    ) -> None:
        harness = queuert_notify_harness
        adapter = harness.adapter
        key = unique("key")
        recorder = Recorder()
        await topic.listen(adapter, key, recorder)

        await topic.notify(adapter, key)

        await expect_exactly(harness, topic, recorder, [key], adapter)

    async def test_several_notifications_all_arrive(
        self, queuert_notify_harness: NotifyHarness, topic: Topic
    ) -> None:
        harness = queuert_notify_harness
        adapter = harness.adapter
        key = unique("key")
        recorder = Recorder()
        await topic.listen(adapter, key, recorder)

        for _ in range(5):
            await topic.notify(adapter, key)

        await expect_exactly(harness, topic, recorder, [key] * 5, adapter)

    async def test_other_keys_are_ignored(
        self, queuert_notify_harness: NotifyHarness, topic: Topic
    ) -> None:
        harness = queuert_notify_harness
        adapter = harness.adapter
        key = unique("key")
        recorder = Recorder()
        await topic.listen(adapter, key, recorder)

        await topic.notify(adapter, unique("other"))
        await topic.notify(adapter, key + "-suffix")
        await topic.notify(adapter, key[:-1])
        await barrier(harness, topic, adapter)

        assert recorder.calls == []

    async def test_two_listeners_on_one_key_both_receive(
        self, queuert_notify_harness: NotifyHarness, topic: Topic
    ) -> None:
        harness = queuert_notify_harness
        adapter = harness.adapter
        key = unique("key")
        first, second = Recorder(), Recorder()
        await topic.listen(adapter, key, first)
        await topic.listen(adapter, key, second)

        await topic.notify(adapter, key)

        await expect_exactly(harness, topic, first, [key], adapter)
        await expect_exactly(harness, topic, second, [key], adapter)

    async def test_publishing_without_listeners_succeeds(
        self, queuert_notify_harness: NotifyHarness, topic: Topic
    ) -> None:
        harness = queuert_notify_harness
        adapter = harness.adapter
        key = unique("nobody")

        await topic.notify(adapter, key)
        await topic.notify(adapter, key)

        # A listener that arrives afterwards is not handed old messages.
        recorder = Recorder()
        await topic.listen(adapter, key, recorder)
        await barrier(harness, topic, adapter)
        assert recorder.calls == []

    async def test_listen_returns_an_async_unsubscribe(
        self, queuert_notify_harness: NotifyHarness, topic: Topic
    ) -> None:
        adapter = queuert_notify_harness.adapter
        unsubscribe = await topic.listen(adapter, unique("key"), Recorder())

        assert callable(unsubscribe)
        result = unsubscribe()
        assert inspect.isawaitable(result)
        await result


class TestJobScheduledTypes:
    """Job-scheduled listeners watch a set of types and learn which one a message is for."""

    async def test_multi_type_listener_gets_each_matching_type(
        self, queuert_notify_harness: NotifyHarness
    ) -> None:
        harness = queuert_notify_harness
        adapter = harness.adapter
        first, second, third = unique("type-a"), unique("type-b"), unique("type-c")
        recorder = Recorder()
        await adapter.listen_job_scheduled([first, second], recorder)

        await adapter.notify_job_scheduled(first)
        await adapter.notify_job_scheduled(third)
        await adapter.notify_job_scheduled(second)
        await adapter.notify_job_scheduled(first)

        await expect_exactly(harness, JOB_SCHEDULED, recorder, [first, second, first], adapter)

    async def test_a_type_listed_twice_is_delivered_once_per_message(
        self, queuert_notify_harness: NotifyHarness
    ) -> None:
        harness = queuert_notify_harness
        adapter = harness.adapter
        type_name = unique("type")
        recorder = Recorder()
        await adapter.listen_job_scheduled([type_name, type_name], recorder)

        await adapter.notify_job_scheduled(type_name)

        await expect_exactly(harness, JOB_SCHEDULED, recorder, [type_name], adapter)

    async def test_listeners_of_different_types_are_kept_apart(
        self, queuert_notify_harness: NotifyHarness
    ) -> None:
        harness = queuert_notify_harness
        adapter = harness.adapter
        first, second = unique("type-a"), unique("type-b")
        on_first, on_second, on_both = Recorder(), Recorder(), Recorder()
        await adapter.listen_job_scheduled([first], on_first)
        await adapter.listen_job_scheduled([second], on_second)
        await adapter.listen_job_scheduled([second, first], on_both)

        await adapter.notify_job_scheduled(second)
        await adapter.notify_job_scheduled(second)
        await adapter.notify_job_scheduled(first)

        await expect_exactly(harness, JOB_SCHEDULED, on_first, [first], adapter)
        await expect_exactly(harness, JOB_SCHEDULED, on_second, [second, second], adapter)
        await expect_exactly(harness, JOB_SCHEDULED, on_both, [second, second, first], adapter)
