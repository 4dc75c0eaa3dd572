"""create_jobs has two statements: a short INSERT for batches of chain starts without deduplication
(the common case, whose jobs are assembled from what was sent plus the server's timestamps) and the
general one (continuations, deduplication). These tests pin that both give what the store then holds,
and that an id clash undoes only the failed batch."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pg_helpers import DSN, Namespace, drop_namespace, unique_schema
from queuert.errors import DuplicateJobIdError
from queuert.ids import uuid7
from queuert.json import JsonValue
from queuert.schedule import Deduplication, Schedule
from queuert.state import NewJob
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


@st.composite
def chain_starts(draw: st.DrawFn) -> NewJob:
    type_name = draw(st.sampled_from(["a", "b"]))
    return NewJob(
        id="",  # a fresh id per run: set by the test (hypothesis replays examples)
        type_name=type_name,
        chain_type_name=type_name,
        input=draw(json_values),
        schedule=draw(schedules),
        chain_trace_context=draw(st.none() | st.just("00-chain-01")),
        trace_context=draw(st.none() | st.just("00-job-01")),
    )


@pytest.fixture(scope="module")
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    """One loop for every hypothesis example (the adapter's pool lives on it)."""
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


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
@given(batch=st.lists(chain_starts(), min_size=1, max_size=8), in_transaction=st.booleans())
def test_created_chain_starts_equal_what_the_store_holds(
    loop: asyncio.AbstractEventLoop,
    adapter: PgStateAdapter[Any],
    batch: list[NewJob],
    in_transaction: bool,
) -> None:
    batch = [replace(new, id=uuid7()) for new in batch]

    async def check() -> None:
        if in_transaction:
            async with adapter.transaction() as tx:
                created = await adapter.create_jobs(batch, tx=tx)
        else:
            created = await adapter.create_jobs(batch)
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
