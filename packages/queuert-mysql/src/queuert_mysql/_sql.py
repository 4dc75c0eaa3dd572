"""The statements of the MySQL state adapter, rendered once per (database, table prefix).

Conventions: ``%s`` placeholders (the drivers interpolate them on the client, escaped); a list goes
as one placeholder per item (:func:`marks`); JSON travels as text; "now" is ``UTC_TIMESTAMP(6)``,
which the server reads once per statement. A statement whose result the adapter completes itself
(a claim, a completion) selects ``UTC_TIMESTAMP(6)`` first, and the statements that follow in the
same operation write that value, so every timestamp of one operation is one reading of the server's
clock.
"""

from __future__ import annotations

from collections.abc import Callable

from queuert_mysql._schema import Names

__all__ = [
    "BY_CHAIN",
    "JOB_ID",
    "NCOLS",
    "NOW",
    "Statements",
    "cols",
    "marks",
    "status_sql",
]

NOW = "UTC_TIMESTAMP(6)"

NCOLS = 25
"""Number of columns :func:`cols` selects for one job."""

JOB_ID = 0
"""Position of the job's id within :func:`cols`."""


BY_CHAIN = "FORCE INDEX (`{p}job_chain_position_idx`)"
"""For locking reads of whole chains: a locking read locks every row it examines, and an optimizer
that walked the primary key instead (to return rows in id order, say) would lock, and wait for, rows
of unrelated chains, and deadlock with their workers. Through the chain position index it examines
the chains' rows only, in (chain, position) order."""


def marks(count: int) -> str:
    """``%s, %s, ...``: the placeholders of a list of ``count`` items (at least one)."""
    return ", ".join(["%s"] * count)


def status_sql(a: str) -> str:
    """The derived status of the job row ``a`` (precedence of :func:`queuert.state.derive_status`)."""
    return (
        f"CASE WHEN {a}.outcome IS NOT NULL THEN "
        f"(CASE WHEN {a}.succeeded_by_job_id IS NOT NULL THEN 'continued' ELSE {a}.outcome END) "
        f"WHEN {a}.leased_until IS NOT NULL THEN 'running' "
        f"WHEN {a}.open_blockers > 0 THEN 'blocked' "
        f"WHEN {a}.scheduled_at > {NOW} THEN 'scheduled' ELSE 'ready' END"
    )


def _text(column: str) -> str:
    """A binary-string column (UTF-8 bytes, compared byte by byte) read back as text."""
    return f"CONVERT({column} USING utf8mb4)"


def cols(a: str) -> str:
    """The columns of one job (decoded by ``_rows.job_from_row``)."""
    return (
        f"{a}.id, {_text(f'{a}.type_name')}, {a}.chain_id, {_text(f'{a}.chain_type_name')}, "
        f"{a}.chain_index, {a}.input, {a}.output, {a}.outcome, {a}.created_at, {a}.scheduled_at, "
        f"{a}.completed_at, {_text(f'{a}.completed_by')}, {a}.succeeded_by_job_id, {a}.attempt, "
        f"{a}.last_attempt_at, {a}.last_attempt_error, {_text(f'{a}.leased_by')}, "
        f"{a}.leased_until, {a}.open_blockers > 0, {_text(f'{a}.deduplication_key')}, "
        f"{a}.chain_trace_context, {a}.trace_context, {a}.priority, {a}.limit_key, "
        f"{status_sql(a)}"
    )


def tail_join(root: str, tail: str) -> str:
    """Join the tail (highest ``chain_index``) of the chain whose first job is ``root`` as ``tail``."""
    return (
        f"JOIN {{job}} {tail} ON {tail}.chain_id = {root}.id AND {tail}.chain_index = "
        f"(SELECT MAX(x.chain_index) FROM {{job}} x WHERE x.chain_id = {root}.id)"
    )


def chain_open(root: str) -> str:
    """True if the chain whose first job is ``root`` is open (its tail is open or continued)."""
    return (
        f"(SELECT t.outcome IS NULL OR t.succeeded_by_job_id IS NOT NULL FROM {{job}} t "
        f"WHERE t.chain_id = {root} ORDER BY t.chain_index DESC LIMIT 1)"
    )


INSERT_COLUMNS = (
    "id, type_name, chain_id, chain_type_name, chain_index, input, created_at, scheduled_at, "
    "deduplication_key, chain_trace_context, trace_context, priority, limit_key"
)
INSERT_ROW = "(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
"""The placeholders of one row of :data:`INSERT_COLUMNS`."""


ABOVE_PRIORITIES = 2**31
"""A bound above every priority (an ``INT``): the first round of :func:`next_due_round`."""


def next_due_round(types: int) -> str:
    """One round of ``next_due`` for ``types`` (type name, priority bound) pairs: per pair, the
    first ready job of the type by (priority descending, due time) below the bound that no other
    transaction holds locked, as ``(pair's position, priority, scheduled_at, now)``.
    ``job_claim_idx`` orders a type's ready jobs by priority first, so its earliest due time is not
    its first entry: each round is one range probe of the index per type, and the caller repeats it
    below each priority found (a loose index scan) instead of reading every ready job of the
    type."""
    return " UNION ALL ".join(
        f"(SELECT {i}, j.priority, j.scheduled_at, {NOW} FROM {{job}} j "
        "FORCE INDEX (`{p}job_claim_idx`) WHERE j.ready_type = %s AND j.priority < %s "
        "ORDER BY j.priority DESC, j.scheduled_at, j.id LIMIT 1 FOR UPDATE SKIP LOCKED)"
        for i in range(types)
    )


