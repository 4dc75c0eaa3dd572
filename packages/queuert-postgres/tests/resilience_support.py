"""Shared pieces of the resilience tests: job types, a workload of chains, handlers, an audit trigger
that records every write of a job's outcome, and the checks of the final rows.

The job types live at module level so that the worker processes of ``resilience_worker.py`` import the
same declarations.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg
from queuert import (
    Attempt,
    Blockers,
    Chain,
    ChainResult,
    Client,
    Continues,
    EntryJobType,
    JobType,
    RecordingObservability,
)
from queuert.observability import Event
from typing_extensions import Never


@dataclass
class N:
    value: int


class RStart(EntryJobType[N, Never], Continues["RFinish"], ChainResult[N], name="r_start"):
    """First step of a two-step chain: always continues to RFinish."""


class RFinish(JobType[N, N], name="r_finish"):
    """Second step: closes the chain with ``2 * value + 1``."""


class RLeaf(EntryJobType[N, N], name="r_leaf"):
    """A one-step chain that others wait for."""


class RJoin(EntryJobType[N, N], Blockers[tuple[Chain[RLeaf], ...]], name="r_join"):
    """Waits for leaf chains; closes with its input plus the sum of their outputs."""


JOB_TYPES: list[type[JobType[Any, Any]]] = [RStart, RFinish, RLeaf, RJoin]


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


# -- workload -----------------------------------------------------------------------------------


@dataclass
class Workload:
    """Two-step chains (RStart -> RFinish) and fan-ins (RJoin waiting for RLeaf chains)."""

    starts: list[Chain[Any]] = field(default_factory=list)
    leaves: list[Chain[Any]] = field(default_factory=list)
    joins: list[tuple[Chain[Any], int]] = field(default_factory=list)
    """(join chain, expected output)."""

    @property
    def chains(self) -> int:
        return len(self.starts) + len(self.leaves) + len(self.joins)

    @property
    def jobs(self) -> int:
        return 2 * len(self.starts) + len(self.leaves) + len(self.joins)

    def extend(self, other: Workload) -> None:
        self.starts += other.starts
        self.leaves += other.leaves
        self.joins += other.joins


async def start_workload(
    client: Client[Any], *, two_step: int, joins: int, leaves_per_join: int = 4, base: int = 0
) -> Workload:
    """Start the chains in batches of 100 per transaction."""
    work = Workload()
    for offset in range(0, two_step, 100):
        async with client.transaction() as tx:
            work.starts += await client.start_chains(
                [RStart(N(base + i)) for i in range(offset, min(offset + 100, two_step))], tx=tx
            )
    for j in range(joins):
        value = base + 100_000 + j
        async with client.transaction() as tx:
            leaves = await client.start_chains(
                [RLeaf(N(value * 10 + k)) for k in range(leaves_per_join)], tx=tx
            )
            join = await client.start_chain(RJoin(N(value), blockers=tuple(leaves)), tx=tx)
        work.leaves += leaves
        work.joins.append((join, value + sum(value * 10 + k for k in range(leaves_per_join))))
    return work


Record = Callable[[Attempt[Any]], None]


def handlers(record: Record) -> dict[Any, Callable[[Any], Awaitable[None]]]:
    """Handlers covering both processing modes and both completion paths (a transaction of the
    attempt's own, and the worker's batched completer)."""

    async def start(attempt: Attempt[RStart]) -> None:
        record(attempt)
        value = attempt.input.value
        if value % 2 == 0:
            await attempt.prepare("atomic")
        else:
            await attempt.prepare("staged")
            await asyncio.sleep(0.001)
        await attempt.complete(RFinish(N(value)))

    async def finish(attempt: Attempt[RFinish]) -> None:
        record(attempt)
        value = attempt.input.value
        if value % 4 == 1:
            await attempt.prepare("atomic")
        else:
            await asyncio.sleep(0.001)  # auto mode decides: staged, batched completion
        await attempt.complete(N(2 * value + 1))

    async def leaf(attempt: Attempt[RLeaf]) -> None:
        record(attempt)
        await attempt.complete(N(attempt.input.value))  # auto mode: atomic

    async def join(attempt: Attempt[RJoin]) -> None:
        record(attempt)
        total = attempt.input.value + sum(chain.output.value for chain in attempt.blockers)
        await attempt.prepare("staged")
        await asyncio.sleep(0.001)
        await attempt.complete(N(total))

    return {RStart: start, RFinish: finish, RLeaf: leaf, RJoin: join}


class Progress(RecordingObservability):
    """Records events and lets a test wait until N attempts completed (event-driven, no polling)."""

    def __init__(self) -> None:
        super().__init__()
        self.completed = 0
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []

    def emit(self, event: Event) -> None:
        super().emit(event)
        if event.name == "job_attempt_completed":
            self.completed += 1
            for n, future in list(self._waiters):
                if self.completed >= n and not future.done():
                    future.set_result(None)
            self._waiters = [(n, f) for n, f in self._waiters if not f.done()]

    async def reached(self, n: int, timeout: float = 90.0) -> None:
        """Wait until ``n`` attempts completed; fail (rather than hang) after ``timeout``."""
        if self.completed >= n:
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((n, future))
        try:
            await asyncio.wait_for(future, timeout)
        except asyncio.TimeoutError:
            raise AssertionError(
                f"only {self.completed} of {n} attempts completed within {timeout:g}s: "
                "processing stalled"
            ) from None

    def count(self, name: str) -> int:
        return sum(1 for e in self.events if e.name == name)


# -- audit and checks ---------------------------------------------------------------------------


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
    """Wait until ``expected`` chains are closed (re-checked every 100 ms); returns the seconds it took."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    deadline = started + timeout
    closed = 0
    while True:
        closed = await count_closed_chains(dsn, schema, prefix)
        if closed >= expected:
            return loop.time() - started
        if loop.time() > deadline:
            raise AssertionError(f"only {closed} of {expected} chains closed after {timeout}s")
        await asyncio.sleep(0.1)


