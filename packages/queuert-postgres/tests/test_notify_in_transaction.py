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


async def test_notify_many_sends_every_message_at_once() -> None:
    """After a commit (no transaction to ride in) the client hands the adapter everything at once:
    one statement carries the job-scheduled, chain-closed and ownership-lost messages."""
    async with (
        PgNotifyAdapter(DSN, channel_prefix="qtmany") as publisher,
        PgNotifyAdapter(DSN, channel_prefix="qtmany") as listener,
    ):
        heard: list[str] = []
        last = asyncio.Event()

        def on(what: str) -> None:
            heard.append(what)
            if len(heard) == 4:
                last.set()

        await listener.listen_job_scheduled(["a", "b"], lambda t: on(f"sched:{t}"))
        await listener.listen_chain_closed("c1", lambda: on("chainc:c1"))
        await listener.listen_job_ownership_lost("j1", lambda: on("owls:j1"))
        await publisher.notify_many(
            Notifications({"a": 3}, frozenset({"b"}), frozenset({"c1"}), frozenset({"j1"}))
        )
        await asyncio.wait_for(last.wait(), 10)
        assert heard == ["sched:a", "sched:b", "chainc:c1", "owls:j1"]


async def test_the_first_commit_does_not_wait_for_a_connection_its_own_pool_cannot_give() -> None:
    """The first commit asks whether the notify adapter can publish inside it; that check went
    through another connection of the state adapter's pool. With every connection held by
    transactions waiting to commit (here: a pool of one), it waited forever, and so did they. It
    now reads the state side through the committing transaction itself."""
    from dataclasses import dataclass

    from queuert import Client, EntryJobType

    @dataclass
    class N:
        value: int

    class OnePool(EntryJobType[N, N], name="one_pool_job"):
        pass

    ns = Namespace(unique_schema(), "queuert_")
    provider = await AsyncpgProvider.connect(DSN, min_size=1, max_size=1)
    try:
        async with (
            PgStateAdapter(provider, schema=ns.schema) as state,
            PgNotifyAdapter(DSN, channel_prefix="qtonepool") as notify,
            Client(state, job_types=[OnePool], notify=notify) as client,
        ):
            await state.migrate()

            async def start() -> None:
                async with client.transaction() as tx:
                    await client.start_chain(OnePool(N(1)), tx=tx)

            await asyncio.wait_for(start(), 10)
            assert await client._core.publishing.in_transaction() is not None, "it publishes in tx"
    finally:
        await drop_namespace(ns)


async def test_a_start_without_a_transaction_wakes_a_listening_worker(
    state: PgStateAdapter[Any],
) -> None:
    """A chain started without a transaction sends its wake-up in its own INSERT statement: a worker
    that hears of new jobs through NOTIFY alone (it polls once a day) runs it at once."""
    from dataclasses import dataclass

    from queuert import Client, EntryJobType, Worker

    @dataclass
    class N:
        value: int

    class Woken(EntryJobType[N, int], name="woken_by_start"):
        pass

    ran = asyncio.Event()
    async with (
        PgNotifyAdapter(DSN, channel_prefix="qtstartwake") as notify,
        Client(state, job_types=[Woken], notify=notify) as client,
    ):
        worker: Worker[Any] = Worker(client, concurrency=1, poll_interval=86400)

        @worker.handler(Woken)
        async def woken(attempt: Any) -> int:
            ran.set()
            return int(attempt.job.input.value)

        await worker.start()
        try:
            chain = await client.start_chain(Woken(N(7)))
            await asyncio.wait_for(ran.wait(), 10)
            assert await client.wait_for_chain(chain, timeout=10) == 7
        finally:
            await worker.close()


