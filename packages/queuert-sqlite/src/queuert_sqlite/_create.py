"""Creating jobs: what ``create_jobs`` does on the writer's thread, step by step.

A batch is one function on the writer's thread (:func:`create_on_thread`), whatever its size: look
up what already stands at each continuation's chain position and the newest chain matching each
deduplication key (one statement each for the whole batch), decide in input order which jobs are
inserted and which return an existing job, and insert the new rows with one ``executemany``.

Chain starts with fresh ids and no deduplication key need no look-up: :func:`fresh_starts` builds
their rows and results at once, and the adapter queues the INSERT to ride with the transaction's
next statement.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from queuert.errors import ChainNotFoundError, DuplicateJobIdError
from queuert.state import CreatedJob, NewJob, StoredJob, inserted_job

from queuert_sqlite._driver import is_integrity_error
from queuert_sqlite._rows import job_from_row
from queuert_sqlite._sql import Statements, json_param
from queuert_sqlite._time import add_delta, now, scheduled_at

__all__ = [
    "InsertConflict",
    "Prepared",
    "create_on_thread",
    "fresh_starts",
    "new_row",
    "prepare",
    "taken_ids",
]

Prepared = tuple[NewJob, str]
"""A job to create and its input's JSON text."""

Row = tuple[Any, ...]
"""The parameters of :attr:`Statements.insert_job` for one job."""

_Position = tuple[str, int]
"""(chain id, chain index)"""


class InsertConflict(Exception):
    """The INSERT of a batch hit a constraint; the ids to check for a collision ride along."""

    def __init__(self, ids: list[str], cause: Exception) -> None:
        super().__init__(str(cause))
        self.ids = ids
        self.cause = cause


def prepare(jobs: Sequence[NewJob]) -> list[Prepared]:
    """Each job with its input's JSON text (jobs and inputs arrive checked by the core, most with
    that text already)."""
    return [(new, new.input_json()) for new in jobs]


def new_row(new: NewJob, text: str, now_text: str, now_dt: datetime) -> tuple[Row, StoredJob]:
    """The INSERT parameters of a job that is inserted, and the job as stored."""
    scheduled, due = scheduled_at(new.schedule, now_text, now_dt)
    dedup = new.deduplication if new.chain_id is None else None
    row = (
        new.id,
        new.type_name,
        new.id if new.chain_id is None else new.chain_id,
        new.chain_type_name,
        new.chain_index,
        text,
        now_text,
        scheduled,
        dedup.key if dedup is not None else None,
        new.chain_trace_context,
        new.trace_context,
        new.priority,
        new.limit_key,
    )
    job = inserted_job(
        new,
        input=new.input,
        created_at=now_dt,
        scheduled_at=due,
        status="scheduled" if scheduled > now_text else "ready",
    )
    return row, job


def fresh_starts(jobs: Sequence[NewJob]) -> tuple[list[Row], list[CreatedJob]] | None:
    """Rows and results of ``jobs`` if each is a chain start with an id the client made and no
    deduplication key: nothing to look up and nothing it can clash with, so both are known before
    anything reaches SQLite. ``None`` if one is not."""
    now_text, now_dt = now()
    rows: list[Row] = []
    results: list[CreatedJob] = []
    for new in jobs:
        if not new.fresh_id or new.chain_id is not None or new.deduplication is not None:
            return None
        row, job = new_row(new, new.input_json(), now_text, now_dt)
        rows.append(row)
        results.append(CreatedJob(job, False))
    return rows, results


def create_on_thread(
    raw: sqlite3.Connection, sql: Statements, prepared: list[Prepared]
) -> list[CreatedJob]:
    """Create a batch (on the writer's thread, inside a transaction or savepoint)."""
    now_text, now_dt = now()
    existing = _jobs_at_positions(raw, sql, prepared, now_dt)
    leaders, matched = _deduplication_matches(raw, sql, prepared, now_text, now_dt)
    rows, results = _plan(prepared, existing, leaders, matched, now_text, now_dt)
    if rows:
        _insert(raw, sql, rows)
    return results


