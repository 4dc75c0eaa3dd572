"""Wake-hint budgets: how many idle workers one batch of new jobs may wake."""

from __future__ import annotations

import asyncio

from queuert.notify import NotifyAdapter

from queuert_conformance.harness import NotifyHarness
from queuert_conformance.notify_suite._support import open_another, unique

__all__ = ["TestWakeHints"]


async def _consume(adapter: NotifyAdapter, type_name: str, times: int) -> list[bool]:
    return [await adapter.consume_wake_hint(type_name) for _ in range(times)]


class TestWakeHints:
    async def test_consume_without_a_budget_is_true(
        self, queuert_notify_harness: NotifyHarness
    ) -> None:
        # Graceful degradation: no budget tracked means "wake up".
        adapter = queuert_notify_harness.adapter
        type_name = unique("type")

        assert await _consume(adapter, type_name, 3) == [True, True, True]

    async def test_exactly_the_provided_budget_is_claimed(
        self, queuert_notify_harness: NotifyHarness
    ) -> None:
        harness = queuert_notify_harness
        adapter = harness.adapter
        type_name = unique("type")

        await adapter.provide_wake_hint(type_name, 3)

        expected = [True, True, True, False, False] if harness.wake_hint_budgets else [True] * 5
        assert await _consume(adapter, type_name, 5) == expected

    async def test_budgets_add_up_across_calls(self, queuert_notify_harness: NotifyHarness) -> None:
        harness = queuert_notify_harness
        adapter = harness.adapter
        type_name = unique("type")

        await adapter.provide_wake_hint(type_name, 2)
        await adapter.provide_wake_hint(type_name, 1)
        claimed = await _consume(adapter, type_name, 2)
        await adapter.provide_wake_hint(type_name, 2)
        claimed += await _consume(adapter, type_name, 4)

        if harness.wake_hint_budgets:
            assert claimed == [True, True, True, True, True, False]
        else:
            assert claimed == [True] * 6

    async def test_budgets_are_kept_per_type(self, queuert_notify_harness: NotifyHarness) -> None:
        harness = queuert_notify_harness
        adapter = harness.adapter
        budgeted, other = unique("type-a"), unique("type-b")

        await adapter.provide_wake_hint(budgeted, 1)
        await adapter.provide_wake_hint(other, 1)

        assert await _consume(adapter, other, 1) == [True]
        if harness.wake_hint_budgets:
            assert await _consume(adapter, budgeted, 2) == [True, False]
            assert await _consume(adapter, other, 1) == [False]
        else:
            assert await _consume(adapter, budgeted, 2) == [True, True]

    async def test_concurrent_consumers_share_the_budget_exactly(
        self, queuert_notify_harness: NotifyHarness
    ) -> None:
        # Twenty idle workers race for five wake-ups: five win, whatever the interleaving.
        harness = queuert_notify_harness
        adapter = harness.adapter
        type_name = unique("type")
        await adapter.provide_wake_hint(type_name, 5)

        results = await asyncio.gather(*(adapter.consume_wake_hint(type_name) for _ in range(20)))

        assert results.count(True) == (5 if harness.wake_hint_budgets else 20)

    async def test_budgets_are_shared_across_connections(
        self, queuert_notify_harness: NotifyHarness
    ) -> None:
        # Two publishers (processes) add to one budget; workers on either connection draw from it.
        harness = queuert_notify_harness
        adapter = harness.adapter
        type_name = unique("type")
        async with open_another(harness) as other:
            await adapter.provide_wake_hint(type_name, 2)
            await other.provide_wake_hint(type_name, 1)

            claimed = [
                await other.consume_wake_hint(type_name),
                await adapter.consume_wake_hint(type_name),
                await other.consume_wake_hint(type_name),
                await adapter.consume_wake_hint(type_name),
                await other.consume_wake_hint(type_name),
            ]

        if harness.wake_hint_budgets:
            assert claimed == [True, True, True, False, False]
        else:
            assert claimed == [True] * 5
