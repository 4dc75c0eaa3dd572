"""Enqueue inside the application's own transaction, for every provider (aiomysql, SQLAlchemy with
aiomysql, SQLAlchemy with asyncmy): a rolled-back business write leaves no job, a committed one
leaves a job that a worker then runs."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiomysql
import pytest
from mysql_helpers import connect_args, drop_prefix, engine, sql, unique_prefix
from queuert import Attempt, Client, EntryJobType, Worker
from queuert_conformance.resilience import TcpProxy, silent_peer
from queuert_mysql import AiomysqlProvider, MysqlStateAdapter, SqlAlchemyProvider


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


Insert = Callable[[Any, str], Awaitable[None]]
OwnTx = Callable[[], AbstractAsyncContextManager[tuple[Any, Insert]]]


@asynccontextmanager
async def aiomysql_scenario(prefix: str) -> AsyncIterator[tuple[MysqlStateAdapter[Any], OwnTx]]:
    pool = await aiomysql.create_pool(**connect_args(), autocommit=True, maxsize=4)
    adapter = MysqlStateAdapter(AiomysqlProvider(pool), table_prefix=prefix)

    async def insert(conn: Any, order_id: str) -> None:
        async with conn.cursor() as cur:
            await cur.execute(f"INSERT INTO `{prefix}orders` (id) VALUES (%s)", (order_id,))

    @asynccontextmanager
    async def own() -> AsyncIterator[tuple[Any, Insert]]:
        async with pool.acquire() as conn:
            await conn.begin()
            try:
                yield conn, insert
            except BaseException:
                await conn.rollback()
                raise
            await conn.commit()

    try:
        yield adapter, own
    finally:
        await adapter.close()
        pool.close()
        await pool.wait_closed()


def sqlalchemy_scenario(driver: str) -> Any:
    @asynccontextmanager
    async def scenario(prefix: str) -> AsyncIterator[tuple[MysqlStateAdapter[Any], OwnTx]]:
        from sqlalchemy import text
        from sqlalchemy.ext.asyncio import AsyncSession

        app_engine = engine(driver)
        adapter = MysqlStateAdapter(SqlAlchemyProvider(app_engine), table_prefix=prefix)

        async def insert(session: Any, order_id: str) -> None:
            await session.execute(
                text(f"INSERT INTO `{prefix}orders` (id) VALUES (:id)"), {"id": order_id}
            )

        @asynccontextmanager
        async def own() -> AsyncIterator[tuple[Any, Insert]]:
            async with AsyncSession(app_engine) as session, session.begin():
                yield session, insert

        try:
            yield adapter, own
        finally:
            await adapter.close()
            await app_engine.dispose()

    return scenario


SCENARIOS = {
    "aiomysql": aiomysql_scenario,
    "sqlalchemy-aiomysql": sqlalchemy_scenario("aiomysql"),
    "sqlalchemy-asyncmy": sqlalchemy_scenario("asyncmy"),
}


@pytest.fixture
async def prefix() -> AsyncIterator[str]:
    name = unique_prefix()
    yield name
    await drop_prefix(name)
    await sql(f"DROP TABLE IF EXISTS `{name}orders`")


async def unlock_tables(connection: Any) -> None:
    async with connection.cursor() as cur:
        await cur.execute("UNLOCK TABLES")


@pytest.mark.parametrize("kind", list(SCENARIOS))
async def test_enqueue_in_the_applications_transaction(kind: str, prefix: str) -> None:
    async with SCENARIOS[kind](prefix) as (adapter, own_transaction):
        await adapter.migrate()
        await sql(f"CREATE TABLE `{prefix}orders` (id VARCHAR(20) PRIMARY KEY)")
        client = Client(adapter, job_types=[SendReceipt])
        try:
            # 1. The business write and the chain roll back together.
            rolled_back = ""
            with pytest.raises(Boom):
                async with client.hooks() as hooks, own_transaction() as (tx, insert):
                    await insert(tx, "o-1")
                    chain = await client.start_chain(SendReceipt(Order("o-1")), tx=tx, hooks=hooks)
                    rolled_back = chain.id
                    raise Boom()
            assert await adapter.get_chain(rolled_back) is None
            assert await sql(f"SELECT id FROM `{prefix}orders`") == []

            # 2. Committed together: the order exists and a worker runs the job.
            async with client.hooks() as hooks, own_transaction() as (tx, insert):
                await insert(tx, "o-2")
                chain = await client.start_chain(SendReceipt(Order("o-2")), tx=tx, hooks=hooks)
                # not visible outside the transaction before the commit
                assert await adapter.get_chain(chain.id) is None
            assert await sql(f"SELECT id FROM `{prefix}orders`") == [("o-2",)]
            worker = Worker(client, name=f"w-{kind}", concurrency=2)

            @worker.handler(SendReceipt)
            async def send(attempt: Attempt[SendReceipt]) -> Receipt:
                return Receipt(f"receipt for {attempt.input.order_id}")

            async with worker:
                receipt = await client.wait_for_chain(chain, timeout=20)
            assert receipt == Receipt("receipt for o-2")
        finally:
            await client.close()


@pytest.mark.parametrize("driver", ["aiomysql", "asyncmy"])
async def test_sqlalchemy_sessions_flush_side_effects_on_their_own_commit(
    driver: str, prefix: str
) -> None:
    """With a SQLAlchemy session no hooks scope is needed: the session's commit and rollback events
    flush or drop the notifications and events (after the commit, never before)."""
    from queuert import RecordingObservability
    from queuert.observability import ChainCreated
    from sqlalchemy.ext.asyncio import AsyncSession

    app_engine = engine(driver)
    adapter = MysqlStateAdapter(SqlAlchemyProvider(app_engine), table_prefix=prefix)
    await adapter.migrate()
    events = RecordingObservability()
    client = Client(adapter, job_types=[SendReceipt], observability=events)
    try:
        with pytest.raises(Boom):
            async with AsyncSession(app_engine) as session, session.begin():
                await client.start_chain(SendReceipt(Order("o-1")), tx=session)
                raise Boom()
        await client.wait_published()
        assert events.of(ChainCreated) == []

        async with AsyncSession(app_engine) as session:
            async with session.begin():
                chain = await client.start_chain(SendReceipt(Order("o-2")), tx=session)
                assert events.of(ChainCreated) == [], "nothing before the commit"
            await client.wait_published()
            assert [e.chain_id for e in events.of(ChainCreated)] == [chain.id]
            async with session.begin():
                second = await client.start_chain(SendReceipt(Order("o-3")), tx=session)
            await client.wait_published()
            assert [e.chain_id for e in events.of(ChainCreated)] == [chain.id, second.id]
        assert await adapter.get_chain(chain.id) is not None
    finally:
        await client.close()
        await adapter.close()
        await app_engine.dispose()


async def test_connecting_to_a_silent_server_times_out() -> None:
    """A peer that accepts the TCP connection and then says nothing makes connecting fail after
    ``connect_timeout`` (10 s by default; here 1 s), not aiomysql's 60 s."""
    loop = asyncio.get_running_loop()
    async with silent_peer() as (host, port, accepted):
        started = loop.time()
        with pytest.raises(asyncio.TimeoutError):
            await MysqlStateAdapter.connect(
                host=host, port=port, user="root", db="test", connect_timeout=1
            )
        assert accepted.is_set(), "the connection reached the silent peer"
        assert loop.time() - started < 6, f"gave up after {loop.time() - started:.1f}s"


