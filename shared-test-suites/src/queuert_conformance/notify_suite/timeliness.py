"""Delivery timeliness: messages are dispatched as they come, not held back until publishing stops."""

from __future__ import annotations

import asyncio

from queuert_conformance.harness import NotifyHarness
from queuert_conformance.notify_suite._support import Recorder, Topic, barrier, by_topic, unique

__all__ = ["TestTimeliness"]


@by_topic
class TestTimeliness:
    async def test_messages_arrive_while_a_publish_loop_is_still_running(
        self, queuert_notify_harness: NotifyHarness, topic: Topic
    ) -> None:
        harness = queuert_notify_harness
        adapter = harness.adapter
        key = unique("key")
        recorder = Recorder()
        await topic.listen(adapter, key, recorder)

        # Keep publishing, a message every 10 ms at most, until the first one has arrived. An adapter that
        # batches until the publisher goes quiet never lets the loop end (and the case times out).
        loop = asyncio.get_running_loop()
        deadline = loop.time() + harness.timeout
        published = 0
        while True:
            await topic.notify(adapter, key)
            published += 1
            if not harness.delivers or await recorder.wait(lambda calls: bool(calls), 0.01):
                break
            assert loop.time() < deadline, (
                f"{published} {topic} messages published over {harness.timeout:g}s, none delivered"
            )

        if harness.delivers:
            assert len(recorder.calls) <= published
            # And none of the others is lost on the way.
            await recorder.wait_for_calls(published, harness.timeout, "every published message")
            await barrier(harness, topic, adapter)
            assert recorder.calls == [key] * published
        else:
            assert recorder.calls == []
