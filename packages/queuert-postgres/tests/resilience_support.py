"""The PostgreSQL side of the resilience tests: connections to find and terminate, an audit
trigger that records every write of a job's outcome, the final rows read for
``queuert_conformance.resilience``'s checks, and a provider that records its statements. Job types,
workload, handlers and the checks themselves come from :mod:`queuert_conformance.resilience`.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg
from queuert_conformance import resilience
from queuert_conformance.resilience import JOB_ROW_COLUMNS, Workload


def with_application_name(dsn: str, name: str) -> str:
    """``dsn`` with ``application_name`` set (asyncpg passes unknown query parameters as server
    settings), so that a test can find - and terminate - exactly its own connections."""
    parts = urlsplit(dsn)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != "application_name"]
    query.append(("application_name", name))
    return urlunsplit(parts._replace(query=urlencode(query)))


def unique_app_name(what: str) -> str:
    return f"qt_{what}_{uuid.uuid4().hex[:10]}"


async def terminate_app_backends(dsn: str, application_name: str) -> int:
    """Terminate every backend of ``application_name`` (and only those); returns how many."""
    conn = await asyncpg.connect(dsn)
    try:
        killed: int = await conn.fetchval(
            "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE application_name = $1 AND pid <> pg_backend_pid()",
            application_name,
        )
        return killed
    finally:
        await conn.close()


def _table(schema: str, prefix: str, name: str) -> str:
    return f'"{schema}"."{prefix}{name}"'


async def install_audit(dsn: str, schema: str, prefix: str) -> None:
    """A trigger that logs every change of a job's outcome, and every update of a closed job: a
    completion written twice, or a closed job touched again, shows up in the audit table."""
    job = _table(schema, prefix, "job")
    audit = _table(schema, prefix, "audit")
    function = _table(schema, prefix, "audit_fn")
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(
            f"""
            CREATE TABLE {audit} (
                job_id uuid NOT NULL,
                old_outcome text,
                new_outcome text,
                old_output json,
                new_output json,
                at timestamptz NOT NULL DEFAULT clock_timestamp()
            );
            CREATE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql AS $fn$
            BEGIN
                IF OLD.outcome IS NOT NULL OR NEW.outcome IS DISTINCT FROM OLD.outcome THEN
                    INSERT INTO {audit} (job_id, old_outcome, new_outcome, old_output, new_output)
                    VALUES (OLD.id, OLD.outcome, NEW.outcome, OLD.output, NEW.output);
                END IF;
                RETURN NEW;
            END
            $fn$;
            CREATE TRIGGER "{prefix}audit" AFTER UPDATE ON {job}
                FOR EACH ROW EXECUTE FUNCTION {function}();
            """
        )
    finally:
        await conn.close()


async def count_closed_chains(dsn: str, schema: str, prefix: str) -> int:
    """Chains whose tail is closed without a successor."""
    conn = await asyncpg.connect(dsn)
    try:
        count: int = await conn.fetchval(
            f"SELECT count(*) FROM {_table(schema, prefix, 'job')} "
            "WHERE outcome IS NOT NULL AND succeeded_by_job_id IS NULL"
        )
        return count
    finally:
        await conn.close()


async def wait_all_closed(
    dsn: str, schema: str, prefix: str, expected: int, *, timeout: float
) -> float:
    """Wait until ``expected`` chains are closed; returns the seconds it took."""
    return await resilience.wait_all_closed(
        lambda: count_closed_chains(dsn, schema, prefix), expected, timeout=timeout
    )


async def check_exactly_once(dsn: str, schema: str, prefix: str, work: Workload) -> None:
    """:func:`queuert_conformance.resilience.check_exactly_once` on the final rows and the audit."""
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            f"SELECT id::text, type_name, chain_id::text, chain_index, outcome, output::text, "
            f"succeeded_by_job_id::text, leased_by, open_blockers "
            f"FROM {_table(schema, prefix, 'job')}"
        )
        writes = await conn.fetch(
            f"SELECT job_id::text, old_outcome, new_outcome "
            f"FROM {_table(schema, prefix, 'audit')} ORDER BY at"
        )
    finally:
        await conn.close()
    resilience.check_exactly_once(
        [{column: row[column] for column in JOB_ROW_COLUMNS} for row in rows],
        [(w["job_id"], w["old_outcome"], w["new_outcome"]) for w in writes],
        work,
    )


class RecordingProvider:
    """Delegates to a provider and records every statement (text and arguments) and every
    transaction it opens: a transaction costs two more round trips (BEGIN and COMMIT)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.statements: list[tuple[str, tuple[Any, ...]]] = []
        self.transactions = 0
        self.on_statement: Callable[[str, tuple[Any, ...]], None] | None = None

    def transaction(self) -> Any:
        self.transactions += 1
        return self.inner.transaction()

    async def fetch(self, sql: Any, args: Any, tx: Any) -> Any:
        self._record(sql.text, tuple(args))
        return await self.inner.fetch(sql, args, tx)

    async def script(self, sql: str, tx: Any) -> None:
        self._record(sql, ())
        await self.inner.script(sql, tx)

    def _record(self, text: str, args: tuple[Any, ...]) -> None:
        self.statements.append((text, args))
        if self.on_statement is not None:
            self.on_statement(text, args)

    async def close(self) -> None:
        await self.inner.close()

    def reset(self) -> None:
        self.statements.clear()
        self.transactions = 0

    def round_trips(self) -> int:
        return len(self.statements) + 2 * self.transactions
