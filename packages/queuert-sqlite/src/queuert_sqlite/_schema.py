"""Schema, migrations and the validated table prefix.

The job model (see ``queuert.state``): no status column. Rows store the facts a status is derived
from (``outcome``, ``succeeded_by_job_id``, ``leased_until``, ``blocked``, ``scheduled_at``); SQL
filters derive it with the same precedence as :func:`queuert.state.derive_status`.

Timestamps are UTC text with millisecond precision (``YYYY-MM-DD HH:MM:SS.SSS``), the format of
``strftime('%Y-%m-%d %H:%M:%f', 'now')``; JSON values are stored as text.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass

from queuert.errors import InvalidIdentifierError
from queuert.state import MigrationResult

__all__ = ["MIGRATIONS", "Migration", "apply_migrations", "validate_prefix"]

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def validate_prefix(prefix: object) -> str:
    """The table prefix if it is a plain identifier (or empty); raises InvalidIdentifierError."""
    if not isinstance(prefix, str):
        raise InvalidIdentifierError("table prefix", repr(prefix))
    if prefix == "":
        return prefix
    if not _IDENTIFIER.match(prefix) or prefix.lower().startswith("sqlite_"):
        # names starting with sqlite_ are reserved by SQLite itself
        raise InvalidIdentifierError("table prefix", prefix)
    return prefix


@dataclass(frozen=True)
class Migration:
    name: str
    statements: Callable[[str], list[str]]
    """The DDL for a table prefix."""


def _initial(p: str) -> list[str]:
    return [
        f"""CREATE TABLE {p}job (
            id TEXT NOT NULL PRIMARY KEY,
            type_name TEXT NOT NULL,
            chain_id TEXT NOT NULL REFERENCES {p}job (id),
            chain_type_name TEXT NOT NULL,
            chain_index INTEGER NOT NULL CHECK (chain_index >= 0),
            input TEXT NOT NULL,
            output TEXT,
            outcome TEXT CHECK (outcome IN ('completed', 'failed', 'cancelled')),
            succeeded_by_job_id TEXT,
            created_at TEXT NOT NULL,
            scheduled_at TEXT NOT NULL,
            completed_at TEXT,
            completed_by TEXT,
            attempt INTEGER NOT NULL DEFAULT 0,
            last_attempt_at TEXT,
            last_attempt_error TEXT,
            leased_by TEXT,
            leased_until TEXT,
            blocked INTEGER NOT NULL DEFAULT 0 CHECK (blocked IN (0, 1)),
            deduplication_key TEXT,
            chain_trace_context TEXT,
            trace_context TEXT
        )""",
        # chain order, the tail lookup (highest index) and continuation idempotency
        f"CREATE UNIQUE INDEX {p}job_chain_index_idx ON {p}job (chain_id, chain_index)",
        # claim_jobs / next_due: open, unblocked, unleased jobs of a type by due time
        f"""CREATE INDEX {p}job_ready_idx ON {p}job (type_name, scheduled_at, id)
            WHERE outcome IS NULL AND leased_until IS NULL AND blocked = 0""",
        # reap_expired_leases: leased jobs of a type by expiry
        f"""CREATE INDEX {p}job_lease_idx ON {p}job (type_name, leased_until, id)
            WHERE leased_until IS NOT NULL""",
        # deduplication: chain starts by (chain type, key), newest first
        f"""CREATE INDEX {p}job_dedup_idx
            ON {p}job (chain_type_name, deduplication_key, created_at, id)
            WHERE deduplication_key IS NOT NULL AND chain_index = 0""",
        # list_jobs / list_blocked_jobs ordering
        f"CREATE INDEX {p}job_created_idx ON {p}job (created_at, id)",
        # list_chains ordering (chain starts only)
        f"CREATE INDEX {p}chain_created_idx ON {p}job (created_at, id) WHERE chain_index = 0",
        f"""CREATE TABLE {p}job_blocker (
            job_id TEXT NOT NULL REFERENCES {p}job (id),
            slot INTEGER NOT NULL,
            blocked_by_chain_id TEXT NOT NULL REFERENCES {p}job (id),
            trace_context TEXT,
            PRIMARY KEY (job_id, slot)
        ) WITHOUT ROWID""",
        # dependents of a chain: unblocking, list_blocked_jobs, delete reference checks
        f"""CREATE INDEX {p}job_blocker_chain_idx
            ON {p}job_blocker (blocked_by_chain_id, job_id)""",
    ]


def _blocked_index(p: str) -> list[str]:
    # get_queue_stats: blocked jobs per type (the ready and lease indexes serve the other counts);
    # partial, so a claim or completion of a job that was never blocked does not write it
    return [
        f"""CREATE INDEX {p}job_blocked_idx ON {p}job (type_name)
            WHERE outcome IS NULL AND leased_until IS NULL AND blocked = 1"""
    ]


def _priority(p: str) -> list[str]:
    # claim_jobs: open, unblocked, unleased jobs of a type by priority (highest first), then due
    # time; the ready index keeps serving next_due and the queue stats (until one_ready_index)
    return [
        f"ALTER TABLE {p}job ADD COLUMN priority INTEGER NOT NULL DEFAULT 0",
        f"""CREATE INDEX {p}job_claim_idx ON {p}job (type_name, priority DESC, scheduled_at, id)
            WHERE outcome IS NULL AND leased_until IS NULL AND blocked = 0""",
    ]


def _limit_key(p: str) -> list[str]:
    # claim_jobs with concurrency limits counts the running jobs of a type by limit key
    return [f"ALTER TABLE {p}job ADD COLUMN limit_key TEXT"]


def _one_ready_index(p: str) -> list[str]:
    # job_ready_idx (type, due time) held the same rows as job_claim_idx (type, priority, due
    # time), so every insert, reschedule and unblock wrote both. next_due and any_ready walk the
    # claim index one distinct priority at a time (a loose index scan), the queue stats read it
    # whole as they read the ready index before.
    return [f"DROP INDEX IF EXISTS {p}job_ready_idx"]


MIGRATIONS: tuple[Migration, ...] = (
    Migration("20260601000000_initial_schema", _initial),
    Migration("20261206000000_blocked_index", _blocked_index),
    Migration("20261206100000_priority", _priority),
    Migration("20261206110000_limit_key", _limit_key),
    Migration("20261207000000_one_ready_index", _one_ready_index),
)
"""Every migration, oldest first. Names sort in application order; never edit a released one."""


def apply_migrations(
    raw: sqlite3.Connection, prefix: str, migrations: tuple[Migration, ...] = MIGRATIONS
) -> MigrationResult:
    """Apply the missing migrations (runs inside the caller's ``BEGIN IMMEDIATE`` transaction).

    The write lock taken by ``BEGIN IMMEDIATE`` serialises concurrent migrators, also across
    processes: the second one waits, then finds everything applied.
    """
    raw.execute(
        f"CREATE TABLE IF NOT EXISTS {prefix}migration ("
        "name TEXT NOT NULL PRIMARY KEY, applied_at TEXT NOT NULL)"
    )
    done = {row[0] for row in raw.execute(f"SELECT name FROM {prefix}migration")}
    known = {m.name for m in migrations}
    applied: list[str] = []
    skipped: list[str] = []
    for migration in migrations:
        if migration.name in done:
            skipped.append(migration.name)
            continue
        for statement in migration.statements(prefix):
            raw.execute(statement)
        raw.execute(
            f"INSERT INTO {prefix}migration (name, applied_at) "
            "VALUES (?, strftime('%Y-%m-%d %H:%M:%f', 'now'))",
            (migration.name,),
        )
        applied.append(migration.name)
    unrecognized = sorted(name for name in done if name not in known)
    return MigrationResult(applied=applied, skipped=skipped, unrecognized=unrecognized)
