"""Costs and races the PostgreSQL adapter gets right where a simpler design does not, pinned at the
level of a running worker where the operation-level tests cannot see them. Each test fails on the
simpler behaviour:

* lease renewal - one statement per interval for all of a worker's jobs, no transaction per job;
* notifications - LISTEN once per worker lifetime (no LISTEN/UNLISTEN around waits); no "job scheduled" for
  jobs created blocked, one when they are released;
* caller ids - a caller id taken by a concurrent transaction raises the typed ``DuplicateJobIdError`` and
  the batch writes nothing;
* round trips - a bounded number of round trips per processed job (batched claims and completions, no
  blocker reads for types without blockers);
* reaping - a busy worker (no free slot) still reaps expired leases, a whole batch per statement.

The others are pinned elsewhere (see the package README, "Resilience").
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import asyncpg
import pytest
from pg_helpers import DSN, Namespace
from queuert import Attempt, Client, Lease, Worker
from queuert.errors import DuplicateJobIdError
from queuert.ids import uuid7
from queuert.state import NewJob
from queuert_conformance.resilience import (
    JOB_TYPES,
    N,
    RFinish,
    RJoin,
    RLeaf,
    RStart,
    Workload,
    start_workload,
)
from queuert_postgres import AsyncpgProvider, PgNotifyAdapter, PgStateAdapter
from resilience_support import RecordingProvider, wait_all_closed


@pytest.fixture
async def recorded(
    namespace: Namespace,
) -> AsyncIterator[tuple[PgStateAdapter[Any], RecordingProvider]]:
    provider = RecordingProvider(await AsyncpgProvider.connect(DSN, min_size=1, max_size=12))
    adapter = PgStateAdapter(provider, schema=namespace.schema, table_prefix=namespace.prefix)
    await adapter.migrate()
    provider.reset()
    try:
        yield adapter, provider
    finally:
        await adapter.close()


async def _within(awaitable: Any, timeout: float = 10.0) -> Any:
    return await asyncio.wait_for(awaitable, timeout)


# -- batched lease renewal ----------------------------------------------------------------------


async def test_a_worker_renews_all_its_leases_in_one_statement_per_interval(
    recorded: tuple[PgStateAdapter[Any], RecordingProvider],
) -> None:
    adapter, provider = recorded
    client: Client[Any] = Client(adapter, job_types=JOB_TYPES)
    running = 0
    all_running = asyncio.Event()
    release = asyncio.Event()

    async def slow(attempt: Attempt[RLeaf]) -> None:
        nonlocal running
        await attempt.prepare("staged")
        running += 1
        if running == 10:
            all_running.set()
        await release.wait()
        await attempt.complete(N(attempt.input.value))

    renew_text = adapter.sql.renew.text
    renewals: list[tuple[Any, ...]] = []
    five = asyncio.Event()

    def on_statement(text: str, args: tuple[Any, ...]) -> None:
        if text == renew_text:
            renewals.append(args)
            if len(renewals) == 5:
                five.set()

    async with client.transaction() as tx:
        chains = await client.start_chains([RLeaf(N(i)) for i in range(10)], tx=tx)
    worker: Worker[Any] = Worker(
        client,
        concurrency=10,
        handlers={RLeaf: slow},
        lease=Lease(duration=2.0, renew_every=0.1),
        reap_interval=60,
        poll_interval=60,
    )
    async with worker:
        await _within(all_running.wait())
        provider.reset()
        provider.on_statement = on_statement
        await _within(five.wait())
        provider.on_statement = None
        window = list(provider.statements)
        transactions = provider.transactions
        release.set()
        for chain in chains:
            await client.wait_for_chain(chain, timeout=10, poll_interval=0.05)
    ids = {chain.id for chain in chains}
    assert len(renewals) == 5
    assert all(set(args[0]) == ids for args in renewals), "each renewal carries all ten leases"
    others = [text for text, _ in window if text != renew_text]
    assert others == [], f"only renewals while ten jobs run, got {others[:3]}"
    assert transactions == 0, "no transaction per job per renewal"


async def test_a_locked_job_row_does_not_hold_up_the_other_leases(
    recorded: tuple[PgStateAdapter[Any], RecordingProvider],
) -> None:
    """A worker's transaction holds its job row locked from the completion (or a locked read, or the
    handler's own SQL) until it ends. A renewal that includes that job (it was taken meanwhile) must
    not wait for the lock: it renews the other leases at once and reports the locked one as still
    held, neither renewed nor lost. (Waiting let the other jobs' leases expire and be reaped.)"""
    adapter, _provider = recorded
    jobs = [NewJob(id=uuid7(), type_name="work", chain_type_name="work", input=i) for i in range(3)]
    await adapter.create_jobs(jobs)
    claim = await adapter.claim_jobs(
        leases={"work": timedelta(seconds=30)}, limit=3, worker_id="w1"
    )
    assert len(claim.jobs) == 3
    locked, *others = [job.id for job in claim.jobs]
    async with adapter.transaction() as tx:
        row = await tx.fetchrow(
            f"SELECT id FROM {adapter.names.job} WHERE id = $1::uuid FOR UPDATE", locked
        )
        assert row is not None
        renewal = await _within(
            adapter.renew_leases(
                {job.id: timedelta(minutes=5) for job in claim.jobs}, worker_id="w1"
            ),
            timeout=5,
        )
    assert sorted(renewal.renewed) == sorted(others)
    assert renewal.lost == [], "a locked lease is still held, not lost"
    after = await adapter.renew_leases({locked: timedelta(minutes=5)}, worker_id="w1")
    assert list(after.renewed) == [locked], "renewed once the lock is gone"


# -- LISTEN once per worker; no wake-ups for blocked jobs ---------------------------------------


async def _listener_activity(pid: int) -> tuple[Any, ...]:
    conn = await asyncpg.connect(DSN)
    try:
        row = await conn.fetchrow(
            "SELECT backend_start, query_start, query FROM pg_stat_activity WHERE pid = $1", pid
        )
        assert row is not None, "the listening backend is gone"
        return tuple(row)
    finally:
        await conn.close()


class _CountingNotify:
    def __init__(self, inner: PgNotifyAdapter) -> None:
        self._inner = inner
        self.subscriptions: dict[str, int] = {}

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._inner, name)
        if name.startswith("listen_"):

            async def listen(*args: Any, **kwargs: Any) -> Any:
                self.subscriptions[name] = self.subscriptions.get(name, 0) + 1
                return await attribute(*args, **kwargs)

            return listen
        return attribute


