"""MongoNotifyAdapter publishing inside a MongoStateAdapter's transactions: a message is delivered
when the transaction commits and never when it rolls back; a state adapter on another client is
declined (the client then publishes after the commit). And a standalone server is refused."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator

import pytest
from mongo_helpers import DATABASE, drop_prefix, open_adapter, unique_prefix
from mongo_server import SecantusServer
from queuert.notify import Notifications
from queuert_mongodb import MongoNotifyAdapter, MongoStateAdapter, StandaloneServerError


def closed(*chain_ids: str) -> Notifications:
    return Notifications({}, frozenset(), frozenset(chain_ids), frozenset())


@pytest.fixture
async def state() -> AsyncIterator[MongoStateAdapter]:
    prefix = unique_prefix()
    adapter = await open_adapter(prefix)
    try:
        await adapter.migrate()
        yield adapter
    finally:
        await adapter.close()
        await drop_prefix(prefix)


async def test_delivered_on_commit_never_on_rollback(state: MongoStateAdapter) -> None:
    prefix = state.names.prefix
    async with (
        MongoNotifyAdapter(state.client, database=DATABASE, collection_prefix=prefix) as publisher,
        MongoNotifyAdapter(state.client, database=DATABASE, collection_prefix=prefix) as listener,
    ):
        await publisher.migrate()
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
        # one change stream delivers in commit order: a rolled-back message would have come first
        assert heard == ["committed"]


async def test_a_state_adapter_on_another_client_is_declined(state: MongoStateAdapter) -> None:
    url_adapter = await open_adapter(state.names.prefix)
    try:
        async with MongoNotifyAdapter(
            url_adapter.client, database=DATABASE, collection_prefix=state.names.prefix
        ) as notify:
            await notify.migrate()
            assert await notify.in_transactions_of(state) is None
            assert await notify.in_transactions_of(object()) is None
            assert await notify.in_transactions_of(url_adapter) is not None
    finally:
        await url_adapter.close()


async def test_before_migrate_the_first_client_publishes_after_commit(
    state: MongoStateAdapter,
) -> None:
    """The collections are created when first asked (perhaps while a transaction runs, which could
    not write them then): that client publishes after its commits, later ones inside."""
    prefix = state.names.prefix
    async with MongoNotifyAdapter(
        state.client, database=DATABASE, collection_prefix=prefix
    ) as notify:
        async with state.transaction() as tx:
            assert await notify.in_transactions_of(state, tx) is None
        async with state.transaction() as tx:
            assert await notify.in_transactions_of(state, tx) is not None


async def test_notify_many_sends_everything_one_commit_announces(state: MongoStateAdapter) -> None:
    prefix = state.names.prefix
    async with MongoNotifyAdapter(
        state.client, database=DATABASE, collection_prefix=prefix
    ) as notify:
        heard: list[str] = []
        done = asyncio.Event()

        def on(what: str) -> None:
            heard.append(what)
            if len(heard) == 4:
                done.set()

        await notify.listen_job_scheduled(["mail", "sms"], on)
        await notify.listen_chain_closed("chain-1", lambda: on("chain-1"))
        await notify.listen_job_ownership_lost("job-1", lambda: on("job-1"))
        await notify.notify_many(
            Notifications(
                {"mail": 2}, frozenset({"sms"}), frozenset({"chain-1"}), frozenset({"job-1"})
            )
        )
        await asyncio.wait_for(done.wait(), 10)
        assert sorted(heard) == ["chain-1", "job-1", "mail", "sms"]
        # the ready count became a wake-hint budget
        assert [await notify.consume_wake_hint("mail") for _ in range(3)] == [True, True, False]
        messages = state.client[DATABASE][f"{prefix}notify"]
        assert await messages.count_documents({}) == 1, "one message document per publish"


async def test_a_standalone_server_has_no_change_streams() -> None:
    """The first listener on a standalone server gets the error that names the fix."""
    url = os.environ.get("QUEUERT_MONGODB_STANDALONE_URL")
    server = None
    if not url:
        server = SecantusServer(standalone=True)
        await asyncio.to_thread(server.start)
        url = server.url
    try:
        async with MongoNotifyAdapter.connect(url, collection_prefix=unique_prefix()) as notify:
            with pytest.raises(StandaloneServerError, match=r"--replSet.*rs\.initiate"):
                await notify.listen_chain_closed("chain", lambda: None)
            # publishing stays a hint: it works, or fails quietly
            await notify.notify_chain_closed("chain")
    finally:
        if server is not None:
            await asyncio.to_thread(server.remove)
