"""A worker's group commit with PgNotifyAdapter on the state adapter's database: the completions
that release nothing and their chain-closed messages go in one autocommit statement (no BEGIN ...
COMMIT, no statement for the messages), the messages of exactly the completions that took effect;
completions that release other jobs are closed in a transaction that carries their messages."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from pg_helpers import DSN, CountingProvider, Namespace, drop_namespace, unique_schema
from queuert import Blockers, Chain, Client, EntryJobType, Worker
from queuert._finishing import announced_by, closing_notifications
from queuert.json import dumps
from queuert.notify import Notifications
from queuert.state import CompleteResult, Completion, StoredJob
from queuert_postgres import AsyncpgProvider, PgNotifyAdapter, PgStateAdapter
from queuert_postgres._notifying import PgPublisher
from queuert_postgres.notify import channels_of, notify_messages

WORKER = "group-commit-worker"
NONE: frozenset[str] = frozenset()


@dataclass
class N:
    value: int


class Ping(EntryJobType[N, int], name="gc_ping"):
    pass


class Waiting(EntryJobType[N, None], Blockers[tuple[Chain[Ping], ...]], name="gc_waiting"):
    pass


@dataclass
class Setup:
    state: PgStateAdapter[Any]
    provider: CountingProvider
    client: Client[Any]
    notify: PgNotifyAdapter
    listener: PgNotifyAdapter
    prefix: str


@pytest.fixture
async def setup() -> AsyncIterator[Setup]:
    ns = Namespace(unique_schema(), "queuert_")
    provider = CountingProvider(await AsyncpgProvider.connect(DSN, min_size=1, max_size=4))
    prefix = f"qtgc_{uuid.uuid4().hex[:8]}"
    state: PgStateAdapter[Any] = PgStateAdapter(provider, schema=ns.schema)
    try:
        await state.migrate()
        async with (
            PgNotifyAdapter(DSN, channel_prefix=prefix) as notify,
            PgNotifyAdapter(DSN, channel_prefix=prefix) as listener,
            Client(state, job_types=[Ping, Waiting], notify=notify) as client,
        ):
            yield Setup(state, provider, client, notify, listener, prefix)
    finally:
        await state.close()
        await drop_namespace(ns)


class Heard:
    """Chain-closed and job-scheduled messages one listening connection receives, in order; a
    sentinel chain closed afterwards shows that nothing else is on the way (one connection
    receives in commit order)."""

    def __init__(self, listener: PgNotifyAdapter) -> None:
        self.listener = listener
        self.messages: list[str] = []
        self.arrived = asyncio.Event()

    async def chains(self, chain_ids: Sequence[str]) -> None:
        for chain_id in [*chain_ids, "sentinel"]:
            await self.listener.listen_chain_closed(chain_id, self._on(f"closed:{chain_id}"))

    async def types(self, type_names: Sequence[str]) -> None:
        await self.listener.listen_job_scheduled(
            type_names, lambda type_name: self._on(f"scheduled:{type_name}")()
        )

    def _on(self, what: str) -> Any:
        def on() -> None:
            self.messages.append(what)
            if what == "closed:sentinel":
                self.arrived.set()

        return on

    async def until_sentinel(self, notify: PgNotifyAdapter) -> list[str]:
        await notify.notify_chain_closed("sentinel")
        await asyncio.wait_for(self.arrived.wait(), 10)
        return self.messages[:-1]


async def claimed(setup: Setup, count: int) -> list[StoredJob]:
    await setup.client.start_chains([Ping(N(n)) for n in range(count)])
    result = await setup.state.claim_jobs(
        leases={"gc_ping": timedelta(minutes=5)}, limit=count, worker_id=WORKER
    )
    assert len(result.jobs) == count
    return result.jobs


async def group_commit(setup: Setup, jobs: Sequence[StoredJob]) -> list[CompleteResult | None]:
    """What the worker's group commit does with these claimed jobs (each completed with an
    output), through the publisher the notify adapter gives the state adapter."""
    publish = await setup.notify.in_transactions_of(setup.state)
    assert publish is not None
    completions = [
        Completion(job.id, output=n, output_text=dumps(n), claimed=job)
        for n, job in enumerate(jobs)
    ]
    setup.provider.take()
    return await setup.state.complete_jobs_publishing(
        completions,
        closing_notifications(completions),
        announced_by,
        publish,
        worker_id=WORKER,
        owner=WORKER,
    )


@pytest.mark.parametrize("count", [1, 5])
async def test_a_group_commit_is_one_statement_and_wakes_the_waiters(
    setup: Setup, count: int
) -> None:
    jobs = await claimed(setup, count)
    heard = Heard(setup.listener)
    await heard.chains([job.chain_id for job in jobs])
    results = await group_commit(setup, jobs)
    statements = setup.provider.statements[:]
    assert len(statements) == 1 and "pg_notify" in statements[0], (
        "the completions and their messages in one statement"
    )
    assert setup.provider.transactions == 0, "no BEGIN ... COMMIT"
    assert [r.job.status if r else None for r in results] == ["completed"] * count
    assert sorted(await heard.until_sentinel(setup.notify)) == sorted(
        f"closed:{job.chain_id}" for job in jobs
    ), "every closed chain's waiters, once"


@pytest.mark.parametrize("count", [1, 3])
async def test_a_completion_whose_lease_was_lost_sends_no_message(setup: Setup, count: int) -> None:
    jobs = await claimed(setup, count)
    lost = jobs[0]
    await setup.state.reschedule_job(lost.id, schedule=None, error=None)  # reaped, say
    heard = Heard(setup.listener)
    await heard.chains([job.chain_id for job in jobs])
    results = await group_commit(setup, jobs)
    assert results[0] is None, "refused"
    assert all(r is not None for r in results[1:])
    stored = await setup.state.get_job(lost.id)
    assert stored is not None and stored.outcome is None
    assert sorted(await heard.until_sentinel(setup.notify)) == sorted(
        f"closed:{job.chain_id}" for job in jobs[1:]
    ), "only the closed jobs' chains"


async def test_a_completion_that_releases_a_job_sends_its_wake_up(setup: Setup) -> None:
    chains = await setup.client.start_chains([Ping(N(n)) for n in range(3)])
    waiting = await setup.client.start_chain(Waiting(N(0), blockers=(chains[1],)))
    result = await setup.state.claim_jobs(
        leases={"gc_ping": timedelta(minutes=5)}, limit=3, worker_id=WORKER
    )
    jobs = sorted(result.jobs, key=lambda job: [c.id for c in chains].index(job.chain_id))
    heard = Heard(setup.listener)
    await heard.chains([job.chain_id for job in jobs])
    await heard.types(["gc_waiting"])
    results = await group_commit(setup, jobs)
    assert setup.provider.transactions == 1, "the releasing completion in a transaction"
    result = results[1]
    assert result is not None and [job.id for job in result.unblocked] == [waiting.id]
    assert sorted(await heard.until_sentinel(setup.notify)) == sorted(
        [*(f"closed:{job.chain_id}" for job in jobs), "scheduled:gc_waiting"]
    )


async def test_a_worker_wakes_a_waiter_of_another_notify_adapter(setup: Setup) -> None:
    """A client with a notify adapter of its own (another process, say) waiting for a chain that a
    worker closes is woken by the group commit's message, not by its poll."""
    worker: Worker[Any] = Worker(setup.client, concurrency=10, poll_interval=3600)

    @worker.handler(Ping)
    async def ping(attempt: Any) -> int:
        return int(attempt.job.input.value)  # an output: the group commit writes it

    async with (
        PgNotifyAdapter(DSN, channel_prefix=setup.prefix) as other,
        Client(setup.state, job_types=[Ping], notify=other) as waiter,
    ):
        chains = await setup.client.start_chains([Ping(N(n)) for n in range(5)])
        setup.provider.take()
        async with worker:
            outputs = await asyncio.wait_for(
                asyncio.gather(
                    *(waiter.wait_for_chain(c, timeout=30, poll_interval=3600) for c in chains)
                ),
                20,
            )
        assert outputs == [0, 1, 2, 3, 4]


