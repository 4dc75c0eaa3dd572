"""The SQL of the adapter for one table prefix (built once per adapter; values are always bound).

Lists are bound as one JSON text parameter and expanded with ``json_each``, so a statement handles a
whole batch. Statements whose text depends only on the prefix (or on a small count, like the number
of job types of a claim) are reused, so SQLite's prepared statement cache serves them.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any, cast

from queuert.json import JsonValue, dumps
from queuert.state import UNREADABLE_TIME, ChainFilter, JobFilter

from queuert_sqlite._rows import COLUMNS, columns
from queuert_sqlite._time import format_ts

__all__ = ["STATUS_SQL", "Query", "Statements", "json_param"]

Query = tuple[str, dict[str, Any]]
"""A statement built for one call, and its named parameters."""


def json_param(value: object) -> str:
    """The JSON text bound for a list or map (ids, keys, timestamps: plain strings and numbers).

    Compact, non-ASCII kept, through queuert's one shared encoder (``json.dumps`` with options
    builds a new encoder per call, which costs more than encoding a claim's or a completion's
    parameters)."""
    return dumps(cast(JsonValue, value))


def _json_list(values: Iterable[str]) -> str:
    return json_param(list(values))


# The chain's tail: the job with the highest chain_index (unique index on (chain_id, chain_index)).
_TAIL_OPEN = (
    "(SELECT t.outcome IS NULL OR t.succeeded_by_job_id IS NOT NULL FROM {p}job t "
    "WHERE t.chain_id = {root} ORDER BY t.chain_index DESC LIMIT 1)"
)

# Derived status, same precedence as queuert.state.derive_status (:now is the store's clock).
STATUS_SQL = (
    "(CASE WHEN j.outcome IS NOT NULL THEN "
    "(CASE WHEN j.succeeded_by_job_id IS NOT NULL THEN 'continued' ELSE j.outcome END) "
    "WHEN j.leased_until IS NOT NULL THEN 'running' "
    "WHEN j.blocked = 1 THEN 'blocked' "
    "WHEN j.scheduled_at > :now THEN 'scheduled' "
    "ELSE 'ready' END)"
)

_RETURNING = ", ".join(COLUMNS)

_READY = "outcome IS NULL AND {a}leased_until IS NULL AND {a}blocked = 0"
_BLOCKED = "outcome IS NULL AND {a}leased_until IS NULL AND {a}blocked = 1"


def _queue_stats(p: str, types: str) -> str:
    """Per type, one row from each index over open jobs: ``(0, type, ready, scheduled, oldest
    ready scheduled_at)``, ``(1, type, running, lease expired, NULL)``, ``(2, type, blocked, 0,
    NULL)``; ?1 is now."""
    return (
        "SELECT 0, j.type_name, sum(j.scheduled_at <= ?1), sum(j.scheduled_at > ?1), "
        f"min(CASE WHEN j.scheduled_at <= ?1 THEN j.scheduled_at END) FROM {p}job j "
        f"WHERE j.{_READY.format(a='j.')} {types}GROUP BY j.type_name "
        "UNION ALL "
        f"SELECT 1, j.type_name, count(*), sum(j.leased_until <= ?1), NULL FROM {p}job j "
        f"WHERE j.leased_until IS NOT NULL AND j.outcome IS NULL {types}GROUP BY j.type_name "
        "UNION ALL "
        f"SELECT 2, j.type_name, count(*), 0, NULL FROM {p}job j "
        f"WHERE j.{_BLOCKED.format(a='j.')} {types}GROUP BY j.type_name"
    )


def _priorities(p: str, types: str) -> str:
    """``prio(type_name, priority)``: the distinct priorities of the ready jobs of each type of the
    JSON list ``types``, highest first. ``job_claim_idx`` orders a type's ready jobs by priority
    first, so its earliest due time is not its first entry: this loose index scan finds each next
    lower priority with one probe, and a statement then reads the first entry of each (type,
    priority) by due time. That reads O(distinct priorities) entries per type, not every ready job.
    """
    probe = (
        f"SELECT j.priority FROM {p}job j INDEXED BY {p}job_claim_idx WHERE j.type_name = {{t}} "
        f"AND j.{_READY.format(a='j.')}{{below}} ORDER BY j.priority DESC LIMIT 1"
    )
    first = probe.format(t="k.value", below="")
    lower = probe.format(t="q.type_name", below=" AND j.priority < q.priority")
    return (
        "WITH RECURSIVE prio(type_name, priority) AS ("
        f"SELECT k.value, ({first}) FROM json_each({types}) k "
        f"UNION ALL SELECT q.type_name, ({lower}) FROM prio q WHERE q.priority IS NOT NULL)"
    )


class Statements:
    """Every statement of the adapter for one table prefix, each with a one-line description
    (``?n`` are positional parameters; a JSON list or map is one parameter)."""

    def __init__(self, prefix: str) -> None:
        p = prefix
        self.prefix = p
        self._claim: dict[int, str] = {}
        J = columns("j")
        R = columns("r")
        T = columns("t")
        self.job_columns = J
        self.chain_columns = f"{R}, {T}"
        self.tail_join = (
            f"JOIN {p}job t ON t.chain_id = r.id AND t.chain_index = "
            f"(SELECT max(x.chain_index) FROM {p}job x WHERE x.chain_id = r.id)"
        )

        def tail_open(root: str) -> str:
            return _TAIL_OPEN.format(p=p, root=root)

        self.tail_open = tail_open

        # -- create ---------------------------------------------------------------------------------
        # insert jobs, one parameter row each (executemany)
        self.insert_job = (
            f"INSERT INTO {p}job (id, type_name, chain_id, chain_type_name, chain_index, input, "
            "created_at, scheduled_at, deduplication_key, chain_trace_context, trace_context, "
            "priority, limit_key) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        )
        # per [chain_id, chain_index] of ?1: (position, does the chain exist, the job at that index)
        self.continuation_lookup = (
            f"SELECT k.key, EXISTS (SELECT 1 FROM {p}job r WHERE r.id = json_extract(k.value, '$[0]') "
            f"AND r.chain_index = 0), {J} FROM json_each(?1) k LEFT JOIN {p}job j "
            "ON j.chain_id = json_extract(k.value, '$[0]') "
            "AND j.chain_index = json_extract(k.value, '$[1]')"
        )
        # per [chain_type, key, scope, since | null, [excluded ids]] of ?1: (position, newest match)
        self.dedup_lookup = (
            f"SELECT k.key, {J} FROM json_each(?1) k JOIN {p}job j ON j.id = ("
            f"SELECT r.id FROM {p}job r "
            "WHERE r.chain_type_name = json_extract(k.value, '$[0]') "
            "AND r.deduplication_key = json_extract(k.value, '$[1]') AND r.chain_index = 0 "
            "AND (json_extract(k.value, '$[3]') IS NULL OR r.created_at >= json_extract(k.value, '$[3]')) "
            "AND r.id NOT IN (SELECT e.value FROM json_each(k.value, '$[4]') e) "
            f"AND (json_extract(k.value, '$[2]') = 'any' OR {tail_open('r.id')}) "
            "ORDER BY r.created_at DESC, r.id DESC LIMIT 1)"
        )
        # which of ?1 (JSON list of ids) are ids of stored jobs
        self.existing_ids = f"SELECT id FROM {p}job WHERE id IN (SELECT value FROM json_each(?1))"

        # a statement that fails (NOT NULL), for poison()
        self.failing_insert = (
            f"INSERT INTO {p}job_blocker (job_id, slot, blocked_by_chain_id) VALUES (NULL, 0, NULL)"
        )

        # -- blockers -------------------------------------------------------------------------------
        # the jobs of ?1 (JSON list of ids), those that exist
        self.jobs_by_ids = f"SELECT {J} FROM json_each(?1) k JOIN {p}job j ON j.id = k.value"
        # per chain of ?1 (JSON list of chain ids): id, its trace context, is it open
        self.blocker_chains = (
            f"SELECT r.id, r.chain_trace_context, {tail_open('r.id')} "
            f"FROM json_each(?1) k JOIN {p}job r ON r.id = k.value AND r.chain_index = 0"
        )
        # per job of ?1 (JSON list of ids): the highest blocker slot it uses
        self.max_slots = (
            f"SELECT job_id, max(slot) FROM {p}job_blocker "
            "WHERE job_id IN (SELECT value FROM json_each(?1)) GROUP BY job_id"
        )
        # insert blocker links (job, slot, blocking chain, trace context)
        self.insert_blocker = (
            f"INSERT INTO {p}job_blocker (job_id, slot, blocked_by_chain_id, trace_context) "
            "VALUES (?, ?, ?, ?)"
        )
        # mark the jobs of ?1 (JSON list of ids) blocked
        self.mark_blocked = (
            f"UPDATE {p}job SET blocked = 1 "
            "WHERE id IN (SELECT value FROM json_each(?1)) AND blocked = 0"
        )

        # -- reads ----------------------------------------------------------------------------------
        # one job by id
        self.get_job = f"SELECT {J} FROM {p}job j WHERE j.id = ?1"
        # a chain: its first job (tagged 0) and its tail (tagged 1)
        self.get_chain = (
            f"SELECT 0, {J} FROM {p}job j WHERE j.id = ?1 AND j.chain_index = 0 "
            f"UNION ALL SELECT * FROM (SELECT 1, {J} FROM {p}job j WHERE j.chain_id = ?1 "
            "ORDER BY j.chain_index DESC LIMIT 1)"
        )
        # the blocker chains of job ?1 (root and tail columns), in slot order
        self.get_job_blockers = (
            f"SELECT {R}, {T} FROM {p}job_blocker b JOIN {p}job r ON r.id = b.blocked_by_chain_id "
            f"{self.tail_join} WHERE b.job_id = ?1 ORDER BY b.slot"
        )
        # the earliest scheduled_at of a ready job of the types of ?1 (JSON list)
        self.next_due = (
            f"{_priorities(p, '?1')} SELECT min((SELECT j.scheduled_at FROM {p}job j "
            f"INDEXED BY {p}job_claim_idx WHERE j.type_name = q.type_name "
            f"AND j.{_READY.format(a='j.')} AND j.priority = q.priority "
            "ORDER BY j.priority DESC, j.scheduled_at LIMIT 1)) FROM prio q"
        )

        # queue health at ?1 (now), per type: tagged rows from the ready, lease and blocked indexes
        self.queue_stats = _queue_stats(p, "")
        # the same for the types of ?2 (JSON list) only
        self.queue_stats_of = _queue_stats(
            p, "AND j.type_name IN (SELECT value FROM json_each(?2)) "
        )

        # -- processing -----------------------------------------------------------------------------
        # is any job of the types of ?2 (JSON list) ready at ?1
        # limited claims (serialised by the write lock): running jobs by (type, limit key), the
        # ready jobs of one type in claim order, and the update of the jobs taken
        self.running_by_key = (
            f"SELECT j.type_name, j.limit_key, count(*) FROM {p}job j "
            "WHERE j.type_name IN (SELECT value FROM json_each(?1)) "
            "AND j.outcome IS NULL AND j.leased_until IS NOT NULL GROUP BY j.type_name, j.limit_key"
        )
        self.ready_in_claim_order = (
            f"SELECT j.priority, j.scheduled_at, j.id, j.type_name, j.limit_key FROM {p}job j "
            f"INDEXED BY {p}job_claim_idx WHERE j.type_name = ?2 "
            f"AND j.{_READY.format(a='j.')} AND j.scheduled_at <= ?1 "
            "ORDER BY j.priority DESC, j.scheduled_at, j.id"
        )
        self.claim_ids = (
            f"UPDATE {p}job SET attempt = attempt + 1, last_attempt_at = ?1, leased_by = ?2, "
            "leased_until = (SELECT json_extract(?4, '$.' || json_quote(type_name))) "
            f"WHERE id IN (SELECT value FROM json_each(?3)) RETURNING {_RETURNING}"
        )
        # (per type and distinct priority, one probe of the claim index, as next_due)
        self.any_ready = (
            f"{_priorities(p, '?2')} SELECT EXISTS (SELECT 1 FROM prio q WHERE EXISTS "
            f"(SELECT 1 FROM {p}job j INDEXED BY {p}job_claim_idx WHERE j.type_name = q.type_name "
            f"AND j.{_READY.format(a='j.')} AND j.priority = q.priority AND j.scheduled_at <= ?1))"
        )
        # set each lease of ?1 (JSON map id -> leased_until) held by worker ?2
        self.renew_leases = (
            f"UPDATE {p}job SET leased_until = "
            f"(SELECT k.value FROM json_each(?1) k WHERE k.key = {p}job.id) "
            "WHERE id IN (SELECT key FROM json_each(?1)) AND leased_by = ?2 "
            "AND outcome IS NULL AND leased_until IS NOT NULL RETURNING id, leased_until"
        )
        # close open job ?1 (leased by ?8 if given) as ?2 with output ?3, successor ?4, error ?7
        self.complete_job = (
            f"UPDATE {p}job SET outcome = ?2, output = ?3, succeeded_by_job_id = ?4, "
            "completed_at = ?5, completed_by = ?6, leased_by = NULL, leased_until = NULL, "
            "last_attempt_error = CASE WHEN ?2 = 'completed' THEN NULL "
            "ELSE coalesce(?7, last_attempt_error) END "
            "WHERE id = ?1 AND outcome IS NULL AND (?8 IS NULL OR leased_by = ?8) "
            f"RETURNING {_RETURNING}"
        )
        # close a batch: ?1 [[id, outcome, output JSON text, successor, error], ...], ?2 now,
        # ?3 worker id, ?4 owner (only jobs that are open, and leased by the owner if given)
        self.complete_many = (
            f"UPDATE {p}job SET outcome = c.outcome, output = c.output, "
            "succeeded_by_job_id = c.successor, completed_at = ?2, completed_by = ?3, "
            "leased_by = NULL, leased_until = NULL, "
            "last_attempt_error = CASE WHEN c.outcome = 'completed' THEN NULL "
            f"ELSE coalesce(c.error, {p}job.last_attempt_error) END "
            "FROM (SELECT json_extract(k.value, '$[0]') AS id, "
            "json_extract(k.value, '$[1]') AS outcome, json_extract(k.value, '$[2]') AS output, "
            "json_extract(k.value, '$[3]') AS successor, json_extract(k.value, '$[4]') AS error "
            "FROM json_each(?1) k) AS c "
            f"WHERE {p}job.id = c.id AND {p}job.outcome IS NULL "
            f"AND (?4 IS NULL OR {p}job.leased_by = ?4) RETURNING {_RETURNING}"
        )
        # complete_many for jobs the caller claimed: what the completions and the claimed jobs do
        # not tell (id, attempt, last_attempt_at); the caller builds each closed job from them
        self.complete_many_claimed = self.complete_many.replace(
            f"RETURNING {_RETURNING}", "RETURNING id, attempt, last_attempt_at"
        )
        # before closing jobs: does any job wait for one of their chains?
        self.any_chain_has_dependents = (
            f"SELECT EXISTS (SELECT 1 FROM json_each(?1) k JOIN {p}job j ON j.id = k.value "
            f"JOIN {p}job_blocker b ON b.blocked_by_chain_id = j.chain_id)"
        )
        # before closing a job: does any job wait for its chain?
        self.chain_has_dependents = (
            f"SELECT EXISTS (SELECT 1 FROM {p}job j JOIN {p}job_blocker b "
            "ON b.blocked_by_chain_id = j.chain_id WHERE j.id = ?1)"
        )
        # after closing a job: is its chain still open, and does any job wait for the chain?
        self.after_close = (
            f"SELECT {tail_open('?1')}, "
            f"EXISTS (SELECT 1 FROM {p}job_blocker b WHERE b.blocked_by_chain_id = ?1)"
        )
        # the trace contexts of the links to chain ?1, in the blocked jobs' order
        self.blocker_trace_contexts = (
            f"SELECT b.trace_context FROM {p}job_blocker b JOIN {p}job d ON d.id = b.job_id "
            "WHERE b.blocked_by_chain_id = ?1 AND b.trace_context IS NOT NULL "
            "ORDER BY d.created_at, d.id, b.slot"
        )
        # release the jobs blocked by chain ?1 whose blocker chains are all closed (now ?2)
        self.unblock = (
            f"UPDATE {p}job SET blocked = 0, scheduled_at = max(scheduled_at, ?2) "
            "WHERE blocked = 1 AND id IN "
            f"(SELECT b.job_id FROM {p}job_blocker b WHERE b.blocked_by_chain_id = ?1) "
            f"AND NOT EXISTS (SELECT 1 FROM {p}job_blocker o WHERE o.job_id = {p}job.id "
            f"AND {tail_open('o.blocked_by_chain_id')}) "
            f"RETURNING {_RETURNING}"
        )
        # release job ?1 to run at ?2, keeping error ?3 as its last attempt error
        self.reschedule = (
            f"UPDATE {p}job SET leased_by = NULL, leased_until = NULL, scheduled_at = ?2, "
            "last_attempt_error = coalesce(?3, last_attempt_error) "
            f"WHERE id = ?1 RETURNING {_RETURNING}"
        )
        # up to ?4 jobs of the types of ?2 whose lease ran out at ?1, except the ids of ?3
        self.expired_leases = (
            f"SELECT {J} FROM {p}job j WHERE j.type_name IN (SELECT value FROM json_each(?2)) "
            "AND j.leased_until IS NOT NULL AND j.leased_until <= ?1 AND j.outcome IS NULL "
            "AND j.id NOT IN (SELECT value FROM json_each(?3)) "
            "ORDER BY j.leased_until, j.id LIMIT ?4"
        )
        # end the leases of the jobs of ?1 (JSON list of ids)
        self.clear_leases = (
            f"UPDATE {p}job SET leased_by = NULL, leased_until = NULL "
            "WHERE id IN (SELECT value FROM json_each(?1))"
        )

        # -- activity (named parameters :now, :since, :buckets, :window seconds) ----------------------
        recent = (
            f"SELECT j.type_name, j.completed_at, j.completed_by, {STATUS_SQL} AS status "
            f"FROM {p}job j WHERE j.outcome IS NULL OR j.completed_at >= :since"
        )
        self.job_activity = (
            f"WITH recent AS ({recent}) "
            "SELECT 'c', type_name, status, count(*), NULL, NULL FROM recent "
            "GROUP BY type_name, status "
            "UNION ALL "
            "SELECT 'b', NULL, status, count(*), CAST((julianday(completed_at) - julianday(:since))"
            " * 86400.0 * :buckets / :window AS INTEGER) AS slot, NULL FROM recent "
            "WHERE completed_at IS NOT NULL GROUP BY slot, status "
            "UNION ALL "
            "SELECT 'w', completed_by, NULL, count(*), NULL, max(completed_at) FROM recent "
            "WHERE completed_by IS NOT NULL AND completed_at IS NOT NULL GROUP BY completed_by"
        )

        # -- administration -------------------------------------------------------------------------
        # make the jobs of ?1 (JSON list of ids) due at ?2 at the latest
        self.trigger = (
            f"UPDATE {p}job SET scheduled_at = min(scheduled_at, ?2) "
            "WHERE id IN (SELECT value FROM json_each(?1))"
        )
        # the ids of ?1 (JSON list) that name chains, in input order
        self.chain_roots = (
            f"SELECT k.value FROM json_each(?1) k JOIN {p}job r ON r.id = k.value "
            "AND r.chain_index = 0 ORDER BY k.key"
        )
        # the chains that jobs of chain ?1 wait for (their blocker chains)
        self.chain_blocker_chains = (
            f"SELECT b.blocked_by_chain_id FROM {p}job j "
            f"JOIN {p}job_blocker b ON b.job_id = j.id "
            f"JOIN {p}job r ON r.id = b.blocked_by_chain_id AND r.chain_index = 0 "
            "WHERE j.chain_id = ?1 ORDER BY j.chain_index, b.slot"
        )
        # links from jobs outside the chains of ?1 to chains of ?1
        self.external_references = (
            f"SELECT DISTINCT k.key, b.blocked_by_chain_id, b.job_id FROM json_each(?1) k "
            f"JOIN {p}job_blocker b ON b.blocked_by_chain_id = k.value "
            f"JOIN {p}job d ON d.id = b.job_id "
            "WHERE d.chain_id NOT IN (SELECT value FROM json_each(?1)) ORDER BY k.key, b.job_id"
        )
        # the chains of ?1 (JSON list of chain ids), root and tail columns
        self.chains_by_ids = (
            f"SELECT {R}, {T} FROM json_each(?1) k JOIN {p}job r ON r.id = k.value {self.tail_join}"
        )
        # delete the blocker links of the jobs of the chains of ?1
        self.delete_blockers = (
            f"DELETE FROM {p}job_blocker WHERE job_id IN (SELECT id FROM {p}job "
            "WHERE chain_id IN (SELECT value FROM json_each(?1)))"
        )
        # delete the jobs of the chains of ?1
        self.delete_jobs = f"DELETE FROM {p}job WHERE chain_id IN (SELECT value FROM json_each(?1))"

    # -- lists (built per call from the filter; named parameters) -------------------------------------

    def list_chains(
        self, filter: ChainFilter, *, desc: bool, after: tuple[datetime, str] | None, limit: int
    ) -> Query:
        """A page of chains (root and tail columns) matching ``filter``, by the root's
        (created_at, id), after the cursor position ``after``; ``limit + 1`` rows at most."""
        p = self.prefix
        conds = ["r.chain_index = 0"]
        params: dict[str, Any] = {"lim": limit + 1}
        if filter.type_names is not None:
            conds.append("r.type_name IN (SELECT value FROM json_each(:types))")
            params["types"] = _json_list(filter.type_names)
        if filter.status is not None:
            closed = "(t.outcome IS NOT NULL AND t.succeeded_by_job_id IS NULL)"
            conds.append(closed if filter.status == "closed" else f"NOT {closed}")
        if filter.chain_ids is not None:
            conds.append("r.id IN (SELECT value FROM json_each(:chain_ids))")
            params["chain_ids"] = _json_list(filter.chain_ids)
        if filter.job_ids is not None:
            conds.append(
                f"r.id IN (SELECT x.chain_id FROM {p}job x "
                "WHERE x.id IN (SELECT value FROM json_each(:job_ids)))"
            )
            params["job_ids"] = _json_list(filter.job_ids)
        if filter.root_only:
            conds.append(
                f"NOT EXISTS (SELECT 1 FROM {p}job_blocker b WHERE b.blocked_by_chain_id = r.id)"
            )
        if filter.deduplication_keys is not None:
            conds.append("r.deduplication_key IN (SELECT value FROM json_each(:dedup_keys))")
            params["dedup_keys"] = _json_list(filter.deduplication_keys)
        _created_between(conds, params, "r", filter.created_from, filter.created_to)
        _after(conds, params, "r", after, desc, f"{p}job")
        direction = "DESC" if desc else "ASC"
        query = (
            f"SELECT {self.chain_columns} FROM {p}job r {self.tail_join} "
            f"WHERE {' AND '.join(conds)} "
            f"ORDER BY r.created_at {direction}, r.id {direction} LIMIT :lim"
        )
        return query, params

    def list_jobs(
        self, filter: JobFilter, *, desc: bool, after: tuple[datetime, str] | None, limit: int
    ) -> Query:
        """A page of jobs matching ``filter`` by (created_at, id) after ``after`` (``:now`` is
        bound by the caller when the statement filters on the status)."""
        conds: list[str] = []
        params: dict[str, Any] = {"lim": limit + 1}
        if filter.type_names is not None:
            conds.append("j.type_name IN (SELECT value FROM json_each(:types))")
            params["types"] = _json_list(filter.type_names)
        if filter.statuses is not None:
            conds.append(f"{STATUS_SQL} IN (SELECT value FROM json_each(:statuses))")
            params["statuses"] = _json_list(filter.statuses)
        if filter.job_ids is not None:
            conds.append("j.id IN (SELECT value FROM json_each(:job_ids))")
            params["job_ids"] = _json_list(filter.job_ids)
        if filter.chain_ids is not None:
            conds.append("j.chain_id IN (SELECT value FROM json_each(:chain_ids))")
            params["chain_ids"] = _json_list(filter.chain_ids)
        if filter.chain_type_names is not None:
            conds.append("j.chain_type_name IN (SELECT value FROM json_each(:chain_types))")
            params["chain_types"] = _json_list(filter.chain_type_names)
        _created_between(conds, params, "j", filter.created_from, filter.created_to)
        _after(conds, params, "j", after, desc, f"{self.prefix}job")
        return self._job_page(conds, params, desc), params

    def list_blocked_jobs(
        self, chain_id: str, *, desc: bool, after: tuple[datetime, str] | None, limit: int
    ) -> Query:
        """A page of the jobs that chain ``chain_id`` blocks, by (created_at, id) after ``after``."""
        conds = [
            f"j.id IN (SELECT b.job_id FROM {self.prefix}job_blocker b "
            "WHERE b.blocked_by_chain_id = :chain)"
        ]
        params: dict[str, Any] = {"chain": chain_id, "lim": limit + 1}
        _after(conds, params, "j", after, desc, f"{self.prefix}job")
        return self._job_page(conds, params, desc), params

    def list_chain_jobs(self, chain_id: str, *, desc: bool, after: int | None, limit: int) -> Query:
        """A page of the jobs of chain ``chain_id`` by chain_index after ``after`` (a chain_id
        always names its chain's first job, so a non-chain id matches nothing)."""
        params: dict[str, Any] = {"chain": chain_id, "lim": limit + 1}
        keyset = ""
        if after is not None:
            keyset = f"AND j.chain_index {'<' if desc else '>'} :after "
            params["after"] = after
        direction = "DESC" if desc else "ASC"
        query = (
            f"SELECT {self.job_columns} FROM {self.prefix}job j WHERE j.chain_id = :chain {keyset}"
            f"ORDER BY j.chain_index {direction} LIMIT :lim"
        )
        return query, params

    def _job_page(self, conds: list[str], params: dict[str, Any], desc: bool) -> str:
        direction = "DESC" if desc else "ASC"
        where = f"WHERE {' AND '.join(conds)} " if conds else ""
        return (
            f"SELECT {self.job_columns} FROM {self.prefix}job j {where}"
            f"ORDER BY j.created_at {direction}, j.id {direction} LIMIT :lim"
        )

    def claim(self, type_count: int) -> str:
        sql = self._claim.get(type_count)
        if sql is None:
            sql = self._claim[type_count] = self._build_claim(type_count)
        return sql

    def _build_claim(self, type_count: int) -> str:
        """Claim the first ready jobs of ``type_count`` types in one UPDATE ... RETURNING, by
        priority (highest first), then oldest.

        Parameters: ?1 now, ?2 limit, ?3 worker id, then the type names, then each type's new
        ``leased_until``. Each type contributes its own first ``limit`` jobs (an ordered range scan
        of the claim index, named so that the planner never picks another index and sorts the
        whole backlog), and the union is cut to ``limit`` again.
        """
        p = self.prefix
        types = [f"?{4 + i}" for i in range(type_count)]
        untils = [f"?{4 + type_count + i}" for i in range(type_count)]
        parts = [
            f"SELECT * FROM (SELECT j.id, j.priority, j.scheduled_at FROM {p}job j "
            f"INDEXED BY {p}job_claim_idx WHERE j.type_name = {t} "
            f"AND j.{_READY.format(a='j.')} AND j.scheduled_at <= ?1 "
            "ORDER BY j.priority DESC, j.scheduled_at, j.id LIMIT ?2)"
            for t in types
        ]
        pick = " UNION ALL ".join(parts)
        if type_count > 1:
            pick = f"SELECT id FROM ({pick}) ORDER BY priority DESC, scheduled_at, id LIMIT ?2"
        else:
            pick = f"SELECT id FROM ({pick})"
        lease = " ".join(f"WHEN {t} THEN {u}" for t, u in zip(types, untils, strict=True))
        return (
            f"UPDATE {p}job SET attempt = attempt + 1, last_attempt_at = ?1, leased_by = ?3, "
            f"leased_until = CASE type_name {lease} END "
            f"WHERE id IN ({pick}) RETURNING {_RETURNING}"
        )


def _created_between(
    conds: list[str],
    params: dict[str, Any],
    alias: str,
    start: datetime | None,
    end: datetime | None,
) -> None:
    if start is not None:
        conds.append(f"{alias}.created_at >= :created_from")
        params["created_from"] = format_ts(start)
    if end is not None:
        conds.append(f"{alias}.created_at < :created_to")
        params["created_to"] = format_ts(end)


def _after(
    conds: list[str],
    params: dict[str, Any],
    alias: str,
    after: tuple[datetime, str] | None,
    desc: bool,
    job_table: str,
) -> None:
    if after is None:
        return
    at = ":after_at"
    if after[0] == UNREADABLE_TIME:
        # The page ended on a job whose created_at is not a time: it reads as 1970, but its text
        # sorts elsewhere. Start after the text it has (the cursor's id names the job, or the
        # chain, whose id is its first job's), or the next page would skip or repeat rows.
        at = f"coalesce((SELECT k.created_at FROM {job_table} k WHERE k.id = :after_id), {at})"
    conds.append(f"({alias}.created_at, {alias}.id) {'<' if desc else '>'} ({at}, :after_id)")
    params["after_at"] = format_ts(after[0])
    params["after_id"] = after[1]
