"""create_jobs has three statements: a short INSERT for batches of chain starts without deduplication
(the common case, whose jobs are assembled from what was sent plus the server's timestamps), its form
with scalar arguments for one such start, and the general one (continuations, deduplication). These
tests pin that they give what the store then holds, that the one-start form stores what the batch
form stores, and that an id clash undoes only the failed batch."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from typing import Any

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pg_helpers import (
    DSN,
    CountingProvider,
    Namespace,
    drop_namespace,
    make_adapter,
    unique_schema,
)
from queuert.errors import DuplicateJobIdError
from queuert.ids import uuid7
from queuert.json import JsonValue
from queuert.schedule import Deduplication, Schedule
from queuert.state import CreatedJob, NewJob, StoredJob
from queuert_postgres import AsyncpgProvider, PgStateAdapter

json_values: st.SearchStrategy[JsonValue] = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(), children, max_size=3)
    ),
    max_leaves=12,
)

schedules = (
    st.none()
    | st.builds(
        Schedule,
        after=st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=3)),
    )
    | st.builds(
        Schedule,
        at=st.datetimes(
            min_value=datetime(2000, 1, 1),
            max_value=datetime(2100, 1, 1),
            timezones=st.just(timezone.utc),
        ),
    )
)


async def create(
    adapter: PgStateAdapter[Any], batch: list[NewJob], in_transaction: bool
) -> list[CreatedJob]:
    """``create_jobs`` of ``batch`` in a transaction of the caller's, or without one."""
    if in_transaction:
        async with adapter.transaction() as tx:
            return await adapter.create_jobs(batch, tx=tx)
    return await adapter.create_jobs(batch)


@st.composite
def chain_starts(draw: st.DrawFn) -> NewJob:
    type_name = draw(st.sampled_from(["a", "b"]))
    return NewJob(
        id="",  # a fresh id per run: set by the test (hypothesis replays examples)
        type_name=type_name,
        # the core starts a chain of its first job's type; the adapter stores any it is given
        chain_type_name=draw(st.sampled_from([type_name, type_name, "c"])),
        input=draw(json_values),
        schedule=draw(schedules),
        chain_trace_context=draw(st.none() | st.just("00-chain-01")),
        trace_context=draw(st.none() | st.just("00-job-01")),
        priority=draw(st.sampled_from([0, 0, 5, -(2**31), 2**31 - 1])),
        limit_key=draw(
            st.none()
            | st.text(
                st.characters(codec="utf-8", exclude_characters="\x00"), min_size=1, max_size=20
            )
        ),
    )


@pytest.fixture(scope="module")
def adapter(loop: asyncio.AbstractEventLoop) -> Iterator[PgStateAdapter[Any]]:
    ns = Namespace(unique_schema(), "queuert_")

    async def open_adapter() -> PgStateAdapter[Any]:
        provider = await AsyncpgProvider.connect(DSN, min_size=1, max_size=2)
        adapter = PgStateAdapter(provider, schema=ns.schema, table_prefix=ns.prefix)
        await adapter.migrate()
        return adapter

    adapter = loop.run_until_complete(open_adapter())
    yield adapter
    loop.run_until_complete(adapter.close())
    loop.run_until_complete(drop_namespace(ns))


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    batch=st.lists(chain_starts(), min_size=1, max_size=8),
    in_transaction=st.booleans(),
    one_type=st.booleans(),
)
def test_created_chain_starts_equal_what_the_store_holds(
    loop: asyncio.AbstractEventLoop,
    adapter: PgStateAdapter[Any],
    batch: list[NewJob],
    in_transaction: bool,
    one_type: bool,
) -> None:
    """Mixed batches and batches of one job type (whose type name the statement takes once), with
    chain type names equal to the type names (not sent) or not."""
    if one_type:
        batch = [
            replace(new, type_name="a", chain_type_name="c" if new.chain_type_name == "c" else "a")
            for new in batch
        ]
    batch = [replace(new, id=uuid7()) for new in batch]

    async def check() -> None:
        created = await create(adapter, batch, in_transaction)
        assert [c.job.id for c in created] == [new.id for new in batch]
        assert not any(c.deduplicated for c in created)
        for result in created:
            stored = await adapter.get_job(result.job.id)
            assert stored is not None
            if stored.status != result.job.status:  # only time can have moved it on: due meanwhile
                assert (result.job.status, stored.status) == ("scheduled", "ready")
                stored = type(stored)(**{**stored.__dict__, "status": "scheduled"})
            assert result.job == stored

    loop.run_until_complete(check())


