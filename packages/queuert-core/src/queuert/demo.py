"""``queuert demo``: a small order workflow processed by a real worker, with progress as it goes.

The workflow shows the main features on one chain per order:

* ``place_order`` (entry) validates the order and continues to ``charge_payment``;
* ``charge_payment`` fails on its first attempt (a flaky gateway) and is retried with backoff; then it
  fans out one ``pack_item`` chain per item and continues to ``ship``, which waits for all of them
  (blockers);
* ``ship`` continues to ``ask_for_review``, scheduled two seconds later;
* ``ask_for_review`` ends the chain with a summary that the demo waits for.
"""

from __future__ import annotations

import asyncio
import sys
import time
from dataclasses import dataclass
from typing import Any

from typing_extensions import Never

from queuert.attempt import Attempt
from queuert.backoff import Backoff, Lease
from queuert.client import Client, TxContext
from queuert.errors import QueuertError
from queuert.job_types import Blockers, ChainResult, Continues, EntryJobType, JobType
from queuert.models import Chain
from queuert.observability import (
    AttemptFailed,
    AttemptStarted,
    ChainClosed,
    ChainCreated,
    Event,
    JobUnblocked,
)
from queuert.schedule import Schedule
from queuert.worker import Worker


@dataclass
class OrderIn:
    order_id: str
    items: list[str]
    amount_cents: int


@dataclass
class ChargeIn:
    order_id: str
    items: list[str]
    amount_cents: int


@dataclass
class PackIn:
    order_id: str
    item: str


@dataclass
class Packed:
    item: str
    parcel: str


@dataclass
class ShipIn:
    order_id: str
    payment_id: str


@dataclass
class ReviewIn:
    order_id: str
    tracking: str
    parcels: int


@dataclass
class OrderDone:
    order_id: str
    payment_id: str
    tracking: str
    parcels: int


class PackItem(EntryJobType[PackIn, Packed], name="pack_item"):
    pass


class AskForReview(JobType[ReviewIn, OrderDone], name="ask_for_review"):
    pass


class Ship(
    JobType[ShipIn, Never],
    Continues[AskForReview],
    Blockers[tuple[Chain[PackItem], ...]],
    name="ship",
):
    pass


class ChargePayment(JobType[ChargeIn, Never], Continues[Ship], name="charge_payment"):
    pass


class PlaceOrder(
    EntryJobType[OrderIn, Never],
    Continues[ChargePayment],
    ChainResult[OrderDone],
    name="place_order",
):
    pass


JOB_TYPES = [PlaceOrder, ChargePayment, PackItem, Ship, AskForReview]


class _Printer:
    """Shows the interesting events as one line each, labelled with the order they belong to."""

    def __init__(self, out: Any) -> None:
        self._out = out
        self._start = time.monotonic()
        self.orders: dict[str, str] = {}
        """Chain id -> order id (filled in when the chains are started)."""

    def emit(self, event: Event) -> None:
        line = self._describe(event)
        if line:
            print(f"[{time.monotonic() - self._start:5.2f}s] {line}", file=self._out, flush=True)

    def _label(self, chain_id: str) -> str:
        return self.orders.get(chain_id, "    ")

    def _describe(self, event: Event) -> str | None:
        if isinstance(event, ChainCreated) and event.type_name == "place_order":
            return f"{self._label(event.chain_id)} chain started"
        if isinstance(event, AttemptStarted):
            job = event.job
            label = self._label(job.chain_id)
            return f"{label} {job.type_name:<15} attempt {job.attempt}"
        if isinstance(event, AttemptFailed):
            retry = f"retry at {event.retry_at:%H:%M:%S.%f}"[:-3] if event.retry_at else "giving up"
            return f"{self._label(event.job.chain_id)} {event.job.type_name:<15} failed: {event.error} ({retry})"
        if isinstance(event, JobUnblocked):
            return f"{self._label(event.job.chain_id)} {event.job.type_name:<15} unblocked: all parcels packed"
        if isinstance(event, ChainClosed) and event.type_name == "place_order":
            return f"{self._label(event.chain_id)} chain {event.outcome}"
        return None


