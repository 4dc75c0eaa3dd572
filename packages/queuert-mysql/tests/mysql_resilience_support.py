"""Shared pieces of the MySQL resilience tests: job types, a workload of chains, handlers, an audit
trigger that records every write of a job's outcome, and the checks of the final rows.

The job types live at module level so that the worker processes of ``mysql_resilience_worker.py``
import the same declarations.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from mysql_helpers import sql
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


async def install_audit(prefix: str) -> None:
    """A trigger that logs every change of a job's outcome, and every update of a closed job: a
    completion written twice, or a closed job touched again, shows up in the audit table."""
    await sql(
        f"CREATE TABLE `{prefix}audit` (seq BIGINT AUTO_INCREMENT PRIMARY KEY, "
        "job_id CHAR(36) NOT NULL, old_outcome VARCHAR(9), new_outcome VARCHAR(9))"
    )
    await sql(
        f"CREATE TRIGGER `{prefix}audit_trg` AFTER UPDATE ON `{prefix}job` FOR EACH ROW "
        "BEGIN IF OLD.outcome IS NOT NULL OR NOT (NEW.outcome <=> OLD.outcome) THEN "
        f"INSERT INTO `{prefix}audit` (job_id, old_outcome, new_outcome) "
        "VALUES (OLD.id, OLD.outcome, NEW.outcome); END IF; END"
    )


async def drop_audit(prefix: str) -> None:
    await sql(f"DROP TABLE IF EXISTS `{prefix}audit`")


async def count_closed_chains(prefix: str) -> int:
    """Chains whose tail is closed without a successor."""
    ((count,),) = await sql(
        f"SELECT COUNT(*) FROM `{prefix}job` "
        "WHERE outcome IS NOT NULL AND succeeded_by_job_id IS NULL"
    )
    return int(count)


async def wait_all_closed(prefix: str, expected: int, *, timeout: float) -> float:
    """Wait until ``expected`` chains are closed (re-checked every 100 ms); returns the seconds it
    took."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    deadline = started + timeout
    while True:
        closed = await count_closed_chains(prefix)
        if closed >= expected:
            return loop.time() - started
        if loop.time() > deadline:
            raise AssertionError(f"only {closed} of {expected} chains closed after {timeout}s")
        await asyncio.sleep(0.1)


async def check_exactly_once(prefix: str, work: Workload) -> None:
    """Every chain closed once, with the right output and exactly the expected jobs; every job's
    outcome written exactly once; nothing left leased."""
    columns = (
        "id",
        "type_name",
        "chain_id",
        "chain_index",
        "outcome",
        "output",
        "succeeded_by_job_id",
        "leased_by",
        "open_blockers",
    )
    rows = [
        dict(zip(columns, row, strict=True))
        for row in await sql(
            "SELECT id, CONVERT(type_name USING utf8mb4), chain_id, chain_index, outcome, "
            f"output, succeeded_by_job_id, leased_by, open_blockers FROM `{prefix}job`"
        )
    ]
    writes = await sql(f"SELECT job_id, old_outcome, new_outcome FROM `{prefix}audit` ORDER BY seq")
    assert len(rows) == work.jobs, f"{len(rows)} job rows, expected {work.jobs}"
    by_chain: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_chain.setdefault(row["chain_id"], []).append(row)
    for chain_rows in by_chain.values():
        chain_rows.sort(key=lambda r: r["chain_index"])
    problems: list[str] = []
    for row in rows:
        if row["outcome"] != "completed" or row["leased_by"] is not None or row["open_blockers"]:
            problems.append(f"job {row['id']} ({row['type_name']}) ended as {row}")

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

    closes = Counter(w[0] for w in writes if w[1] is None and w[2])
    rewrites = [w for w in writes if w[1] is not None]
    assert not rewrites, f"closed jobs were written again: {rewrites[:5]}"
    twice = {job_id: n for job_id, n in closes.items() if n != 1}
    assert not twice, f"outcomes written more than once: {list(twice.items())[:5]}"
    assert len(closes) == work.jobs, f"{len(closes)} outcome writes for {work.jobs} jobs"


def thread_ids(adapter: Any) -> list[int]:
    """The server thread ids of every connection in the adapter's aiomysql pool."""
    pool = adapter.provider.pool
    conns = [*pool._free, *pool._used]
    return [c.server_thread_id[0] for c in conns if not c.closed]


async def kill_connections(ids: list[int]) -> int:
    """``KILL CONNECTION`` each of ``ids`` (only these); returns how many were still there."""
    killed = 0
    for thread in ids:
        try:
            await sql(f"KILL CONNECTION {int(thread)}")
            killed += 1
        except Exception as exc:  # gone already (closed by its pool meanwhile)
            if getattr(exc, "args", (None,))[0] != 1094:
                raise
    return killed