def _as_the_other(job: StoredJob, other: StoredJob, schedule: Schedule | None) -> StoredJob:
    """``job`` with what is its own replaced by ``other``'s: the id (and so the chain id), the time
    of its statement (``created_at``), and ``scheduled_at`` where it follows that time (no schedule,
    a delay, or a time already past)."""
    if schedule is None or schedule.at is None or job.scheduled_at == job.created_at:
        assert job.scheduled_at - job.created_at == other.scheduled_at - other.created_at
        scheduled_at = other.scheduled_at
    else:
        scheduled_at = job.scheduled_at
    return replace(
        job,
        id=other.id,
        chain_id=other.chain_id,
        created_at=other.created_at,
        scheduled_at=scheduled_at,
    )


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(start=chain_starts(), in_transaction=st.booleans())
def test_one_start_stores_what_the_batch_statement_stores(
    loop: asyncio.AbstractEventLoop,
    adapter: PgStateAdapter[Any],
    start: NewJob,
    in_transaction: bool,
) -> None:
    """One chain start runs the statement with scalar arguments; the same start through the batch
    statement (its arrays of one row) stores the same row and returns the same job, and each result
    is what the store holds."""
    one, batch = replace(start, id=uuid7()), replace(start, id=uuid7())

    async def create() -> tuple[CreatedJob, CreatedJob]:
        if in_transaction:
            async with adapter.transaction() as tx:
                (by_one,) = await adapter.create_jobs([one], tx=tx)
                (by_batch,) = await adapter._create_first([batch], adapter._first_args([batch]), tx)
        else:
            (by_one,) = await adapter.create_jobs([one])
            (by_batch,) = await adapter._create_first([batch], adapter._first_args([batch]), None)
        return by_one, by_batch

    async def check() -> None:
        counting = CountingProvider(adapter.provider)
        adapter.provider = counting
        try:
            by_one, by_batch = await create()
        finally:
            adapter.provider = counting.inner
        assert counting.statements == [
            adapter.sql.create_one.text if in_transaction else adapter.sql.create_one_alone.text,
            adapter.sql.create_first.text
            if in_transaction
            else adapter.sql.create_first_alone.text,
        ]
        assert (by_one.job.id, by_batch.job.id) == (one.id, batch.id)
        assert not by_one.deduplicated and not by_batch.deduplicated
        stored_one, stored_batch = await adapter.get_job(one.id), await adapter.get_job(batch.id)
        assert stored_one is not None and stored_batch is not None
        if (by_one.job.status, by_batch.job.status) == ("scheduled", "scheduled"):
            # only time can have moved a stored job on: due meanwhile
            stored_one = replace(stored_one, status="scheduled")
            stored_batch = replace(stored_batch, status="scheduled")
        assert by_one.job == stored_one
        assert by_batch.job == stored_batch
        assert _as_the_other(stored_batch, stored_one, start.schedule) == stored_one

    loop.run_until_complete(check())


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    texts=st.lists(
        st.text(st.sampled_from(["\x1e", "\x1f", ",", "\u2028", "\\", '"', "a", "é"])),
        min_size=2,
        max_size=6,
    ),
    in_transaction=st.booleans(),
)
def test_a_batch_keeps_each_input_apart(
    loop: asyncio.AbstractEventLoop,
    adapter: PgStateAdapter[Any],
    texts: list[str],
    in_transaction: bool,
) -> None:
    """The batch statement takes its ids and inputs as one text each, split by separators: inputs
    holding the separators, commas and other characters JSON escapes or keeps come back and are
    stored each as given, in order."""
    batch = [
        NewJob(id=uuid7(), type_name="a", chain_type_name="a", input=[text, {",": text}])
        for text in texts
    ]

    async def check() -> None:
        created = await create(adapter, batch, in_transaction)
        assert [(c.job.id, c.job.input) for c in created] == [(n.id, n.input) for n in batch]
        for new in batch:
            stored = await adapter.get_job(new.id)
            assert stored is not None and stored.input == new.input

    loop.run_until_complete(check())


