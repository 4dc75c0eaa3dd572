"""Priorities and concurrency limits: which ready job runs first, and how many may run at once.

    uv run python -m examples.limits_and_priorities

* ``priority=``: a worker claims the highest priority first (then the oldest);
* ``limit=``: at most that many jobs of a type run at once, across every worker;
* ``key_limit=`` with ``limit_key=``: at most that many per key (here one export per customer at a
  time); other customers' exports are not held back by a busy one.

Two workers with four slots each share one store: without the limits, all eight slots would fill.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass
from typing import Any

from queuert import Attempt, Client, EntryJobType, InMemoryStateAdapter, Worker


@dataclass
class Report:
    name: str


@dataclass
class Export:
    customer: str
    part: int


class RenderReport(EntryJobType[Report, None], limit=2):
    """A heavy job: at most two render at once, whatever the number of workers."""


def customer_of(export: Export) -> str:
    return export.customer


class ExportData(EntryJobType[Export, None], key_limit=1, limit_key=customer_of):
    """One export per customer at a time (the customer's API allows one session)."""


class Gauge:
    """How many handlers run at once, overall and per key."""

    def __init__(self) -> None:
        self.now: Counter[str] = Counter()
        self.peak: Counter[str] = Counter()

    async def work(self, *keys: str) -> None:
        for key in keys:
            self.now[key] += 1
            self.peak[key] = max(self.peak[key], self.now[key])
        await asyncio.sleep(0.02)  # the job's work
        for key in keys:
            self.now[key] -= 1


def build_worker(client: Client[Any], gauge: Gauge, order: list[str]) -> Worker[Any]:
    worker: Worker[Any] = Worker(client, concurrency=4, poll_interval=0.2)

    @worker.handler(RenderReport)
    async def render(attempt: Attempt[RenderReport]) -> None:
        order.append(attempt.input.name)
        await gauge.work("reports")

    @worker.handler(ExportData)
    async def export(attempt: Attempt[ExportData]) -> None:
        await gauge.work("exports", f"customer {attempt.input.customer}")

    return worker


async def main() -> dict[str, Any]:
    state = InMemoryStateAdapter()
    await state.migrate()
    client = Client(state, job_types=[RenderReport, ExportData])
    gauge = Gauge()
    order: list[str] = []
    async with client.transaction() as tx:
        reports = await client.start_chains(
            [
                RenderReport(Report("weekly")),
                RenderReport(Report("monthly")),
                RenderReport(Report("board meeting"), priority=10),  # before the others
                RenderReport(Report("archive"), priority=-1),  # after the others
            ],
            tx=tx,
        )
        exports = await client.start_chains(
            [ExportData(Export(customer, part)) for part in range(3) for customer in "ab"],
            tx=tx,
        )
    async with build_worker(client, gauge, order), build_worker(client, gauge, order):
        for report in reports:
            await client.wait_for_chain(report, timeout=10, poll_interval=0.02)
        for export in exports:
            await client.wait_for_chain(export, timeout=10, poll_interval=0.02)
    return {
        "first": order[0],
        "last": order[-1],
        "reports at once": gauge.peak["reports"],
        "exports of one customer at once": max(gauge.peak["customer a"], gauge.peak["customer b"]),
        "exports at once": gauge.peak["exports"],
    }


if __name__ == "__main__":
    print(asyncio.run(main()))
