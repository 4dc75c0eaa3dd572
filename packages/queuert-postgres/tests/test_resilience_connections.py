"""A transaction whose connection is terminated under it: the error (or cancellation) raised in the
block must reach the caller unchanged, and the provider must stay usable.

The worker relies on this: a handler cancelled at shutdown must end as cancelled, and a failed
attempt must record its real cause.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import asyncpg
import pytest
from pg_helpers import DSN, Namespace, make_provider
from queuert import Attempt, Client, EntryJobType, Worker
from queuert_conformance.resilience import Progress
from queuert_postgres import PgProvider, PgStateAdapter, Sql, _provider

PID = Sql("SELECT pg_backend_pid()")
ONE = Sql("SELECT 1")

KINDS = ["asyncpg", "psycopg", "sqlalchemy", "sqlalchemy-psycopg"]
POOL_SIZE = 10
"""At least as many connections as any provider of ``make_provider`` keeps idle."""


class Boom(Exception):
    pass


class Tick(EntryJobType[int, int], name="tick"):
    pass


async def _terminate(pid: int) -> None:
    """Terminate one backend (this test's own) and wait until it is gone."""
    conn = await asyncpg.connect(DSN)
    try:
        await conn.execute("SELECT pg_terminate_backend($1)", pid)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        while await conn.fetchval("SELECT count(*) FROM pg_stat_activity WHERE pid = $1", pid):
            assert loop.time() < deadline, "the backend did not exit"
            await asyncio.sleep(0.01)
    finally:
        await conn.close()


async def _transactions_start_fresh(provider: PgProvider[Any], count: int) -> bool:
    """Open ``count`` transactions at once (so the pool hands out that many different connections)
    and tell whether each one began now: a connection handed back inside an older transaction would
    report that transaction's start (``now()``) from before this call."""
    mark = (await provider.fetch(Sql("SELECT clock_timestamp()"), [], None))[0][0]
    inside = 0
    all_inside = asyncio.Event()

    async def one() -> bool:
        nonlocal inside
        async with provider.transaction() as tx:
            started = (await provider.fetch(Sql("SELECT now()"), [], tx))[0][0]
            inside += 1
            if inside == count:
                all_inside.set()
            await all_inside.wait()  # hold the connection until every transaction has its own
            return bool(started >= mark)

    return all(await asyncio.wait_for(asyncio.gather(*[one() for _ in range(count)]), 30))


async def _inside_a_dead_transaction(provider: PgProvider[Any], then: Any) -> None:
    async with provider.transaction() as tx:
        lost = asyncio.Event()
        if hasattr(tx, "add_termination_listener"):  # asyncpg: learn when the client saw it
            tx.add_termination_listener(lambda _conn: lost.set())
        else:
            lost.set()  # the other drivers mark the connection broken when a statement fails
        (row,) = await provider.fetch(PID, [], tx)
        await _terminate(row[0])
        with pytest.raises(Exception):  # noqa: B017 - each driver has its own error
            await provider.fetch(ONE, [], tx)
        # Usually at once; should asyncpg notice the closed socket only later, the block raises
        # first, which must work as well.
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(lost.wait(), 5)
        await then()


@pytest.mark.parametrize("kind", KINDS)
async def test_the_blocks_exception_propagates_when_the_connection_died(kind: str) -> None:
    provider = await make_provider(kind)
    try:

        async def boom() -> None:
            raise Boom()

        with pytest.raises(Boom):
            await _inside_a_dead_transaction(provider, boom)
        async with provider.transaction() as tx:  # the provider is still usable
            assert (await provider.fetch(ONE, [], tx))[0][0] == 1
    finally:
        await provider.close()


@pytest.mark.parametrize("kind", KINDS)
async def test_a_cancelled_block_ends_cancelled_when_the_connection_died(kind: str) -> None:
    provider = await make_provider(kind)
    try:
        entered = asyncio.Event()

        async def park() -> None:
            entered.set()
            await asyncio.Event().wait()

        task = asyncio.ensure_future(_inside_a_dead_transaction(provider, park))
        await asyncio.wait_for(entered.wait(), 10)
        task.cancel()
        await asyncio.wait([task], timeout=10)
        assert task.cancelled(), f"the task ended with {task.exception()!r}, not cancelled"
    finally:
        await provider.close()


async def test_cancellations_during_the_rollback_do_not_leak_the_transaction() -> None:
    """A worker shutting down cancels a task, then cancels it again while its transaction rolls
    back. The ROLLBACK must still run to its end before the connection goes back to the pool
    (asyncpg otherwise reports "Resetting connection with an active transaction" through the loop's
    exception handler), the task must end cancelled, and nothing of the block may be committed.
    The task is cancelled on every loop turn until it ends, so a cancellation lands while the
    ROLLBACK is in flight."""
    loop = asyncio.get_running_loop()
    reported: list[str] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: reported.append(str(context.get("message"))))
    provider = await make_provider("asyncpg")
    marker = f"cancel-{id(provider)}"
    try:
        setup = await asyncpg.connect(DSN)
        await setup.execute("CREATE TABLE IF NOT EXISTS queuert_cancel_probe (v text)")
        # Whether a cancellation lands in the window where the ROLLBACK was sent but its answer not
        # yet read is timing: without the fix a run of these tries reported the leaked transaction
        # in some runs only, so this is a stress guard; the two tests below pin the mechanism
        # deterministically with a statement that takes a known time.
        for _ in range(200):
            entered = asyncio.Event()

            async def block(entered: asyncio.Event = entered) -> None:
                async with provider.transaction() as tx:
                    await provider.fetch(
                        Sql("INSERT INTO queuert_cancel_probe (v) VALUES ($1::text)"), [marker], tx
                    )
                    entered.set()
                    await asyncio.Event().wait()

            task = asyncio.ensure_future(block())
            await asyncio.wait_for(entered.wait(), 10)
            deadline = loop.time() + 10
            while not task.done() and loop.time() < deadline:
                task.cancel()
                await asyncio.sleep(0)
            assert task.cancelled(), f"the task ended with {task.exception()!r}, not cancelled"
        async with provider.transaction() as tx:  # the pool still works
            assert (await provider.fetch(ONE, [], tx))[0][0] == 1
        written = await setup.fetchval(
            "SELECT count(*) FROM queuert_cancel_probe WHERE v = $1", marker
        )
        await setup.execute("DELETE FROM queuert_cancel_probe WHERE v = $1", marker)
        await setup.close()
        assert written == 0, "a cancelled block's write was committed"
        assert [m for m in reported if "active transaction" in m] == []
    finally:
        loop.set_exception_handler(previous)
        await provider.close()