async def test_a_new_pooled_connection_to_a_silent_server_times_out() -> None:
    """A pool that opens its connections on demand (``minsize=0``: after a server restart, say)
    gives up on one whose server accepts the TCP connection and then says nothing, after
    ``connect_timeout`` (aiomysql bounds the TCP connect only, not the server's greeting)."""
    loop = asyncio.get_running_loop()
    async with silent_peer() as (host, port, accepted):
        adapter = await MysqlStateAdapter.connect(
            host=host, port=port, user="root", db="test", connect_timeout=1, minsize=0
        )
        try:
            started = loop.time()
            with pytest.raises(asyncio.TimeoutError, match="connecting got no answer"):
                await adapter.next_due(["any"])
            assert accepted.is_set(), "the connection reached the silent peer"
            assert loop.time() - started < 6, f"gave up after {loop.time() - started:.1f}s"
        finally:
            await adapter.close()


async def migrated(prefix: str) -> None:
    """Migrate ``prefix``'s tables with an adapter of its own that has no statement timeout (a test
    that sets a short one times its own statement, not the migration's DDL on a busy server)."""
    adapter = await MysqlStateAdapter.connect(**connect_args(), table_prefix=prefix)
    try:
        await adapter.migrate()
    finally:
        await adapter.close()


async def test_a_statement_that_gets_no_answer_times_out_and_its_connection_is_dropped() -> None:
    """A statement of queuert's that waits with no answer (here: behind a table lock another
    session holds) raises TimeoutError after ``statement_timeout`` instead of hanging the worker;
    its connection is closed, and the next statement gets a fresh one."""
    prefix = unique_prefix()
    await migrated(prefix)
    adapter = await MysqlStateAdapter.connect(
        **connect_args(), table_prefix=prefix, statement_timeout=0.5
    )
    holder = await aiomysql.connect(**connect_args(), autocommit=True)
    try:
        async with holder.cursor() as cur:
            await cur.execute(f"LOCK TABLES `{prefix}job` WRITE")
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(asyncio.TimeoutError):
            await adapter.get_job(str(uuid.uuid4()))
        assert loop.time() - started < 5
        await unlock_tables(holder)
        assert await adapter.get_job(str(uuid.uuid4())) is None, "the adapter works again"
    finally:
        holder.close()
        await adapter.close()
        await drop_prefix(prefix)


