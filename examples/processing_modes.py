"""Processing modes and writing your own rows in the transaction that completes a job.

    uv run python -m examples.processing_modes

* **atomic** — ``prepare("atomic")``: your writes and the completion share one transaction, which
  commits when the handler returns, only if the job is still this worker's (else everything rolls
  back). For short database work.
* **staged** — ``prepare("staged")``: the handler works outside any transaction (the worker keeps
  renewing the lease), then ``complete`` opens a new transaction that first checks the job is still
  this worker's. For slow work (HTTP calls, rendering).
* **auto** (no ``prepare``) — atomic if ``complete`` comes before the handler awaits anything that
  suspends, staged otherwise.

``complete`` (and ``prepare``) accept an async function of a ``TxContext``: it runs inside the
transaction, so what it writes commits with the completion, and rolls back with it if the handler
fails, even after ``complete`` returned. (Returning the output from the handler completes the job
too, in the same modes; these handlers call ``complete`` to show ``attempt.mode`` afterwards.)
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from queuert import (
    Attempt,
    Backoff,
    Client,
    EntryJobType,
    InMemoryStateAdapter,
    Lease,
    TxContext,
    Worker,
)


@dataclass
class Payment:
    payment_id: str
    amount_cents: int


@dataclass
class Receipt:
    payment_id: str


@dataclass
class AuditIn:
    message: str


class RecordPayment(EntryJobType[Payment, Receipt]):
    pass


class RenderPdf(EntryJobType[Payment, Receipt]):
    pass


class Ping(EntryJobType[Payment, Receipt]):
    pass


class AuditEntry(EntryJobType[AuditIn, AuditIn]):
    """Stands in for a row of your own table (no worker handles it)."""


def build_worker(client: Client[Any], modes: dict[str, str | None]) -> Worker[Any]:
    worker: Worker[Any] = Worker(client, concurrency=4, backoff=Backoff(initial=0.05, jitter=0.0))

    @worker.handler(RecordPayment)
    async def record_payment(attempt: Attempt[RecordPayment]) -> None:
        await attempt.prepare("atomic")
        payment = attempt.input

        async def write(ctx: TxContext[Any]) -> Receipt:
            # ctx.tx is the state adapter's transaction object, the one that completes the job. With
            # PostgreSQL it is your driver's connection (or session), with SQLite the adapter's
            # connection:
            #     await ctx.tx.execute("INSERT INTO ledger (payment_id, cents) VALUES (?, ?)", ...)
            # The in-memory adapter has no SQL, so this example writes through queuert instead.
            await ctx.start_chain(
                AuditEntry(AuditIn(f"{payment.payment_id} attempt {attempt.number}"))
            )
            return Receipt(payment.payment_id)

        await attempt.complete(write)
        modes[f"record_payment attempt {attempt.number}"] = attempt.mode
        if attempt.number == 1:
            # Fails after complete(): the completion *and* the audit row roll back; retried later.
            raise RuntimeError("post-processing failed")

    # A lease shorter than the work: the worker renews it while the handler runs.
    @worker.handler(RenderPdf, lease=Lease(duration=0.2, renew_every=0.05))
    async def render_pdf(attempt: Attempt[RenderPdf]) -> None:
        async def load(ctx: TxContext[Any]) -> int:
            job = await ctx.client.get_job(attempt.job.id, tx=ctx.tx)  # reads in the transaction
            assert job is not None
            return job.attempt

        attempt_no = await attempt.prepare("staged", load)  # this transaction commits right away
        await asyncio.sleep(0.3)  # slow work, outside any transaction
        await attempt.complete(Receipt(f"{attempt.input.payment_id} (attempt {attempt_no})"))
        modes["render_pdf"] = attempt.mode

    @worker.handler(Ping)
    async def ping(attempt: Attempt[Ping]) -> None:
        if attempt.input.amount_cents > 0:
            await asyncio.sleep(0.01)  # awaiting first makes the attempt staged
        await attempt.complete(Receipt(attempt.input.payment_id))
        modes[f"ping {attempt.input.payment_id}"] = attempt.mode

    return worker


async def main() -> dict[str, Any]:
    modes: dict[str, str | None] = {}
    # AuditEntry has no handler: the client lists it to start (and read) it.
    async with InMemoryStateAdapter() as state, Client(state, job_types=[AuditEntry]) as client:
        worker = build_worker(client, modes)
        async with client.transaction() as tx:
            chains = await client.start_chains(
                [
                    RecordPayment(Payment("pay-1", 1000)),
                    RenderPdf(Payment("pdf-1", 0)),
                    Ping(Payment("fast", 0)),
                    Ping(Payment("slow", 1)),
                ],
                tx=tx,
            )
        async with worker:
            for chain in chains:
                await client.wait_for_chain(chain, timeout=10)
        for what, mode in sorted(modes.items()):
            print(f"{what:<30} {mode}")
        audit = (await client.list_chains(type_names=[AuditEntry])).items
        print(f"audit rows committed: {[chain.input.message for chain in audit]}")
        return {"modes": modes, "audit": [chain.input.message for chain in audit]}


if __name__ == "__main__":
    asyncio.run(main())
