"""What a handler's return value does, how job types become known, and where classes stand in for
type names.

* A returned value completes the job (an output closes the chain, a job continues it), also through
  the worker's group commit; ``complete`` stays for callbacks that write in the transaction.
* Returning a value after calling ``complete`` is a ``UsageError``: the attempt fails (and retries).
* Returning ``None`` without ``complete`` completes a job whose output type is ``None``; any other
  job closes as failed at once (``JobNotCompletedError``): a retry would repeat its side effects.
* Registering a handler makes its type, and the types reachable from it, known to the client.
* Job type classes are accepted wherever type names are.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import pytest
from queuert import (
    Attempt,
    ChainFailedError,
    ChainResult,
    Client,
    Continues,
    DuplicateJobTypeError,
    EntryJobType,
    InMemoryStateAdapter,
    JobNotCompletedError,
    JobType,
    TxContext,
    UnknownJobTypeError,
    UsageError,
    Worker,
)
from queuert.observability import AttemptFailed, Event


@dataclass
class Num:
    value: int


class Double(EntryJobType[Num, Num], name="hr_double"):
    pass


class Finish(JobType[Num, str], name="hr_finish"):
    pass


class Start(EntryJobType[Num, Num], Continues[Finish], ChainResult["Num | str"], name="hr_start"):
    pass


class Notify(EntryJobType[Num, None], name="hr_notify"):
    pass


class Forgetful(EntryJobType[Num, Num], name="hr_forgetful", max_attempts=5):
    pass


def _client(observability: Any = None) -> tuple[InMemoryStateAdapter, Client[Any]]:
    state = InMemoryStateAdapter()
    return state, Client(state, observability=observability)


async def test_a_returned_output_or_job_completes_the_job() -> None:
    state, client = _client()
    worker = Worker(client, concurrency=4)

    @worker.handler(Double)
    async def double(attempt: Attempt[Double]) -> Num:
        return Num(attempt.input.value * 2)

    @worker.handler(Start)
    async def start(attempt: Attempt[Start]) -> Num | Finish:
        if attempt.input.value < 0:
            return Num(0)
        return Finish(Num(attempt.input.value + 1))

    @worker.handler(Finish)
    async def finish(attempt: Attempt[Finish]) -> str:
        return f"finished {attempt.input.value}"

    async with state, client, worker:
        async with client.transaction() as tx:
            doubled = [await client.start_chain(Double(Num(n)), tx=tx) for n in range(20)]
            continued = await client.start_chain(Start(Num(1)), tx=tx)
            ended = await client.start_chain(Start(Num(-1)), tx=tx)
        for n, chain in enumerate(doubled):
            assert await client.wait_for_chain(chain, timeout=10) == Num(2 * n)
        assert await client.wait_for_chain(continued, timeout=10) == "finished 2"
        assert await client.wait_for_chain(ended, timeout=10) == Num(0)
        jobs = await client.list_chain_jobs(continued.id)
        assert [(j.type_name, j.status) for j in jobs.items] == [
            ("hr_start", "continued"),
            ("hr_finish", "completed"),
        ]


async def test_complete_with_a_callback_still_writes_in_the_completing_transaction() -> None:
    state, client = _client()
    worker = Worker(client)

    @worker.handler(Start)
    async def start(attempt: Attempt[Start]) -> None:
        async def continue_in_tx(ctx: TxContext[Any]) -> Finish:
            await ctx.start_chain(Double(Num(100)))
            return Finish(Num(5))

        await attempt.complete(continue_in_tx)

    @worker.handler(Finish)
    async def finish(attempt: Attempt[Finish]) -> str:
        return "done"

    @worker.handler(Double)
    async def double(attempt: Attempt[Double]) -> Num:
        return Num(attempt.input.value * 2)

    async with state, client, worker:
        async with client.transaction() as tx:
            chain = await client.start_chain(Start(Num(1)), tx=tx)
        assert await client.wait_for_chain(chain, timeout=10) == "done"
        doubles = await client.list_chains(type_names=[Double])
        assert len(doubles.items) == 1


class FailedAttempts:
    """Observability that records failed attempts and tells when one happened."""

    def __init__(self) -> None:
        self.failed: list[AttemptFailed] = []
        self.one_failed = asyncio.Event()

    def emit(self, event: Event) -> None:
        if isinstance(event, AttemptFailed):
            self.failed.append(event)
            self.one_failed.set()


async def test_returning_a_value_after_complete_fails_the_attempt() -> None:
    events = FailedAttempts()
    state, client = _client(events)
    worker = Worker(client)
    calls = 0

    @worker.handler(Double)
    async def both(attempt: Attempt[Double]) -> Num:
        nonlocal calls
        calls += 1
        if calls == 1:
            await attempt.complete(Num(1))
            return Num(2)
        return Num(3)

    async with state, client, worker:
        async with client.transaction() as tx:
            chain = await client.start_chain(Double(Num(1)), tx=tx)
        await asyncio.wait_for(events.one_failed.wait(), 10)
        (failed,) = events.failed
        assert failed.error_type == "UsageError"
        assert failed.retry_at is not None, "a misuse is an ordinary failure: it retries"
        async with client.transaction() as tx:
            await client.trigger_jobs([chain.id], tx=tx)  # skip the backoff
        assert await client.wait_for_chain(chain, timeout=10) == Num(3)


async def test_returning_none_completes_a_job_whose_output_is_none() -> None:
    state, client = _client()
    worker = Worker(client)
    seen: list[int] = []

    @worker.handler(Notify)
    async def notify(attempt: Attempt[Notify]) -> None:
        seen.append(attempt.input.value)

    async with state, client, worker:
        async with client.transaction() as tx:
            chain = await client.start_chain(Notify(Num(7)), tx=tx)
        assert await client.wait_for_chain(chain, timeout=10) is None
        done = await client.get_chain(chain.id)
        assert done is not None and done.outcome == "completed"
    assert seen == [7]


async def test_returning_none_without_completing_fails_the_chain_without_a_retry() -> None:
    state, client = _client()
    worker = Worker(client)
    runs = 0

    @worker.handler(Forgetful)
    async def forgetful(attempt: Attempt[Forgetful]) -> None:
        nonlocal runs
        runs += 1  # a side effect a retry would repeat

    async with state, client, worker:
        async with client.transaction() as tx:
            chain = await client.start_chain(Forgetful(Num(1)), tx=tx)
        with pytest.raises(ChainFailedError) as failed:
            await client.wait_for_chain(chain, timeout=10)
        assert failed.value.error is not None
        assert "JobNotCompletedError" in failed.value.error
        assert "returned None without completing the job" in failed.value.error
        closed = await client.get_chain(chain.id)
        assert closed is not None and closed.tail.attempt == 1
    assert runs == 1


async def test_registering_a_handler_makes_its_types_known_to_the_client() -> None:
    state, client = _client()
    with pytest.raises(UnknownJobTypeError):
        async with client.transaction() as tx:
            await client.start_chain(Start(Num(1)), tx=tx)
    worker = Worker(client)

    @worker.handler(Start)
    async def start(attempt: Attempt[Start]) -> Finish:
        return Finish(Num(1))

    assert {"hr_start", "hr_finish"} <= set(client.registry.type_names), "Finish is reachable"
    async with client.transaction() as tx:
        chain = await client.start_chain(Start(Num(1)), tx=tx)
    assert chain.type_name == "hr_start"
    # listing a type with the client and registering its handler is allowed
    listed = Client(state, job_types=[Start, Finish])
    both = Worker(listed)
    both.register(Start, start)
    assert listed.registry.get("hr_start") is Start
    await client.close()
    await state.close()


async def test_another_class_with_a_registered_name_is_refused() -> None:
    state, client = _client()

    class Impostor(EntryJobType[Num, Num], name="hr_double"):
        pass

    async def handle(attempt: Attempt[Any]) -> None:
        pass

    worker = Worker(client)
    worker.register(Double, handle)
    with pytest.raises(DuplicateJobTypeError):
        Worker(client).register(Impostor, handle)
    assert client.registry.get("hr_double") is Double
    with pytest.raises(DuplicateJobTypeError):
        Client(state, job_types=[Double, Impostor])
    await client.close()
    await state.close()


async def test_job_type_classes_are_accepted_wherever_type_names_are() -> None:
    state, client = _client()
    worker = Worker(client)

    @worker.handler(Start)
    async def start(attempt: Attempt[Start]) -> Finish:
        return Finish(Num(1))

    @worker.handler(Finish)
    async def finish(attempt: Attempt[Finish]) -> str:
        return "x"

    worker.register(Double, _double)
    async with state, client, worker:
        async with client.transaction() as tx:
            chain = await client.start_chain(Start(Num(1)), tx=tx)
            await client.start_chain(Double(Num(1)), tx=tx)
        await client.wait_for_chain(chain, timeout=10)
        by_class = await client.list_chains(type_names=[Start])
        by_name = await client.list_chains(type_names=["hr_start"])
        assert [c.id for c in by_class.items] == [c.id for c in by_name.items] == [chain.id]
        jobs = await client.list_jobs(type_names=[Finish], chain_type_names=[Start, "hr_double"])
        assert [j.type_name for j in jobs.items] == ["hr_finish"]
        for bad in (Start, "hr_start", [Num], [3]):
            with pytest.raises(UsageError):
                await client.list_chains(type_names=bad)  # type: ignore[arg-type]


async def _double(attempt: Attempt[Double]) -> Num:
    return Num(attempt.input.value * 2)


def test_job_not_completed_error_is_a_usage_error() -> None:
    assert issubclass(JobNotCompletedError, UsageError)
