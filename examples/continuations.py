"""Continuations: a chain is a linked list of jobs; a handler ends it or continues it.

    uv run python -m examples.continuations

Four patterns:

* linear   — ``Resize`` always continues to ``Publish``;
* branched — ``Pay`` picks ``ChargeCard`` or ``SendInvoice`` at run time;
* loop     — ``Countdown`` continues to itself until it reaches zero;
* go-to    — ``Review`` jumps back to ``Draft`` until the text is long enough, then ends.

A job type declares the types it may continue to with ``Continues[...]`` and, when its chain ends in
another type, what the chain ends with (``ChainResult[...]``). Types that are referenced before they
are defined (or by themselves) are written as strings.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from queuert import (
    Attempt,
    ChainResult,
    Client,
    Continues,
    EntryJobType,
    InMemoryStateAdapter,
    JobType,
    Worker,
)
from typing_extensions import Never


@dataclass
class Image:
    name: str
    width: int


@dataclass
class Url:
    url: str


# -- linear: Resize -> Publish ------------------------------------------------------------------
class Publish(JobType[Image, Url]):  # not an entry type: only reachable by continuing
    pass


# Output Never: Resize always continues. ChainResult is what the *chain* ends with.
class Resize(EntryJobType[Image, Never], Continues[Publish], ChainResult[Url]):
    pass


# -- branched: Pay -> ChargeCard | SendInvoice ----------------------------------------------------
@dataclass
class Payment:
    amount_cents: int
    method: str


@dataclass
class Paid:
    how: str


class ChargeCard(JobType[Payment, Paid]):
    pass


class SendInvoice(JobType[Payment, Paid]):
    pass


class Pay(EntryJobType[Payment, Never], Continues[ChargeCard | SendInvoice], ChainResult[Paid]):
    pass


# -- loop: Countdown -> Countdown -> ... ------------------------------------------------------------
@dataclass
class Count:
    n: int
    ticks: int = 0


@dataclass
class Liftoff:
    ticks: int


class Countdown(EntryJobType[Count, Liftoff], Continues["Countdown"]):  # ends or loops to itself
    pass


# -- go-to: Draft -> Review -> Draft -> Review -> (end) ----------------------------------------------
@dataclass
class Text:
    body: str
    rounds: int = 0


class Review(JobType[Text, Text], Continues["Draft"]):
    pass


class Draft(EntryJobType[Text, Never], Continues[Review], ChainResult[Text]):
    pass


def build_worker(client: Client[Any]) -> Worker[Any]:
    worker: Worker[Any] = Worker(client, concurrency=4)

    # A handler returns its job's output, or the next job of the chain.
    @worker.handler(Resize)
    async def resize(attempt: Attempt[Resize]) -> Publish:
        image = attempt.input
        return Publish(Image(image.name, width=image.width // 2))

    @worker.handler(Publish)
    async def publish(attempt: Attempt[Publish]) -> Url:
        image = attempt.input
        return Url(f"https://cdn.example.com/{image.width}/{image.name}")

    @worker.handler(Pay)
    async def pay(attempt: Attempt[Pay]) -> ChargeCard | SendInvoice:
        payment = attempt.input
        return ChargeCard(payment) if payment.method == "card" else SendInvoice(payment)

    @worker.handler(ChargeCard)
    async def charge_card(attempt: Attempt[ChargeCard]) -> Paid:
        return Paid(f"card charged {attempt.input.amount_cents}")

    @worker.handler(SendInvoice)
    async def send_invoice(attempt: Attempt[SendInvoice]) -> Paid:
        return Paid(f"invoice sent for {attempt.input.amount_cents}")

    @worker.handler(Countdown)
    async def countdown(attempt: Attempt[Countdown]) -> Countdown | Liftoff:
        count = attempt.input
        if count.n > 0:
            return Countdown(Count(count.n - 1, count.ticks + 1))
        return Liftoff(ticks=count.ticks)

    @worker.handler(Draft)
    async def draft(attempt: Attempt[Draft]) -> Review:
        text = attempt.input
        return Review(Text(text.body + " more words", text.rounds + 1))

    @worker.handler(Review)
    async def review(attempt: Attempt[Review]) -> Text | Draft:
        text = attempt.input
        return text if len(text.body) > 30 else Draft(text)

    return worker


async def main() -> dict[str, Any]:
    # The worker registers its handlers' job types with the client: no job_types= needed.
    async with InMemoryStateAdapter() as state, Client(state) as client:
        worker = build_worker(client)
        async with client.transaction() as tx:
            linear = await client.start_chain(Resize(Image("cat.png", 1024)), tx=tx)
            by_card = await client.start_chain(Pay(Payment(500, "card")), tx=tx)
            by_invoice = await client.start_chain(Pay(Payment(900, "invoice")), tx=tx)
            loop = await client.start_chain(Countdown(Count(3)), tx=tx)
            goto = await client.start_chain(Draft(Text("Intro")), tx=tx)

        results: dict[str, Any] = {}
        async with worker:
            results["linear"] = await client.wait_for_chain(linear, timeout=10)
            results["card"] = await client.wait_for_chain(by_card, timeout=10)
            results["invoice"] = await client.wait_for_chain(by_invoice, timeout=10)
            results["loop"] = await client.wait_for_chain(loop, timeout=10)
            results["goto"] = await client.wait_for_chain(goto, timeout=10)
        for name, result in results.items():
            print(f"{name:>8}: {result}")

        for chain in (linear, loop, goto):
            jobs = (await client.list_chain_jobs(chain.id)).items
            print(
                f"{chain.type_name:>9} chain: "
                + " -> ".join(f"{j.type_name}({j.status})" for j in jobs)
            )
        results["loop_jobs"] = len((await client.list_chain_jobs(loop.id)).items)
        return results


if __name__ == "__main__":
    asyncio.run(main())
