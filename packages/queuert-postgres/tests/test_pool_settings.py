"""The settings of a pool that ``AsyncpgProvider.connect`` creates: generic plans by default (with an
opt-out, and the caller's own ``server_settings`` winning), no session reset unless asked, and
timeouts on connecting and on every statement."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from typing import Any

import asyncpg
import pytest
from pg_helpers import DSN, Namespace
from queuert_conformance.resilience import silent_peer
from queuert_postgres import AsyncpgProvider, PgStateAdapter, PsycopgProvider, Sql


async def _setting(provider: AsyncpgProvider, name: str) -> Any:
    async with provider.transaction() as tx:
        return await tx.fetchval("SELECT current_setting($1)", name)


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({}, "force_generic_plan"),
        ({"generic_plans": False}, "auto"),
        ({"server_settings": {"plan_cache_mode": "force_custom_plan"}}, "force_custom_plan"),
        ({"server_settings": {"application_name": "mine"}}, "force_generic_plan"),
    ],
    ids=["default", "opt-out", "caller-wins", "caller-settings-kept"],
)
async def test_plan_cache_mode(options: dict[str, Any], expected: str) -> None:
    provider = await AsyncpgProvider.connect(DSN, min_size=1, max_size=1, **options)
    try:
        assert await _setting(provider, "plan_cache_mode") == expected
        if "server_settings" in options and "application_name" in options["server_settings"]:
            assert await _setting(provider, "application_name") == "mine"
    finally:
        await provider.close()


@pytest.mark.parametrize("reset_sessions", [False, True])
async def test_session_reset_only_when_asked(reset_sessions: bool) -> None:
    """Without ``reset_sessions`` a connection goes back to the pool as it is (no extra round trip);
    with it, asyncpg's reset clears what the session set. The generic-plans setting survives both."""
    provider = await AsyncpgProvider.connect(
        DSN, min_size=1, max_size=1, reset_sessions=reset_sessions
    )
    try:
        async with provider.pool.acquire() as conn:
            await conn.execute("SET application_name = 'changed'")
        expected = "" if reset_sessions else "changed"
        assert await _setting(provider, "application_name") == expected
        assert await _setting(provider, "plan_cache_mode") == "force_generic_plan"
    finally:
        await provider.close()


async def test_a_server_that_never_answers_fails_the_connect_within_its_timeout() -> None:
    """A peer that accepts the TCP connection and then says nothing (a hung server, a black-holing
    proxy) makes connecting raise TimeoutError after ``connect_timeout``, not asyncpg's 60 s."""
    loop = asyncio.get_running_loop()
    async with silent_peer() as (host, port, accepted):
        started = loop.time()
        with pytest.raises(asyncio.TimeoutError):
            await PgStateAdapter.connect(
                f"postgresql://postgres@{host}:{port}/test", connect_timeout=0.5
            )
        assert accepted.is_set(), "the connection reached the silent peer"
        assert loop.time() - started < 5


async def migrated(namespace: Namespace) -> None:
    """Migrate ``namespace`` with an adapter of its own that has no statement timeout: migrating
    waits for the one migration lock of the database, which tests migrating at the same time hold
    in turn, so a test that sets a short timeout times its own statement, not that wait."""
    adapter = await PgStateAdapter.connect(DSN, schema=namespace.schema)
    try:
        await adapter.migrate()
    finally:
        await adapter.close()


async def test_a_statement_that_hangs_raises_after_the_statement_timeout(
    namespace: Namespace,
) -> None:
    """A statement of queuert's that gets no answer (here: waiting behind a lock another session
    holds) raises TimeoutError after ``statement_timeout`` instead of hanging the worker."""
    await migrated(namespace)
    adapter = await PgStateAdapter.connect(
        DSN, schema=namespace.schema, statement_timeout=timedelta(milliseconds=300)
    )
    holder = await asyncpg.connect(DSN)
    try:
        tx = holder.transaction()
        await tx.start()
        await holder.execute(
            f'LOCK TABLE "{namespace.schema}".queuert_job IN ACCESS EXCLUSIVE MODE'
        )
        with pytest.raises(asyncio.TimeoutError):
            await adapter.get_job(str(uuid.uuid4()))
        await tx.rollback()
        assert await adapter.get_job(str(uuid.uuid4())) is None, "the adapter works again"
    finally:
        await holder.close()
        await adapter.close()