async def check_exactly_once(dsn: str, schema: str, prefix: str, work: Workload) -> None:
    """Every chain closed once, with the right output and exactly the expected jobs; every job's
    outcome written exactly once; nothing left leased."""
    job = _table(schema, prefix, "job")
    audit = _table(schema, prefix, "audit")
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            f"SELECT id::text, type_name, chain_id::text, chain_index, outcome, output::text, "
            f"succeeded_by_job_id::text, leased_by, open_blockers FROM {job}"
        )
        writes = await conn.fetch(
            f"SELECT job_id::text, old_outcome, new_outcome FROM {audit} ORDER BY at"
        )
    finally:
        await conn.close()
    assert len(rows) == work.jobs, f"{len(rows)} job rows, expected {work.jobs}"
    by_chain: dict[str, list[Any]] = {}
    for row in rows:
        by_chain.setdefault(row["chain_id"], []).append(row)
    for chain_rows in by_chain.values():
        chain_rows.sort(key=lambda r: r["chain_index"])
    problems: list[str] = []
    for row in rows:
        if row["outcome"] != "completed" or row["leased_by"] is not None or row["open_blockers"]:
            problems.append(f"job {row['id']} ({row['type_name']}) ended as {dict(row)}")

    def expect(chain: Chain[Any], types: list[str], output: int) -> None:
        jobs = by_chain.get(chain.id, [])
        if [r["type_name"] for r in jobs] != types:
            problems.append(f"chain {chain.id}: jobs {[r['type_name'] for r in jobs]} != {types}")
            return
        for first, second in itertools.pairwise(jobs):
            if first["succeeded_by_job_id"] != second["id"] or first["output"] is not None:
                problems.append(
                    f"chain {chain.id}: {first['id']} did not continue to {second['id']}"
                )
        tail = jobs[-1]
        if tail["succeeded_by_job_id"] is not None or json.loads(tail["output"] or "null") != {
            "value": output
        }:
            problems.append(f"chain {chain.id}: closed with {tail['output']}, expected {output}")

    for chain in work.starts:
        expect(chain, ["r_start", "r_finish"], 2 * chain.input.value + 1)
    for chain in work.leaves:
        expect(chain, ["r_leaf"], chain.input.value)
    for chain, output in work.joins:
        expect(chain, ["r_join"], output)
    assert not problems, f"{len(problems)} problems, first ones: {problems[:5]}"

    closes = Counter(w["job_id"] for w in writes if w["old_outcome"] is None and w["new_outcome"])
    rewrites = [dict(w) for w in writes if w["old_outcome"] is not None]
    assert not rewrites, f"closed jobs were written again: {rewrites[:5]}"
    twice = {job_id: n for job_id, n in closes.items() if n != 1}
    assert not twice, f"outcomes written more than once: {list(twice.items())[:5]}"
    assert len(closes) == work.jobs, f"{len(closes)} outcome writes for {work.jobs} jobs"


class WorkerSpy:
    """Delegates to a state adapter and tells when the worker is about to sleep: ``next_due`` is the
    worker's last state call before it waits (for a notification, the next due job, its poll interval
    or its next reap). ``last_reap`` is the loop time of its last ``reap_expired_leases`` call."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.about_to_sleep = asyncio.Event()
        self.last_reap = 0.0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def next_due(self, *args: Any, **kwargs: Any) -> Any:
        result = await self._inner.next_due(*args, **kwargs)
        self.about_to_sleep.set()
        return result

    async def reap_expired_leases(self, *args: Any, **kwargs: Any) -> Any:
        self.last_reap = asyncio.get_running_loop().time()
        return await self._inner.reap_expired_leases(*args, **kwargs)


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