async def test_cancelling_a_statement_that_waits_ends_it_at_once() -> None:
    """A worker shutting down cancels what its tasks await: a statement waiting behind a lock, with
    a statement timeout set, gives way at once (the cancellation is never lost)."""
    prefix = unique_prefix()
    adapter = await MysqlStateAdapter.connect(
        **connect_args(), table_prefix=prefix, statement_timeout=30
    )
    holder = await aiomysql.connect(**connect_args(), autocommit=True)
    try:
        await adapter.migrate()
        async with holder.cursor() as cur:
            await cur.execute(f"LOCK TABLES `{prefix}job` WRITE")
        waiting = asyncio.ensure_future(adapter.get_job(str(uuid.uuid4())))

        async def blocked() -> bool:
            async with holder.cursor() as cur:
                await cur.execute(
                    "SELECT count(*) FROM information_schema.processlist"
                    " WHERE state LIKE 'Waiting for table metadata lock'"
                    " AND info LIKE %s",
                    (f"%{prefix}job%",),
                )
                (count,) = await cur.fetchone()
                return bool(count)

        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        while not await blocked():
            assert loop.time() < deadline, "the statement never reached the lock"
        began = loop.time()
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(waiting, 5)
        assert loop.time() - began < 2
        await unlock_tables(holder)
        assert await adapter.get_job(str(uuid.uuid4())) is None, "the adapter works again"
    finally:
        holder.close()
        await adapter.close()
        await drop_prefix(prefix)


@dataclass
class FullPool:
    """Two callers of an adapter whose pool holds one connection: ``first`` holds it, waiting behind
    a table lock, and ``second`` waits for the full pool; ``taken`` is the held connection."""

    first: asyncio.Future[Any]
    second: asyncio.Future[Any]
    taken: Any
    holder: Any
    """The connection that holds the table lock."""

    async def unlock(self) -> None:
        await unlock_tables(self.holder)

    async def kill_the_held_connection(self) -> None:
        """The server ends the held connection; the first caller fails with it."""
        await sql(f"KILL CONNECTION {int(self.taken.server_thread_id[0])}")
        with pytest.raises(aiomysql.OperationalError):
            await self.first


@asynccontextmanager
async def full_pool(prefix: str, **connect_options: Any) -> AsyncIterator[FullPool]:
    """:class:`FullPool` on a migrated adapter (``minsize=maxsize=1``, with ``connect_options``);
    leaving cancels the callers, lifts the lock and closes the adapter."""
    adapter = await MysqlStateAdapter.connect(
        **{**connect_args(), **connect_options}, table_prefix=prefix, minsize=1, maxsize=1
    )
    holder = await aiomysql.connect(**connect_args(), autocommit=True)
    pool = adapter.provider.pool  # type: ignore[attr-defined]
    callers: list[asyncio.Future[Any]] = []
    try:
        await adapter.migrate()
        async with holder.cursor() as cur:
            await cur.execute(f"LOCK TABLES `{prefix}job` WRITE")
        callers.append(asyncio.ensure_future(adapter.get_job(str(uuid.uuid4()))))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        while not pool._used:  # the first caller holds the only connection
            assert loop.time() < deadline, "the first caller never took the connection"
            await asyncio.sleep(0.01)
        (taken,) = pool._used
        callers.append(asyncio.ensure_future(adapter.get_job(str(uuid.uuid4()))))
        while not pool._cond._waiters:  # the second caller waits for the full pool
            assert loop.time() < deadline, "the second caller never waited"
            await asyncio.sleep(0.01)
        yield FullPool(callers[0], callers[1], taken, holder)
    finally:
        for caller in callers:
            caller.cancel()
        await asyncio.gather(*callers, return_exceptions=True)
        await unlock_tables(holder)
        holder.close()
        await adapter.close()
        await drop_prefix(prefix)


