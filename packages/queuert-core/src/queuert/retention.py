"""Retention: closed chains deleted once they have been closed for a while, by the workers themselves.

``Worker(client, ..., retention=Retention(closed_for=timedelta(days=7)))``. Every ``every`` (one
minute by default) a retention run is started as a periodic chain of the job type
``queuert_retention`` (see :mod:`queuert.periodic`): one chain per tick across all workers, claimed
and leased by one worker like any job, so one run at a time across all processes with no leader
service. The run deletes, oldest first and in transactions of ``batch`` chains, the chains whose last
job closed more than ``closed_for`` ago (on the database's clock), with their jobs and blocker links,
up to ``max_per_run`` chains. A chain that a chain outside the batch still waits for (an open chain,
or one not old enough yet) is skipped, never deleted from under it. Each committed batch emits a
:class:`~queuert.observability.ChainsExpired` event; the run's output says how many chains it deleted
and skipped. Retention runs are chains too, and expire like the others.

A state adapter with a storage layout of its own (:class:`~queuert.state.SupportsStorageMaintenance`,
such as PostgreSQL's partitioned layout) is asked first to remove whole partitions of expired chains;
the run then deletes what is left row by row.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from queuert.duration import Duration, to_timedelta
from queuert.errors import BlockerReferenceError, UsageError
from queuert.job_types import EntryJobType
from queuert.observability import ChainsExpired
from queuert.periodic import Periodic
from queuert.state import SupportsStorageMaintenance

if TYPE_CHECKING:
    from queuert.attempt import Attempt
    from queuert.client import Client

__all__ = ["Retention", "RetentionResult", "RetentionRun", "RunRetention"]


@dataclass
class RetentionRun:
    """The input of a retention run."""

    closed_for_seconds: float
    batch: int
    max_per_run: int


@dataclass
class RetentionResult:
    """The output of a retention run: chains deleted, and chains skipped because a chain outside the
    batch still waits for them; ``partitions_dropped``: partitions of expired chains dropped whole
    (their chains count in ``deleted``)."""

    deleted: int
    skipped: int
    partitions_dropped: int = 0


class RunRetention(EntryJobType[RetentionRun, RetentionResult], name="queuert_retention"):
    """One retention run (started by the workers that have a :class:`Retention`)."""


@dataclass(frozen=True, init=False)
class Retention:
    """Delete chains closed for longer than ``closed_for`` (see the module docstring)."""

    closed_for: timedelta
    every: timedelta
    batch: int
    max_per_run: int

    def __init__(
        self,
        closed_for: Duration,
        *,
        every: Duration = timedelta(minutes=1),
        batch: int = 500,
        max_per_run: int = 100_000,
    ) -> None:
        for name, value in (("batch", batch), ("max_per_run", max_per_run)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise UsageError(f"Retention {name} must be a positive int, not {value!r}")
        object.__setattr__(
            self, "closed_for", to_timedelta(closed_for, name="Retention closed_for")
        )
        object.__setattr__(
            self, "every", to_timedelta(every, name="Retention every", positive=True)
        )
        object.__setattr__(self, "batch", batch)
        object.__setattr__(self, "max_per_run", max_per_run)

    def periodic(self) -> Periodic[RetentionRun]:
        """The periodic chain that starts the runs."""
        run = RetentionRun(self.closed_for.total_seconds(), self.batch, self.max_per_run)
        return Periodic(
            RunRetention, every=self.every, input=lambda tick: run, name="queuert-retention"
        )


async def run_retention(client: Client[Any], attempt: Attempt[RunRetention]) -> RetentionResult:
    """The handler of a retention run: delete expired chains in batches, oldest first."""
    run = attempt.input
    now = attempt.job.last_attempt_at  # the database's clock, at the claim
    assert now is not None
    cutoff = now - timedelta(seconds=run.closed_for_seconds)
    deleted = skipped = dropped = 0
    state = client._core.state
    if isinstance(state, SupportsStorageMaintenance):
        expiry = await state.maintain_storage(cutoff)
        if expiry.partitions_dropped:
            client._core.emit(
                ChainsExpired(
                    expiry.chains,
                    0,
                    cutoff,
                    jobs=expiry.jobs,
                    partitions=expiry.partitions_dropped,
                    estimated=expiry.estimated,
                )
            )
        deleted += expiry.chains
        dropped = expiry.partitions_dropped
    cursor: str | None = None
    while deleted < run.max_per_run and not attempt.signal.is_set():
        page = await client.list_chains(
            status="closed",
            created_to=cutoff,
            order="asc",
            limit=min(run.batch, run.max_per_run - deleted),
            cursor=cursor,
        )
        expired = [
            chain.id
            for chain in page.items
            if chain.tail.completed_at is not None and chain.tail.completed_at <= cutoff
        ]
        if expired:
            removed, refused = await _delete(client, expired, cutoff)
            deleted += removed
            skipped += refused
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    return RetentionResult(deleted, skipped, dropped)


async def _delete(client: Client[Any], chain_ids: list[str], cutoff: datetime) -> tuple[int, int]:
    """Delete ``chain_ids`` in one transaction, leaving out those that a chain outside the set waits
    for; (deleted, skipped)."""
    skipped = 0
    while chain_ids:
        try:
            async with client.transaction() as tx:
                removed = await client.delete_chains(chain_ids, tx=tx)
        except BlockerReferenceError as refused:
            held = {reference.chain_id for reference in refused.references}
            skipped += len(held)
            chain_ids = [i for i in chain_ids if i not in held]
            continue
        client._core.emit(ChainsExpired(len(removed), skipped, cutoff))
        return len(removed), skipped
    return 0, skipped
