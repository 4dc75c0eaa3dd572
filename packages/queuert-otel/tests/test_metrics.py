"""Metrics in both vocabularies with low-cardinality attributes, and the queue-health gauges: read on
collection, rate-limited however many readers collect."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import pytest
from otel_helpers import Telemetry
from queuert import (
    Attempt,
    Backoff,
    Blockers,
    Chain,
    ChainFailedError,
    Client,
    EntryJobType,
    Worker,
)
from queuert.state import StateAdapter


@dataclass
class N:
    value: int


class Leaf(EntryJobType[N, N]):
    pass


class Root(EntryJobType[N, N], Blockers[tuple[Chain[Leaf], ...]]):
    pass


class Bad(EntryJobType[N, N], max_attempts=2):
    pass


def worker_for(client: Client[Any]) -> Worker[Any]:
    worker: Worker[Any] = Worker(
        client, concurrency=3, backoff=Backoff(initial=0.01, maximum=0.01, jitter=0.0)
    )

    @worker.handler(Leaf)
    async def leaf(attempt: Attempt[Leaf]) -> N:
        return attempt.input

    @worker.handler(Root)
    async def root(attempt: Attempt[Root]) -> N:
        return N(sum(b.output.value for b in attempt.blockers))

    @worker.handler(Bad)
    async def bad(attempt: Attempt[Bad]) -> N:
        raise KeyError("nope")

    return worker


MESSAGING = {"messaging.system": "queuert"}


async def test_instruments_of_a_processed_workload(
    state: StateAdapter[Any], telemetry: Telemetry
) -> None:
    async with Client(
        state, job_types=[Leaf, Root, Bad], observability=telemetry.observability
    ) as client:
        async with client.transaction() as tx:
            leaves = await client.start_chains([Leaf(N(1)), Leaf(N(2))], tx=tx)
            root = await client.start_chain(Root(N(0), blockers=tuple(leaves)), tx=tx)
            bad = await client.start_chain(Bad(N(0)), tx=tx)
        async with worker_for(client):
            assert await client.wait_for_chain(root, Root, timeout=20) == N(3)
            with pytest.raises(ChainFailedError):
                await client.wait_for_chain(bad, timeout=20)
        await client.wait_published()
    p = telemetry.points()
    t = telemetry.total
    # messaging semantic conventions
    assert t("messaging.client.sent.messages", p, messaging__destination__name="leaf") == 2
    assert t("messaging.client.sent.messages", p, messaging__operation__type="send") == 4
    assert t("messaging.client.consumed.messages", p, messaging__destination__name="bad") == 2
    assert t("messaging.process.duration", p, messaging__destination__name="root") == 1
    assert t("messaging.process.duration", p, error__type="KeyError") == 2
    for attrs, _ in p["messaging.client.sent.messages"]:
        assert attrs["messaging.system"] == "queuert"
        assert attrs["messaging.operation.name"] == "create"
    # queuert.*
    assert t("queuert.chain.created", p) == 4
    assert t("queuert.chain.closed", p, queuert__chain__outcome="completed") == 3
    assert t("queuert.chain.closed", p, queuert__chain__outcome="failed") == 1
    assert t("queuert.job.failed", p) == 1
    assert t("queuert.job.completed", p, queuert__job__workerless=False) == 3
    assert t("queuert.job.blocked", p) == 1
    assert t("queuert.job.unblocked", p) == 1
    assert t("queuert.job.attempt.failed", p, queuert__job__retried=True) == 1
    assert t("queuert.job.attempt.failed", p, queuert__job__retried=False) == 1
    assert t("messaging.process.duration", p, queuert__processing__mode="atomic") == 3
    assert t("queuert.job.duration", p) == 3
    assert t("queuert.job.wait.duration", p) == 5
    assert t("queuert.job_type.processing", p) == 0, "every started attempt ended"
    assert t("queuert.job_type.idle", p) == 0, "the stopped worker's slots are gone"
    assert t("queuert.worker.running", p) == 0
    # no ids on metrics
    for name, points in p.items():
        for attrs, _ in points:
            assert not any(k.endswith(".id") for k in attrs), (name, attrs)


async def test_queue_health_gauges(state: StateAdapter[Any], telemetry: Telemetry) -> None:
    async with Client(
        state, job_types=[Leaf, Root], observability=telemetry.observability
    ) as client:
        async with client.transaction() as tx:
            leaves = await client.start_chains([Leaf(N(1)), Leaf(N(2))], tx=tx)
            await client.start_chain(Root(N(0), blockers=tuple(leaves)), tx=tx)
        async with telemetry.observability.watch(client, min_interval=3600) as health:
            assert health is not None
            assert telemetry.total("queuert.queue.ready") == 0, "no reading yet, none waited for"
            await health.settled()  # the collection on the loop started one
            assert health.reads == 1
            p = telemetry.points()
            assert telemetry.total("queuert.queue.ready", p, queuert__job__type="leaf") == 2
            assert telemetry.total("queuert.queue.blocked", p, queuert__job__type="root") == 1
            assert telemetry.total("queuert.queue.running", p) == 0
            (age,) = [
                v
                for attrs, v in p["queuert.queue.oldest_ready_age"]
                if attrs["queuert.job.type"] == "leaf"
            ]
            assert age >= 0
            reads = health.reads
            # many readers, on the loop and on other threads: no more reads within min_interval
            for _ in range(5):
                telemetry.reader.get_metrics_data()
            await asyncio.gather(
                *(asyncio.to_thread(telemetry.reader.get_metrics_data) for _ in range(5))
            )
            assert health.reads == reads
        assert telemetry.total("queuert.queue.ready") == 0, "nothing reported once unwatched"


async def test_a_reader_on_another_thread_gets_a_fresh_reading(
    state: StateAdapter[Any], telemetry: Telemetry
) -> None:
    client = Client(state, job_types=[Leaf], observability=telemetry.observability)
    watch = telemetry.observability.watch(client, min_interval=0, timeout=20)
    async with client, watch as health:
        assert health is not None
        for expected in (1, 2, 3):
            async with client.transaction() as tx:
                await client.start_chain(Leaf(N(expected)), tx=tx)
            # a periodic exporter collects on its own thread: it waits for the refresh
            data = await asyncio.to_thread(telemetry.points)
            assert telemetry.total("queuert.queue.ready", data) == expected


class FailingStats:
    """A client whose queue statistics cannot be read (the store is down)."""

    def __init__(self) -> None:
        self.calls = 0

    async def get_queue_stats(self, type_names: Any = None) -> Any:
        self.calls += 1
        raise ConnectionError("store down")


async def test_a_failed_reading_is_logged_and_not_retried_at_once(
    telemetry: Telemetry, caplog: pytest.LogCaptureFixture
) -> None:
    failing = FailingStats()
    async with telemetry.observability.watch(failing, min_interval=3600) as health:
        assert health is not None
        await health.refresh()
        for _ in range(3):
            await asyncio.to_thread(telemetry.reader.get_metrics_data)
        assert failing.calls == 1, "the failure counts as a reading for the rate limit"
        assert telemetry.total("queuert.queue.ready") == 0
    assert any("reading queue statistics failed" in r.message for r in caplog.records)