async def test_a_caller_waiting_for_a_full_pool_goes_on_when_a_dead_connection_comes_back() -> None:
    """The pool's only connection is killed by the server while a second caller waits for it: the
    dead connection frees its place, and the waiting caller gets a new one (aiomysql wakes waiters
    only for open connections; before, the waiter waited forever)."""
    async with full_pool(unique_prefix()) as callers:
        await callers.kill_the_held_connection()
        await callers.unlock()
        assert await asyncio.wait_for(callers.second, 10) is None, "the waiting caller went on"


async def test_a_caller_that_waited_for_a_full_pool_gives_up_on_a_silent_server() -> None:
    """A caller waits for the pool's only connection; that connection dies and the server now
    accepts connections and never answers. The waiting caller, which opens the replacement, gives
    up after ``connect_timeout`` like any other caller (before, it waited for ever)."""
    args = connect_args()
    async with (
        TcpProxy(args["host"], args["port"]) as proxy,
        full_pool(unique_prefix(), host="127.0.0.1", port=proxy.port, connect_timeout=1) as callers,
    ):
        proxy.silence()
        await callers.kill_the_held_connection()
        done, _ = await asyncio.wait({callers.second}, timeout=8)
        assert done, "the waiting caller still waits for a server that never answers"
        assert proxy.silent_accepted.is_set(), "the replacement went to the silent server"
        with pytest.raises(asyncio.TimeoutError, match="connecting got no answer"):
            callers.second.result()


async def test_an_aiomysql_connection_in_autocommit_with_no_transaction_is_refused(
    prefix: str,
) -> None:
    """In autocommit mode with no ``BEGIN`` every statement commits on its own: the chain's rows
    would be written one by one, whatever the caller does next. Refused with ``UsageError`` before
    anything is written; after ``await conn.begin()`` the same connection is accepted."""
    from queuert import UsageError

    pool = await aiomysql.create_pool(**connect_args(), minsize=1, maxsize=2, autocommit=True)
    adapter = MysqlStateAdapter(AiomysqlProvider(pool), table_prefix=prefix)
    try:
        await adapter.migrate()
        async with Client(adapter, job_types=[SendReceipt]) as client, pool.acquire() as conn:
            with pytest.raises(UsageError, match="autocommit"):
                async with client.hooks(conn):
                    await client.start_chain(SendReceipt(Order("o")), tx=conn)
            assert not (await client.list_chains()).items, "a refused start wrote a chain"
            await conn.begin()
            async with client.hooks(conn):
                await client.start_chain(SendReceipt(Order("o")), tx=conn)
            await conn.commit()
            assert len((await client.list_chains()).items) == 1
    finally:
        await adapter.close()
        pool.close()
        await pool.wait_closed()


@pytest.mark.parametrize("driver", ["aiomysql", "asyncmy"])
async def test_a_session_s_savepoint_set_before_any_statement_takes_only_its_chain(
    driver: str, prefix: str
) -> None:
    """A savepoint that is the session transaction's first statement: the chain started in it
    vanishes with its rollback, with its events, and the transaction goes on to commit the rest."""
    from queuert import RecordingObservability
    from queuert.observability import ChainCreated
    from sqlalchemy.ext.asyncio import AsyncSession

    app_engine = engine(driver)
    adapter = MysqlStateAdapter(SqlAlchemyProvider(app_engine), table_prefix=prefix)
    await adapter.migrate()
    events = RecordingObservability()
    client = Client(adapter, job_types=[SendReceipt], observability=events)
    try:
        async with AsyncSession(app_engine) as session, session.begin():
            nested = await session.begin_nested()
            dropped = await client.start_chain(SendReceipt(Order("o-1")), tx=session)
            await nested.rollback()
            kept = await client.start_chain(SendReceipt(Order("o-2")), tx=session)
        await client.wait_published()
        assert await adapter.get_chain(dropped.id) is None
        assert await adapter.get_chain(kept.id) is not None
        assert [e.chain_id for e in events.of(ChainCreated)] == [kept.id]
    finally:
        await client.close()
        await adapter.close()
        await app_engine.dispose()