def _jobs_at_positions(
    raw: sqlite3.Connection, sql: Statements, prepared: list[Prepared], now_dt: datetime
) -> dict[_Position, StoredJob]:
    """The jobs already at the positions of the batch's continuations (they make a continuation
    idempotent); a continuation of a chain that does not exist is refused."""
    existing: dict[_Position, StoredJob] = {}
    conts = [new for new, _ in prepared if new.chain_id is not None]
    if not conts:
        return existing
    keys = [[new.chain_id, new.chain_index] for new in conts]
    for row in raw.execute(sql.continuation_lookup, (json_param(keys),)):
        new = conts[row[0]]
        assert new.chain_id is not None
        if not row[1]:
            raise ChainNotFoundError(new.chain_id)
        if row[2] is not None:
            existing[(new.chain_id, new.chain_index)] = job_from_row(row, now_dt, 2)
    return existing


def _deduplication_matches(
    raw: sqlite3.Connection,
    sql: Statements,
    prepared: list[Prepared],
    now_text: str,
    now_dt: datetime,
) -> tuple[dict[tuple[str, str], int], dict[int, StoredJob]]:
    """Per (chain type, key), the position of its first job in the batch (the leader), and per
    leader the newest stored chain it matches (keyed on the chain: its status is the tail's)."""
    leaders: dict[tuple[str, str], int] = {}
    params: list[list[Any]] = []
    for i, (new, _) in enumerate(prepared):
        dedup = new.deduplication
        if new.chain_id is None and dedup is not None:
            key = (new.chain_type_name, dedup.key)
            if key not in leaders:
                leaders[key] = i
                since = add_delta(now_text, -dedup.window) if dedup.window is not None else None
                params.append(
                    [
                        new.chain_type_name,
                        dedup.key,
                        dedup.scope,
                        since,
                        list(dedup.exclude_chain_ids),
                    ]
                )
    matched: dict[int, StoredJob] = {}
    if params:
        positions = list(leaders.values())
        for row in raw.execute(sql.dedup_lookup, (json_param(params),)):
            matched[positions[row[0]]] = job_from_row(row, now_dt, 1)
    return leaders, matched


def _plan(
    prepared: list[Prepared],
    existing: dict[_Position, StoredJob],
    leaders: dict[tuple[str, str], int],
    matched: dict[int, StoredJob],
    now_text: str,
    now_dt: datetime,
) -> tuple[list[Row], list[CreatedJob]]:
    """In input order: each job's result, and the rows of the jobs to insert."""
    rows: list[Row] = []
    results: list[CreatedJob] = []
    inserted_ids: set[str] = set()
    by_position: dict[int, StoredJob] = {}
    batch_at: dict[_Position, StoredJob] = {}
    for i, (new, text) in enumerate(prepared):
        dedup = new.deduplication if new.chain_id is None else None
        if dedup is not None:
            leader = leaders[(new.chain_type_name, dedup.key)]
            if leader != i:
                results.append(CreatedJob(job=by_position[leader], deduplicated=True))
                continue
            found = matched.get(i)
            if found is not None:
                by_position[i] = found
                results.append(CreatedJob(job=found, deduplicated=True))
                continue
        if new.chain_id is not None:
            at = (new.chain_id, new.chain_index)
            earlier = existing.get(at) or batch_at.get(at)
            if earlier is not None:
                results.append(CreatedJob(job=earlier, deduplicated=True))
                continue
        if new.id in inserted_ids:
            raise DuplicateJobIdError(new.id)
        inserted_ids.add(new.id)
        row, job = new_row(new, text, now_text, now_dt)
        rows.append(row)
        by_position[i] = job
        if new.chain_id is not None:
            batch_at[(new.chain_id, new.chain_index)] = job
        results.append(CreatedJob(job=job, deduplicated=False))
    return rows, results


def _insert(raw: sqlite3.Connection, sql: Statements, rows: list[Row]) -> None:
    try:
        raw.executemany(sql.insert_job, rows)
    except Exception as exc:
        if not is_integrity_error(exc):
            raise
        raise InsertConflict([r[0] for r in rows], exc) from exc


def taken_ids(raw: sqlite3.Connection, sql: Statements, ids: list[str]) -> list[str]:
    """Which of ``ids`` are ids of stored jobs (to name the one an INSERT collided with)."""
    return [r[0] for r in raw.execute(sql.existing_ids, (json_param(ids),))]