@pytest.mark.parametrize(
    ("bad_id", "bad_text"),
    [(True, False), (False, True)],
    ids=["id-with-a-comma", "input-text-with-a-separator"],
)
def test_a_batch_refuses_what_its_separators_would_split(
    loop: asyncio.AbstractEventLoop, adapter: PgStateAdapter[Any], bad_id: bool, bad_text: bool
) -> None:
    """An id holding a comma (outside the adapter's id policy) or an input text holding the input
    separator (not compact JSON text) is refused before anything is sent: nothing is stored."""
    good = NewJob(id=uuid7(), type_name="a", chain_type_name="a", input="x")
    first, second = uuid7(), uuid7()
    bad = NewJob(
        id=f"{first},{second}" if bad_id else first,
        type_name="a",
        chain_type_name="a",
        input="x",
        input_text='"x"\x1e"y"' if bad_text else None,
    )

    async def check() -> None:
        with pytest.raises(ValueError):
            await adapter.create_jobs([good, bad])
        for job_id in (good.id, first, second):
            assert await adapter.get_job(job_id) is None

    loop.run_until_complete(check())


@pytest.mark.parametrize("in_transaction", [False, True], ids=["alone", "in-transaction"])
def test_one_start_with_a_taken_id_inserts_nothing(
    loop: asyncio.AbstractEventLoop, adapter: PgStateAdapter[Any], in_transaction: bool
) -> None:
    """The statement of one start finds its id taken: it raises with that id, the stored job is
    untouched, and the caller's transaction goes on."""

    async def scenario() -> None:
        (existing,) = await adapter.create_jobs([_start()])
        clash = replace(_start(existing.job.id), input={"other": True}, priority=3)
        if in_transaction:
            async with adapter.transaction() as tx:
                with pytest.raises(DuplicateJobIdError) as caught:
                    await adapter.create_jobs([clash], tx=tx)
                (after,) = await adapter.create_jobs([_start()], tx=tx)
            assert await adapter.get_job(after.job.id) is not None
        else:
            with pytest.raises(DuplicateJobIdError) as caught:
                await adapter.create_jobs([clash])
        assert caught.value.job_id == existing.job.id
        assert await adapter.get_job(existing.job.id) == existing.job

    loop.run_until_complete(scenario())


def _stored(loop: asyncio.AbstractEventLoop, adapter: PgStateAdapter[Any], job_id: str) -> Any:
    return loop.run_until_complete(adapter.get_job(job_id))


@pytest.mark.parametrize("general", [False, True], ids=["chain-starts", "general"])
def test_a_clash_inside_a_transaction_undoes_only_its_batch(
    loop: asyncio.AbstractEventLoop, adapter: PgStateAdapter[Any], general: bool
) -> None:
    """The clash is reported without aborting the caller's transaction: its earlier writes and the
    writes after the error commit; the failed batch leaves nothing."""

    def start(**kw: Any) -> NewJob:
        return NewJob(id=kw.pop("id", uuid7()), type_name="a", chain_type_name="a", input=1, **kw)

    async def scenario() -> tuple[str, str, str]:
        (existing,) = await adapter.create_jobs([start()])
        dedup = {"deduplication": Deduplication(f"k-{uuid7()}")} if general else {}
        async with adapter.transaction() as tx:
            (before,) = await adapter.create_jobs([start()], tx=tx)
            lost = start(**dedup)
            with pytest.raises(DuplicateJobIdError) as caught:
                await adapter.create_jobs([lost, start(id=existing.job.id)], tx=tx)
            assert caught.value.job_id == existing.job.id
            (after,) = await adapter.create_jobs([start()], tx=tx)
        return before.job.id, lost.id, after.job.id

    before, lost, after = loop.run_until_complete(scenario())
    assert _stored(loop, adapter, before) is not None
    assert _stored(loop, adapter, after) is not None
    assert _stored(loop, adapter, lost) is None


async def _logged_adapter(ns: Namespace, partitioned: bool) -> tuple[PgStateAdapter[Any], str]:
    """An adapter on ``ns`` whose job table logs every inserted row's id, at once, into a table of
    its own: a row committed and then deleted leaves its line there."""
    adapter = await make_adapter("asyncpg", ns, partitioned)
    await adapter.migrate()
    log = f'"{ns.schema}"."inserted_log"'
    conn = await asyncpg.connect(DSN)
    try:
        await conn.execute(f"CREATE TABLE {log} (id uuid NOT NULL)")
        await conn.execute(
            f'CREATE FUNCTION "{ns.schema}".log_insert() RETURNS trigger LANGUAGE plpgsql AS '
            f"$$ BEGIN INSERT INTO {log} VALUES (NEW.id); RETURN NULL; END $$"
        )
        await conn.execute(
            f'CREATE TRIGGER log_insert AFTER INSERT ON "{ns.schema}"."{ns.prefix}job" '
            f'FOR EACH ROW EXECUTE FUNCTION "{ns.schema}".log_insert()'
        )
    finally:
        await conn.close()
    return adapter, log


