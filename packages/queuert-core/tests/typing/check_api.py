"""Static typing checks of queuert's public API, run by mypy --strict in test_typing.py.

Lines marked ``# E: <code>`` must produce exactly that mypy error; no other line may produce one.
``reveal_type`` lines are compared with the ``# R: <type>`` that follows them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from typing_extensions import Never, Unpack

from queuert import (
    Attempt,
    Blockers,
    Chain,
    ChainResult,
    Client,
    Continues,
    EntryJobType,
    IsolatedJob,
    JobType,
    SyncClient,
    SyncWorkerlessCompletion,
    TxContext,
    WorkerlessCompletion,
    Worker,
)


@dataclass
class FetchIn:
    url: str


@dataclass
class FetchOut:
    body: str


@dataclass
class SummaryIn:
    topic: str


@dataclass
class Summary:
    text: str


@dataclass
class PublishIn:
    summary: str


class Fetch(EntryJobType[FetchIn, FetchOut]):
    pass


class Summarize(
    EntryJobType[SummaryIn, Summary],
    Continues["Publish | Summarize"],  # a loop to itself, by string forward reference
    Blockers[tuple[Chain[Fetch], Chain[Fetch]]],  # fixed slots
    ChainResult["Summary | int"],  # the chain may end in Publish, whose output is an int
):
    pass


class Publish(JobType[PublishIn, int]):
    pass


class Unrelated(JobType[PublishIn, int]):
    pass


class Gather(EntryJobType[SummaryIn, list[str]], Blockers[tuple[Chain[Fetch], ...]]):
    """Any number of blocker chains."""


class Mixed(
    EntryJobType[SummaryIn, str],
    Blockers[tuple[Chain[Summarize], Unpack[tuple[Chain[Fetch], ...]]]],
):
    """One fixed slot, then any number."""


class Route(EntryJobType[SummaryIn, Never], Continues[Publish], ChainResult[int]):
    """Always continues (its own output type is Never)."""


class Ping(EntryJobType[SummaryIn, None]):
    """A None output: a handler that returns nothing completes it."""


class Reordered(ChainResult[str], Continues[Publish], JobType[FetchIn, str]):
    """The mixins may come in any order."""


class Named(EntryJobType[FetchIn, FetchOut], name="named_fetch", max_attempts=3):
    """Class keywords are checked too."""


class Misnamed(EntryJobType[FetchIn, FetchOut], nme="typo"):  # E: call-arg
    pass


async def client_side(client: Client[Any], tx: Any) -> None:
    fetched = await client.start_chain(Fetch(FetchIn(url="https://example.com")), tx=tx)
    reveal_type(fetched)  # R: queuert.models.Chain[check_api.Fetch]
    reveal_type(Named(FetchIn("x")))  # R: check_api.Named
    reveal_type(Summarize(SummaryIn("x"), blockers=(fetched, fetched)))  # R: check_api.Summarize
    await client.start_chain(Summarize(SummaryIn("x"), blockers=(fetched, fetched)), tx=tx)

    # a non-entry type cannot start a chain
    await client.start_chain(Publish(PublishIn("x")), tx=tx)  # E: type-var
    # a wrong input type
    Fetch(SummaryIn("x"))  # E: arg-type
    # blockers must match the declared slots
    Summarize(SummaryIn("x"), blockers=(fetched,))  # E: arg-type
    # a type that declares no blockers takes none
    Fetch(FetchIn("x"), blockers=(fetched,))  # E: arg-type
    # variadic slots take any number of chains of the declared type, and no other type
    Gather(SummaryIn("x"), blockers=())
    Gather(SummaryIn("x"), blockers=(fetched, fetched, fetched))
    Gather(SummaryIn("x"), blockers=[fetched])  # E: arg-type
    summarized = await client.get_chain("id", Summarize)
    assert summarized is not None
    Gather(SummaryIn("x"), blockers=(fetched, summarized))  # E: arg-type
    # a fixed slot, then any number
    Mixed(SummaryIn("x"), blockers=(summarized, fetched, fetched))
    Mixed(SummaryIn("x"), blockers=(summarized,))
    Mixed(SummaryIn("x"), blockers=(fetched,))  # E: arg-type

    # wait_for_chain and Chain.output return the chain's declared result
    result = await client.wait_for_chain(fetched, timeout=1)
    reveal_type(result)  # R: check_api.FetchOut
    reveal_type(fetched.output)  # R: check_api.FetchOut
    reveal_type(fetched.input)  # R: check_api.FetchIn
    reveal_type(summarized.output)  # R: check_api.Summary | int
    by_id = await client.wait_for_chain("id", Summarize, timeout=1)
    reveal_type(by_id)  # R: check_api.Summary | int
    routed = await client.wait_for_chain("id", Route, timeout=1)
    reveal_type(routed)  # R: int
    bad: str = await client.wait_for_chain(fetched, timeout=1)  # E: arg-type
    print(await client.wait_for_chain(fetched, timeout=1))
    anything: object = await client.wait_for_chain(fetched, timeout=1)

    # job type classes are accepted wherever type names are
    await client.list_chains(type_names=[Fetch, "summarize"])
    await client.list_jobs(type_names=[Publish], chain_type_names=[Summarize])
    await client.list_chains(type_names=[FetchIn])  # E: list-item


async def handle_summarize(attempt: Attempt[Summarize]) -> Summary | Publish | Summarize:
    reveal_type(attempt.input)  # R: check_api.SummaryIn
    first, second = attempt.blockers
    reveal_type(first.output)  # R: check_api.FetchOut
    wrong: Summary = second.output  # E: assignment
    # continue to a declared type, or end with the output
    await attempt.complete(Publish(PublishIn(first.output.body)))
    await attempt.complete(Summary(text="done"))
    await attempt.complete(Summarize(SummaryIn("again")))
    # continuing to an undeclared type is an error
    await attempt.complete(Unrelated(PublishIn("x")))  # E: arg-type
    # so is a wrong output
    await attempt.complete(FetchOut(body="x"))  # E: arg-type

    async def in_transaction(ctx: TxContext[Any]) -> Publish:
        return Publish(PublishIn("from the transaction"))

    await attempt.complete(in_transaction)
    return Summary(text="done")


async def handle_fetch(attempt: Attempt[Fetch]) -> FetchOut:
    reveal_type(attempt.blockers)  # R: tuple[()]
    # a type with no continuation rejects any continuation
    await attempt.complete(Publish(PublishIn("x")))  # E: arg-type
    return FetchOut(body=attempt.input.url)


async def handle_gather(attempt: Attempt[Gather]) -> list[str]:
    reveal_type(attempt.blockers)  # R: tuple[queuert.models.Chain[check_api.Fetch], ...]
    return [chain.output.body for chain in attempt.blockers]


async def handle_mixed(attempt: Attempt[Mixed]) -> str:
    head, *rest = attempt.blockers
    reveal_type(head.output)  # R: check_api.Summary | int
    return str(len(rest))


async def handle_route(attempt: Attempt[Route]) -> Publish:
    await attempt.complete(Summary("x"))  # E: arg-type
    return Publish(PublishIn(attempt.input.topic))


async def handle_ping(attempt: Attempt[Ping]) -> None:
    pass


async def fetch_calling_complete(attempt: Attempt[Fetch]) -> None:
    await attempt.complete(FetchOut(body="x"))


async def fetch_wrong_output(attempt: Attempt[Fetch]) -> Summary:
    return Summary(text="x")


async def fetch_continuation(attempt: Attempt[Fetch]) -> Publish:
    return Publish(PublishIn("x"))


async def summarize_undeclared(attempt: Attempt[Summarize]) -> Unrelated:
    return Unrelated(PublishIn("x"))


async def route_output(attempt: Attempt[Route]) -> int:
    return 1


def register(worker: Worker[Any]) -> None:
    # the handler's return type is checked against the type's output and continuations
    worker.register(Fetch, handle_fetch)  # the right output
    worker.register(Summarize, handle_summarize)  # outputs and continuations
    worker.register(Route, handle_route)  # the right continuation
    worker.register(Ping, handle_ping)  # None for a None-output type
    worker.register(Fetch, fetch_calling_complete)  # None after calling complete
    worker.register(Fetch, fetch_wrong_output)  # E: arg-type
    worker.register(Fetch, fetch_continuation)  # E: arg-type
    worker.register(Summarize, summarize_undeclared)  # E: arg-type
    # (for a type whose output is Never, mypy words it as "cannot infer"; the decorator says arg-type)
    worker.register(Route, route_output)  # E: misc
    # and the handler must take an attempt of that type
    worker.register(Fetch, handle_summarize)  # E: arg-type

    @worker.handler(Publish)
    async def publish(attempt: Attempt[Publish]) -> int:
        return len(attempt.input.summary)

    @worker.handler(Publish)  # E: arg-type
    async def publish_wrong(attempt: Attempt[Publish]) -> str:
        return attempt.input.summary

    @worker.handler(Reordered)
    async def reordered(attempt: Attempt[Reordered]) -> str | Publish:
        return Publish(PublishIn(attempt.input.url))


async def workerless(client: Client[Any], tx: Any) -> None:
    async def decide(completion: WorkerlessCompletion[Any, SummaryIn]) -> Summary | Publish:
        return Publish(PublishIn(completion.input.topic))

    await client.complete_chain("id", Summarize, decide, tx=tx)
    await client.complete_chain("id", Summarize, Summary("done"), tx=tx)
    await client.complete_chain("id", Summarize, Unrelated(PublishIn("x")), tx=tx)  # E: arg-type
    await client.complete_chain("id", Fetch, Publish(PublishIn("x")), tx=tx)  # E: arg-type

    async def decide_undeclared(completion: WorkerlessCompletion[Any, SummaryIn]) -> Unrelated:
        return Unrelated(PublishIn(completion.input.topic))

    await client.complete_chain("id", Summarize, decide_undeclared, tx=tx)  # E: arg-type


def register_always_continuing(worker: Worker[Any]) -> None:
    @worker.handler(Route)
    async def route(attempt: Attempt[Route]) -> Publish:
        return Publish(PublishIn(attempt.input.topic))

    @worker.handler(Route)  # E: arg-type
    async def route_wrong(attempt: Attempt[Route]) -> int:
        return 1


def isolated_fetch(job: IsolatedJob[Fetch]) -> FetchOut:
    reveal_type(job.input)  # R: check_api.FetchIn
    return FetchOut(body=job.input.url)


def isolated_route(job: IsolatedJob[Route]) -> Publish:
    return Publish(PublishIn(job.input.topic))


def isolated_wrong(job: IsolatedJob[Fetch]) -> Summary:
    return Summary("x")


def register_isolated(worker: Worker[Any]) -> None:
    worker.isolated(Fetch, hard_timeout=5)(isolated_fetch)
    worker.isolated(Route, hard_timeout=5)(isolated_route)
    worker.isolated(Fetch, hard_timeout=5)(isolated_wrong)  # E: arg-type


class Conn:
    """A synchronous connection type (as sqlite3.Connection or psycopg.Connection)."""


def sync_side(sync: SyncClient[Conn], conn: Conn) -> None:
    # the sync client types its calls as the async client does, and checks the tx type
    fetched = sync.start_chain(Fetch(FetchIn(url="https://example.com")), tx=conn)
    reveal_type(fetched)  # R: queuert.models.Chain[check_api.Fetch]
    reveal_type(fetched.output)  # R: check_api.FetchOut
    reveal_type(sync.start_chains([Ping(SummaryIn("x"))], tx=conn))  # R: list[queuert.models.Chain[check_api.Ping]]
    sync.start_chain(Summarize(SummaryIn("x"), blockers=(fetched, fetched)), tx=conn)
    sync.start_chain(Publish(PublishIn("x")), tx=conn)  # E: type-var
    sync.start_chain(Fetch(FetchIn("x")), tx="not a connection")  # E: arg-type
    summarized = sync.get_chain("id", Summarize, tx=conn)
    assert summarized is not None
    reveal_type(summarized.output)  # R: check_api.Summary | int
    sync.list_chains(type_names=[Fetch, "summarize"], tx=conn)
    sync.list_chains(type_names=[FetchIn], tx=conn)  # E: list-item

    # workerless completion: outputs and continuation targets are checked
    def decide(completion: SyncWorkerlessCompletion[Conn, SummaryIn]) -> Summary | Publish:
        reveal_type(completion.tx)  # R: check_api.Conn
        completion.start_chain(Fetch(FetchIn(completion.input.topic)))
        return Publish(PublishIn(completion.input.topic))

    sync.complete_chain("id", Summarize, decide, tx=conn)
    sync.complete_chain("id", Summarize, Summary("done"), tx=conn)
    sync.complete_chain("id", Summarize, Unrelated(PublishIn("x")), tx=conn)  # E: arg-type
    sync.complete_chain("id", Fetch, Publish(PublishIn("x")), tx=conn)  # E: arg-type

    # a callback is checked as the async client's is: its input, its outputs, its continuations
    def decide_undeclared(completion: SyncWorkerlessCompletion[Conn, SummaryIn]) -> Unrelated:
        completion.start_chain(Publish(PublishIn("x")))  # E: type-var
        return Unrelated(PublishIn(completion.input.topic))

    def decide_fetch(completion: SyncWorkerlessCompletion[Conn, FetchIn]) -> FetchOut:
        return FetchOut(completion.input.url)

    sync.complete_chain("id", Summarize, decide_undeclared, tx=conn)  # E: arg-type
    sync.complete_chain("id", Summarize, decide_fetch, tx=conn)  # E: arg-type
    reveal_type(sync.complete_chain("id", Fetch, decide_fetch, tx=conn))  # R: queuert.models.Chain[Any]
    # the other calls take the client's tx type, and job types where type names go
    reveal_type(sync.wait_for_chain(fetched, tx=conn, timeout=1))  # R: check_api.FetchOut
    reveal_type(sync.wait_for_chain("id", Summarize, tx=conn, timeout=1))  # R: check_api.Summary | int
    sync.wait_for_chain(fetched, timeout=1)  # E: call-overload
    sync.cancel_chain(fetched, tx=conn)
    sync.delete_chains([fetched, "id"], tx=conn)
    sync.trigger_jobs(["id"], tx=conn)
    sync.cancel_chain(fetched, tx="not a connection")  # E: arg-type
    sync.list_jobs(type_names=[Publish], chain_type_names=[Summarize], tx=conn)
    Summarize(SummaryIn("x"), blockers=(fetched,))  # E: arg-type
