"""Events nobody takes are not built on the worker's and the client's hot paths.

* An observability adapter may define ``listens(level)``: for a level it says it drops, the worker
  builds no attempt events (started, completed) and no completion events (job completed, chain
  closed); events of a level it takes (a failed attempt) still arrive, and the jobs still complete.
* Creating jobs builds no creation events (chain created, job created, job blocked, chain
  deduplicated) for a level the adapter drops; the new jobs still wake whoever listens.
* ``NoopObservability`` listens to nothing; ``LoggingObservability`` listens to what its logger
  would log, read at each event (a level changed at run time takes effect at once).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from queuert import (
    Attempt,
    Client,
    Deduplication,
    EntryJobType,
    InMemoryStateAdapter,
    InProcessNotifyAdapter,
    NoopNotifyAdapter,
    Schedule,
    Worker,
)
from queuert._publishing import Publishing
from queuert.backoff import Backoff
from queuert.observability import (
    AttemptCompleted,
    AttemptFailed,
    AttemptStarted,
    ChainClosed,
    Event,
    JobCompleted,
    LoggingObservability,
    NoopObservability,
    RecordingObservability,
)


@dataclass
class Num:
    value: int


class Echo(EntryJobType[Num, Num], name="quiet_echo", max_attempts=2):
    pass


@dataclass
class WarningsOnly:
    """Takes events of WARNING and above, and says so."""

    events: list[Event] = field(default_factory=list)

    def listens(self, level: int) -> bool:
        return level >= logging.WARNING

    def emit(self, event: Event) -> None:
        self.events.append(event)


async def test_a_quiet_level_builds_no_attempt_or_completion_events() -> None:
    observability = WarningsOnly()
    state = InMemoryStateAdapter()
    client: Client[Any] = Client(state, observability=observability)
    worker: Worker[Any] = Worker(
        client, concurrency=4, backoff=Backoff(initial=0.01), poll_interval=0.1
    )

    @worker.handler(Echo)
    async def echo(attempt: Attempt[Echo]) -> Num:
        if attempt.input.value < 0 and attempt.number == 1:
            raise RuntimeError("first attempt fails")
        return attempt.input

    async with state, client, worker:
        chains = [await client.start_chain(Echo(Num(n))) for n in (1, 2, -3)]
        for chain in chains:
            assert await client.wait_for_chain(chain, timeout=10) == chain.input
    quiet = (AttemptStarted, AttemptCompleted, JobCompleted, ChainClosed)
    assert not [e for e in observability.events if isinstance(e, quiet)]
    failed = [e for e in observability.events if isinstance(e, AttemptFailed)]
    assert [e.job.id for e in failed] == [chains[2].id]


class Later(EntryJobType[Num, Num], name="quiet_later"):
    pass


async def test_a_quiet_level_builds_no_creation_events_and_new_jobs_still_wake() -> None:
    observability = WarningsOnly()
    notify = InProcessNotifyAdapter()
    heard: list[str] = []
    async with (
        InMemoryStateAdapter() as state,
        Client(
            state, notify=notify, job_types=[Echo, Later], observability=observability
        ) as client,
    ):
        await notify.listen_job_scheduled(["quiet_echo", "quiet_later"], heard.append)
        first = await client.start_chain(Echo(Num(1), deduplication=Deduplication(key="k")))
        again = await client.start_chain(Echo(Num(2), deduplication=Deduplication(key="k")))
        assert again.deduplicated and again.id == first.id
        await client.start_chains(
            [Echo(Num(3)), Later(Num(4), schedule=Schedule(after=timedelta(hours=1)))]
        )
        await client.wait_published()
        assert sorted(set(heard)) == ["quiet_echo", "quiet_later"]
        assert observability.events == [], "no creation event was built for a quiet level"
        async with client.transaction() as tx:
            await client.start_chain(Echo(Num(5)), tx=tx)
        assert observability.events == []


async def test_a_listening_adapter_gets_the_creation_events() -> None:
    recording = RecordingObservability()
    async with (
        InMemoryStateAdapter() as state,
        Client(state, job_types=[Echo], observability=recording) as client,
    ):
        await client.start_chain(Echo(Num(1), deduplication=Deduplication(key="k")))
        await client.start_chain(Echo(Num(2), deduplication=Deduplication(key="k")))
    assert recording.names() == ["chain_created", "job_created", "chain_deduplicated"]


async def test_a_listening_adapter_gets_every_event_of_an_attempt() -> None:
    recording = RecordingObservability()
    state = InMemoryStateAdapter()
    client: Client[Any] = Client(state, observability=recording)
    worker: Worker[Any] = Worker(client)

    @worker.handler(Echo)
    async def echo(attempt: Attempt[Echo]) -> Num:
        return attempt.input

    async with state, client, worker:
        chain = await client.start_chain(Echo(Num(7)))
        assert await client.wait_for_chain(chain, timeout=10) == Num(7)
    names = recording.names()
    for name in ("job_attempt_started", "job_attempt_completed", "job_completed", "chain_closed"):
        assert name in names


def test_which_shipped_adapters_listen(caplog: pytest.LogCaptureFixture) -> None:
    assert not Publishing(NoopNotifyAdapter(), NoopObservability()).listens(logging.CRITICAL)
    assert Publishing(NoopNotifyAdapter(), RecordingObservability()).listens(logging.DEBUG)
    logger = logging.getLogger("queuert.test_quiet")
    logging_adapter = Publishing(NoopNotifyAdapter(), LoggingObservability(logger))
    caplog.set_level(logging.WARNING, logger="queuert.test_quiet")
    assert not logging_adapter.listens(logging.INFO)
    assert logging_adapter.listens(logging.WARNING)
    caplog.set_level(logging.INFO, logger="queuert.test_quiet")
    assert logging_adapter.listens(logging.INFO)