async def test_the_worker_listens_once_for_its_lifetime(namespace: Namespace) -> None:
    """Thirty chains, each started while the worker is idle and processed before the next: the
    listening backend runs no statement after its first LISTENs (one per channel; no LISTEN/UNLISTEN
    per wait, none per attempt), and the worker subscribes to job-scheduled notifications once."""
    state = await PgStateAdapter.connect(
        DSN, schema=namespace.schema, table_prefix=namespace.prefix, max_size=4
    )
    notify = PgNotifyAdapter(DSN, channel_prefix=f"qt{uuid.uuid4().hex[:12]}", ping_interval=3600)
    counting = _CountingNotify(notify)
    client: Client[Any] = Client(state, job_types=JOB_TYPES, notify=counting)

    async def leaf(attempt: Attempt[RLeaf]) -> None:
        await asyncio.sleep(0.001)  # suspends: the attempt subscribes to ownership-lost hints
        await attempt.complete(N(attempt.input.value))

    worker: Worker[Any] = Worker(client, handlers={RLeaf: leaf}, poll_interval=60, concurrency=2)
    try:
        await state.migrate()
        async with worker:
            # the first wait LISTENs to the chain-closed channel (once, on its first subscriber)
            async with client.transaction() as tx:
                first = await client.start_chain(RLeaf(N(-1)), tx=tx)
            await client.wait_for_chain(first, timeout=10, poll_interval=0.05)
            pid = notify.listener_pid
            assert pid is not None
            before = await _listener_activity(pid)
            for i in range(30):
                async with client.transaction() as tx:
                    chain = await client.start_chain(RLeaf(N(i)), tx=tx)
                await client.wait_for_chain(chain, timeout=10, poll_interval=0.05)
            after = await _listener_activity(pid)
            assert notify.listener_pid == pid and notify.reconnects == 0
        assert after == before, f"the listening backend ran statements: {before} -> {after}"
        assert str(before[2]).upper().startswith("LISTEN")
        assert counting.subscriptions["listen_job_scheduled"] == 1
        assert counting.subscriptions["listen_job_ownership_lost"] >= 31
    finally:
        await worker.close()
        await client.close()
        await notify.close()
        await state.close()


