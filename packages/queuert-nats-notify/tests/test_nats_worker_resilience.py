"""A worker on PostgreSQL with NATS notifications, while its NATS server restarts or before it exists.

The scenarios are :mod:`queuert_conformance.notify_worker`'s; only the NATS server and adapters are
set up here.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from nats_notify_support import NatsServer
from queuert_conformance.notify_worker import (
    worker_started_while_the_server_is_down,
    worker_through_a_server_restart,
)
from queuert_nats import NatsNotifyAdapter
from queuert_postgres import PgStateAdapter

OpenState = Callable[[], Awaitable[PgStateAdapter[Any]]]


def adapters_on(server: NatsServer, prefix: str) -> Callable[[str], NatsNotifyAdapter]:
    """One adapter per "process" (worker, producer) on the test's own NATS server, with wake-hint
    budgets in a KV bucket and the adapter's defaults otherwise (nats-py reconnects every second), as
    in production."""

    def open_notify(role: str) -> NatsNotifyAdapter:
        return NatsNotifyAdapter(
            server.url,
            subject_prefix=prefix,
            wake_hint_bucket=prefix,
            create_wake_hint_bucket=True,
            name=f"{prefix}-{role}",
        )

    return open_notify


async def test_a_worker_processes_2000_chains_through_a_nats_restart(
    nats_server: NatsServer, prefix: str, pg_states: OpenState
) -> None:
    await nats_server.start()
    await worker_through_a_server_restart(
        open_state=pg_states,
        open_notify=adapters_on(nats_server, prefix),
        stop_server=nats_server.stop,
        start_server=nats_server.start,  # the same port
        server="NATS",
    )


async def test_a_worker_started_while_nats_is_down_polls_then_picks_notifications_up(
    nats_server: NatsServer, prefix: str, pg_states: OpenState
) -> None:
    nats_server.reserve_port()  # nothing listens there yet
    await worker_started_while_the_server_is_down(
        open_state=pg_states,
        open_notify=adapters_on(nats_server, prefix),
        start_server=nats_server.start,
        server="NATS",
    )
