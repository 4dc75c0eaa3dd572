"""Helpers shared by the notify suite: topics, a recording listener, barriers.

Nothing here sleeps: every wait is on an event the listener sets, bounded by the harness timeout.

Several cases must show that a message did *not* arrive. They do it with a barrier: a fresh key on the
same topic, published after the message under test from the same adapter; once the barrier arrives, the
earlier message would have arrived too if it were going to. That assumes first-in-first-out delivery per
topic between one publisher and one subscriber, which every real backend gives; an adapter that reorders
can only make such a case pass when it should not, never fail when it should pass.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import pytest
from queuert.errors import NotifyAdapterClosedError
from queuert.notify import NotifyAdapter, Unsubscribe

from queuert_conformance.applicability import not_applicable
from queuert_conformance.harness import NotifyHarness

__all__ = [
    "CHAIN_CLOSED",
    "JOB_SCHEDULED",
    "OWNERSHIP_LOST",
    "TOPICS",
    "Recorder",
    "Topic",
    "barrier",
    "by_topic",
    "expect_exactly",
    "open_another",
    "publish_until_delivered",
    "unique",
]


def unique(label: str) -> str:
    """A key no other test (or test run sharing the server) uses."""
    return f"{label}-{uuid.uuid4().hex[:12]}"


class Recorder:
    """A listener callback that records the keys it was called with.

    Callable with a key (the job-scheduled signature); :meth:`bind` gives the no-argument form the chain and
    ownership listeners take.
    """

    def __init__(self) -> None:
        self.calls: list[str] = []
        self._changed = asyncio.Event()

    def __call__(self, key: str) -> None:
        self.calls.append(key)
        self._changed.set()

    def bind(self, key: str) -> Callable[[], None]:
        def callback() -> None:
            self(key)

        return callback

    async def wait(self, predicate: Callable[[list[str]], bool], timeout: float) -> bool:
        """Waits until ``predicate(calls)`` holds; False if ``timeout`` seconds pass first."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not predicate(self.calls):
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            self._changed.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)
        return True

    async def wait_until(
        self, predicate: Callable[[list[str]], bool], timeout: float, what: str
    ) -> None:
        if not await self.wait(predicate, timeout):
            raise AssertionError(
                f"timed out after {timeout:g}s waiting for {what}; calls so far: {self.calls!r}"
            )

    async def wait_for_calls(self, count: int, timeout: float, what: str) -> None:
        await self.wait_until(lambda calls: len(calls) >= count, timeout, what)


@dataclass(frozen=True)
class Topic:
    """One kind of message, seen through a uniform ``listen(adapter, key, callback(key))``."""

    name: str
    listen: Callable[[NotifyAdapter, str, Callable[[str], None]], Awaitable[Unsubscribe]]
    notify: Callable[[NotifyAdapter, str], Awaitable[None]]

    def __str__(self) -> str:
        return self.name


async def _listen_scheduled(
    adapter: NotifyAdapter, key: str, callback: Callable[[str], None]
) -> Unsubscribe:
    return await adapter.listen_job_scheduled([key], callback)


async def _notify_scheduled(adapter: NotifyAdapter, key: str) -> None:
    await adapter.notify_job_scheduled(key)


async def _listen_chain(
    adapter: NotifyAdapter, key: str, callback: Callable[[str], None]
) -> Unsubscribe:
    return await adapter.listen_chain_closed(key, lambda: callback(key))


async def _notify_chain(adapter: NotifyAdapter, key: str) -> None:
    await adapter.notify_chain_closed(key)


async def _listen_ownership(
    adapter: NotifyAdapter, key: str, callback: Callable[[str], None]
) -> Unsubscribe:
    return await adapter.listen_job_ownership_lost(key, lambda: callback(key))


async def _notify_ownership(adapter: NotifyAdapter, key: str) -> None:
    await adapter.notify_job_ownership_lost(key)


JOB_SCHEDULED = Topic("job_scheduled", _listen_scheduled, _notify_scheduled)
CHAIN_CLOSED = Topic("chain_closed", _listen_chain, _notify_chain)
OWNERSHIP_LOST = Topic("ownership_lost", _listen_ownership, _notify_ownership)
TOPICS = (JOB_SCHEDULED, CHAIN_CLOSED, OWNERSHIP_LOST)

by_topic = pytest.mark.parametrize("topic", TOPICS, ids=[t.name for t in TOPICS])
"""Runs a case once per topic (job scheduled, chain closed, ownership lost)."""


async def barrier(
    harness: NotifyHarness,
    topic: Topic,
    listening: NotifyAdapter,
    publishing: NotifyAdapter | None = None,
) -> None:
    """Returns once everything ``publishing`` sent on ``topic`` before the call has reached ``listening``.

    A no-op for adapters that never deliver.
    """
    if not harness.delivers:
        return
    key = unique("barrier")
    recorder = Recorder()
    unsubscribe = await topic.listen(listening, key, recorder)
    try:
        await topic.notify(publishing or listening, key)
        await recorder.wait_for_calls(1, harness.timeout, f"the barrier message on {topic}")
    finally:
        await unsubscribe()


async def expect_exactly(
    harness: NotifyHarness,
    topic: Topic,
    recorder: Recorder,
    expected: Sequence[str],
    listening: NotifyAdapter,
    publishing: NotifyAdapter | None = None,
) -> None:
    """Asserts ``recorder`` got exactly ``expected`` (in any order), nothing more.

    For an adapter that never delivers, asserts it got nothing.
    """
    if harness.delivers:
        await recorder.wait_for_calls(
            len(expected), harness.timeout, f"{len(expected)} {topic} call(s) {list(expected)!r}"
        )
        await barrier(harness, topic, listening, publishing)
        assert sorted(recorder.calls) == sorted(expected)
    else:
        assert recorder.calls == []


async def publish_until_delivered(
    harness: NotifyHarness,
    topic: Topic,
    publishing: NotifyAdapter,
    key: str,
    recorder: Recorder,
    what: str,
) -> None:
    """Publishes ``key`` again and again until ``recorder`` gets one more call.

    Used while an adapter recovers from a lost connection: a message sent before the publisher's own
    connection is back may be lost (notifications are hints), and a publish may even fail; neither is an
    error here, only never recovering is.
    """
    if not harness.delivers:
        # An adapter that never delivers: the publish must still succeed, and reach nobody.
        await topic.notify(publishing, key)
        assert recorder.calls == [], f"{what} was called by an adapter that never delivers"
        return
    loop = asyncio.get_running_loop()
    deadline = loop.time() + harness.timeout
    before = len(recorder.calls)
    last_error: Exception | None = None
    while True:
        try:
            await topic.notify(publishing, key)
        except NotifyAdapterClosedError:
            raise
        except Exception as error:
            last_error = error
        remaining = deadline - loop.time()
        if await recorder.wait(lambda calls: len(calls) > before, max(0.0, min(0.2, remaining))):
            return
        if loop.time() >= deadline:
            raise AssertionError(
                f"no {topic} message reached {what} within {harness.timeout:g}s "
                f"(last publish error: {last_error!r})"
            )


class open_another:
    """``async with open_another(harness) as other:`` a second adapter on the same server, closed after."""

    def __init__(self, harness: NotifyHarness) -> None:
        if harness.open_another is None:
            not_applicable("notify_open_another")
        self._factory = harness.open_another
        self._adapter: NotifyAdapter | None = None

    async def __aenter__(self) -> NotifyAdapter:
        self._adapter = await self._factory()
        return self._adapter

    async def __aexit__(self, *exc_info: object) -> None:
        if self._adapter is not None:
            await self._adapter.close()
