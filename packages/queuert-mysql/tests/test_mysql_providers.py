"""Enqueue inside the application's own transaction, for every provider (aiomysql, SQLAlchemy with
aiomysql, SQLAlchemy with asyncmy): a rolled-back business write leaves no job, a committed one
leaves a job that a worker then runs."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiomysql
import pytest
from mysql_helpers import connect_args, drop_prefix, engine, sql, unique_prefix
from queuert import Attempt, Client, EntryJobType, Worker
from queuert_conformance.resilience import silent_peer
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
    import asyncio

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
    import asyncio

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


async def test_a_statement_that_gets_no_answer_times_out_and_its_connection_is_dropped() -> None:
    """A statement of queuert's that waits with no answer (here: behind a table lock another
    session holds) raises TimeoutError after ``statement_timeout`` instead of hanging the worker;
    its connection is closed, and the next statement gets a fresh one."""
    import asyncio
    import uuid

    prefix = unique_prefix()
    adapter = await MysqlStateAdapter.connect(
        **connect_args(), table_prefix=prefix, statement_timeout=0.5
    )
    holder = await aiomysql.connect(**connect_args(), autocommit=True)
    try:
        await adapter.migrate()
        async with holder.cursor() as cur:
            await cur.execute(f"LOCK TABLES `{prefix}job` WRITE")
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(asyncio.TimeoutError):
            await adapter.get_job(str(uuid.uuid4()))
        assert loop.time() - started < 5
        async with holder.cursor() as cur:
            await cur.execute("UNLOCK TABLES")
        assert await adapter.get_job(str(uuid.uuid4())) is None, "the adapter works again"
    finally:
        holder.close()
        await adapter.close()
        await drop_prefix(prefix)


async def test_cancelling_a_statement_that_waits_ends_it_at_once() -> None:
    """A worker shutting down cancels what its tasks await: a statement waiting behind a lock, with
    a statement timeout set, gives way at once (the cancellation is never lost)."""
    import asyncio
    import uuid

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
        async with holder.cursor() as cur:
            await cur.execute("UNLOCK TABLES")
        assert await adapter.get_job(str(uuid.uuid4())) is None, "the adapter works again"
    finally:
        holder.close()
        await adapter.close()
        await drop_prefix(prefix)


async def test_a_caller_waiting_for_a_full_pool_goes_on_when_a_dead_connection_comes_back() -> None:
    """The pool's only connection is killed by the server while a second caller waits for it: the
    dead connection frees its place, and the waiting caller gets a new one (aiomysql wakes waiters
    only for open connections; before, the waiter waited forever)."""
    import asyncio
    import uuid

    prefix = unique_prefix()
    adapter = await MysqlStateAdapter.connect(
        **connect_args(), table_prefix=prefix, minsize=1, maxsize=1
    )
    holder = await aiomysql.connect(**connect_args(), autocommit=True)
    pool = adapter.provider.pool  # type: ignore[attr-defined]
    try:
        await adapter.migrate()
        async with holder.cursor() as cur:
            await cur.execute(f"LOCK TABLES `{prefix}job` WRITE")
        first = asyncio.ensure_future(adapter.get_job(str(uuid.uuid4())))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        while not pool._used:  # the first caller holds the only connection
            assert loop.time() < deadline, "the first caller never took the connection"
            await asyncio.sleep(0.01)
        (taken,) = pool._used
        second = asyncio.ensure_future(adapter.get_job(str(uuid.uuid4())))
        while not pool._cond._waiters:  # the second caller waits for the full pool
            assert loop.time() < deadline, "the second caller never waited"
            await asyncio.sleep(0.01)
        await sql(f"KILL CONNECTION {int(taken.server_thread_id[0])}")
        with pytest.raises(aiomysql.OperationalError):
            await first
        async with holder.cursor() as cur:
            await cur.execute("UNLOCK TABLES")
        assert await asyncio.wait_for(second, 10) is None, "the waiting caller went on"
    finally:
        holder.close()
        await adapter.close()
        await drop_prefix(prefix)


class SwitchableProxy:
    """A TCP proxy in front of the tests' server that forwards each connection until ``silence()``;
    connections accepted after that get no byte back (a server that accepts and never answers)."""

    def __init__(self) -> None:
        self.silent = False
        self.silent_accepted = asyncio.Event()
        self._writers: list[asyncio.StreamWriter] = []
        self._pumps: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> SwitchableProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._server.close()
        for writer in self._writers:
            writer.close()
        for pump in self._pumps:
            pump.cancel()
        await asyncio.gather(*self._pumps, return_exceptions=True)
        await self._server.wait_closed()

    def silence(self) -> None:
        self.silent = True

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.append(writer)
        if self.silent:
            self.silent_accepted.set()
            return
        args = connect_args()
        up_reader, up_writer = await asyncio.open_connection(args["host"], args["port"])
        self._writers.append(up_writer)
        for source, sink in ((reader, up_writer), (up_reader, writer)):
            pump = asyncio.ensure_future(self._pump(source, sink))
            self._pumps.add(pump)

    @staticmethod
    async def _pump(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await source.read(65536):
                sink.write(data)
                await sink.drain()
        sink.close()


async def test_a_caller_that_waited_for_a_full_pool_gives_up_on_a_silent_server() -> None:
    """A caller waits for the pool's only connection; that connection dies and the server now
    accepts connections and never answers. The waiting caller, which opens the replacement, gives
    up after ``connect_timeout`` like any other caller (before, it waited for ever)."""
    import uuid

    prefix = unique_prefix()
    async with SwitchableProxy() as proxy:
        adapter = await MysqlStateAdapter.connect(
            **{**connect_args(), "host": "127.0.0.1", "port": proxy.port},
            table_prefix=prefix,
            minsize=1,
            maxsize=1,
            connect_timeout=1,
        )
        holder = await aiomysql.connect(**connect_args(), autocommit=True)
        pool = adapter.provider.pool  # type: ignore[attr-defined]
        waiting: list[asyncio.Future[Any]] = []
        try:
            await adapter.migrate()
            async with holder.cursor() as cur:
                await cur.execute(f"LOCK TABLES `{prefix}job` WRITE")
            first = asyncio.ensure_future(adapter.get_job(str(uuid.uuid4())))
            waiting.append(first)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 10
            while not pool._used:  # the first caller holds the only connection
                assert loop.time() < deadline, "the first caller never took the connection"
                await asyncio.sleep(0.01)
            (taken,) = pool._used
            second = asyncio.ensure_future(adapter.get_job(str(uuid.uuid4())))
            waiting.append(second)
            while not pool._cond._waiters:  # the second caller waits for the full pool
                assert loop.time() < deadline, "the second caller never waited"
                await asyncio.sleep(0.01)
            proxy.silence()
            await sql(f"KILL CONNECTION {int(taken.server_thread_id[0])}")
            with pytest.raises(aiomysql.OperationalError):
                await first
            done, _ = await asyncio.wait({second}, timeout=8)
            assert done, "the waiting caller still waits for a server that never answers"
            assert proxy.silent_accepted.is_set(), "the replacement went to the silent server"
            with pytest.raises(asyncio.TimeoutError, match="connecting got no answer"):
                second.result()
        finally:
            for future in waiting:
                future.cancel()
            await asyncio.gather(*waiting, return_exceptions=True)
            async with holder.cursor() as cur:
                await cur.execute("UNLOCK TABLES")
            holder.close()
            await adapter.close()
            await drop_prefix(prefix)


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