async def test_a_statement_in_a_transaction_times_out_and_its_connection_is_dropped() -> None:
    """A statement of queuert's inside a transaction of the provider that gets no answer raises
    TimeoutError after ``statement_timeout``; its connection is terminated (the server rolls the
    transaction back) and the next transaction gets a working one."""
    provider = await AsyncpgProvider.connect(
        DSN, min_size=1, max_size=1, statement_timeout=timedelta(milliseconds=300)
    )
    loop = asyncio.get_running_loop()
    try:
        started = loop.time()
        with pytest.raises(asyncio.TimeoutError):
            async with provider.transaction() as tx:
                await provider.fetch(Sql("SELECT pg_sleep(10)"), (), tx)
        assert loop.time() - started < 3
        async with provider.transaction() as again:
            assert await provider.fetch(Sql("SELECT $1::int"), (7,), again) == [(7,)]
    finally:
        await provider.close()


async def test_the_statement_timeout_bounds_queuerts_statements_only() -> None:
    """Statements the application runs itself on a transaction's connection are not bounded by
    ``statement_timeout`` (asyncpg's own ``timeout=`` is theirs to pass)."""
    provider = await AsyncpgProvider.connect(
        DSN, min_size=1, max_size=1, statement_timeout=timedelta(milliseconds=100)
    )
    try:
        async with provider.transaction() as tx:
            assert await tx.fetchval("SELECT pg_sleep(0.4)::text || 'done'") == "done"
    finally:
        await provider.close()


async def test_a_pool_you_pass_can_have_queuerts_statements_bounded() -> None:
    """``AsyncpgProvider(pool, statement_timeout=...)``: the same bound on a pool of your own,
    whose connection that timed out is replaced by the pool."""
    pool = await asyncpg.create_pool(DSN, min_size=1, max_size=1)
    provider = AsyncpgProvider(pool, statement_timeout=0.3)
    try:
        with pytest.raises(asyncio.TimeoutError):
            await provider.fetch(Sql("SELECT pg_sleep(10)"), (), None)
        assert await provider.fetch(Sql("SELECT 1"), (), None) == [(1,)]
    finally:
        await provider.close()
        await pool.close()


async def test_the_psycopg_providers_connections_time_out_on_a_silent_server() -> None:
    loop = asyncio.get_running_loop()
    async with silent_peer() as (host, port, accepted):
        provider = PsycopgProvider(f"postgresql://postgres@{host}:{port}/test", connect_timeout=0.5)
        started = loop.time()
        try:
            with pytest.raises(asyncio.TimeoutError):
                await provider.fetch(Sql("SELECT 1"), (), None)
            assert accepted.is_set() and loop.time() - started < 5
        finally:
            await provider.close()


async def test_the_psycopg_providers_statements_time_out_and_the_connection_is_dropped(
    namespace: Namespace,
) -> None:
    """A statement on the psycopg provider's own connections that gets no answer (waiting behind a
    lock another session holds) raises TimeoutError after ``statement_timeout``; the connection is
    closed, and the next statement gets a fresh one."""
    await migrated(namespace)
    provider = PsycopgProvider(DSN, statement_timeout=timedelta(milliseconds=300))
    adapter = PgStateAdapter(provider, schema=namespace.schema)
    holder = await asyncpg.connect(DSN)
    try:
        tx = holder.transaction()
        await tx.start()
        await holder.execute(
            f'LOCK TABLE "{namespace.schema}".queuert_job IN ACCESS EXCLUSIVE MODE'
        )
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(asyncio.TimeoutError):
            await adapter.get_job(str(uuid.uuid4()))
        assert loop.time() - started < 3
        await tx.rollback()
        assert await adapter.get_job(str(uuid.uuid4())) is None, "the adapter works again"
    finally:
        await holder.close()
        await adapter.close()
