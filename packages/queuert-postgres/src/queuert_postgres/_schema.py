"""Identifiers, table names and the versioned migrations of the PostgreSQL schema."""

from __future__ import annotations

import re
from dataclasses import dataclass

from queuert.errors import InvalidIdentifierError

__all__ = ["MIGRATIONS", "Migration", "Names", "validate_identifier"]

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_MAX_PREFIX = 40  # leaves room for the longest suffix within PostgreSQL's 63-byte identifiers


def validate_identifier(what: str, value: object, *, allow_empty: bool = False) -> str:
    if not isinstance(value, str):
        raise InvalidIdentifierError(what, repr(value))
    if value == "" and allow_empty:
        return value
    if not _IDENTIFIER.fullmatch(value) or len(value) > 63:
        raise InvalidIdentifierError(what, value)
    return value


@dataclass(frozen=True)
class Names:
    """Quoted, validated names of everything the adapter creates."""

    schema: str
    prefix: str

    def __post_init__(self) -> None:
        validate_identifier("schema", self.schema)
        validate_identifier("table prefix", self.prefix, allow_empty=True)
        if len(self.prefix) > _MAX_PREFIX:
            raise InvalidIdentifierError("table prefix", self.prefix)

    def _q(self, name: str) -> str:
        return f'"{self.schema}"."{self.prefix}{name}"'

    @property
    def schema_q(self) -> str:
        return f'"{self.schema}"'

    @property
    def job(self) -> str:
        return self._q("job")

    @property
    def blocker(self) -> str:
        return self._q("job_blocker")

    @property
    def job_limit(self) -> str:
        return self._q("job_limit")

    @property
    def migration(self) -> str:
        return self._q("migration")

    def index(self, name: str) -> str:
        """An unqualified index name (indexes live in their table's schema)."""
        return f'"{self.prefix}{name}"'

    def render(self, template: str) -> str:
        return (
            template.replace("{job}", self.job)
            .replace("{blocker}", self.blocker)
            .replace("{job_limit}", self.job_limit)
            .replace("{migration}", self.migration)
            .replace("{schema}", self.schema_q)
            .replace("{p}", self.prefix)
        )


@dataclass(frozen=True)
class Migration:
    name: str
    sql: str
    """A script template (``{job}``, ``{blocker}``, ``{p}`` are replaced with the configured names)."""


_INITIAL = """
CREATE TABLE {job} (
    id                  uuid        PRIMARY KEY,
    type_name           text        NOT NULL,
    chain_id            uuid        NOT NULL,
    chain_type_name     text        NOT NULL,
    chain_index         integer     NOT NULL,
    input               json,
    output              json,
    outcome             text        CHECK (outcome IN ('completed', 'failed', 'cancelled')),
    succeeded_by_job_id uuid,
    created_at          timestamptz NOT NULL,
    scheduled_at        timestamptz NOT NULL,
    completed_at        timestamptz,
    completed_by        text,
    attempt             integer     NOT NULL DEFAULT 0,
    last_attempt_at     timestamptz,
    last_attempt_error  text,
    leased_by           text,
    leased_until        timestamptz,
    open_blockers       integer     NOT NULL DEFAULT 0,
    deduplication_key   text,
    chain_trace_context text,
    trace_context       text,
    CONSTRAINT "{p}job_root_chk" CHECK ((chain_index = 0) = (chain_id = id))
);
CREATE UNIQUE INDEX "{p}job_chain_position_idx" ON {job} (chain_id, chain_index);
CREATE INDEX "{p}job_ready_idx" ON {job} (type_name, scheduled_at, id)
    WHERE outcome IS NULL AND open_blockers = 0 AND leased_until IS NULL;
CREATE INDEX "{p}job_leased_idx" ON {job} (type_name, leased_until, id)
    WHERE outcome IS NULL AND leased_until IS NOT NULL;
CREATE INDEX "{p}job_dedup_idx" ON {job} (chain_type_name, deduplication_key, created_at DESC)
    WHERE deduplication_key IS NOT NULL AND chain_index = 0;
CREATE INDEX "{p}job_listing_idx" ON {job} (created_at, id);
CREATE INDEX "{p}job_listing_type_idx" ON {job} (type_name, created_at, id);
CREATE INDEX "{p}chain_listing_idx" ON {job} (created_at, id) WHERE chain_index = 0;
CREATE INDEX "{p}chain_listing_type_idx" ON {job} (type_name, created_at, id) WHERE chain_index = 0;

CREATE TABLE {blocker} (
    job_id              uuid    NOT NULL REFERENCES {job} (id),
    slot                integer NOT NULL,
    blocked_by_chain_id uuid    NOT NULL REFERENCES {job} (id),
    trace_context       text,
    PRIMARY KEY (job_id, slot)
);
CREATE INDEX "{p}job_blocker_chain_idx" ON {blocker} (blocked_by_chain_id);
"""