def queue_stats(types: int | None) -> str:
    """Per type, one row from each index over open jobs (``kind, type, n1, n2, age``): ready
    (ready, scheduled, microseconds the oldest ready job has been due), leased (running, lease
    expired) and blocked (blocked); ``types`` placeholders restrict each part to those types."""

    def only(column: str) -> str:
        return f" AND j.{column} IN ({marks(types)})" if types is not None else ""

    return (
        f"SELECT 0, CONVERT(j.ready_type USING utf8mb4), SUM(j.scheduled_at <= {NOW}), "
        f"SUM(j.scheduled_at > {NOW}), TIMESTAMPDIFF(MICROSECOND, "
        f"MIN(CASE WHEN j.scheduled_at <= {NOW} THEN j.scheduled_at END), {NOW}) "
        f"FROM {{job}} j WHERE j.ready_type IS NOT NULL{only('ready_type')} GROUP BY j.ready_type "
        f"UNION ALL SELECT 1, CONVERT(j.leased_type USING utf8mb4), COUNT(*), "
        f"SUM(j.leased_until <= {NOW}), NULL FROM {{job}} j "
        f"WHERE j.leased_type IS NOT NULL{only('leased_type')} GROUP BY j.leased_type "
        "UNION ALL SELECT 2, CONVERT(j.blocked_type USING utf8mb4), COUNT(*), 0, NULL "
        f"FROM {{job}} j WHERE j.blocked_type IS NOT NULL{only('blocked_type')} "
        "GROUP BY j.blocked_type"
    )


JOB_ACTIVITY = f"""
WITH w AS (SELECT {NOW} AS now, {NOW} - INTERVAL %s MICROSECOND AS since),
recent AS (
    SELECT CONVERT(j.type_name USING utf8mb4) AS type_name, j.completed_at,
           CONVERT(j.completed_by USING utf8mb4) AS completed_by, {status_sql("j")} AS status
    FROM {{job}} j
    WHERE j.outcome IS NULL OR j.completed_at >= (SELECT w.since FROM w)
)
SELECT 'c', r.type_name, r.status, COUNT(*), NULL, NULL FROM recent r GROUP BY r.type_name, r.status
UNION ALL
SELECT 'b', NULL, r.status, COUNT(*),
       FLOOR(TIMESTAMPDIFF(MICROSECOND, w.since, r.completed_at) * %s / %s) AS slice, NULL
FROM recent r, w WHERE r.completed_at >= w.since
GROUP BY slice, r.status
UNION ALL
SELECT 'w', r.completed_by, NULL, COUNT(*), NULL, MAX(r.completed_at)
FROM recent r, w WHERE r.completed_by IS NOT NULL AND r.completed_at >= w.since
GROUP BY r.completed_by
UNION ALL
SELECT 't', NULL, NULL, NULL, NULL, w.now FROM w
"""
"""Counts by type and status of open jobs and jobs closed since ``now - %s`` microseconds, closings
by slice (of ``%s`` slices over the window's ``%s`` microseconds) and status, closings by worker,
and the clock (kind ``t``)."""


class Statements:
    """The fixed statements of the adapter for one :class:`Names`, and builders for the ones whose
    text depends on a list's length (cached per length)."""

    def __init__(self, names: Names) -> None:
        self.names = names
        r = names.render
        self.now = f"SELECT {NOW}"
        self.get_job = r(f"SELECT {cols('j')} FROM {{job}} j WHERE j.id = %s")
        self.get_job_locked = self.get_job + " FOR UPDATE"
        self.get_chain = r(
            f"SELECT {cols('r')}, {cols('t')} FROM {{job}} r {tail_join('r', 't')} "
            "WHERE r.id = %s AND r.chain_index = 0"
        )
        self.tail_id = r(
            "SELECT t.id FROM {job} t WHERE t.chain_id = %s AND EXISTS "
            "(SELECT 1 FROM {job} r WHERE r.id = %s AND r.chain_index = 0) "
            "ORDER BY t.chain_index DESC LIMIT 1"
        )
        self.get_job_blockers = r(
            f"SELECT {cols('r')}, {cols('t')} FROM {{blocker}} b "
            f"JOIN {{job}} r ON r.id = b.blocked_by_chain_id {tail_join('r', 't')} "
            "WHERE b.job_id = %s ORDER BY b.slot"
        )
        self.reschedule = r(
            "UPDATE {job} SET leased_by = NULL, leased_until = NULL, scheduled_at = %s, "
            "last_attempt_error = COALESCE(%s, last_attempt_error) WHERE id = %s"
        )
        self.failing = r(
            "INSERT INTO {blocker} (job_id, slot, blocked_by_chain_id) VALUES (NULL, 0, NULL)"
        )
        self.queue_stats = r(queue_stats(None))
        self.job_activity = r(JOB_ACTIVITY)
        self._cache: dict[tuple[str, int], str] = {}

    def render(self, template: str) -> str:
        return self.names.render(template)

    def sized(self, key: str, count: int, build: Callable[[int], str]) -> str:
        """The statement ``key`` for a list of ``count`` items, built once by ``build(count)``."""
        found = self._cache.get((key, count))
        if found is None:
            if len(self._cache) > 1024:
                self._cache.clear()
            found = self._cache[(key, count)] = self.names.render(build(count))
        return found