async def _logged(log: str) -> list[str]:
    conn = await asyncpg.connect(DSN)
    try:
        return [str(row[0]) for row in await conn.fetch(f"SELECT id FROM {log}")]
    finally:
        await conn.close()


def _start(job_id: str | None = None) -> NewJob:
    return NewJob(id=job_id or uuid7(), type_name="a", chain_type_name="a", input=1)


@pytest.mark.parametrize("partitioned", [False, True], ids=["plain", "partitioned"])
@pytest.mark.parametrize("notify", [False, True], ids=["create", "notify"])
@pytest.mark.parametrize("repeated", [False, True], ids=["stored", "repeated"])
async def test_a_clash_without_a_transaction_commits_nothing(
    namespace: Namespace, partitioned: bool, notify: bool, repeated: bool
) -> None:
    """A start without a caller's transaction is one autocommit statement: when an id of its batch
    is taken (by a stored job, or earlier in the batch) no row of it is ever committed, so no worker
    can claim a job whose start raised."""
    adapter, log = await _logged_adapter(namespace, partitioned)
    try:
        (existing,) = await adapter.create_jobs([_start()])
        first = _start()
        taken = first.id if repeated else existing.job.id
        batch = [first, _start(taken), _start()]
        before = await _logged(log)
        with pytest.raises(DuplicateJobIdError) as caught:
            if notify:
                await adapter._create_jobs(batch, None, (["qt_clash"], ["1"]))
            else:
                await adapter.create_jobs(batch)
        assert caught.value.job_id == taken
        assert await _logged(log) == before
        for new in batch:
            if new.id != existing.job.id:
                assert await adapter.get_job(new.id) is None
    finally:
        await adapter.close()


@pytest.mark.parametrize("partitioned", [False, True], ids=["plain", "partitioned"])
async def test_a_raced_clash_without_a_transaction_commits_nothing(
    namespace: Namespace, partitioned: bool
) -> None:
    """The general statement without a caller's transaction, when a concurrent transaction commits
    a first job with one of the batch's ids after the statement's check: nothing of the batch is
    committed."""
    adapter, log = await _logged_adapter(namespace, partitioned)
    try:
        (chain,) = await adapter.create_jobs([_start()])
        continuation = NewJob(
            id=uuid7(),
            type_name="a",
            chain_type_name="a",
            input=2,
            chain_id=chain.job.id,
            chain_index=1,
        )
        raced = _start()
        async with adapter.transaction() as other:
            await adapter.create_jobs([raced], tx=other)
            holder = await other.fetchval("SELECT pg_backend_pid()")
            creating = asyncio.ensure_future(adapter.create_jobs([continuation, _start(raced.id)]))
            watcher = await asyncpg.connect(DSN)
            try:
                while not creating.done():  # until the statement waits for the other transaction
                    waiting = await watcher.fetchval(
                        "SELECT count(*) FROM pg_stat_activity "
                        "WHERE $1::int = ANY(pg_blocking_pids(pid))",
                        holder,
                    )
                    if waiting:
                        break
                    await asyncio.sleep(0.01)
            finally:
                await watcher.close()
        with pytest.raises(DuplicateJobIdError) as caught:
            await creating
        assert caught.value.job_id == raced.id
        assert sorted(await _logged(log)) == sorted([chain.job.id, raced.id])
        assert await adapter.get_job(continuation.id) is None
    finally:
        await adapter.close()


@pytest.mark.parametrize("partitioned", [False, True], ids=["plain", "partitioned"])
@pytest.mark.parametrize("notify", [False, True], ids=["create", "notify"])
async def test_one_start_with_a_taken_id_without_a_transaction_commits_nothing(
    namespace: Namespace, partitioned: bool, notify: bool
) -> None:
    """The statement of one start (scalar arguments), in both layouts, with and without its
    wake-up: a taken id commits no row and raises with the id."""
    adapter, log = await _logged_adapter(namespace, partitioned)
    try:
        (existing,) = await adapter.create_jobs([_start()])
        before = await _logged(log)
        with pytest.raises(DuplicateJobIdError) as caught:
            if notify:
                await adapter._create_jobs([_start(existing.job.id)], None, (["qt_clash"], ["1"]))
            else:
                await adapter.create_jobs([_start(existing.job.id)])
        assert caught.value.job_id == existing.job.id
        assert await _logged(log) == before
        assert await adapter.get_job(existing.job.id) == existing.job
    finally:
        await adapter.close()