def build_worker(
    client: Client[Any], *, concurrency: int = 4, labels: dict[str, str] | None = None
) -> Worker[Any]:
    """The demo's worker; ``labels`` (chain id -> order label) is extended with the packing chains."""
    failures: dict[str, int] = {}
    labels = labels if labels is not None else {}
    worker: Worker[Any] = Worker(
        client,
        name="demo",
        concurrency=concurrency,
        poll_interval=1.0,
        backoff=Backoff(initial=0.5, maximum=2.0),
        lease=Lease(duration=10, renew_every=3),
        shutdown_timeout=5,
    )

    @worker.handler(PlaceOrder)
    async def place_order(attempt: Attempt[PlaceOrder]) -> ChargePayment:
        order = attempt.input
        if not order.items or order.amount_cents <= 0:
            raise ValueError("an order needs items and a positive amount")
        return ChargePayment(ChargeIn(order.order_id, order.items, order.amount_cents))

    @worker.handler(ChargePayment)
    async def charge_payment(attempt: Attempt[ChargePayment]) -> None:
        charge = attempt.input
        await asyncio.sleep(0.05)  # the payment gateway (outside any transaction: staged mode)
        failures[charge.order_id] = failures.get(charge.order_id, 0) + 1
        if failures[charge.order_id] == 1:
            raise ConnectionError("payment gateway timed out")
        payment_id = f"pay_{charge.order_id}"

        async def fan_out(ctx: TxContext[Any]) -> Ship:
            packs = await ctx.start_chains(
                [PackItem(PackIn(charge.order_id, item)) for item in charge.items]
            )
            for pack in packs:
                labels[pack.id] = labels.get(attempt.job.chain_id, "")
            return Ship(ShipIn(charge.order_id, payment_id), blockers=tuple(packs))

        await attempt.complete(fan_out)

    @worker.handler(PackItem)
    async def pack_item(attempt: Attempt[PackItem]) -> Packed:
        await asyncio.sleep(0.02)
        return Packed(attempt.input.item, parcel=f"box-{attempt.input.item}")

    @worker.handler(Ship)
    async def ship(attempt: Attempt[Ship]) -> AskForReview:
        parcels = [chain.output.parcel for chain in attempt.blockers]
        tracking = f"TRK-{attempt.input.order_id}-{len(parcels)}"
        return AskForReview(
            ReviewIn(attempt.input.order_id, tracking, len(parcels)),
            schedule=Schedule(after=2.0),
        )

    @worker.handler(AskForReview)
    async def ask_for_review(attempt: Attempt[AskForReview]) -> OrderDone:
        review = attempt.input
        payment_id = f"pay_{review.order_id}"
        return OrderDone(review.order_id, payment_id, review.tracking, review.parcels)

    return worker


def default_dsn() -> str:
    """A SQLite file in the temp directory if queuert-sqlite is installed, else memory."""
    from queuert.backends import available_schemes

    if "sqlite" in available_schemes():
        import tempfile
        from pathlib import Path

        path = Path(tempfile.gettempdir()) / f"queuert-demo-{int(time.time())}.db"
        return f"sqlite:///{path}"
    return "memory://"


async def run_demo(*, dsn: str | None = None, orders: int = 3, out: Any = None) -> list[OrderDone]:
    from queuert.backends import open_state_adapter

    out = out or sys.stdout
    where = dsn or default_dsn()
    print(f"queuert demo: {orders} orders, state in {where}", file=out, flush=True)
    printer = _Printer(out)
    results: list[OrderDone] = []
    async with (
        open_state_adapter(where) as state,
        Client(state, job_types=JOB_TYPES, observability=printer) as client,
    ):
        await state.migrate()
        async with build_worker(client, labels=printer.orders):
            chains = []
            async with client.transaction() as tx:
                for n in range(1, orders + 1):
                    items = [f"item{n}{letter}" for letter in "abc"[: 1 + n % 3]]
                    chain = await client.start_chain(
                        PlaceOrder(OrderIn(f"o{n}", items, 1000 * n)), tx=tx
                    )
                    printer.orders[chain.id] = f"[o{n}]"
                    chains.append(chain)
            for chain in chains:
                results.append(await client.wait_for_chain(chain, timeout=60))
    for done in results:
        print(
            f"done: order {done.order_id} paid {done.payment_id}, {done.parcels} parcels, tracking {done.tracking}",
            file=out,
            flush=True,
        )
    return results


def main(dsn: str | None = None, orders: int = 3) -> int:
    try:
        asyncio.run(run_demo(dsn=dsn, orders=orders))
    except QueuertError as exc:
        print(f"demo failed: {exc}", file=sys.stderr)
        return 1
    return 0
