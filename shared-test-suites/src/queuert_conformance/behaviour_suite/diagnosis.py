"""Why a chain did not close: the failure message of a behaviour case that waited in vain.

A timeout alone says nothing about the adapter. :func:`explain_unclosed_chain` reads the chain's jobs
from the store and the events the client and workers recorded, and names the property of the job
model that broke (a lease not renewed, a ready job no claim returned, an expired lease nobody reaped,
an adapter error...), then lists the jobs as stored.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from queuert.observability import (
    AttemptFailed,
    JobReaped,
    LeaseLost,
    RecordingObservability,
    StateAdapterError,
    WorkerError,
)
from queuert.state import StateAdapter, StoredJob

__all__ = ["explain_unclosed_chain"]


def _job_line(job: StoredJob) -> str:
    return (
        f"  #{job.chain_index} {job.type_name} {job.id}: status={job.status} attempt={job.attempt} "
        f"leased_by={job.leased_by} leased_until={_time(job.leased_until)} "
        f"scheduled_at={_time(job.scheduled_at)} blocked={job.blocked} "
        f"last_error={job.last_attempt_error!r}"
    )


def _time(value: datetime | None) -> str:
    return "-" if value is None else value.isoformat(timespec="milliseconds")


def _broken_properties(
    jobs: list[StoredJob], events: RecordingObservability, chain_id: str
) -> list[str]:
    found: list[str] = []
    mine = [
        e for e in events.events if getattr(getattr(e, "job", None), "chain_id", None) == chain_id
    ]
    for event in mine:
        if isinstance(event, JobReaped):
            found.append(
                f"lease was not renewed: job {event.job.id} was reaped from {event.leased_by} by "
                f"{event.worker_id} (reclaimed by another worker)"
            )
        elif isinstance(event, LeaseLost):
            found.append(
                f"worker {event.worker_id} lost its lease on job {event.job.id} ({event.reason})"
            )
        elif isinstance(event, AttemptFailed):
            found.append(
                f"attempt {event.job.attempt} of job {event.job.id} failed: "
                f"{event.error_type}: {event.error}"
            )
    for event in events.events:
        if isinstance(event, StateAdapterError):
            found.append(f"the state adapter raised in {event.operation}: {event.error}")
        elif isinstance(event, WorkerError):
            found.append(f"worker {event.worker_id} reported an error: {event.error}")
    now = datetime.now(timezone.utc)
    for job in jobs:
        if job.status == "ready" and job.attempt == 0 and job.scheduled_at <= now:
            found.append(
                f"job {job.id} is ready but was never claimed: claim_jobs did not return it "
                "(or no worker handles its type)"
            )
        elif job.status == "running" and job.leased_until is not None and job.leased_until < now:
            found.append(
                f"job {job.id}'s lease expired at {_time(job.leased_until)} and it was not reaped "
                "(reap_expired_leases did not return it?)"
            )
        elif job.status == "blocked":
            found.append(f"job {job.id} is still blocked (were its blockers released?)")
    return found


async def explain_unclosed_chain(
    state: StateAdapter[Any],
    events: RecordingObservability,
    chain_id: str,
    what: str,
    timeout: float,
) -> str:
    """The failure message for chain ``chain_id`` that did not close within ``timeout`` seconds."""
    try:
        jobs = list((await state.list_chain_jobs(chain_id, limit=100)).items)
        stored = [_job_line(job) for job in jobs] or ["  (the store has no job of this chain)"]
    except Exception as exc:  # the store itself may be what broke
        jobs = []
        stored = [f"  (reading the chain's jobs failed: {exc!r})"]
    broken = _broken_properties(jobs, events, chain_id)
    lines = [f"{what}: chain {chain_id} did not close within {timeout:g}s"]
    if broken:
        lines.append("what broke:")
        lines.extend(f"  - {line}" for line in dict.fromkeys(broken))
    lines.append("the chain's jobs as stored:")
    lines.extend(stored)
    return "\n".join(lines)
