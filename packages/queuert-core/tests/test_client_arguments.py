"""The client checks every argument before it calls the state adapter.

Ids are checked against the adapter's id policy (``InvalidJobIdError``), filters and page arguments
against what the lists accept (``UsageError``); either way the adapter is not called at all. New ids
come from the adapter's policy, and deleted chains come back in creation order whatever order the
adapter found them in. The adapter here is the in-memory one behind a wrapper that records which
operations the client called (and, for the delete order, hands them back in reverse).
"""

from __future__ import annotations

import inspect
import itertools
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pytest
from queuert import (
    Client,
    Deduplication,
    EntryJobType,
    InMemoryStateAdapter,
    InvalidJobIdError,
    UsageError,
)
from queuert.ids import UUID_IDS, IdPolicy
from queuert.state import DeleteResult

BAD = "not-a-uuid"
UNKNOWN: Any = "bogus"
NOT_A_STR: Any = uuid.UUID(int=1)


@dataclass
class Num:
    value: int


class Echo(EntryJobType[Num, Num], name="echo"):
    pass


class Recording:
    """The in-memory adapter, recording the operations called on it."""

    def __init__(self, ids: IdPolicy = UUID_IDS) -> None:
        self._inner = InMemoryStateAdapter()
        self.ids = ids
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if not inspect.iscoroutinefunction(attr):
            return attr

        async def call(*args: Any, **kwargs: Any) -> Any:
            self.calls.append(name)
            result = await attr(*args, **kwargs)
            if isinstance(result, DeleteResult):
                result = DeleteResult(list(reversed(result.deleted)), result.references)
            return result

        return call


@pytest.fixture
def state() -> Recording:
    return Recording()


@pytest.fixture
def client(state: Recording) -> Client[Any]:
    return Client(state, job_types=[Echo])


Call = Callable[[Client[Any], Any], Awaitable[object]]

BAD_IDS: dict[str, tuple[Call, str]] = {
    "get_chain": (lambda c, tx: c.get_chain(BAD), "chain_id"),
    "get_job": (lambda c, tx: c.get_job(BAD), "job_id"),
    "get_job_blockers": (lambda c, tx: c.get_job_blockers(BAD), "job_id"),
    "list_chain_jobs": (lambda c, tx: c.list_chain_jobs(BAD), "chain_id"),
    "list_blocked_jobs": (lambda c, tx: c.list_blocked_jobs(BAD), "chain_id"),
    "list_chains(chain_ids)": (lambda c, tx: c.list_chains(chain_ids=[BAD]), "chain_ids[0]"),
    "list_chains(job_ids)": (lambda c, tx: c.list_chains(job_ids=[BAD]), "job_ids[0]"),
    "list_jobs(job_ids)": (
        lambda c, tx: c.list_jobs(job_ids=[str(uuid.uuid4()), BAD]),
        "job_ids[1]",
    ),
    "list_jobs(chain_ids)": (lambda c, tx: c.list_jobs(chain_ids=[BAD]), "chain_ids[0]"),
    "wait_for_chain": (lambda c, tx: c.wait_for_chain(BAD, Echo, timeout=1), "chain"),
    "complete_chain": (lambda c, tx: c.complete_chain(BAD, Echo, Num(1), tx=tx), "chain"),
    "cancel_chain": (lambda c, tx: c.cancel_chain(BAD, tx=tx), "chain"),
    "delete_chains": (lambda c, tx: c.delete_chains([BAD], tx=tx), "chains[0]"),
    "trigger_jobs": (lambda c, tx: c.trigger_jobs([BAD], tx=tx), "job_ids[0]"),
    "start_chain(id)": (lambda c, tx: c.start_chain(Echo(Num(1), id=BAD), tx=tx), "id"),
    "start_chain(exclude_chain_ids)": (
        lambda c, tx: c.start_chain(
            Echo(Num(1), deduplication=Deduplication("k", exclude_chain_ids=[BAD])), tx=tx
        ),
        "deduplication.exclude_chain_ids[0]",
    ),
    "get_job(not a str)": (lambda c, tx: c.get_job(NOT_A_STR), "job_id"),
}


@pytest.mark.parametrize("name", list(BAD_IDS))
async def test_a_bad_id_is_refused_before_the_adapter_is_called(
    client: Client[Any], state: Recording, name: str
) -> None:
    call, argument = BAD_IDS[name]
    async with client.transaction() as tx:
        state.calls.clear()
        with pytest.raises(InvalidJobIdError) as info:
            await call(client, tx)
        assert state.calls == []
    assert info.value.argument == argument
    assert isinstance(info.value, UsageError)