@pytest.mark.parametrize("kind", KINDS)
async def test_a_cancellation_during_begin_does_not_leak_the_transaction(kind: str) -> None:
    """A task cancelled while its ``BEGIN`` is on the way (a worker shutting down as an attempt opens
    its transaction): the server opens the transaction all the same, so the provider must end it
    before the connection goes back to the pool; asyncpg otherwise rolls it back itself and reports
    "Resetting connection with an active transaction" through the loop's exception handler. The
    cancellation is sent after 0 to 4 loop turns, which puts it before, during and after the
    ``BEGIN``'s round trip; with every provider the task must end cancelled every time and the pool
    stay usable. (SQLAlchemy on asyncpg also reports "Future exception was never retrieved" for some
    of these: its pool terminates the interrupted connection and asyncpg leaves that future unread.
    The checks below hold for it all the same.)"""
    loop = asyncio.get_running_loop()
    reported: list[str] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: reported.append(str(context.get("message"))))
    provider = await make_provider(kind)
    try:
        for attempt in range(200):

            async def block() -> None:
                async with provider.transaction():
                    await asyncio.Event().wait()

            task = asyncio.ensure_future(block())
            for _ in range(attempt % 5):
                await asyncio.sleep(0)
            task.cancel()
            await asyncio.wait([task], timeout=10)
            assert task.cancelled(), f"the task ended with {task.exception()!r}, not cancelled"
        assert await _transactions_start_fresh(provider, POOL_SIZE), (
            "a pooled connection was still inside a transaction opened before"
        )
        assert [m for m in reported if "active transaction" in m] == []
    finally:
        loop.set_exception_handler(previous)
        await provider.close()


async def test_closing_a_busy_worker_leaves_no_connection_inside_a_transaction(
    namespace: Namespace,
) -> None:
    """The end-to-end case of the test above: a worker closed while its slots keep opening
    transactions (attempts, claims, completions) must hand every connection back to the pool
    outside a transaction, so asyncpg has nothing to roll back and report. Before the fix this
    reported in about every other run (timing), so it is a stress guard; the test above pins the
    mechanism."""
    loop = asyncio.get_running_loop()
    reported: list[str] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: reported.append(str(context.get("message"))))
    adapter = PgStateAdapter(
        await make_provider("asyncpg"), schema=namespace.schema, table_prefix=namespace.prefix
    )
    try:
        await adapter.migrate()
        for _cycle in range(3):
            processed = Progress()
            client: Client[Any] = Client(adapter, job_types=[Tick], observability=processed)
            async with client.transaction() as tx:
                await client.start_chains([Tick(n) for n in range(600)], tx=tx)
            worker: Worker[Any] = Worker(client, concurrency=10, poll_interval=1.0)

            @worker.handler(Tick)
            async def tick(attempt: Attempt[Tick]) -> None:
                await attempt.complete(attempt.input)

            await worker.start()
            await asyncio.wait_for(processed.reached(150), 60)
            await worker.close()  # with attempts, claims and completions in flight
            await client.close()
        assert [m for m in reported if "active transaction" in m] == []
    finally:
        loop.set_exception_handler(previous)
        await adapter.close()


