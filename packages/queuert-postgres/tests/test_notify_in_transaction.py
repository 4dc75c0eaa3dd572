"""PgNotifyAdapter publishing inside a PgStateAdapter's transactions: messages are delivered when the
transaction commits and never when it rolls back; a state adapter on another database is declined
(the client then publishes after the commit)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from pg_helpers import DSN, Namespace, drop_namespace, make_adapter, new_database, unique_schema
from queuert.notify import Notifications
from queuert_postgres import AsyncpgProvider, PgNotifyAdapter, PgStateAdapter


def closed(*chain_ids: str) -> Notifications:
    return Notifications({}, frozenset(), frozenset(chain_ids), frozenset())


@pytest.fixture
async def state() -> AsyncIterator[PgStateAdapter[Any]]:
    ns = Namespace(unique_schema(), "queuert_")
    adapter = await make_adapter("asyncpg", ns)
    try:
        await adapter.migrate()
        yield adapter
    finally:
        await adapter.close()
        await drop_namespace(ns)


async def test_delivered_on_commit_never_on_rollback(state: PgStateAdapter[Any]) -> None:
    async with (
        PgNotifyAdapter(DSN, channel_prefix="qtintx") as publisher,
        PgNotifyAdapter(DSN, channel_prefix="qtintx") as listener,
    ):
        publish = await publisher.in_transactions_of(state)
        assert publish is not None
        heard: list[str] = []
        committed = asyncio.Event()

        def on(chain_id: str) -> None:
            heard.append(chain_id)
            if chain_id == "committed":
                committed.set()

        await listener.listen_chain_closed("rolled-back", lambda: on("rolled-back"))
        await listener.listen_chain_closed("committed", lambda: on("committed"))

        with pytest.raises(RuntimeError):
            async with state.transaction() as tx:
                await publish(tx, closed("rolled-back"))
                raise RuntimeError("roll back")
        async with state.transaction() as tx:
            await publish(tx, closed("committed"))
            assert heard == [], "nothing is delivered before the commit"
        await asyncio.wait_for(committed.wait(), 10)
        # one listening connection receives in commit order: a message of the rolled-back
        # transaction would have arrived first
        assert heard == ["committed"]


async def test_a_state_adapter_on_another_database_is_declined() -> None:
    async with new_database() as other:
        provider = await AsyncpgProvider.connect(other, min_size=1, max_size=1)
        async with (
            PgStateAdapter(provider) as elsewhere,
            PgNotifyAdapter(DSN, channel_prefix="qtintx") as notify,
        ):
            assert await notify.in_transactions_of(elsewhere) is None
            assert await notify.in_transactions_of(object()) is None
