"""Blockers: a job waits for other chains and reads their typed outputs.

    uv run python -m examples.blockers

* fan-out / fan-in — ``PlanValuation`` starts one ``FetchPrice`` chain per holding and continues to
  ``SumPrices``, which waits for all of them (``Blockers[tuple[Chain[FetchPrice], ...]]``: any
  number);
* fixed slots — ``BuildReport`` waits for exactly one ``LoadUser`` and one ``LoadOrders`` chain, started by
  the caller in the same transaction; each slot has its own output type;
* ``on_blocker_failure`` — when a blocker chain fails, ``SumPrices`` fails too (the default, ``"fail"``)
  while ``BestEffortSum`` (``"proceed"``) runs and looks at each blocker's outcome.

The failed attempts also show up on stderr: the default ``LoggingObservability`` logs them as warnings.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from queuert import (
    Attempt,
    Blockers,
    Chain,
    ChainFailedError,
    ChainResult,
    Client,
    Continues,
    EntryJobType,
    InMemoryStateAdapter,
    JobType,
    TxContext,
    Worker,
)
from typing_extensions import Never

PRICES = {"ACME": 1250, "GLOBEX": 830, "INITECH": 415}


@dataclass
class Symbol:
    ticker: str


@dataclass
class Price:
    ticker: str
    cents: int


@dataclass
class Portfolio:
    owner: str
    tickers: list[str]


@dataclass
class Valuation:
    owner: str
    total_cents: int
    missing: list[str]


# A price lookup fails for unknown tickers; max_attempts=1 closes its chain as failed at once.
class FetchPrice(EntryJobType[Symbol, Price], max_attempts=1):
    pass


class SumPrices(JobType[Portfolio, Valuation], Blockers[tuple[Chain[FetchPrice], ...]]):
    pass


class PlanValuation(EntryJobType[Portfolio, Never], Continues[SumPrices], ChainResult[Valuation]):
    pass


class BestEffortSum(
    EntryJobType[Portfolio, Valuation],
    Blockers[tuple[Chain[FetchPrice], ...]],
    on_blocker_failure="proceed",
):
    pass


@dataclass
class UserRef:
    user_id: int


@dataclass
class User:
    name: str


@dataclass
class Orders:
    count: int


@dataclass
class Report:
    line: str


class LoadUser(EntryJobType[UserRef, User]):
    pass


class LoadOrders(EntryJobType[UserRef, Orders]):
    pass


class BuildReport(
    EntryJobType[UserRef, Report], Blockers[tuple[Chain[LoadUser], Chain[LoadOrders]]]
):
    pass


def build_worker(client: Client[Any]) -> Worker[Any]:
    worker: Worker[Any] = Worker(client, concurrency=4)

    @worker.handler(FetchPrice)
    async def fetch_price(attempt: Attempt[FetchPrice]) -> Price:
        ticker = attempt.input.ticker
        if ticker not in PRICES:
            raise LookupError(f"unknown ticker {ticker}")
        return Price(ticker, PRICES[ticker])

    @worker.handler(PlanValuation)
    async def plan(attempt: Attempt[PlanValuation]) -> None:
        portfolio = attempt.input

        # Fan out: the price chains and the continuation that waits for them are created in the
        # transaction that completes this job, so they exist together or not at all. That is what
        # complete() with a callback is for (a returned job could not start chains first).
        async def fan_out(ctx: TxContext[Any]) -> SumPrices:
            prices = await ctx.start_chains([FetchPrice(Symbol(t)) for t in portfolio.tickers])
            return SumPrices(portfolio, blockers=tuple(prices))

        await attempt.complete(fan_out)

    @worker.handler(SumPrices)
    async def sum_prices(attempt: Attempt[SumPrices]) -> Valuation:
        # Every blocker chain is closed here; with the default policy all of them completed.
        total = sum(chain.output.cents for chain in attempt.blockers)  # output: Price
        return Valuation(attempt.input.owner, total, missing=[])

    @worker.handler(BestEffortSum)
    async def best_effort(attempt: Attempt[BestEffortSum]) -> Valuation:
        done = [c.output for c in attempt.blockers if c.outcome == "completed"]
        missing = [c.input.ticker for c in attempt.blockers if c.outcome != "completed"]
        total = sum(price.cents for price in done)
        return Valuation(attempt.input.owner, total, missing)

    @worker.handler(LoadUser)
    async def load_user(attempt: Attempt[LoadUser]) -> User:
        return User(name=f"user{attempt.input.user_id}")

    @worker.handler(LoadOrders)
    async def load_orders(attempt: Attempt[LoadOrders]) -> Orders:
        return Orders(count=attempt.input.user_id % 5)

    @worker.handler(BuildReport)
    async def build_report(attempt: Attempt[BuildReport]) -> Report:
        user, orders = attempt.blockers  # Chain[LoadUser], Chain[LoadOrders]
        return Report(f"{user.output.name} has {orders.output.count} orders")

    return worker


async def main() -> dict[str, Any]:
    results: dict[str, Any] = {}
    async with InMemoryStateAdapter() as state, Client(state) as client:
        worker = build_worker(client)  # registers the job types of its handlers with the client
        async with client.transaction() as tx:
            good = await client.start_chain(
                PlanValuation(Portfolio("ann", ["ACME", "GLOBEX", "INITECH"])), tx=tx
            )
            bad = await client.start_chain(PlanValuation(Portfolio("bob", ["ACME", "NOPE"])), tx=tx)
            # The caller can start blockers too, in the same transaction as the job waiting for them.
            prices = await client.start_chains(
                [FetchPrice(Symbol(t)) for t in ["ACME", "NOPE"]], tx=tx
            )
            lenient = await client.start_chain(
                BestEffortSum(Portfolio("cy", ["ACME", "NOPE"]), blockers=tuple(prices)), tx=tx
            )
            user = await client.start_chain(LoadUser(UserRef(7)), tx=tx)
            orders = await client.start_chain(LoadOrders(UserRef(7)), tx=tx)
            report = await client.start_chain(
                BuildReport(UserRef(7), blockers=(user, orders)), tx=tx
            )
        print(
            f"BuildReport starts {report.root.status}; BestEffortSum starts {lenient.root.status}"
        )

        async with worker:
            results["good"] = await client.wait_for_chain(good, timeout=10)
            results["lenient"] = await client.wait_for_chain(lenient, timeout=10)
            results["report"] = await client.wait_for_chain(report, timeout=10)
            try:
                await client.wait_for_chain(bad, timeout=10)
            except ChainFailedError as failed:
                results["bad"] = (failed.error or "").splitlines()[0]
    print(f"fan-in:      {results['good']}")
    print(f"proceed:     {results['lenient']}")
    print(f"fixed slots: {results['report'].line}")
    print(f"fail:        bob's valuation failed: {results['bad']}")
    return results


if __name__ == "__main__":
    asyncio.run(main())
