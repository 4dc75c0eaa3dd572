"""Building blocks for an adapter's resilience tests (connections killed, a server restarted,
worker processes killed): job types, a workload of chains, handlers that cover both processing
modes, progress events to wait on, and the check that every chain completed exactly once.

What is backend-specific stays with the adapter's tests: how the server is disrupted, and how the
job rows and the audit of outcome writes are read. An adapter's tests read them with their own SQL
and hand them to :func:`check_exactly_once` as :class:`JobRow` dicts and :class:`OutcomeWrite`
tuples.

The job types live at module level, so that worker processes started by such a test import the
same declarations.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import inspect
import itertools
import json
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from queuert import (
    Attempt,
    Blockers,
    Chain,
    ChainResult,
    Client,
    Continues,
    EntryJobType,
    JobType,
    NotifyAdapter,
    RecordingObservability,
    StateAdapter,
)
from queuert.observability import Event
from typing_extensions import Never

__all__ = [
    "JOB_ROW_COLUMNS",
    "JOB_TYPES",
    "N",
    "OutcomeWrite",
    "Progress",
    "RFinish",
    "RJoin",
    "RLeaf",
    "RStart",
    "Record",
    "WorkerSpy",
    "Workload",
    "check_exactly_once",
    "handlers",
    "producing_client",
    "silent_peer",
    "start_workload",
    "wait_all_closed",
    "wait_until",
]


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
    attempt's own, and the worker's batched completer). ``record`` sees every attempt."""

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
                f"processing stalled; the loop's tasks wait at:\n{waiting_tasks()}"
            ) from None

    def count(self, name: str) -> int:
        return sum(1 for e in self.events if e.name == name)


def waiting_tasks(most: int = 25) -> str:
    """Where the running loop's tasks wait, a line per place (the five innermost frames of the
    chain of awaits each task is suspended in, the frames of an ``async with`` block's context
    manager included) with how many tasks wait there, most first: what a stalled test prints."""
    places: Counter[str] = Counter()
    current = asyncio.current_task()
    for task in asyncio.all_tasks():
        if task is current:
            continue
        frames = []
        awaited: Any = task.get_coro()
        while awaited is not None:
            frame = (
                getattr(awaited, "cr_frame", None)
                or getattr(awaited, "gi_frame", None)
                or getattr(awaited, "ag_frame", None)
            )
            if frame is None:
                awaited = _async_generator_of(awaited)
                if awaited is None:
                    break
                continue
            frames.append(frame)
            awaited = (
                getattr(awaited, "cr_await", None)
                or getattr(awaited, "gi_yieldfrom", None)
                or getattr(awaited, "ag_await", None)
            )
        if frames:
            places[
                " <- ".join(
                    f"{frame.f_code.co_filename.rsplit('/', 1)[-1]}:{frame.f_lineno} "
                    f"{frame.f_code.co_name}"
                    for frame in reversed(frames[-5:])
                )
            ] += 1
    return "\n".join(f"  {count} x {place}" for place, count in places.most_common(most))


def _async_generator_of(awaited: Any) -> Any:
    """The async generator an ``async_generator_asend`` (what ``async with`` over an
    ``@asynccontextmanager`` awaits) steps, so that the frames inside it show too; ``None`` for
    anything else."""
    if type(awaited).__name__ not in ("async_generator_asend", "async_generator_athrow"):
        return None
    for referent in gc.get_referents(awaited):
        if inspect.isasyncgen(referent):
            return referent
    return None


class WorkerSpy:
    """Delegates to a state adapter and tells when the worker is about to sleep: ``next_due`` is
    the worker's last state call before it waits (for a notification, the next due job, its poll
    interval or its next reap). ``last_reap`` is the loop time of its last
    ``reap_expired_leases`` call."""

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


# -- checks -------------------------------------------------------------------------------------