async def test_every_message_of_a_closed_completion_goes_and_none_of_a_refused_one(
    setup: Setup,
) -> None:
    """The statement sends each completion's messages by its ordinal, however many it has."""
    jobs = await claimed(setup, 3)
    await setup.state.reschedule_job(jobs[1].id, schedule=None, error=None)
    publish = await setup.notify.in_transactions_of(setup.state)
    assert publish is not None
    heard = Heard(setup.listener)
    extra = [f"extra-{n}" for n in range(3)]
    await heard.chains([*(job.chain_id for job in jobs), *extra])
    closing = [
        Notifications({}, NONE, frozenset({job.chain_id, extra[n]}), NONE)
        for n, job in enumerate(jobs)
    ]
    completions = [Completion(job.id, output=None, output_text="null", claimed=job) for job in jobs]
    setup.provider.take()
    results = await setup.state.complete_jobs_publishing(
        completions, closing, announced_by, publish, worker_id=WORKER, owner=WORKER
    )
    assert [r is not None for r in results] == [True, False, True]
    assert setup.provider.transactions == 1, "the refused one goes to the full statement"
    assert sorted(await heard.until_sentinel(setup.notify)) == sorted(
        f"closed:{key}" for key in (jobs[0].chain_id, extra[0], jobs[2].chain_id, extra[2])
    )


def test_the_messages_of_a_batch_are_joined_unless_a_payload_cannot_be() -> None:
    publisher = PgPublisher(None, lambda n: notify_messages(channels_of("qt"), n), None, None)  # type: ignore[arg-type]
    chains = [
        Notifications({}, NONE, frozenset({"a"}), NONE),
        Notifications({}, NONE, NONE, NONE),
        Notifications({}, NONE, frozenset({"b"}), NONE),
    ]
    assert publisher.each(chains) == ("qt_chainc\x1fqt_chainc", "a\x1fb", "1,3")
    assert publisher.each(chains[1:2]) == ("", "", ""), "no message"
    odd = Notifications({}, NONE, frozenset({"x\x1fy"}), NONE)
    assert publisher.each([odd]) is None, "a payload holding the separator"
    assert publisher.each([Notifications({}, NONE, frozenset({""}), NONE)]) is None, "empty"