async def test_jobs_created_blocked_are_announced_only_when_released(namespace: Namespace) -> None:
    channel_prefix = f"qt{uuid.uuid4().hex[:12]}"
    state = await PgStateAdapter.connect(
        DSN, schema=namespace.schema, table_prefix=namespace.prefix, max_size=2
    )
    notify = PgNotifyAdapter(DSN, channel_prefix=channel_prefix)
    listener = await asyncpg.connect(DSN)
    heard: asyncio.Queue[str] = asyncio.Queue()
    await listener.add_listener(notify.channels["sched"], lambda *a: heard.put_nowait(a[3]))

    async def heard_until(sentinel: str) -> list[str]:
        """Everything announced before ``sentinel``: NOTIFYs reach a listener in commit order, so a
        sentinel sent after the client's publishes completed comes after all of them."""
        await notify.notify_job_scheduled(sentinel)
        seen: list[str] = []
        while (payload := await _within(heard.get())) != sentinel:
            seen.append(payload)
        return seen

    try:
        await state.migrate()
        client = Client(state, job_types=JOB_TYPES, notify=notify)
        async with client, client.transaction() as tx:
            leaves = await client.start_chains([RLeaf(N(1)), RLeaf(N(2))], tx=tx)
            join = await client.start_chain(RJoin(N(0), blockers=tuple(leaves)), tx=tx)
        # closing the client waited for its publishes
        assert "r_join" not in await heard_until("sentinel-1"), "a blocked job was announced"
        client = Client(state, job_types=JOB_TYPES, notify=notify)
        async with client, client.transaction() as tx:
            await client.complete_chain(leaves[0].id, RLeaf, N(1), tx=tx)
        assert "r_join" not in await heard_until("sentinel-2"), "announced with a blocker open"
        async with Client(state, job_types=JOB_TYPES, notify=notify) as client:
            async with client.transaction() as tx:
                await client.complete_chain(leaves[1].id, RLeaf, N(2), tx=tx)
            job = await client.get_job(join.id)
            assert job is not None and job.status == "ready"
        assert "r_join" in await heard_until("sentinel-3"), "the released job was announced"
    finally:
        await listener.close()
        await notify.close()
        await state.close()


# -- a caller id taken concurrently ---------------------------------------------------------------


async def test_a_caller_id_taken_by_a_concurrent_transaction_raises_the_typed_error(
    namespace: Namespace,
) -> None:
    """The other transaction has inserted the id but not committed yet: our insert waits for it, then
    finds the id taken. We get ``DuplicateJobIdError`` (not the driver's unique violation), and the
    other job of our batch is not written."""
    first = await PgStateAdapter.connect(
        DSN, schema=namespace.schema, table_prefix=namespace.prefix
    )
    second = await PgStateAdapter.connect(
        DSN, schema=namespace.schema, table_prefix=namespace.prefix
    )
    taken = str(uuid7())

    def new(job_id: str) -> NewJob:
        return NewJob(id=job_id, type_name="work", chain_type_name="work", input=None)

    try:
        await first.migrate()
        holder = await asyncpg.connect(DSN)  # the other transaction, on a connection of its own
        try:
            other_tx = holder.transaction()
            await other_tx.start()
            await first.create_jobs([new(taken)], tx=holder)
            async with second.transaction() as tx:
                ours = str(uuid7())
                attempt = asyncio.ensure_future(second.create_jobs([new(ours), new(taken)], tx=tx))
                await _blocked_on_a_lock(tx.get_server_pid())
                await other_tx.commit()
                with pytest.raises(DuplicateJobIdError) as raised:
                    await _within(attempt)
                assert raised.value.job_id == taken
                assert await second.get_job(ours, tx=tx) is None, "the batch wrote nothing"
        finally:
            await holder.close()
        assert await first.get_job(ours) is None
        assert await first.get_job(taken) is not None
    finally:
        await first.close()
        await second.close()


async def _blocked_on_a_lock(pid: int, timeout: float = 10.0) -> None:
    conn = await asyncpg.connect(DSN)
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while (
            await conn.fetchval("SELECT wait_event_type FROM pg_stat_activity WHERE pid = $1", pid)
            != "Lock"
        ):
            assert loop.time() < deadline, "the second insert never waited for the first"
            await asyncio.sleep(0.01)
    finally:
        await conn.close()


