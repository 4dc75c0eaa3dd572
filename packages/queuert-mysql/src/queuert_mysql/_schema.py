"""Identifiers, table names and the versioned migrations of the MySQL / MariaDB schema.

Comparisons are chosen per column, never inherited from the server or database defaults:

* ids (UUIDs) are ``CHAR(36)`` in ``ascii`` with the binary collation ``ascii_bin``;
* type names, worker ids and deduplication keys are binary strings (``VARBINARY``, ``MEDIUMBLOB``)
  holding UTF-8, compared byte by byte: ``"Key"``, ``"key"``, ``"kéy"`` and ``"key "`` are four
  different keys. The server's default collations compare the first three equal (they ignore case
  and accents), and even ``utf8mb4_bin`` is a PAD SPACE collation that ignores trailing spaces;
  the NO PAD binary collations differ between MySQL and MariaDB, binary strings do not.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from queuert.errors import InvalidIdentifierError

__all__ = [
    "BOOTSTRAP",
    "MIGRATIONS",
    "MIGRATION_LOCK",
    "Migration",
    "Names",
    "validate_identifier",
]

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_MAX_PREFIX = 40  # leaves room for the longest suffix within MySQL's 64-character identifiers


def validate_identifier(what: str, value: object, *, allow_empty: bool = False) -> str:
    """``value`` if it is a plain identifier (letters, digits, ``_``; at most 64 characters), else
    :class:`~queuert.errors.InvalidIdentifierError`."""
    if not isinstance(value, str):
        raise InvalidIdentifierError(what, repr(value))
    if value == "" and allow_empty:
        return value
    if not _IDENTIFIER.fullmatch(value) or len(value) > 64:
        raise InvalidIdentifierError(what, value)
    return value


@dataclass(frozen=True)
class Names:
    """Quoted, validated names of everything the adapter creates.

    ``database`` is ``None`` for the connection's current database (the one in the URL)."""

    database: str | None
    prefix: str

    def __post_init__(self) -> None:
        if self.database is not None:
            validate_identifier("database", self.database)
        validate_identifier("table prefix", self.prefix, allow_empty=True)
        if len(self.prefix) > _MAX_PREFIX:
            raise InvalidIdentifierError("table prefix", self.prefix)

    def _q(self, name: str) -> str:
        if self.database is None:
            return f"`{self.prefix}{name}`"
        return f"`{self.database}`.`{self.prefix}{name}`"

    @property
    def job(self) -> str:
        return self._q("job")

    @property
    def blocker(self) -> str:
        return self._q("job_blocker")

    @property
    def dedup_lock(self) -> str:
        return self._q("dedup_lock")

    @property
    def job_limit(self) -> str:
        return self._q("job_limit")

    @property
    def migration(self) -> str:
        return self._q("migration")

    def render(self, template: str) -> str:
        return (
            template.replace("{job}", self.job)
            .replace("{blocker}", self.blocker)
            .replace("{dedup_lock}", self.dedup_lock)
            .replace("{job_limit}", self.job_limit)
            .replace("{migration}", self.migration)
            .replace("{p}", self.prefix)
        )


@dataclass(frozen=True)
class Migration:
    name: str
    statements: tuple[str, ...]
    """Templates (``{job}``, ``{blocker}``, ``{p}`` ... are replaced with the configured names). MySQL
    commits DDL implicitly, so a migration is recorded after its last statement; each statement is
    written so that running it again after a crash part-way is harmless or fails clearly."""


_ID = "CHAR(36) CHARACTER SET ascii COLLATE ascii_bin"
_NAME = "VARBINARY(1020)"
_KEY = "MEDIUMBLOB"
_TEXT = "MEDIUMTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
_LIMIT_KEY_TYPE = "VARCHAR(200) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"