async def test_a_start_that_fails_or_deduplicates_sends_nothing(
    state: PgStateAdapter[Any],
) -> None:
    """The wake-up rides in the INSERT statement only when every row of it is inserted: a start
    whose id is taken raises and sends nothing, nor does a start deduplicated to an existing chain.
    One listening connection receives in commit order, so a sentinel started afterwards would
    arrive after any stray message."""
    from dataclasses import dataclass

    from queuert import Client, Deduplication, EntryJobType
    from queuert.errors import DuplicateJobIdError

    @dataclass
    class N:
        value: int

    class Taken(EntryJobType[N, None], name="taken_id"):
        pass

    class Deduped(EntryJobType[N, None], name="deduped"):
        pass

    class Sentinel(EntryJobType[N, None], name="sentinel"):
        pass

    async with (
        PgNotifyAdapter(DSN, channel_prefix="qtstartfail") as notify,
        PgNotifyAdapter(DSN, channel_prefix="qtstartfail") as listener,
        Client(state, job_types=[Taken, Deduped, Sentinel], notify=notify) as client,
    ):
        heard: list[str] = []
        sentinels = 0
        arrived = asyncio.Event()

        def on(type_name: str) -> None:
            nonlocal sentinels
            heard.append(type_name)
            if type_name == "sentinel":
                sentinels += 1
                arrived.set()

        await listener.listen_job_scheduled(["taken_id", "deduped", "sentinel"], on)

        async def sentinel() -> None:
            arrived.clear()
            await client.start_chain(Sentinel(N(0)))
            await asyncio.wait_for(arrived.wait(), 10)

        first = await client.start_chain(Taken(N(1)))
        await client.start_chain(Deduped(N(1), deduplication=Deduplication(key="k")))
        await sentinel()
        assert heard == ["taken_id", "deduped", "sentinel"]
        heard.clear()

        with pytest.raises(DuplicateJobIdError):
            await client.start_chains([Taken(N(2)), Taken(N(3), id=first.id)])
        with pytest.raises(DuplicateJobIdError):  # one start: the statement with scalar arguments
            await client.start_chain(Taken(N(4), id=first.id))
        again = await client.start_chain(Deduped(N(2), deduplication=Deduplication(key="k")))
        assert again.deduplicated
        await client.wait_published()
        await sentinel()
        assert heard == ["sentinel"], "the failed and the deduplicated starts sent nothing"
        page = await client.list_chains(type_names=["taken_id"])
        assert [c.id for c in page.items] == [first.id], "the failed batch left no row"


async def test_a_batch_with_a_deduplicated_start_announces_the_new_chains_after_commit(
    state: PgStateAdapter[Any],
) -> None:
    """A batch without a transaction in which one start deduplicates sends no wake-up in its
    statement; the chains it did create are announced after its commit instead (one message for
    their type), with nobody taking the creation events. The deduplicated one announces nothing."""
    from dataclasses import dataclass

    from queuert import Client, Deduplication, EntryJobType

    @dataclass
    class N:
        value: int

    class Deduped(EntryJobType[N, None], name="deduped_in_batch"):
        pass

    class Fresh(EntryJobType[N, None], name="fresh_in_batch"):
        pass

    class Sentinel(EntryJobType[N, None], name="batch_sentinel"):
        pass

    class Quiet:
        """Takes no event of any level (nothing is to be built for it)."""

        def __init__(self) -> None:
            self.emitted: list[object] = []

        def listens(self, level: int) -> bool:
            return False

        def emit(self, event: object) -> None:
            self.emitted.append(event)

    names = ["deduped_in_batch", "fresh_in_batch", "batch_sentinel"]
    quiet = Quiet()
    async with (
        PgNotifyAdapter(DSN, channel_prefix="qtbatchdedup") as notify,
        PgNotifyAdapter(DSN, channel_prefix="qtbatchdedup") as listener,
        Client(
            state, job_types=[Deduped, Fresh, Sentinel], notify=notify, observability=quiet
        ) as client,
    ):
        heard: list[str] = []
        arrived = asyncio.Event()

        def on(type_name: str) -> None:
            heard.append(type_name)
            if type_name == "batch_sentinel":
                arrived.set()

        await listener.listen_job_scheduled(names, on)
        first = await client.start_chain(Deduped(N(0), deduplication=Deduplication(key="k")))
        chains = await client.start_chains(
            [
                Deduped(N(1), deduplication=Deduplication(key="k")),
                Fresh(N(2)),
                Fresh(N(3)),
            ]
        )
        assert [c.deduplicated for c in chains] == [True, False, False]
        assert chains[0].id == first.id
        await client.wait_published()
        await client.start_chain(Sentinel(N(4)))
        await asyncio.wait_for(arrived.wait(), 10)
        assert heard == ["deduped_in_batch", "fresh_in_batch", "batch_sentinel"]
        assert quiet.emitted == []
