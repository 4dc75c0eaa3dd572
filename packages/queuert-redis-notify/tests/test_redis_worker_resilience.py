"""A worker on PostgreSQL with Redis notifications, while its Redis restarts or before Redis exists.

The scenarios are :mod:`queuert_conformance.notify_worker`'s; only the Redis server and adapters are
set up here.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from queuert_conformance.notify_worker import (
    worker_started_while_the_server_is_down,
    worker_through_a_server_restart,
)
from queuert_postgres import PgStateAdapter
from queuert_redis import RedisNotifyAdapter
from redis_notify_support import RedisServer

OpenState = Callable[[], Awaitable[PgStateAdapter[Any]]]


def adapters_on(server: RedisServer, prefix: str) -> Callable[[str], RedisNotifyAdapter]:
    """One adapter per "process" (worker, producer) on the test's own Redis server, with the adapter's
    defaults (reconnect backoff 0.1 s doubling up to 10 s), as in production."""

    def open_notify(role: str) -> RedisNotifyAdapter:
        return RedisNotifyAdapter(server.url, prefix=prefix, client_name=f"{prefix}-{role}")

    return open_notify


async def test_a_worker_processes_2000_chains_through_a_redis_restart(
    redis_server: RedisServer, prefix: str, pg_states: OpenState
) -> None:
    await redis_server.start()
    await worker_through_a_server_restart(
        open_state=pg_states,
        open_notify=adapters_on(redis_server, prefix),
        stop_server=redis_server.stop,
        start_server=redis_server.start,  # the same port
        server="Redis",
    )


async def test_a_worker_started_while_redis_is_down_polls_then_picks_notifications_up(
    redis_server: RedisServer, prefix: str, pg_states: OpenState
) -> None:
    redis_server.reserve_port()  # nothing listens there yet
    await worker_started_while_the_server_is_down(
        open_state=pg_states,
        open_notify=adapters_on(redis_server, prefix),
        start_server=redis_server.start,
        server="Redis",
    )