_JOB = f"""
CREATE TABLE IF NOT EXISTS {{job}} (
    id                  {_ID}       NOT NULL,
    type_name           {_NAME}     NOT NULL,
    chain_id            {_ID}       NOT NULL,
    chain_type_name     {_NAME}     NOT NULL,
    chain_index         INT         NOT NULL,
    input               JSON        NULL,
    output              JSON        NULL,
    outcome             VARCHAR(9) CHARACTER SET ascii COLLATE ascii_bin NULL,
    succeeded_by_job_id {_ID}       NULL,
    created_at          DATETIME(6) NOT NULL,
    scheduled_at        DATETIME(6) NOT NULL,
    completed_at        DATETIME(6) NULL,
    completed_by        {_NAME}     NULL,
    attempt             INT         NOT NULL DEFAULT 0,
    last_attempt_at     DATETIME(6) NULL,
    last_attempt_error  {_TEXT}     NULL,
    leased_by           {_NAME}     NULL,
    leased_until        DATETIME(6) NULL,
    open_blockers       INT         NOT NULL DEFAULT 0,
    deduplication_key   {_KEY}      NULL,
    chain_trace_context {_TEXT}     NULL,
    trace_context       {_TEXT}     NULL,
    ready_type          {_NAME} AS (CASE WHEN outcome IS NULL AND open_blockers = 0
                                         AND leased_until IS NULL THEN type_name END) STORED,
    leased_type         {_NAME} AS (CASE WHEN outcome IS NULL AND leased_until IS NOT NULL
                                         THEN type_name END) STORED,
    PRIMARY KEY (id),
    UNIQUE KEY `{{p}}job_chain_position_idx` (chain_id, chain_index),
    KEY `{{p}}job_ready_idx` (ready_type, scheduled_at, id),
    KEY `{{p}}job_leased_idx` (leased_type, leased_until, id),
    KEY `{{p}}job_dedup_idx` (chain_type_name, deduplication_key(1024), created_at),
    KEY `{{p}}job_listing_idx` (created_at, id),
    CONSTRAINT `{{p}}job_outcome_chk` CHECK (outcome IN ('completed', 'failed', 'cancelled')),
    CONSTRAINT `{{p}}job_root_chk` CHECK ((chain_index = 0) = (chain_id = id))
) ENGINE = InnoDB DEFAULT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin
"""
"""``ready_type`` and ``leased_type`` stand in for PostgreSQL's partial indexes: they hold the type
name only while the job is ready to claim (open, unblocked, not leased) or leased, so the claim
walks ``(ready_type, scheduled_at, id)`` in order over ready jobs of one type and the reaper walks
``(leased_type, leased_until, id)`` over leased ones, never over closed history."""

_BLOCKER = f"""
CREATE TABLE IF NOT EXISTS {{blocker}} (
    job_id              {_ID}   NOT NULL,
    slot                INT     NOT NULL,
    blocked_by_chain_id {_ID}   NOT NULL,
    trace_context       {_TEXT} NULL,
    PRIMARY KEY (job_id, slot),
    KEY `{{p}}job_blocker_chain_idx` (blocked_by_chain_id)
) ENGINE = InnoDB DEFAULT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin
"""
"""No foreign keys: InnoDB would take shared locks on the referenced job rows for every link
written, which orders badly against the exclusive locks of claims and completions. The adapter
checks that both ends exist under its own locks."""

_DEDUP_LOCK = """
CREATE TABLE IF NOT EXISTS {dedup_lock} (
    lock_key BINARY(32) NOT NULL,
    PRIMARY KEY (lock_key)
) ENGINE = InnoDB
"""
"""One row per (chain type, deduplication key) ever started: a creator writes the row of its key
(``INSERT ... ON DUPLICATE KEY UPDATE``) before it looks for a matching chain, which holds the row's
lock until its transaction ends. Creators of the same key are thereby serialised, as PostgreSQL's
transaction-scoped advisory locks do; MySQL's ``GET_LOCK`` is held by the session, not the
transaction, so it cannot serve here."""

