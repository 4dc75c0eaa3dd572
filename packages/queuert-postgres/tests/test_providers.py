"""Enqueue inside the application's own transaction, for every provider: a rolled-back business write
leaves no job, a committed one leaves a job that a worker then runs."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import asyncpg
import pytest
from pg_helpers import DSN, Namespace
from queuert import Attempt, Client, EntryJobType, UsageError, Worker
from queuert_postgres import (
    AsyncpgProvider,
    PgNotifyAdapter,
    PgStateAdapter,
    PsycopgProvider,
    SqlAlchemyProvider,
)


@dataclass
class Order:
    order_id: str


@dataclass
class Receipt:
    text: str


class SendReceipt(EntryJobType[Order, Receipt]):
    pass


class Boom(Exception):
    pass


# Each scenario: (adapter, "open my own transaction" -> (tx, insert_order(tx, id)), cleanup)
OwnTx = Callable[[], AbstractAsyncContextManager[tuple[Any, Callable[[Any, str], Awaitable[None]]]]]


@asynccontextmanager
async def asyncpg_scenario(ns: Namespace) -> AsyncIterator[tuple[PgStateAdapter[Any], OwnTx]]:
    pool = await asyncpg.create_pool(DSN, min_size=1, max_size=4)
    adapter = PgStateAdapter(AsyncpgProvider(pool), schema=ns.schema)

    async def insert(conn: Any, order_id: str) -> None:
        await conn.execute(f'INSERT INTO "{ns.schema}".orders (id) VALUES ($1)', order_id)

    @asynccontextmanager
    async def own() -> AsyncIterator[tuple[Any, Callable[[Any, str], Awaitable[None]]]]:
        async with pool.acquire() as conn, conn.transaction():
            yield conn, insert

    try:
        yield adapter, own
    finally:
        await adapter.close()
        await pool.close()


@asynccontextmanager
async def psycopg_scenario(ns: Namespace) -> AsyncIterator[tuple[PgStateAdapter[Any], OwnTx]]:
    import psycopg

    adapter = PgStateAdapter(PsycopgProvider(DSN), schema=ns.schema)

    async def insert(conn: Any, order_id: str) -> None:
        await conn.execute(f'INSERT INTO "{ns.schema}".orders (id) VALUES (%s)', (order_id,))

    @asynccontextmanager
    async def own() -> AsyncIterator[tuple[Any, Callable[[Any, str], Awaitable[None]]]]:
        async with await psycopg.AsyncConnection.connect(DSN) as conn, conn.transaction():
            yield conn, insert

    try:
        yield adapter, own
    finally:
        await adapter.close()


def sqlalchemy_scenario(driver: str) -> Any:
    @asynccontextmanager
    async def scenario(ns: Namespace) -> AsyncIterator[tuple[PgStateAdapter[Any], OwnTx]]:
        from sqlalchemy import text
        from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

        engine = create_async_engine(DSN.replace("postgresql://", f"postgresql+{driver}://"))
        adapter = PgStateAdapter(SqlAlchemyProvider(engine), schema=ns.schema)

        async def insert(session: Any, order_id: str) -> None:
            await session.execute(
                text(f'INSERT INTO "{ns.schema}".orders (id) VALUES (:id)'), {"id": order_id}
            )

        @asynccontextmanager
        async def own() -> AsyncIterator[tuple[Any, Callable[[Any, str], Awaitable[None]]]]:
            async with AsyncSession(engine) as session, session.begin():
                yield session, insert

        try:
            yield adapter, own
        finally:
            await adapter.close()
            await engine.dispose()

    return scenario


SCENARIOS = {
    "asyncpg": asyncpg_scenario,
    "psycopg": psycopg_scenario,
    "sqlalchemy-asyncpg": sqlalchemy_scenario("asyncpg"),
    "sqlalchemy-psycopg": sqlalchemy_scenario("psycopg"),
}


async def count_orders(ns: Namespace) -> int:
    conn = await asyncpg.connect(DSN)
    try:
        return int(await conn.fetchval(f'SELECT count(*) FROM "{ns.schema}".orders'))
    finally:
        await conn.close()


@pytest.mark.parametrize("kind", list(SCENARIOS))
async def test_enqueue_in_the_applications_transaction(kind: str, namespace: Namespace) -> None:
    async with SCENARIOS[kind](namespace) as (adapter, own_transaction):
        await adapter.migrate()
        conn = await asyncpg.connect(DSN)
        try:
            await conn.execute(f'CREATE TABLE "{namespace.schema}".orders (id text PRIMARY KEY)')
        finally:
            await conn.close()
        notify = PgNotifyAdapter(DSN, channel_prefix=namespace.schema)
        client = Client(adapter, job_types=[SendReceipt], notify=notify)
        try:
            # 1. The business write and the chain roll back together.
            rolled_back = ""
            # (the hooks scope encloses the transaction, so it flushes after the commit)
            with pytest.raises(Boom):
                async with client.hooks() as hooks, own_transaction() as (tx, insert):
                    await insert(tx, "o-1")
                    chain = await client.start_chain(SendReceipt(Order("o-1")), tx=tx, hooks=hooks)
                    rolled_back = chain.id
                    raise Boom()
            assert await adapter.get_chain(rolled_back) is None
            assert await count_orders(namespace) == 0

            # 2. Committed together: the order exists and a worker runs the job.
            async with client.hooks() as hooks, own_transaction() as (tx, insert):
                await insert(tx, "o-2")
                chain = await client.start_chain(SendReceipt(Order("o-2")), tx=tx, hooks=hooks)
                # not visible outside the transaction before the commit
                assert await adapter.get_chain(chain.id) is None
            assert await count_orders(namespace) == 1
            worker = Worker(client, name=f"w-{kind}", concurrency=2)

            @worker.handler(SendReceipt)
            async def send(attempt: Attempt[SendReceipt]) -> None:
                await attempt.complete(Receipt(f"receipt for {attempt.input.order_id}"))

            async with worker:
                receipt = await client.wait_for_chain(chain, timeout=20)
            assert receipt == Receipt("receipt for o-2")
        finally:
            await client.close()
            await notify.close()


@pytest.mark.parametrize("driver", ["asyncpg", "psycopg"])
async def test_sqlalchemy_sessions_flush_side_effects_on_their_own_commit(
    driver: str, namespace: Namespace
) -> None:
    """With a SQLAlchemy session no hooks scope is needed: the session's commit and rollback events
    flush or drop the notifications and events (after the commit, never before)."""
    from queuert import RecordingObservability
    from queuert.observability import ChainCreated
    from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

    engine = create_async_engine(DSN.replace("postgresql://", f"postgresql+{driver}://"))
    adapter = PgStateAdapter(SqlAlchemyProvider(engine), schema=namespace.schema)
    await adapter.migrate()
    events = RecordingObservability()
    client = Client(adapter, job_types=[SendReceipt], observability=events)
    try:
        with pytest.raises(Boom):
            async with AsyncSession(engine) as session, session.begin():
                await client.start_chain(SendReceipt(Order("o-1")), tx=session)
                raise Boom()
        await client.wait_published()
        assert events.of(ChainCreated) == []

        async with AsyncSession(engine) as session:
            async with session.begin():
                chain = await client.start_chain(SendReceipt(Order("o-2")), tx=session)
                assert events.of(ChainCreated) == [], "nothing before the commit"
            await client.wait_published()
            assert [e.chain_id for e in events.of(ChainCreated)] == [chain.id]
            # the same session's next transaction gets fresh hooks
            async with session.begin():
                second = await client.start_chain(SendReceipt(Order("o-3")), tx=session)
            await client.wait_published()
            assert [e.chain_id for e in events.of(ChainCreated)] == [chain.id, second.id]
        assert await adapter.get_chain(chain.id) is not None
    finally:
        await client.close()
        await adapter.close()
        await engine.dispose()


async def test_an_asyncpg_connection_with_no_transaction_is_refused(namespace: Namespace) -> None:
    """Outside a transaction asyncpg commits every statement on its own: the chain's rows would be
    written one by one, whatever the caller does next. Refused with UsageError, nothing written."""
    pool = await asyncpg.create_pool(DSN, min_size=1, max_size=2)
    adapter = PgStateAdapter(AsyncpgProvider(pool), schema=namespace.schema)
    try:
        await adapter.migrate()
        async with Client(adapter, job_types=[SendReceipt]) as client, pool.acquire() as conn:
            with pytest.raises(UsageError, match="no open transaction"):
                async with client.hooks(conn):
                    await client.start_chain(SendReceipt(Order("o")), tx=conn)
            assert not (await client.list_chains()).items
    finally:
        await adapter.close()
        await pool.close()


async def test_a_psycopg_connection_in_autocommit_is_refused(namespace: Namespace) -> None:
    import psycopg

    adapter = PgStateAdapter(PsycopgProvider(DSN, max_size=2), schema=namespace.schema)
    try:
        await adapter.migrate()
        conn = await psycopg.AsyncConnection.connect(DSN, autocommit=True)
        try:
            async with Client(adapter, job_types=[SendReceipt]) as client:
                with pytest.raises(UsageError, match="autocommit"):
                    async with client.hooks(conn):
                        await client.start_chain(SendReceipt(Order("o")), tx=conn)
                async with conn.transaction(), client.hooks(conn):  # inside one: accepted
                    await client.start_chain(SendReceipt(Order("p")), tx=conn)
                assert len((await client.list_chains()).items) == 1
        finally:
            await conn.close()
    finally:
        await adapter.close()