# -- round trips per processed job ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("shape", "bound"),
    [
        ("one-step", 0.6),  # a claim and a completion shared by a batch; the original: 4-6 each
        ("two-step", 2.6),  # + BEGIN, insert the successor, close the job, COMMIT per continuation
        ("fan-in", 1.0),  # + one read of the join's blockers
    ],
)
async def test_round_trips_per_processed_job_stay_bounded(
    recorded: tuple[PgStateAdapter[Any], RecordingProvider], shape: str, bound: float
) -> None:
    adapter, provider = recorded
    client: Client[Any] = Client(adapter, job_types=JOB_TYPES)

    async def leaf(attempt: Attempt[RLeaf]) -> None:
        await attempt.complete(N(attempt.input.value))

    async def start(attempt: Attempt[RStart]) -> None:
        await asyncio.sleep(0)
        await attempt.complete(RFinish(N(attempt.input.value)))

    async def finish(attempt: Attempt[RFinish]) -> None:
        await asyncio.sleep(0)
        await attempt.complete(N(2 * attempt.input.value + 1))

    async def join(attempt: Attempt[RJoin]) -> None:
        await attempt.complete(
            N(attempt.input.value + sum(c.output.value for c in attempt.blockers))
        )

    if shape == "one-step":
        work = Workload()
        async with client.transaction() as tx:
            work.leaves = await client.start_chains([RLeaf(N(i)) for i in range(400)], tx=tx)
    elif shape == "two-step":
        work = await start_workload(client, two_step=200, joins=0)
    else:
        work = await start_workload(client, two_step=0, joins=80, leaves_per_join=4)
    provider.reset()
    handlers: dict[Any, Any] = {RLeaf: leaf, RStart: start, RFinish: finish, RJoin: join}
    async with Worker(client, concurrency=10, handlers=handlers, poll_interval=0.5):
        await wait_all_closed(
            DSN, adapter.names.schema, adapter.names.prefix, work.chains, timeout=60
        )
    per_job = provider.round_trips() / work.jobs
    print(
        f"\n{shape}: {provider.round_trips()} round trips for {work.jobs} jobs = {per_job:.2f} per job"
    )
    assert per_job <= bound, f"{per_job:.2f} round trips per job (bound {bound})"


# -- reaping in batches, also when busy -----------------------------------------------------------


async def test_a_busy_worker_reaps_a_whole_batch_per_statement(
    recorded: tuple[PgStateAdapter[Any], RecordingProvider],
) -> None:
    """150 jobs of a dead worker, a worker whose only slot is busy: every expired lease comes back
    within two reap statements (100 + 50), without waiting for a free slot."""
    adapter, provider = recorded
    client: Client[Any] = Client(adapter, job_types=JOB_TYPES)
    busy = asyncio.Event()
    release = asyncio.Event()

    async def occupy(attempt: Attempt[RStart]) -> None:
        await attempt.prepare("staged")
        busy.set()
        await release.wait()
        await attempt.complete(RFinish(N(0)))

    async with client.transaction() as tx:
        dead = await client.start_chains([RLeaf(N(i)) for i in range(150)], tx=tx)
    claim = await adapter.claim_jobs(
        leases={"r_leaf": timedelta(milliseconds=1)}, limit=150, worker_id="dead-worker"
    )
    assert len(claim.jobs) == 150
    async with client.transaction() as tx:
        blocker = await client.start_chain(RStart(N(0)), tx=tx)
    reap_text = adapter.sql.reap.text
    provider.reset()

    async def leaf(attempt: Attempt[RLeaf]) -> None:
        await attempt.complete(N(attempt.input.value))

    async def finish(attempt: Attempt[RFinish]) -> None:
        await attempt.complete(N(1))

    worker: Worker[Any] = Worker(
        client,
        concurrency=1,
        handlers={RStart: occupy, RLeaf: leaf, RFinish: finish},
        lease=Lease(duration=30, renew_every=10),
        reap_interval=1.0,
        poll_interval=60,
    )
    async with worker:
        await _within(busy.wait())
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        while await _leased_by(adapter, "dead-worker") > 0:
            assert loop.time() < deadline, "the expired leases did not come back"
            await asyncio.sleep(0.05)
        reaps = sum(1 for text, _ in provider.statements if text == reap_text)
        assert worker._busy == 1 and not release.is_set(), "the slot stayed busy all along"
        release.set()
        await client.wait_for_chain(blocker, timeout=10, poll_interval=0.05)
        for chain in dead[:3]:
            await client.wait_for_chain(chain, timeout=10, poll_interval=0.05)
    assert reaps <= 3, f"{reaps} reap statements for 150 expired leases"


async def _leased_by(adapter: PgStateAdapter[Any], worker_id: str) -> int:
    conn = await asyncpg.connect(DSN)
    try:
        count: int = await conn.fetchval(
            f'SELECT count(*) FROM "{adapter.names.schema}"."{adapter.names.prefix}job" '
            "WHERE leased_by = $1",
            worker_id,
        )
        return count
    finally:
        await conn.close()
