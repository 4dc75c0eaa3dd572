"""The chains a start returns are built from what the client planned (ids, types, priorities, keys,
the caller's inputs) and only the store's own choices (status and times) from the rows it wrote.
These tests pin that each is what a read of the chain returns right afterwards, on the in-memory,
SQLite and PostgreSQL stores: chain starts one by one and in batches, with and without the
caller's transaction, of several types, with caller ids, schedules, priorities, limit keys,
deduplication (matched in the store and within a batch) and blockers."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, fields, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, cast

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from queuert import (
    Blockers,
    Chain,
    Client,
    Deduplication,
    EntryJobType,
    InMemoryStateAdapter,
    JobType,
    JobTypeValidationError,
    Schedule,
    UsageError,
)
from queuert._chain_creation import _announced
from queuert.backends import open_state_adapter
from queuert.ids import uuid7
from queuert.state import NewJob, StateAdapter

PG_DSN = "postgresql://postgres@127.0.0.1:5432/test"


@dataclass
class Point:
    x: int
    label: str


class ViewPoint(EntryJobType[Point, None], name="view_point"):
    pass


class ViewValue(
    EntryJobType[Any, None],
    name="view_value",
    key_limit=100,
    limit_key=lambda value: f"k-{type(value).__name__}",
):
    pass


class ViewAfter(EntryJobType[int, None], Blockers[tuple[Chain[ViewPoint], ...]], name="view_after"):
    pass


AnyStart = EntryJobType[Any, None]

texts = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=6)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | texts,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(texts, children, max_size=3),
    max_leaves=8,
)
schedules = st.sampled_from(
    [
        None,
        None,
        Schedule(after=timedelta(hours=2)),
        Schedule(at=datetime(2001, 2, 3, 4, 5, 6, 789000, tzinfo=timezone.utc)),
        Schedule(at=datetime(2101, 2, 3, 4, 5, 6, tzinfo=timezone.utc)),
    ]
)
"""Due now, later, at a time past or to come: none near enough to fall due between the start and
the read."""


@st.composite
def starts(draw: st.DrawFn) -> dict[str, Any]:
    """What a start is made of (a new id per run: hypothesis replays examples on the same store)."""
    kind = draw(st.sampled_from(["point", "point", "value", "after"]))
    if kind == "point":
        value: Any = Point(draw(st.integers(-(2**40), 2**40)), draw(texts))
    elif kind == "value":
        value = draw(json_values)
    else:
        value = draw(st.integers(0, 9))
    return {
        "kind": kind,
        "input": value,
        "given_id": draw(st.booleans()),
        "schedule": draw(schedules),
        "priority": draw(st.sampled_from([None, 0, 3, -(2**31)])),
        "dedup": None if kind == "after" else draw(st.none() | st.sampled_from(["d1", "d2"])),
        "blockers": draw(st.integers(0, 2)) if kind == "after" else 0,
    }


def _job(start: dict[str, Any], run: str, blocker: Chain[ViewPoint]) -> AnyStart:
    kind = start["kind"]
    job_type: type[AnyStart] = {"point": ViewPoint, "value": ViewValue, "after": ViewAfter}[kind]
    dedup = start["dedup"]
    job: AnyStart = job_type(
        start["input"],
        id=uuid7() if start["given_id"] else None,
        schedule=start["schedule"],
        priority=start["priority"],
        # keys of this run: a match is an earlier start of the run, in the store or the batch
        deduplication=None if dedup is None else Deduplication(f"{run}-{dedup}"),
        blockers=cast(Any, [blocker] * start["blockers"]) if kind == "after" else None,
    )
    return job


@pytest.fixture(scope="module")
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


@pytest.fixture(scope="module", params=["memory", "sqlite", "postgresql"])
def client(
    request: pytest.FixtureRequest,
    loop: asyncio.AbstractEventLoop,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Client[Any]]:
    kind = request.param
    schema = f"views_{uuid.uuid4().hex[:10]}"
    if kind == "memory":
        url = "memory://"
    elif kind == "sqlite":
        url = f"sqlite:///{Path(tmp_path_factory.mktemp('views')) / 'queuert.db'}"
    else:
        url = f"{PG_DSN}?schema={schema}"

    async def open_client() -> Client[Any]:
        state: StateAdapter[Any] = await open_state_adapter(url)
        await state.migrate()
        return Client(state, job_types=[ViewPoint, ViewValue, ViewAfter])

    made = loop.run_until_complete(open_client())
    yield made

    async def close() -> None:
        await made.close()
        await made.state.close()
        if kind == "postgresql":
            import asyncpg

            conn = await asyncpg.connect(PG_DSN)
            try:
                await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            finally:
                await conn.close()

    loop.run_until_complete(close())


def _as_built_by_init(view: Any) -> None:
    """``view`` holds every field of its class, in declaration order, and nothing else."""
    assert list(vars(view)) == [f.name for f in fields(type(view))]
    assert view == type(view)(**vars(view))


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    batch=st.lists(starts(), min_size=1, max_size=6),
    how=st.sampled_from(["batch", "one by one", "batch in tx", "one by one in tx"]),
)
def test_a_started_chain_is_what_a_read_of_it_returns(
    loop: asyncio.AbstractEventLoop, client: Client[Any], batch: list[dict[str, Any]], how: str
) -> None:
    async def start(jobs: list[AnyStart], tx: Any) -> list[Chain[Any]]:
        if how.startswith("batch"):
            return await client.start_chains(jobs, tx=tx)
        return [await client.start_chain(job, tx=tx) for job in jobs]

    async def check() -> None:
        run = uuid.uuid4().hex[:8]
        blocker = await client.start_chain(ViewPoint(Point(0, "blocker")))
        jobs = [_job(one, run, blocker) for one in batch]
        if how.endswith("in tx"):
            async with client.transaction() as tx:
                chains = await start(jobs, tx)
        else:
            chains = await start(jobs, None)
        keys: dict[tuple[str, str], str] = {}  # per chain type and key, its chain
        for job, chain in zip(jobs, chains, strict=True):
            _as_built_by_init(chain)
            _as_built_by_init(chain.root)
            assert chain.tail is chain.root
            read = await client.get_chain(chain.id)
            assert read is not None
            assert chain == replace(read, deduplicated=chain.deduplicated)
            dedup = job.deduplication
            if dedup is None:
                assert not chain.deduplicated
            else:
                # the first start of a chain type and key in the run starts its chain, every
                # later one finds it
                key = (type(job).type_name, dedup.key)
                assert chain.deduplicated is (key in keys)
                assert keys.setdefault(key, chain.id) == chain.id
            if not chain.deduplicated:
                assert chain.root.input is job.input  # the caller's own value
                assert chain.id == (job.id or chain.id)

    loop.run_until_complete(check())


class ViewLater(JobType[int, None], name="view_later"):
    """Not an entry type: it cannot start a chain."""


@given(
    good=st.integers(0, 4),
    bad=st.sampled_from(["not a job", "not an entry"]),
    at=st.integers(0, 4),
    more_bad=st.booleans(),
)
def test_a_batch_with_a_wrong_start_names_the_first(
    good: int, bad: str, at: int, more_bad: bool
) -> None:
    """A batch is checked per type of job it has; when one is wrong, the first wrong job of the
    batch (in order) is the one named, as when each is checked in turn."""
    client: Client[Any] = Client(InMemoryStateAdapter(), job_types=[ViewPoint, ViewLater])
    jobs: list[Any] = [ViewPoint(Point(i, "")) for i in range(good)]
    wrong: Any = "not a job" if bad == "not a job" else ViewLater(7)
    jobs.insert(min(at, len(jobs)), wrong)
    if more_bad:  # a later wrong job of the other kind is not the one named
        jobs.append(ViewLater(8) if bad == "not a job" else 5)
    with pytest.raises((UsageError, JobTypeValidationError)) as raised:
        client._core.creation.plan_starts(jobs)
    if bad == "not a job":
        assert isinstance(raised.value, UsageError)
        assert repr("not a job") in str(raised.value)
    else:
        assert isinstance(raised.value, JobTypeValidationError)
        assert raised.value.code == "not_entry_point"


@given(
    rows=st.lists(
        st.tuples(st.sampled_from(["a", "b", "c"]), st.booleans()), min_size=1, max_size=12
    )
)
def test_what_new_chains_announce_is_each_one_announcing(rows: list[tuple[str, bool]]) -> None:
    """A batch due now is announced per type at once: the same as each start announcing itself
    (a job due now wakes a worker of its type, one scheduled announces its type as scheduled)."""
    news = [
        NewJob(
            id=uuid7(),
            type_name=type_name,
            chain_type_name=type_name,
            input=None,
            schedule=Schedule(after=timedelta(hours=1)) if later else None,
        )
        for type_name, later in rows
    ]
    ready: dict[str, int] = {}
    scheduled: set[str] = set()
    for type_name, later in rows:
        if later:
            scheduled.add(type_name)
        else:
            ready[type_name] = ready.get(type_name, 0) + 1
    announced = _announced(news)
    assert dict(announced.ready) == ready
    assert set(announced.scheduled) == scheduled