async def wait_all_closed(
    count_closed: Callable[[], Awaitable[int]], expected: int, *, timeout: float
) -> float:
    """Wait until ``count_closed()`` (chains whose tail is closed without a successor, counted in
    the store) reaches ``expected``, re-checked every 100 ms; returns the seconds it took."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    deadline = started + timeout
    while True:
        closed = await count_closed()
        if closed >= expected:
            return loop.time() - started
        if loop.time() > deadline:
            raise AssertionError(f"only {closed} of {expected} chains closed after {timeout}s")
        await asyncio.sleep(0.1)


JOB_ROW_COLUMNS = (
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
"""The keys of a job row handed to :func:`check_exactly_once` (ids as text, ``output`` as JSON
text)."""

OutcomeWrite = tuple[str, str | None, str | None]
"""One audited update of a job row that changed its outcome or touched a closed job, in the order
written: (job id, outcome before, outcome after)."""


def check_exactly_once(
    rows: Iterable[Mapping[str, Any]], writes: Iterable[OutcomeWrite], work: Workload
) -> None:
    """Every chain of ``work`` closed once, with the right output and exactly the expected jobs;
    nothing left leased or blocked; every job's outcome written exactly once and no closed job
    written again (``writes``: what an update trigger on the job table recorded)."""
    rows = list(rows)
    assert len(rows) == work.jobs, f"{len(rows)} job rows, expected {work.jobs}"
    by_chain: dict[str, list[Mapping[str, Any]]] = {}
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

    writes = list(writes)
    closes = Counter(job_id for job_id, old, new in writes if old is None and new)
    rewrites = [w for w in writes if w[1] is not None]
    assert not rewrites, f"closed jobs were written again: {rewrites[:5]}"
    twice = {job_id: n for job_id, n in closes.items() if n != 1}
    assert not twice, f"outcomes written more than once: {list(twice.items())[:5]}"
    assert len(closes) == work.jobs, f"{len(closes)} outcome writes for {work.jobs} jobs"


@contextlib.asynccontextmanager
async def producing_client(
    state: StateAdapter[Any], notify: NotifyAdapter
) -> AsyncIterator[Client[Any]]:
    """A client of the resilience job types over ``state`` and ``notify`` (the test's producer,
    beside worker processes); closes the client, then ``notify``, then ``state``."""
    client: Client[Any] = Client(state, job_types=JOB_TYPES, notify=notify)
    try:
        yield client
    finally:
        await client.close()
        await notify.close()
        await state.close()


async def wait_until(predicate: Callable[[], bool], *, timeout: float, what: str) -> None:
    """Return once ``predicate()`` holds (checked every 20 ms); fail after ``timeout`` seconds
    naming ``what``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def silent_peer() -> AsyncIterator[tuple[str, int, asyncio.Event]]:
    """A TCP server on 127.0.0.1 that accepts connections and never sends a byte (a hung server, or
    a peer that is not what the adapter expects): yields its host, port and an event set once a
    connection arrived."""
    accepted = asyncio.Event()
    peers: list[asyncio.StreamWriter] = []

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peers.append(writer)
        accepted.set()

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    try:
        yield "127.0.0.1", server.sockets[0].getsockname()[1], accepted
    finally:
        for writer in peers:
            writer.close()
        server.close()
        await server.wait_closed()


class TcpProxy:
    """Forwards 127.0.0.1:``port`` to a server, for tests that break the network between a client
    and a server shared with other test runs, which is left alone.

    :meth:`drop` cuts every connection through it at once: the client sees a real connection reset,
    as when a server restarts or the network fails. After :meth:`silence`, new connections are
    accepted and never answered, as by a server that hangs; ``silent_accepted`` is set when one
    arrives. After :meth:`hold`, what clients send waits in the proxy (a slow network) until
    :meth:`release`; ``holding`` is set once something waits. ``async with`` starts and closes it."""

    def __init__(self, host: str, port: int) -> None:
        self._target = (host, port)
        self._server: asyncio.Server | None = None
        self._transports: set[asyncio.WriteTransport] = set()
        self._handlers: set[asyncio.Task[None]] = set()
        self.port = 0
        self.silent = False
        self.silent_accepted = asyncio.Event()
        self._open = asyncio.Event()
        self._open.set()
        self.holding = asyncio.Event()

    async def __aenter__(self) -> TcpProxy:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])

    def silence(self) -> None:
        """Connections accepted from now on get no byte back (those open go on)."""
        self.silent = True

    def hold(self) -> None:
        """What clients send from now on waits in the proxy until :meth:`release`."""
        self.holding = asyncio.Event()
        self._open.clear()

    def release(self) -> None:
        """Forwards what waits, and everything after it."""
        self._open.set()

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._transports.add(writer.transport)
        if self.silent:
            self.silent_accepted.set()
            return
        task = asyncio.get_running_loop().create_task(self._forward(reader, writer))
        self._handlers.add(task)
        task.add_done_callback(self._handlers.discard)

    async def _forward(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self._target)
        except OSError:
            writer.transport.abort()
            self._transports.discard(writer.transport)
            return
        self._transports.add(upstream_writer.transport)
        pumps = [
            asyncio.ensure_future(self._pump(reader, upstream_writer, self._gate)),
            asyncio.ensure_future(self._pump(upstream_reader, writer)),
        ]
        try:
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for pump in pumps:
                pump.cancel()
            for pump in pumps:
                with contextlib.suppress(asyncio.CancelledError):
                    await pump
            for side in (writer, upstream_writer):
                side.transport.abort()
                self._transports.discard(side.transport)

    async def _gate(self) -> None:
        """Returns at once unless the proxy holds; then once it releases."""
        if not self._open.is_set():
            self.holding.set()
            await self._open.wait()

    @staticmethod
    async def _pump(
        source: asyncio.StreamReader,
        sink: asyncio.StreamWriter,
        gate: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        with contextlib.suppress(OSError):
            while data := await source.read(65536):
                if gate is not None:
                    await gate()
                sink.write(data)
                await sink.drain()

    async def drop(self) -> int:
        """Resets every connection through the proxy; returns how many client connections it cut."""
        transports = list(self._transports)
        for transport in transports:
            transport.abort()
        self._transports.clear()
        handlers = list(self._handlers)
        if handlers:
            await asyncio.wait(handlers)
        return len(handlers)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        await self.drop()