_STORAGE_TUNING = """
ALTER TABLE {job} SET (
    fillfactor = 75,
    autovacuum_vacuum_scale_factor = 0.02,
    autovacuum_analyze_scale_factor = 0.02,
    autovacuum_vacuum_cost_delay = 0
);
ALTER TABLE {blocker} SET (autovacuum_vacuum_cost_delay = 0);
"""

_FEWER_LISTING_INDEXES = """
DROP INDEX IF EXISTS {schema}."{p}job_listing_type_idx";
DROP INDEX IF EXISTS {schema}."{p}chain_listing_type_idx";
DROP INDEX IF EXISTS {schema}."{p}chain_listing_idx";
"""
"""Claims and completions change indexed columns, so each is a non-HOT update that writes an entry
into every index of the job table. The listing indexes other than the jobs' (created_at, id) one cost
a worker a large share of its throughput (``tools/bench``, batch-started atomic processing, medians of
5 alternating runs, two rounds each: dropping the two by type 4,208 -> 4,896 and 4,184 -> 5,092 jobs/s;
then dropping the chains' one 5,250 -> 5,838 and 5,177 -> 5,835). Listings of jobs filtered by type,
and listings of chains, now walk the (created_at, id) listing index and filter; a listing pages by
time anyway."""

_BLOCKED_INDEX = """
CREATE INDEX "{p}job_blocked_idx" ON {job} (type_name)
    WHERE outcome IS NULL AND open_blockers > 0 AND leased_until IS NULL;
"""
"""``get_queue_stats`` counts blocked jobs per type from this index (the claim and leased indexes
serve its other counts), so a scrape reads open jobs only. Partial: a claim or completion of a job
that was never blocked writes no entry into it."""

_ACTIVITY_AND_KEY_INDEXES = """
CREATE INDEX "{p}job_closed_idx" ON {job} (completed_at) WHERE completed_at IS NOT NULL;
CREATE INDEX "{p}chain_dedup_key_idx" ON {job} (deduplication_key)
    WHERE deduplication_key IS NOT NULL AND chain_index = 0;
"""
"""``get_job_activity`` reads the jobs closed in its window from ``job_closed_idx`` (open jobs come
from the claim, leased and blocked indexes), and a search of chains by deduplication key alone
(``ChainFilter.deduplication_keys``) uses ``chain_dedup_key_idx``; without them, both read every job
(0.5 s each with a million jobs, ``tools/bench/dashboard.py``). Both are partial: a job gets an
entry in the first when it closes (a completion already rewrites every index entry of its row),
and in the second only if it starts a chain with a deduplication key."""

_UNSUCCESSFUL_INDEX = """
CREATE INDEX "{p}job_unsuccessful_idx" ON {job} (created_at, id)
    WHERE outcome IN ('failed', 'cancelled');
"""
"""A list of failed or cancelled jobs (an operator's first look after an incident) reads them from
this index instead of walking every job's listing entry until it has a page: when failures are rare
among a million jobs, that walk reads them all. Partial: a job gets an entry only when it fails or
is cancelled."""

_PRIORITY = """
ALTER TABLE {job} ADD COLUMN priority integer NOT NULL DEFAULT 0;
CREATE INDEX "{p}job_claim_idx" ON {job} (type_name, priority DESC, scheduled_at, id)
    WHERE outcome IS NULL AND open_blockers = 0 AND leased_until IS NULL;
"""
"""A claim walks the ready jobs of each type by priority (highest first), then due time, from
``job_claim_idx``; since ``0009`` it also serves ``next_due`` and the queue stats. The column's
constant default makes the ``ALTER`` a catalog change: no rewrite."""

_CONCURRENCY_LIMITS = """
ALTER TABLE {job} ADD COLUMN limit_key text;
CREATE TABLE {job_limit} (
    type_name text   NOT NULL,
    limit_key text   NOT NULL,
    claims    bigint NOT NULL,
    PRIMARY KEY (type_name, limit_key)
);
"""
"""``limit_key`` is the key a type's ``key_limit`` counts by. ``job_limit`` holds one row per limited
type (``limit_key`` '') and per limited (type, key) that was ever claimed: a claim counter that
every limited claim of it increments, which is how a claim tells whether another one committed
since its snapshot (see :data:`queuert_postgres._sql.CLAIM_LIMITED`)."""

