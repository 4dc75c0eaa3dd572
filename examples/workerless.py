"""Workerless completion and cancellation: an expense approval flow.

    uv run python -m examples.workerless

A chain starts with an ``AwaitApproval`` job that no worker handles: it waits until someone decides.
The decision (an HTTP handler, a webhook, an admin command) completes that job from outside any worker
with ``client.complete_chain``: approving continues the chain to ``PayOut``, which a worker runs;
rejecting ends the chain with a ``Rejected`` output. ``client.cancel_chain`` closes a chain as cancelled.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from queuert import (
    Attempt,
    ChainCancelledError,
    ChainResult,
    Client,
    Continues,
    EntryJobType,
    InMemoryStateAdapter,
    JobType,
    Worker,
    WorkerlessCompletion,
)


@dataclass
class Expense:
    employee: str
    amount_cents: int


@dataclass
class Paid:
    transfer_id: str


@dataclass
class Rejected:
    reason: str


class PayOut(JobType[Expense, Paid]):
    pass


class AwaitApproval(
    EntryJobType[Expense, Rejected], Continues[PayOut], ChainResult[Paid | Rejected]
):
    """Ends the chain with Rejected, or continues to PayOut (so the chain ends Paid or Rejected)."""


async def decide(client: Client[Any], chain_id: str, approve: bool) -> None:
    """What an approval endpoint would do, in the request's transaction."""

    async def decision(completion: WorkerlessCompletion[Any, Expense]) -> PayOut | Rejected:
        expense = completion.input  # the current job's typed input
        if approve:
            return PayOut(expense)
        return Rejected(f"{expense.amount_cents / 100:.2f} is over the limit")

    async with client.transaction() as tx:
        chain = await client.complete_chain(chain_id, AwaitApproval, decision, tx=tx)
    who = chain.root.input.employee
    print(f"{who}: decided, chain is {chain.status}, current job {chain.tail.type_name}")


async def main() -> dict[str, Any]:
    results: dict[str, Any] = {}
    async with (
        InMemoryStateAdapter() as state,
        Client(
            state,
            job_types=[AwaitApproval],  # no worker handles AwaitApproval: list it here
        ) as client,
    ):
        worker = Worker(client)  # handles PayOut only

        @worker.handler(PayOut)
        async def pay_out(attempt: Attempt[PayOut]) -> Paid:
            return Paid(transfer_id=f"tr-{attempt.input.employee}")

        async with client.transaction() as tx:
            ann, bob, cy = await client.start_chains(
                [
                    AwaitApproval(Expense("ann", 4_500)),
                    AwaitApproval(Expense("bob", 990_000)),
                    AwaitApproval(Expense("cy", 1_200)),
                ],
                tx=tx,
            )
        async with worker:
            await decide(client, ann.id, approve=True)
            await decide(client, bob.id, approve=False)
            async with client.transaction() as tx:
                cancelled = await client.cancel_chain(cy, tx=tx)  # cy withdrew the request
            print(f"cy: cancelled, outcome {cancelled.outcome}")

            results["ann"] = await client.wait_for_chain(ann, timeout=10)
            results["bob"] = await client.wait_for_chain(bob, timeout=10)
            try:
                await client.wait_for_chain(cy, timeout=10)
            except ChainCancelledError:
                results["cy"] = "cancelled"
        for name, result in results.items():
            print(f"{name}: {result}")
        ann_jobs = (await client.list_chain_jobs(ann.id)).items
        by = [f"{j.type_name} (closed by {j.completed_by or 'complete_chain'})" for j in ann_jobs]
        print("ann's chain: " + " -> ".join(by))
    return results


if __name__ == "__main__":
    asyncio.run(main())
