"""A worker on PostgreSQL with NATS notifications, while its NATS server restarts or before it exists.

The worker polls every 2 s, so the fast pickups asserted after the outage can only come from
notifications: the adapter has to find its way back by itself (the worker is never restarted).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from nats_notify_support import NatsServer
from nats_worker_support import (
    FAST,
    POLL_INTERVAL,
    Recorder,
    ResStart,
    check_every_chain_once,
    eventually,
    probe,
    produce,
    wait_idle,
)
from queuert import Client, Worker
from queuert.observability import NoopObservability
from queuert_nats import NatsNotifyAdapter
from queuert_postgres import PgStateAdapter

OpenState = Callable[[], Awaitable[PgStateAdapter[Any]]]
PROBES = 5


class Setup:
    """A producer and a worker, each with its own state pool and its own NATS adapter (as two
    processes would have), on the test's own NATS server, with wake-hint budgets in a KV bucket."""

    def __init__(self, server: NatsServer, prefix: str) -> None:
        self.server = server
        self.prefix = prefix
        # The adapter's defaults otherwise (nats-py reconnects every second), as in production.
        self.worker_notify = self._adapter(f"{prefix}-worker")
        self.producer_notify = self._adapter(f"{prefix}-producer")
        self.recorder = Recorder()
        self.producer: Client[Any] | None = None

    def _adapter(self, name: str) -> NatsNotifyAdapter:
        return NatsNotifyAdapter(
            self.server.url,
            subject_prefix=self.prefix,
            wake_hint_bucket=self.prefix,
            create_wake_hint_bucket=True,
            name=name,
        )

    async def open(self, open_state: OpenState) -> tuple[Client[Any], Worker[Any]]:
        worker_client: Client[Any] = Client(
            await open_state(),
            job_types=[ResStart],
            notify=self.worker_notify,
            observability=NoopObservability(),
        )
        self.producer = Client(
            await open_state(),
            job_types=[ResStart],
            notify=self.producer_notify,
            observability=NoopObservability(),
        )
        worker: Worker[Any] = Worker(
            worker_client,
            concurrency=10,
            poll_interval=POLL_INTERVAL,
            handlers=self.recorder.handlers(),
        )
        return worker_client, worker

    async def probes(self, worker: Worker[Any], first: int) -> None:
        """Chains started one at a time on the idle worker are picked up and seen closed fast."""
        for n in range(first, first + PROBES):
            await wait_idle(worker)
            assert self.producer is not None
            picked, closed = await probe(self.producer, self.recorder, n)
            assert picked < FAST, f"probe {n} waited {picked:.3f} s: no job-scheduled notification"
            assert closed < FAST + 0.5, f"probe {n}: chain-closed noticed after {closed:.3f} s"

    async def close(self) -> None:
        if self.producer is not None:
            await self.producer.close()
        await self.worker_notify.close()
        await self.producer_notify.close()


async def test_a_worker_processes_2000_chains_through_a_nats_restart(
    nats_server: NatsServer, prefix: str, pg_states: OpenState
) -> None:
    await nats_server.start()
    setup = Setup(nats_server, prefix)
    recorder = setup.recorder
    before, during, after = range(0, 800), range(800, 1200), range(1200, 1995)
    try:
        worker_client, worker = await setup.open(pg_states)
        producer = setup.producer
        assert producer is not None
        async with worker:
            await produce(producer, recorder, before)
            await recorder.wait_finished(before, 30, "before the restart")

            await nats_server.stop()
            # NATS is down: chains keep coming, and the worker gets to them by polling alone.
            await produce(producer, recorder, during)
            await recorder.wait_finished(during, 4 * POLL_INTERVAL + 10, "while NATS was down")
            assert setup.producer_notify.publish_errors > 0, "the producer's publishes failed"
            assert setup.worker_notify.reconnects == 0

            await nats_server.start()  # the same port
            # The worker's adapter finds the server again by itself.
            await eventually(
                lambda: setup.worker_notify.reconnects >= 1,
                timeout=30,
                what="the worker's subscription to come back",
            )
            await produce(producer, recorder, after)
            await recorder.wait_finished(after, 30, "after the restart")
            await setup.probes(worker, after.stop)

        await check_every_chain_once(producer, recorder, after.stop + PROBES)
        await worker_client.close()
    finally:
        await setup.close()


async def test_a_worker_started_while_nats_is_down_polls_then_picks_notifications_up(
    nats_server: NatsServer, prefix: str, pg_states: OpenState
) -> None:
    nats_server.reserve_port()  # nothing listens there yet
    setup = Setup(nats_server, prefix)
    recorder = setup.recorder
    before, after = range(0, 100), range(100, 300)
    try:
        worker_client, worker = await setup.open(pg_states)
        producer = setup.producer
        assert producer is not None
        await asyncio.wait_for(worker.start(), 5)  # does not wait for NATS
        try:
            await produce(producer, recorder, before, pause=0.3)
            await recorder.wait_finished(before, 4 * POLL_INTERVAL + 10, "without NATS")
            assert setup.worker_notify.reconnects == 0
            assert setup.producer_notify.publish_errors > 0

            await nats_server.start()
            await eventually(
                lambda: setup.worker_notify.reconnects >= 1,
                timeout=30,
                what="the worker's subscription to open",
            )
            await produce(producer, recorder, after)
            await recorder.wait_finished(after, 30, "with NATS")
            await setup.probes(worker, after.stop)
        finally:
            await worker.close()

        await check_every_chain_once(producer, recorder, after.stop + PROBES)
        await worker_client.close()
    finally:
        await setup.close()