_ONE_READY_INDEX = """
DROP INDEX IF EXISTS {schema}."{p}job_ready_idx";
"""
"""``job_ready_idx`` (type, due time) and ``job_claim_idx`` (type, priority, due time) held exactly the
same rows, so every insert, reschedule and unblock of a job wrote an entry into both: a 100-row
batch start took 1.26 ms of server time with both and 1.06 ms with the claim index alone (medians,
``tools/bench/batch_start.py``). The claim index now serves everything the ready one did:

* ``next_due`` walks it as a loose index scan: per type, one probe for each next lower priority
  (``Index Only Scan``), and per priority one for its first unlocked job by due time (``Index Scan``
  under ``LockRows``); the earliest of those is the answer. With 100,000 ready jobs of five types
  and three priorities each: 0.25 ms for the five types (0.07 ms from the ready index; the earlier
  statement on the claim index alone sorts every ready job of a type, 67 ms).
* The queue stats and the job activity count every ready job of a type either way: an index-only
  scan of the claim index in type order instead of the ready index (same size, same time).
* Listings by status ``ready`` or ``scheduled`` test the derived status of each job, so neither
  index's due-time order served them.

In the partitioned layout the index on the parent drops with its copies on the partitions."""

_CHAIN_POSITION_OF_CONTINUATIONS = """
CREATE UNIQUE INDEX "{p}job_chain_continuation_idx" ON {job} (chain_id, chain_index)
    WHERE chain_index > 0;
DROP INDEX {schema}."{p}job_chain_position_idx";
"""
"""The chain position index held every job, though a chain's first job (``chain_index`` 0, most jobs:
every one-job chain) has its position in the primary key already (``job_root_chk``: ``chain_id =
id``). Claims and completions are non-HOT updates, so a first job wrote an entry into it on insert,
claim and completion: three of its twelve index entries. It now holds the continuations only (the
uniqueness of a position 0 per chain is the primary key's), and is a third of the size (8.4 MB
against 29 MB with 400,000 first jobs and 160,000 continuations). A 100-row batch start took
1.46 ms, 2.26 ms and 2.32 ms of server time against 1.82, 2.72 and 2.43 ms before (medians of three
runs, ``tools/bench/batch_start.py``, on a loaded machine). On that table, per 100 first jobs with
time-ordered ids (``EXPLAIN (ANALYZE, WAL)``, medians of 200 batches, the two tables alternating):
the insert writes 403 WAL records and 41.8 kB against 504 and 53.6 kB (0.85 ms against 1.17 ms),
the claim's update 468 and 44.3 kB against 573 and 54.8 kB (1.53 ms against 1.95 ms), the
completion's 490 and 47.9 kB against 595 and 56.9 kB (1.71 ms against 2.15 ms).

What the index served, and what serves it now (that table, ``EXPLAIN ANALYZE``, medians of 200 random
chains on a loaded machine, one-job / three-job chains):

* The tail of a chain, unlocked (``tail_of``: chain reads, blockers' state, deduplication's open
  check): the last continuation by a backward probe of the index, else the first job by its key, as
  a ``UNION ALL`` under ``LIMIT 1`` whose second arm runs only when the first finds nothing
  (``Append`` of two index scans): 47 / 42 µs against 23 / 23 µs.
* The tail locked (``FOR NO KEY UPDATE``, not allowed over a ``UNION``: attaching blockers, a chain
  read with a lock): the key and the index at once (``BitmapOr`` of ``job_pkey`` and this index,
  then a sort of the chain's jobs): 84 / 155 µs against 79 / 88 µs.
* The jobs of a chain in order (``list_chain_jobs``): the first job by its key and the continuations
  from the index, appended and sorted: 54 / 71 µs against 22 / 38 µs. A listing of jobs by chain
  ids: the same ``BitmapOr``.
* A continuation's insert (its ``ON CONFLICT`` names the index's predicate: exactly one job per
  position) and the check of an existing one; whether a job has a successor when it closes; the
  members of chains being deleted (the first jobs by key, the rest from the index).

Those reads run off the processing path, a few tens of microseconds more each; the writes they
save are on it."""

MIGRATIONS: tuple[Migration, ...] = (
    Migration("0001_initial_schema", _INITIAL),
    Migration("0002_storage_tuning", _STORAGE_TUNING),
    Migration("0003_fewer_listing_indexes", _FEWER_LISTING_INDEXES),
    Migration("0004_blocked_index", _BLOCKED_INDEX),
    Migration("0005_activity_and_key_indexes", _ACTIVITY_AND_KEY_INDEXES),
    Migration("0006_unsuccessful_index", _UNSUCCESSFUL_INDEX),
    Migration("0007_priority", _PRIORITY),
    Migration("0008_concurrency_limits", _CONCURRENCY_LIMITS),
    Migration("0009_one_ready_index", _ONE_READY_INDEX),
    Migration("0010_chain_continuation_index", _CHAIN_POSITION_OF_CONTINUATIONS),
)
"""Applied in order; each in its own transaction. Never edit one that has shipped: add a new one."""

BOOTSTRAP = """
CREATE TABLE IF NOT EXISTS {migration} (
    name       text        PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT now()
);
"""

MIGRATION_LOCK_KEY = 0x7175657565727401  # "queuert" + 1: one lock for every migrating process
