"""A worker on PostgreSQL with Redis notifications, while its Redis restarts or before Redis exists.

The worker polls every 2 s, so the fast pickups asserted after the outage can only come from
notifications: the adapter has to find its way back by itself (the worker is never restarted).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from queuert import Client, Worker
from queuert.observability import NoopObservability
from queuert_postgres import PgStateAdapter
from queuert_redis import RedisNotifyAdapter
from redis_notify_support import RedisServer
from redis_worker_support import (
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

OpenState = Callable[[], Awaitable[PgStateAdapter[Any]]]
PROBES = 5


class Setup:
    """A producer and a worker, each with its own state pool and its own Redis adapter (as two
    processes would have), on the test's own Redis server."""

    def __init__(self, server: RedisServer, prefix: str) -> None:
        self.server = server
        self.prefix = prefix
        # The adapter's defaults (reconnect backoff 0.1 s doubling up to 10 s), as in production.
        self.worker_notify = RedisNotifyAdapter(
            server.url, prefix=prefix, client_name=f"{prefix}-worker"
        )
        self.producer_notify = RedisNotifyAdapter(
            server.url, prefix=prefix, client_name=f"{prefix}-producer"
        )
        self.recorder = Recorder()
        self.producer: Client[Any] | None = None

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


async def test_a_worker_processes_2000_chains_through_a_redis_restart(
    redis_server: RedisServer, prefix: str, pg_states: OpenState
) -> None:
    await redis_server.start()
    setup = Setup(redis_server, prefix)
    recorder = setup.recorder
    before, during, after = range(0, 800), range(800, 1200), range(1200, 1995)
    try:
        worker_client, worker = await setup.open(pg_states)
        producer = setup.producer
        assert producer is not None
        async with worker:
            await produce(producer, recorder, before)
            await recorder.wait_finished(before, 30, "before the restart")

            await redis_server.stop()
            # Redis is down: chains keep coming, and the worker gets to them by polling alone.
            await produce(producer, recorder, during)
            await recorder.wait_finished(during, 4 * POLL_INTERVAL + 10, "while Redis was down")
            assert setup.producer_notify.publish_errors > 0, "the producer's publishes failed"
            assert setup.worker_notify.reconnects == 0

            await redis_server.start()  # the same port
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


async def test_a_worker_started_while_redis_is_down_polls_then_picks_notifications_up(
    redis_server: RedisServer, prefix: str, pg_states: OpenState
) -> None:
    redis_server.reserve_port()  # nothing listens there yet
    setup = Setup(redis_server, prefix)
    recorder = setup.recorder
    before, after = range(0, 100), range(100, 300)
    try:
        worker_client, worker = await setup.open(pg_states)
        producer = setup.producer
        assert producer is not None
        await asyncio.wait_for(worker.start(), 5)  # does not wait for Redis
        try:
            await produce(producer, recorder, before, pause=0.3)
            await recorder.wait_finished(before, 4 * POLL_INTERVAL + 10, "without Redis")
            assert setup.worker_notify.reconnects == 0
            assert setup.producer_notify.publish_errors > 0

            await redis_server.start()
            await eventually(
                lambda: setup.worker_notify.reconnects >= 1,
                timeout=30,
                what="the worker's subscription to open",
            )
            await produce(producer, recorder, after)
            await recorder.wait_finished(after, 30, "with Redis")
            await setup.probes(worker, after.stop)
        finally:
            await worker.close()

        await check_every_chain_once(producer, recorder, after.stop + PROBES)
        await worker_client.close()
    finally:
        await setup.close()
