"""The asyncpg provider's watch on the statements of its transactions (``statement_timeout``): a
``BEGIN`` or a statement in a transaction that gets no answer raises ``TimeoutError`` after the
timeout, its connection is terminated, and the next transaction works; a statement that fails on
its own raises its own error.

The server is reached through a relay that can go quiet (it stops passing the server's answers on),
so that any statement, even a ``BEGIN``, gets no answer."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import timedelta

import asyncpg
import pytest
from pg_helpers import DSN
from queuert_postgres import AsyncpgProvider, Sql

SERVER = ("127.0.0.1", 5432)


class QuietRelay:
    """A TCP relay to the server whose answers stop reaching the client while :attr:`quiet` is set
    (they are dropped: a client that waited for them has its connection terminated anyway)."""

    def __init__(self) -> None:
        self.quiet = False
        self.port = 0
        self._tasks: set[asyncio.Task[None]] = set()

    async def _pipe(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, answers: bool
    ) -> None:
        try:
            while data := await reader.read(65536):
                if answers and self.quiet:
                    continue
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        server_reader, server_writer = await asyncio.open_connection(*SERVER)
        for task in (
            asyncio.ensure_future(self._pipe(reader, server_writer, answers=False)),
            asyncio.ensure_future(self._pipe(server_reader, writer, answers=True)),
        ):
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[str]:
        """The relay, serving; yields its DSN."""
        server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        try:
            yield f"postgresql://postgres@127.0.0.1:{self.port}/test"
        finally:
            server.close()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await server.wait_closed()


@pytest.fixture
async def relayed() -> AsyncIterator[tuple[QuietRelay, AsyncpgProvider]]:
    relay = QuietRelay()
    async with relay.running() as dsn:
        provider = await AsyncpgProvider.connect(
            dsn, min_size=1, max_size=1, statement_timeout=timedelta(milliseconds=300)
        )
        try:
            yield relay, provider
        finally:
            relay.quiet = False
            await provider.close()


async def test_a_begin_that_gets_no_answer_times_out(
    relayed: tuple[QuietRelay, AsyncpgProvider],
) -> None:
    relay, provider = relayed
    async with provider.transaction() as tx:  # the connection is open and kept
        assert await provider.fetch(Sql("SELECT $1::int"), (1,), tx) == [(1,)]
    loop = asyncio.get_running_loop()
    relay.quiet = True
    started = loop.time()
    with pytest.raises(asyncio.TimeoutError, match=r"no answer within 0\.3 s"):
        async with provider.transaction():
            pytest.fail("the transaction never began")
    assert loop.time() - started < 3
    relay.quiet = False
    async with provider.transaction() as again:
        assert await provider.fetch(Sql("SELECT $1::int"), (2,), again) == [(2,)]


async def test_a_statement_in_a_transaction_that_gets_no_answer_times_out(
    relayed: tuple[QuietRelay, AsyncpgProvider],
) -> None:
    relay, provider = relayed
    with pytest.raises(asyncio.TimeoutError, match=r"no answer within 0\.3 s"):
        async with provider.transaction() as tx:
            relay.quiet = True
            await provider.fetch(Sql("SELECT $1::int"), (1,), tx)
    relay.quiet = False
    async with provider.transaction() as again:
        assert await provider.fetch(Sql("SELECT $1::int"), (2,), again) == [(2,)]


async def test_a_failing_statement_keeps_its_own_error_and_the_watch_lets_go() -> None:
    """A statement that fails by itself is not a timeout, and leaves nothing watched behind."""
    provider = await AsyncpgProvider.connect(
        DSN, min_size=1, max_size=1, statement_timeout=timedelta(milliseconds=300)
    )
    try:
        for _ in range(3):
            with pytest.raises(asyncpg.exceptions.DivisionByZeroError):
                async with provider.transaction() as tx:
                    await provider.fetch(Sql("SELECT 1 / $1::int"), (0,), tx)
        async with provider.transaction() as tx:
            assert await provider.fetch(Sql("SELECT $1::int"), (3,), tx) == [(3,)]
        statements = provider._statements
        assert statements is not None and not statements._ends, "nothing left watched"
    finally:
        await provider.close()


async def test_a_cancelled_statement_in_a_transaction_is_a_cancellation() -> None:
    provider = await AsyncpgProvider.connect(
        DSN, min_size=1, max_size=1, statement_timeout=timedelta(seconds=30)
    )
    try:
        started = asyncio.Event()

        async def slow() -> None:
            async with provider.transaction() as tx:
                started.set()
                await provider.fetch(Sql("SELECT pg_sleep(10)"), (), tx)

        task = asyncio.ensure_future(slow())
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        async with provider.transaction() as tx:
            assert await provider.fetch(Sql("SELECT $1::int"), (4,), tx) == [(4,)]
    finally:
        await provider.close()
