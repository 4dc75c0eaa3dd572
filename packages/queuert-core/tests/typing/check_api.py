"""Static typing checks of queuert's public API, run by mypy --strict in test_typing.py.

Lines marked ``# E: <code>`` must produce exactly that mypy error; no other line may produce one.
``reveal_type`` lines are compared with the ``# R: <type>`` that follows them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from queuert import Attempt, Chain, Client, EntryJobType, JobType, Worker


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
    EntryJobType[
        SummaryIn,
        Summary,
        "Publish | Summarize",
        tuple[Chain[Fetch], Chain[Fetch]],
        "Summary | int",
    ]
):
    pass


class Publish(JobType[PublishIn, int]):
    pass


class Unrelated(JobType[PublishIn, int]):
    pass


async def client_side(client: Client[Any], tx: Any) -> None:
    fetched = await client.start_chain(Fetch(FetchIn(url="https://example.com")), tx=tx)
    reveal_type(fetched)  # R: queuert.models.Chain[check_api.Fetch]
    await client.start_chain(Summarize(SummaryIn("x"), blockers=(fetched, fetched)), tx=tx)

    # a non-entry type cannot start a chain
    await client.start_chain(Publish(PublishIn("x")), tx=tx)  # E: type-var
    # a wrong input type
    Fetch(SummaryIn("x"))  # E: arg-type
    # blockers must match the declared slots
    Summarize(SummaryIn("x"), blockers=(fetched,))  # E: arg-type

    result = await client.wait_for_chain(fetched, timeout=1)
    reveal_type(result)  # R: check_api.FetchOut
    summary_chain = await client.get_chain("id", Summarize)
    assert summary_chain is not None
    reveal_type(summary_chain.output)  # R: check_api.Summary | int
    by_id = await client.wait_for_chain("id", Summarize, timeout=1)
    reveal_type(by_id)  # R: check_api.Summary | int
    bad: str = await client.wait_for_chain(fetched, timeout=1)  # E: arg-type
    print(await client.wait_for_chain(fetched, timeout=1))
    anything: object = await client.wait_for_chain(fetched, timeout=1)


async def handle_summarize(attempt: Attempt[Summarize]) -> None:
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


async def handle_fetch(attempt: Attempt[Fetch]) -> None:
    reveal_type(attempt.blockers)  # R: tuple[()]
    await attempt.complete(FetchOut(body=attempt.input.url))


def register(worker: Worker[Any]) -> None:
    worker.register(Fetch, handle_fetch)
    worker.register(Summarize, handle_summarize)
    worker.register(Fetch, handle_summarize)  # E: arg-type

    @worker.handler(Publish)
    async def publish(attempt: Attempt[Publish]) -> None:
        await attempt.complete(len(attempt.input.summary))