_BLOCKED_TYPE = f"""
ALTER TABLE {{job}}
    ADD COLUMN blocked_type {_NAME} AS (CASE WHEN outcome IS NULL AND open_blockers > 0
                                            AND leased_until IS NULL THEN type_name END) STORED,
    ADD KEY `{{p}}job_blocked_idx` (blocked_type)
"""
"""``get_queue_stats`` counts blocked jobs per type from this index (the ready and leased indexes
serve its other counts), so a scrape reads open jobs only. A job that is never blocked keeps a NULL
entry in it, which no claim or completion changes."""

_EXACT_JSON = """
ALTER TABLE {job}
    MODIFY input  LONGTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL,
    MODIFY output LONGTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL,
    ADD CONSTRAINT `{p}job_json_chk` CHECK (JSON_VALID(input) AND JSON_VALID(output))
"""
"""Inputs and outputs as JSON text, checked with ``JSON_VALID``: what MariaDB's ``JSON`` type is
anyway. MySQL's binary ``JSON`` would store an integer outside 64 bits as a double (and reorder
object keys), so a value would not read back equal; the text does."""

_PRIORITY = """
ALTER TABLE {job}
    ADD COLUMN priority INT NOT NULL DEFAULT 0,
    ADD KEY `{p}job_claim_idx` (ready_type, priority DESC, scheduled_at, id)
"""
"""A claim walks the ready jobs of each type by priority (highest first), then due time, from
``job_claim_idx``; the ready index keeps serving ``next_due`` and the queue stats."""

_LIMIT_KEY = f"""
ALTER TABLE {{job}} ADD COLUMN limit_key {_LIMIT_KEY_TYPE} NULL
"""

_JOB_LIMIT = f"""
CREATE TABLE IF NOT EXISTS {{job_limit}} (
    type_name {_NAME}  NOT NULL,
    claims    BIGINT   NOT NULL,
    PRIMARY KEY (type_name)
) ENGINE = InnoDB
"""
"""One row per job type ever claimed under a concurrency limit. A limited claim writes its type's
row first (``INSERT ... ON DUPLICATE KEY UPDATE``), which holds the row's lock until the claim
commits: limited claims of one type are serialised, and each one counts the running jobs after
the previous one committed (every statement reads the latest commits under READ COMMITTED)."""

_ONE_READY_INDEX = """
ALTER TABLE {job} DROP INDEX `{p}job_ready_idx`
"""
"""``job_ready_idx`` (ready type, due time) held the same rows as ``job_claim_idx`` (ready type,
priority, due time), so every insert, reschedule and unblock wrote an entry into both. ``next_due``
now probes the claim index one distinct priority of a type at a time (a loose index scan driven by
the adapter: MariaDB and MySQL read every ready job of the type for a ``GROUP BY`` or a correlated
bound here), and the queue stats read the claim index whole, as they read the ready index."""

MIGRATIONS: tuple[Migration, ...] = (
    Migration("0001_initial_schema", (_JOB, _BLOCKER, _DEDUP_LOCK)),
    Migration("0002_blocked_index", (_BLOCKED_TYPE,)),
    Migration("0003_exact_json_text", (_EXACT_JSON,)),
    Migration("0004_priority", (_PRIORITY,)),
    Migration("0005_concurrency_limits", (_LIMIT_KEY, _JOB_LIMIT)),
    Migration("0006_one_ready_index", (_ONE_READY_INDEX,)),
)
"""Applied in order. Never edit one that has shipped: add a new one."""

BOOTSTRAP = """
CREATE TABLE IF NOT EXISTS {migration} (
    name       VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    applied_at DATETIME(6) NOT NULL,
    PRIMARY KEY (name)
) ENGINE = InnoDB
"""

MIGRATION_LOCK = "queuert.migrate"
"""The ``GET_LOCK`` name every migrating process takes (per database and table prefix)."""