async def test_a_transaction_end_runs_to_its_end_through_cancellations() -> None:
    """``_to_the_end`` (how the asyncpg provider sends COMMIT and ROLLBACK): the caller is cancelled
    again and again while a 0.3 s statement runs; the statement still completes on the connection
    before the cancellation reaches the caller, and the connection is free for the next statement."""
    conn = await asyncpg.connect(DSN)
    try:
        loop = asyncio.get_running_loop()
        finished: list[float] = []

        async def end() -> None:
            await _provider._to_the_end(conn, conn.execute("SELECT pg_sleep(0.3)"))
            finished.append(loop.time())

        started = loop.time()
        task = asyncio.ensure_future(end())
        # Let the statement get on its way (a task cancelled before its first step never starts).
        await asyncio.sleep(0.05)
        while not task.done():
            task.cancel()
            await asyncio.sleep(0.01)
        assert task.cancelled()
        assert finished == [], "the cancellation reached the caller"
        assert loop.time() - started >= 0.29, "the caller was released before the statement ended"
        assert not conn.is_in_transaction()
        assert await conn.fetchval("SELECT 1") == 1, "the connection is free again"
    finally:
        await conn.close()


async def test_a_transaction_end_that_fails_raises_the_statements_error() -> None:
    """``_to_the_end`` hands the caller the statement's own error, at once and unchanged, whether
    or not the caller was cancelled meanwhile (then the cancellation wins), and the connection is
    usable afterwards."""
    conn = await asyncpg.connect(DSN)
    try:
        with pytest.raises(asyncpg.DivisionByZeroError):
            await _provider._to_the_end(
                conn, conn.execute("SELECT 1 / (count(*) - 1) FROM pg_sleep(0.1)")
            )
        assert await conn.fetchval("SELECT 1") == 1

        task = asyncio.ensure_future(
            _provider._to_the_end(
                conn, conn.execute("SELECT 1 / (count(*) - 1) FROM pg_sleep(0.2)")
            )
        )
        await _until_active(conn.get_server_pid())  # cancelled only once the statement runs
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert await _state_of(conn.get_server_pid()) == "idle", "the statement ended first"
        assert await conn.fetchval("SELECT 2") == 2, "and the connection is free again"
    finally:
        await conn.close()


async def _state_of(pid: int) -> str | None:
    """The ``pg_stat_activity`` state of backend ``pid``, seen from another connection."""
    other = await asyncpg.connect(DSN)
    try:
        state: str | None = await other.fetchval(
            "SELECT state FROM pg_stat_activity WHERE pid = $1", pid
        )
        return state
    finally:
        await other.close()


async def _until_active(pid: int) -> None:
    """Wait (10 s at most) until backend ``pid`` runs a statement."""

    async def poll() -> None:
        while await _state_of(pid) != "active":
            pass

    await asyncio.wait_for(poll(), 10)


async def test_a_transaction_end_that_hangs_terminates_the_connection(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Past the bound, the connection is terminated (the server rolls back) and the caller gets a
    ``ConnectionError``, not a hang and not a stray cancellation."""
    monkeypatch.setattr(_provider, "_END_TIMEOUT", 0.2)
    conn = await asyncpg.connect(DSN)
    try:
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(ConnectionError):
            await _provider._to_the_end(conn, conn.execute("SELECT pg_sleep(10)"))
        assert loop.time() - started < 3
        assert conn.is_closed()
    finally:
        await conn.close()


async def test_ends_watched_together_terminate_only_the_late_connection(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A provider watches the ends of all its transactions with one timer: a late end terminates its
    own connection only, and an end that finished in time leaves its connection usable."""
    monkeypatch.setattr(_provider, "_END_TIMEOUT", 0.3)
    deadlines = _provider._Deadlines()
    slow, quick = await asyncpg.connect(DSN), await asyncpg.connect(DSN)
    try:
        loop = asyncio.get_running_loop()
        started = loop.time()
        hanging = asyncio.ensure_future(
            _provider._to_the_end(slow, slow.execute("SELECT pg_sleep(10)"), deadlines)
        )
        await asyncio.sleep(0.1)
        assert (
            await _provider._to_the_end(quick, quick.execute("SELECT 1"), deadlines) == "SELECT 1"
        )
        with pytest.raises(ConnectionError):
            await hanging
        assert loop.time() - started < 3
        assert slow.is_closed()
        assert not quick.is_closed()
        assert await quick.fetchval("SELECT 2") == 2
    finally:
        await slow.close()
        await quick.close()
