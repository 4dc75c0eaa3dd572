"""After a lost connection: the adapter recovers by itself and tells its listeners to re-check state."""

from __future__ import annotations

from queuert_conformance.applicability import not_applicable
from queuert_conformance.harness import NotifyHarness
from queuert_conformance.notify_suite._support import (
    CHAIN_CLOSED,
    JOB_SCHEDULED,
    OWNERSHIP_LOST,
    TOPICS,
    Recorder,
    open_another,
    publish_until_delivered,
    unique,
)

__all__ = ["TestRecovery"]


def _interruptible(harness: NotifyHarness) -> NotifyHarness:
    if harness.interrupt is None:
        not_applicable("notify_interrupt")
    return harness


class TestRecovery:
    async def test_listeners_get_a_catch_up_call_after_the_connection_comes_back(
        self, queuert_notify_harness: NotifyHarness
    ) -> None:
        harness = _interruptible(queuert_notify_harness)
        adapter = harness.adapter
        types = [unique("type-a"), unique("type-b")]
        chain_id, job_id = unique("chain"), unique("job")
        scheduled, chain, ownership, gone = Recorder(), Recorder(), Recorder(), Recorder()
        await adapter.listen_job_scheduled(types, scheduled)
        await adapter.listen_chain_closed(chain_id, chain.bind(chain_id))
        await adapter.listen_job_ownership_lost(job_id, ownership.bind(job_id))
        unsubscribe = await adapter.listen_chain_closed(unique("chain"), gone.bind("gone"))
        await unsubscribe()
        # The subscription is live before the drop.
        await adapter.notify_job_scheduled(types[0])
        if harness.delivers:
            await scheduled.wait_for_calls(1, harness.timeout, "a message before the interruption")
            scheduled.calls.clear()

        assert harness.interrupt is not None
        await harness.interrupt()

        if not harness.delivers:
            # Nothing to catch up with: every call still works and no listener is called.
            await adapter.notify_job_scheduled(types[1])
            await adapter.notify_chain_closed(chain_id)
            await adapter.notify_job_ownership_lost(job_id)
            assert scheduled.calls == chain.calls == ownership.calls == gone.calls == []
            return

        # Once per subscribed type for job-scheduled listeners, once for chain and ownership listeners.
        await scheduled.wait_until(
            lambda calls: set(calls) == set(types),
            harness.timeout,
            "the catch-up call for every subscribed type",
        )
        await chain.wait_for_calls(1, harness.timeout, "the chain listener's catch-up call")
        await ownership.wait_for_calls(1, harness.timeout, "the ownership listener's catch-up call")
        assert set(chain.calls) == {chain_id}
        assert set(ownership.calls) == {job_id}
        assert gone.calls == [], "a listener that had unsubscribed was called"

    async def test_notifications_flow_again_after_the_connection_comes_back(
        self, queuert_notify_harness: NotifyHarness
    ) -> None:
        harness = _interruptible(queuert_notify_harness)
        adapter = harness.adapter
        keys = {topic: unique("key") for topic in TOPICS}
        recorders = {topic: Recorder() for topic in TOPICS}
        for topic in TOPICS:
            await topic.listen(adapter, keys[topic], recorders[topic])

        assert harness.interrupt is not None
        await harness.interrupt()

        # Old subscriptions and the publisher work again (the catch-up call may come first).
        for topic in TOPICS:
            await publish_until_delivered(
                harness, topic, adapter, keys[topic], recorders[topic], f"the {topic} listener"
            )
        # So does a subscription made after the drop.
        late = Recorder()
        late_type = unique("late")
        await adapter.listen_job_scheduled([late_type], late)
        await publish_until_delivered(
            harness, JOB_SCHEDULED, adapter, late_type, late, "a listener added after the drop"
        )

    async def test_other_connections_reach_a_recovered_adapter(
        self, queuert_notify_harness: NotifyHarness
    ) -> None:
        harness = _interruptible(queuert_notify_harness)
        adapter = harness.adapter
        chain_id, job_id = unique("chain"), unique("job")
        chain, ownership = Recorder(), Recorder()
        await adapter.listen_chain_closed(chain_id, chain.bind(chain_id))
        await adapter.listen_job_ownership_lost(job_id, ownership.bind(job_id))
        async with open_another(harness) as other:
            assert harness.interrupt is not None
            await harness.interrupt()

            await publish_until_delivered(
                harness, CHAIN_CLOSED, other, chain_id, chain, "the recovered chain listener"
            )
            await publish_until_delivered(
                harness,
                OWNERSHIP_LOST,
                other,
                job_id,
                ownership,
                "the recovered ownership listener",
            )