BAD_ARGUMENTS: dict[str, Call] = {
    "chain status": lambda c, tx: c.list_chains(status=UNKNOWN),
    "job status": lambda c, tx: c.list_jobs(statuses=["ready", UNKNOWN]),
    "order": lambda c, tx: c.list_chains(order=UNKNOWN),
    "limit 0": lambda c, tx: c.list_jobs(limit=0),
    "limit 1001": lambda c, tx: c.list_chain_jobs(str(uuid.uuid4()), limit=1001),
    "limit True": lambda c, tx: c.list_blocked_jobs(str(uuid.uuid4()), limit=True),
    "cursor": lambda c, tx: c.list_chains(cursor="garbage"),
    "naive datetime": lambda c, tx: c.list_jobs(created_from=datetime(2030, 1, 1)),
    "type names as one str": lambda c, tx: c.list_chains(type_names="echo"),
    "queue stats of one str": lambda c, tx: c.get_queue_stats("echo"),
    "queue stats of one class": lambda c, tx: c.get_queue_stats(Echo),
    "delete one str": lambda c, tx: c.delete_chains(str(uuid.uuid4()), tx=tx),
    "trigger one str": lambda c, tx: c.trigger_jobs(str(uuid.uuid4()), tx=tx),
    "dedup keys as one str": lambda c, tx: c.list_chains(deduplication_keys="k"),
    "activity window 0": lambda c, tx: c.get_job_activity(window=0),
    "activity window negative": lambda c, tx: c.get_job_activity(window=-5),
    "activity buckets 0": lambda c, tx: c.get_job_activity(buckets=0),
    "activity buckets 1441": lambda c, tx: c.get_job_activity(buckets=1441),
    "activity buckets float": lambda c, tx: c.get_job_activity(buckets=UNKNOWN),
}


@pytest.mark.parametrize("name", list(BAD_ARGUMENTS))
async def test_a_bad_argument_is_refused_before_the_adapter_is_called(
    client: Client[Any], state: Recording, name: str
) -> None:
    async with client.transaction() as tx:
        state.calls.clear()
        with pytest.raises(UsageError):
            await BAD_ARGUMENTS[name](client, tx)
        assert state.calls == []


async def test_a_cursor_of_another_list_is_refused(client: Client[Any], state: Recording) -> None:
    async with client.transaction() as tx:
        await client.start_chains([Echo(Num(1)), Echo(Num(2))], tx=tx)
    jobs_cursor = (await client.list_jobs(limit=1)).next_cursor
    chains_cursor = (await client.list_chains(limit=1)).next_cursor
    assert jobs_cursor is not None and chains_cursor is not None
    state.calls.clear()
    with pytest.raises(UsageError):
        await client.list_chains(cursor=jobs_cursor)
    with pytest.raises(UsageError):
        await client.list_jobs(cursor=chains_cursor)
    assert state.calls == []
    assert len((await client.list_chains(cursor=chains_cursor)).items) == 1


async def test_deleted_chains_come_back_in_creation_order(client: Client[Any]) -> None:
    async with client.transaction() as tx:
        first = await client.start_chain(Echo(Num(1)), tx=tx)
    async with client.transaction() as tx:
        second, third = await client.start_chains([Echo(Num(2)), Echo(Num(3))], tx=tx)
    async with client.transaction() as tx:
        deleted = await client.delete_chains([third, first.id, second], tx=tx)
    assert [c.id for c in deleted] == [first.id, second.id, third.id]


async def test_queue_stats_take_type_names_or_classes(client: Client[Any]) -> None:
    async with client.transaction() as tx:
        await client.start_chains([Echo(Num(1)), Echo(Num(2))], tx=tx)
    for stats in (
        await client.get_queue_stats([Echo]),
        await client.get_queue_stats(["echo"]),
        await client.get_queue_stats(),
    ):
        assert [(s.type_name, s.ready, s.running) for s in stats] == [("echo", 2, 0)]


async def test_ids_follow_the_adapters_policy() -> None:
    counter = itertools.count(1)
    policy = IdPolicy(
        name="numbered",
        generate=lambda: f"job-{next(counter)}",
        is_valid=lambda value: value.startswith("job-") and value[4:].isdigit(),
        describe="job-<n>",
    )
    client: Client[Any] = Client(Recording(policy), job_types=[Echo])
    async with client.transaction() as tx:
        made = await client.start_chain(Echo(Num(1)), tx=tx)
        given = await client.start_chain(Echo(Num(2), id="job-99"), tx=tx)
        with pytest.raises(InvalidJobIdError, match="expected job-<n>"):
            await client.start_chain(Echo(Num(3), id=str(uuid.uuid4())), tx=tx)
    assert made.id == "job-1" and given.id == "job-99"
    assert await client.get_chain("job-1") is not None
    with pytest.raises(InvalidJobIdError):
        await client.get_chain(str(uuid.uuid4()))


async def test_a_batch_takes_its_new_ids_from_the_policy_at_once() -> None:
    """A batch of starts asks a policy's ``generate_many`` once (single starts ask ``generate``); a
    caller's id is kept, and the new ids go to the other jobs in batch order."""
    asked: list[int] = []
    counter = itertools.count(1)

    def many(count: int) -> list[str]:
        asked.append(count)
        return [f"job-{next(counter)}" for _ in range(count)]

    policy = IdPolicy(
        name="numbered",
        generate=lambda: f"job-{next(counter)}",
        is_valid=lambda value: value.startswith("job-") and value[4:].isdigit(),
        describe="job-<n>",
        generate_many=many,
    )
    client: Client[Any] = Client(Recording(policy), job_types=[Echo])
    async with client.transaction() as tx:
        chains = await client.start_chains(
            [Echo(Num(1)), Echo(Num(2), id="job-99"), Echo(Num(3))], tx=tx
        )
        single = await client.start_chain(Echo(Num(4)), tx=tx)
    assert [c.id for c in chains] == ["job-1", "job-99", "job-2"]
    assert asked == [3] and single.id == "job-4"
    assert [c.root.input for c in chains] == [Num(1), Num(2), Num(3)]
