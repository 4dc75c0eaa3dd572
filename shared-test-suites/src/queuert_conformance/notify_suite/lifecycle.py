"""Closing: idempotent, every later call fails clearly, old unsubscribe functions stay harmless."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from queuert.errors import NotifyAdapterClosedError
from queuert.notify import NotifyAdapter

from queuert_conformance.harness import NotifyHarness
from queuert_conformance.notify_suite._support import (
    TOPICS,
    Recorder,
    barrier,
    expect_exactly,
    open_another,
    unique,
)

__all__ = ["TestClose"]


METHODS = (
    "notify_job_scheduled",
    "listen_job_scheduled",
    "provide_wake_hint",
    "consume_wake_hint",
    "notify_chain_closed",
    "listen_chain_closed",
    "notify_job_ownership_lost",
    "listen_job_ownership_lost",
)


def _calls(adapter: NotifyAdapter) -> dict[str, Callable[[], Awaitable[Any]]]:
    def ignore(*_args: object) -> None:
        return None

    return {
        "notify_job_scheduled": lambda: adapter.notify_job_scheduled("t"),
        "listen_job_scheduled": lambda: adapter.listen_job_scheduled(["t"], ignore),
        "provide_wake_hint": lambda: adapter.provide_wake_hint("t", 1),
        "consume_wake_hint": lambda: adapter.consume_wake_hint("t"),
        "notify_chain_closed": lambda: adapter.notify_chain_closed("c"),
        "listen_chain_closed": lambda: adapter.listen_chain_closed("c", ignore),
        "notify_job_ownership_lost": lambda: adapter.notify_job_ownership_lost("j"),
        "listen_job_ownership_lost": lambda: adapter.listen_job_ownership_lost("j", ignore),
    }


class TestClose:
    async def test_close_is_idempotent(self, queuert_notify_harness: NotifyHarness) -> None:
        adapter = queuert_notify_harness.adapter
        await adapter.listen_job_scheduled([unique("type")], Recorder())

        await adapter.close()
        await adapter.close()

    async def test_close_of_an_unused_adapter(self, queuert_notify_harness: NotifyHarness) -> None:
        await queuert_notify_harness.adapter.close()

    async def test_async_with_closes_the_adapter(
        self, queuert_notify_harness: NotifyHarness
    ) -> None:
        """``async with adapter as same: ...`` yields the adapter and closes it when the block
        ends, also when the block raises."""
        adapter = queuert_notify_harness.adapter
        with pytest.raises(LookupError):
            async with adapter as entered:
                assert entered is adapter
                await entered.listen_job_scheduled([unique("type")], Recorder())
                raise LookupError("the block fails")
        for method in METHODS:
            with pytest.raises(NotifyAdapterClosedError):
                await _calls(adapter)[method]()

    @pytest.mark.parametrize("method", METHODS)
    async def test_calls_after_close_raise(
        self, queuert_notify_harness: NotifyHarness, method: str
    ) -> None:
        adapter = queuert_notify_harness.adapter
        await adapter.listen_chain_closed(unique("chain"), Recorder().bind("c"))
        await adapter.close()

        with pytest.raises(NotifyAdapterClosedError):
            await _calls(adapter)[method]()

    async def test_unsubscribe_functions_stay_safe_after_close(
        self, queuert_notify_harness: NotifyHarness
    ) -> None:
        adapter = queuert_notify_harness.adapter
        unsubscribes = [await topic.listen(adapter, unique("key"), Recorder()) for topic in TOPICS]
        await unsubscribes[0]()

        await adapter.close()

        for unsubscribe in unsubscribes:
            await unsubscribe()
            await unsubscribe()

    async def test_a_closed_adapter_calls_no_listener(
        self, queuert_notify_harness: NotifyHarness
    ) -> None:
        harness = queuert_notify_harness
        adapter = harness.adapter
        async with open_another(harness) as other:
            recorders = {topic: Recorder() for topic in TOPICS}
            keys = {topic: unique("key") for topic in TOPICS}
            for topic, recorder in recorders.items():
                await topic.listen(adapter, keys[topic], recorder)
            await adapter.close()

            for topic, recorder in recorders.items():
                await topic.notify(other, keys[topic])
                await barrier(harness, topic, other)
                assert recorder.calls == []

    async def test_a_normal_cycle_leaves_no_unhandled_errors(
        self, queuert_notify_harness: NotifyHarness
    ) -> None:
        # Nothing may reach the event loop's exception handler: no failed task nobody awaited, no
        # exception in a callback scheduled by the adapter, no pending task destroyed at close.
        harness = queuert_notify_harness
        adapter = harness.adapter
        loop = asyncio.get_running_loop()
        unhandled: list[dict[str, Any]] = []
        previous = loop.get_exception_handler()
        loop.set_exception_handler(lambda _loop, context: unhandled.append(context))
        try:
            for topic in TOPICS:
                key = unique("key")
                recorder = Recorder()
                unsubscribe = await topic.listen(adapter, key, recorder)
                await topic.notify(adapter, key)
                await expect_exactly(harness, topic, recorder, [key], adapter)
                await unsubscribe()
            type_name = unique("type")
            await adapter.provide_wake_hint(type_name, 1)
            await adapter.consume_wake_hint(type_name)
            await adapter.close()
            for _ in range(3):
                await asyncio.sleep(0)  # let callbacks scheduled by close() run (not a timing wait)
            gc.collect()
        finally:
            loop.set_exception_handler(previous)

        assert unhandled == []
