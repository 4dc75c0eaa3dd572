"""Every statement of the PostgreSQL state adapter, rendered once per (schema, table prefix).

Conventions: ``$n`` placeholders with explicit casts (so every driver binds the same types); ids travel
as text and are cast to ``uuid`` in SQL; JSON travels as text (``::json``) and comes back as text;
"now" is ``statement_timestamp()`` (one clock reading per statement, taken by the server).
"""

from __future__ import annotations

from queuert_postgres._provider import Sql
from queuert_postgres._schema import Names

__all__ = [
    "JOB_ID",
    "NCOLS",
    "AddBlockersRow",
    "ClaimRow",
    "ClosedRow",
    "CompleteRow",
    "CreateRow",
    "DeleteRow",
    "ReapRow",
    "RenewRow",
    "Statements",
    "TriggerRow",
    "cols",
    "status_sql",
]

NOW = "statement_timestamp()"

NCOLS = 26
"""Number of columns :func:`cols` selects for one job."""

READABLE_FROM = "'0001-01-02 00:00:00+00'::timestamptz"
READABLE_TO = "'9999-12-30 00:00:00+00'::timestamptz"
"""The times Python's ``datetime`` reads in any session time zone. ``timestamptz`` reaches from 4713
BC to 294276 AD and holds ``infinity``; a time outside these bounds (edited by hand) would make the
driver fail the whole result, so :func:`cols` selects it as NULL and names it in its last column."""

TIME_COLUMNS = ("created_at", "scheduled_at", "completed_at", "last_attempt_at", "leased_until")


def readable(expr: str) -> str:
    """``expr`` (a timestamptz) when Python can read it, else NULL."""
    return f"CASE WHEN {expr} BETWEEN {READABLE_FROM} AND {READABLE_TO} THEN {expr} END"


def micros(expr: str) -> str:
    """``expr`` (a timestamptz) as microseconds since the Unix epoch (``int8``) when Python can read
    it, else NULL; exact on every supported server (before PostgreSQL 14 ``extract`` gives a
    ``float8``: whole seconds and the microseconds within the minute each fit it exactly). The driver
    decodes an ``int8`` in a fraction of the time of a ``timestamptz``, and times repeated within a
    result (a claim's lease and attempt times, a batch's creation time) become one ``datetime``
    each (:func:`queuert_postgres._rows.job_from_claim_row`)."""
    return (
        f"CASE WHEN {expr} BETWEEN {READABLE_FROM} AND {READABLE_TO} THEN "
        f"extract(epoch FROM date_trunc('second', {expr}))::int8 * 1000000 "
        f"+ extract(microseconds FROM {expr})::int8 % 1000000 END"
    )


def _unreadable(a: str) -> str:
    """NULL, or ``<column> <stored text>`` of the first time of job row ``a`` Python cannot read."""
    whens = " ".join(
        f"WHEN NOT {a}.{c} BETWEEN {READABLE_FROM} AND {READABLE_TO} THEN '{c} ' || {a}.{c}::text"
        for c in TIME_COLUMNS
    )
    return f"CASE {whens} END"


def status_sql(a: str) -> str:
    """The derived status of the job row ``a`` (precedence of :func:`queuert.state.derive_status`)."""
    return (
        f"CASE WHEN {a}.outcome IS NOT NULL THEN "
        f"(CASE WHEN {a}.succeeded_by_job_id IS NOT NULL THEN 'continued' ELSE {a}.outcome END) "
        f"WHEN {a}.leased_until IS NOT NULL THEN 'running' "
        f"WHEN {a}.open_blockers > 0 THEN 'blocked' "
        f"WHEN {a}.scheduled_at > {NOW} THEN 'scheduled' ELSE 'ready' END"
    )


def cols(a: str, *, in_micros: bool = False) -> str:
    """The columns of one job (decoded by ``_rows.job_from_row``; with ``in_micros``, its times as
    :func:`micros`, decoded by ``_rows.job_from_claim_row``)."""
    time = micros if in_micros else readable
    return (
        f"{a}.id::text, {a}.type_name, {a}.chain_id::text, {a}.chain_type_name, {a}.chain_index, "
        f"{a}.input::text, {a}.output::text, {a}.outcome, {time(f'{a}.created_at')}, "
        f"{time(f'{a}.scheduled_at')}, {time(f'{a}.completed_at')}, {a}.completed_by, "
        f"{a}.succeeded_by_job_id::text, {a}.attempt, {time(f'{a}.last_attempt_at')}, "
        f"{a}.last_attempt_error, {a}.leased_by, {time(f'{a}.leased_until')}, "
        f"{a}.open_blockers > 0, {a}.deduplication_key, {a}.chain_trace_context, "
        f"{a}.trace_context, {a}.priority, {a}.limit_key, {status_sql(a)}, {_unreadable(a)}"
    )


NULL_COLS = ", ".join(["NULL"] * NCOLS)

# -- result rows ----------------------------------------------------------------------------------
# A statement that returns several kinds of rows tags each with its kind in the first column and
# pads the columns a kind does not use with NULLs. The classes below name each statement's kinds and
# column positions; the statements are rendered from them, and the adapter decodes with them.

JOB_ID = 0
"""Position of the job's id within :func:`cols`."""


class CreateRow:
    """Rows of :data:`CREATE`; the first row is always the ``CLASHES`` row."""

    CLASHES = 0
    """kind: ``CLASH`` is the first id (input order) stored already or repeated in the batch, or NULL."""
    MATCHED = 1
    """kind: a stored job that a leader's continuation or deduplication look-up found."""
    INSERTED = 2
    """kind: an inserted job (matched to its input by chain position)."""

    KIND = 0
    CLASH = 1
    LEADER = 2
    """``MATCHED``: the ordinal of the leader."""
    JOB = 3


class AddBlockersRow:
    """Rows of :data:`ADD_BLOCKERS`: one per input link (in input order), or one naming the first
    link whose job or blocker chain does not exist (``MISSING_ITEM`` not NULL)."""

    MISSING_IS_JOB = 0
    """True if the job of the missing link is missing, else its blocker chain is."""
    MISSING_ITEM = 1
    MISSING_CHAIN = 2
    ITEM = 3
    """The index of the link's entry in the input."""
    CHAIN = 4
    """The blocker chain (NULL for an entry without blockers)."""
    TAIL = 5
    """The state of the blocker chain's tail: 'open', 'closed' or 'follow' (it continued)."""
    CHAIN_TRACE_CONTEXT = 6
    FRESH = 7
    """The link is new (the job did not wait for that chain before)."""
    JOB = 8


class ClaimRow:
    """Rows of :data:`CLAIM`: at least one; job columns NULL when nothing was claimed."""

    HAS_MORE = 0
    JOB = 1


class RenewRow:
    """Rows of :data:`RENEW`: (renewed, job id, new leased_until); not renewed: locked right now."""

    RENEWED = 0
    ID = 1
    LEASED_UNTIL = 2


class CompleteRow:
    """Rows of :data:`COMPLETE` and :data:`COMPLETE_CATCH_UP`; ``ORDINAL`` is the 1-based position
    of the completion the row belongs to."""

    CLOSED = 0
    """kind: the job the completion closed (job columns)."""
    UNBLOCKED = 1
    """kind: a job released because the closed chain was its last open blocker (job columns)."""
    TRACE_CONTEXT = 2
    """kind: ``TEXT`` is the trace context of a blocker link to the closed chain."""
    TAIL_MOVED = 3
    """kind: the closed job changed between the statement's snapshot and its lock; ``TEXT`` is the
    chain and ``OTHER`` a dependent job the statement did handle (NULL: none)."""
    REFUSED = 4
    """kind: the completion was refused; ``TEXT`` is the job's outcome, ``OTHER`` its lease holder
    and the first job column its id (NULL: no such job)."""

    KIND = 0
    ORDINAL = 1
    TEXT = 2
    OTHER = 3
    JOB = 4


class ClosedRow:
    """What :data:`COMPLETE_ONE_PLAIN_CLAIMED` returns of a job it closed (after the ordinal, in
    :data:`COMPLETE_PLAIN_CLAIMED`): what its completion and the claimed job do not tell."""

    COMPLETED_AT = 0
    ATTEMPT = 1
    LAST_ATTEMPT_AT = 2


class TriggerRow:
    """Rows of :data:`TRIGGER`."""

    TRIGGERED = 0
    """kind: a triggered job (job columns)."""
    REFUSED = 1
    """kind: a job that cannot be triggered; ``STATUS`` its status (NULL: no such job) and the
    first job column its id."""

    KIND = 0
    ORDINAL = 1
    STATUS = 2
    JOB = 3


class ReapRow:
    """Rows of :data:`REAP`: the job (lease cleared), then the lease it had."""

    JOB = 0
    LEASED_BY = NCOLS
    LEASED_UNTIL = NCOLS + 1


class DeleteRow:
    """Rows of :data:`DELETE`: deleted chains, or else the links that prevented the delete."""

    CHAIN = 0
    """kind: a deleted chain (root and tail job columns from ``ROOT``)."""
    REFERENCE = 1
    """kind: a link from a job outside the set (``REF_JOB``) to a chain of it (``REF_CHAIN``)."""

    KIND = 0
    REF_CHAIN = 1
    REF_JOB = 2
    ROOT = 3


READY = "{a}.outcome IS NULL AND {a}.open_blockers = 0 AND {a}.leased_until IS NULL"

LEASED = "{a}.outcome IS NULL AND {a}.leased_until IS NOT NULL"
"""Status ``running`` (the predicate of the leased index)."""


def tail_of(chain: str, *, lock: str = "") -> str:
    """A LATERAL subquery selecting the tail (highest ``chain_index``) of chain ``chain``.

    The chain position index holds continuations only (a first job's position is its primary key:
    ``chain_id = id``). Unlocked, the tail is the last continuation, probed backwards in that
    index, or else the first job, probed by its key (the second arm runs only when the first finds
    none). A row lock is not allowed over a ``UNION``: locked, the chain's jobs are read from both
    indexes at once (``BitmapOr``) and the last one is locked."""
    if lock:
        return (
            f"(SELECT * FROM {{job}} t WHERE {chain_members(chain).format(a='t')} "
            f"ORDER BY t.chain_index DESC LIMIT 1 {lock})"
        )
    return (
        f"((SELECT * FROM {{job}} t WHERE t.chain_id = {chain} AND t.chain_index > 0 "
        f"ORDER BY t.chain_index DESC LIMIT 1) "
        f"UNION ALL (SELECT * FROM {{job}} t WHERE t.id = {chain} AND t.chain_id = {chain}) "
        f"LIMIT 1)"
    )


def chain_members(chain: str) -> str:
    """A predicate on ``{a}`` (job alias, filled by ``format``) and a column ``{chain}`` holding a
    chain id: the job belongs to that chain. The first job is found by its key, the continuations
    in the chain position index (which holds only them): PostgreSQL reads the two with a
    ``BitmapOr``."""
    return f"{{a}}.chain_id = {chain} AND ({{a}}.id = {chain} OR {{a}}.chain_index > 0)"


def chain_open(root: str) -> str:
    """True if the chain whose first job is ``root`` is open (its tail is open or continued)."""
    return (
        f"EXISTS (SELECT 1 FROM {tail_of(root)} t "
        f"WHERE t.outcome IS NULL OR t.succeeded_by_job_id IS NOT NULL)"
    )


def _insert_new(name: str, which: str, conflict: str) -> str:
    """A CTE of :data:`CREATE` inserting the rows of ``x`` that match ``which``. First jobs skip a
    row whose id is taken (their chain position is their key); a continuation whose position a
    concurrent transaction took returns that job (the update of the arbiter row locks it, exactly
    one continuation per position), which the caller reads as the continuation that already
    exists. The arbiter names the predicate of the partial chain position index."""
    return f"""{name} AS (
    INSERT INTO {{job}} AS j (id, type_name, chain_id, chain_type_name, chain_index, input,
                              created_at, scheduled_at, deduplication_key,
                              chain_trace_context, trace_context, priority, limit_key)
    SELECT x.id, x.type_name, coalesce(x.chain_id, x.id), x.chain_type_name, x.chain_index,
           x.input::json, {NOW},
           greatest(coalesce(x.sched_at, {NOW} + x.sched_after * interval '1 second'), {NOW}),
           x.dkey, x.ctc, x.tc, x.pri, x.lkey
    FROM x WHERE {which} AND NOT EXISTS (SELECT 1 FROM clash)
    ORDER BY x.ord
    {conflict}
    RETURNING j.*
)"""


_NEXT_CONFLICT = (
    "ON CONFLICT (chain_id, chain_index) WHERE chain_index > 0\n"
    "    DO UPDATE SET chain_index = excluded.chain_index"
)

CREATE = f"""
WITH i AS (
    SELECT u.ord::int AS ord, u.id::uuid AS id, u.type_name, u.chain_type_name,
           u.chain_id::uuid AS chain_id, u.chain_index, u.input, u.sched_at, u.sched_after,
           u.dkey, u.dany, u.dwin, u.ctc, u.tc, coalesce(u.pri, 0) AS pri, u.lkey,
           (CASE WHEN u.chain_id IS NOT NULL
                 THEN min(u.ord) OVER (PARTITION BY u.chain_id, u.chain_index)
                 WHEN u.dkey IS NOT NULL
                 THEN min(u.ord) OVER (PARTITION BY u.chain_type_name, u.dkey)
                 ELSE u.ord END)::int AS leader
    FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::int[], $6::text[],
                $7::timestamptz[], $8::float8[], $9::text[], $10::bool[], $11::float8[],
                $12::text[], $13::text[], $16::int[], $17::text[])
         WITH ORDINALITY AS u(id, type_name, chain_type_name, chain_id, chain_index, input,
                              sched_at, sched_after, dkey, dany, dwin, ctc, tc, pri, lkey, ord)
),
cont AS (
    SELECT i.ord, j.id AS rid
    FROM i JOIN {{job}} j ON j.chain_id = i.chain_id AND j.chain_index = i.chain_index
    WHERE i.chain_id IS NOT NULL AND i.leader = i.ord AND j.chain_index > 0
),
dm AS (
    SELECT DISTINCT ON (i.ord) i.ord, r.id AS rid
    FROM i JOIN {{job}} r
      ON r.chain_type_name = i.chain_type_name AND r.deduplication_key = i.dkey
     AND r.chain_index = 0
    WHERE i.dkey IS NOT NULL AND i.leader = i.ord
      AND (i.dwin IS NULL OR r.created_at >= {NOW} - i.dwin * interval '1 second')
      AND NOT EXISTS (SELECT 1 FROM unnest($14::int[], $15::text[]) AS e(o, c)
                      WHERE e.o = i.ord AND e.c::uuid = r.id)
      AND (i.dany OR {chain_open("r.id")})
    ORDER BY i.ord, r.created_at DESC, r.id DESC
),
x AS (
    SELECT i.* FROM i
    WHERE i.leader = i.ord
      AND NOT EXISTS (SELECT 1 FROM cont WHERE cont.ord = i.ord)
      AND NOT EXISTS (SELECT 1 FROM dm WHERE dm.ord = i.ord)
),
clash AS (
    SELECT x.ord, x.id FROM x WHERE EXISTS (SELECT 1 FROM {{job}} j WHERE j.id = x.id)
    UNION ALL
    SELECT min(x.ord), x.id FROM x GROUP BY x.id HAVING count(*) > 1
),
{_insert_new("ins_first", "x.chain_index = 0", "ON CONFLICT DO NOTHING")},
{_insert_new("ins_next", "x.chain_index > 0", _NEXT_CONFLICT)},
ins AS (SELECT * FROM ins_first UNION ALL SELECT * FROM ins_next),
found AS (
    SELECT cont.ord, j.* FROM cont JOIN {{job}} j ON j.id = cont.rid
    UNION ALL
    SELECT dm.ord, j.* FROM dm JOIN {{job}} j ON j.id = dm.rid
)
SELECT {CreateRow.CLASHES} AS kind,
       (SELECT (array_agg(clash.id ORDER BY clash.ord))[1] FROM clash)::text, NULL::int, {NULL_COLS}
/*all*/
UNION ALL
SELECT {CreateRow.MATCHED}, NULL, f.ord, {cols("f")} FROM found f
UNION ALL
SELECT {CreateRow.INSERTED}, NULL, NULL, {cols("ins")} FROM ins
"""
ID_SEPARATOR = ","
INPUT_SEPARATOR = "\x1e"
_IDS = "string_to_array($1::text, ',')"
_INPUTS = "string_to_array($4::text, E'\\x1e')"
"""A batch's ids and inputs reach :data:`CREATE_FIRST` as one text each, joined with
:data:`ID_SEPARATOR` (no UUID holds a comma) and :data:`INPUT_SEPARATOR` (JSON text escapes every
control character), and are split here: the driver checks and encodes each element of a text array
one by one, which cost the client more than the rest of a row's arguments."""

CREATE_FIRST = f"""
WITH ins AS (
    INSERT INTO {{job}} AS j (id, type_name, chain_id, chain_type_name, chain_index, input, created_at,
                              scheduled_at, chain_trace_context, trace_context, priority,
                              limit_key)
    SELECT u.id::uuid, coalesce(u.type_name, ($2::text[])[1]), u.id::uuid,
           coalesce(u.chain_type_name, u.type_name, ($2::text[])[1]), 0, u.input::json, {NOW},
           greatest(coalesce(u.sched_at, {NOW} + u.sched_after * interval '1 second'), {NOW}),
           u.ctc, u.tc, coalesce(u.pri, 0), u.lkey
    FROM unnest({_IDS}, $2::text[], $3::text[], {_INPUTS}, $5::timestamptz[], $6::float8[],
                $7::text[], $8::text[], $9::int[], $10::text[])
         WITH ORDINALITY AS u(id, type_name, chain_type_name, input, sched_at, sched_after, ctc, tc,
                              pri, lkey, ord)
    /*ids*/
    ORDER BY u.ord
    ON CONFLICT DO NOTHING
    RETURNING j.id, j.scheduled_at
)
SELECT {NOW}, count(*),
       CASE WHEN count(*) < cardinality({_IDS}) THEN array_agg(ins.id::text) END,
       array_agg(ins.id::text) FILTER (WHERE ins.scheduled_at > {NOW}),
       array_agg(ins.scheduled_at) FILTER (WHERE ins.scheduled_at > {NOW})
FROM ins
/*all*/
"""
"""The common case of :data:`CREATE`: chain starts without deduplication. A row whose id is taken
(stored, or earlier in the batch) is skipped; the caller then undoes the batch. One row comes back,
with only what the server decided: the statement's time (every row's ``created_at``, and its
``scheduled_at`` unless later), how many rows were inserted, their ids if not all were, and the ids
and times of the rows scheduled later. The caller knows the rest of each row.

A batch of one job type sends its type name once (``$2`` of one element: the rows after the first
read NULL and take it), and chain type names equal to the type names not at all (``$3`` empty): each
text array element costs the driver about a microsecond to inspect and encode."""

_FIRST_ROWS, _FIRST_RESULT = CREATE_FIRST.rsplit("\nSELECT ", 1)

CREATE_FIRST_NOTIFY = f"""{_FIRST_ROWS}
, res AS (
SELECT {_FIRST_RESULT.replace(", count(*),", " AS at, count(*) AS n,", 1)})
SELECT r.*,
       (SELECT count(pg_notify(m.c, m.p)) FROM unnest($11::text[], $12::text[]) AS m(c, p)
        WHERE r.n = cardinality({_IDS}))
FROM res r
"""
""":data:`CREATE_FIRST` that also sends the notifications of channels ``$11`` and payloads ``$12``
(text arrays) in its transaction, only when every row was inserted: a start without a caller's
transaction and its wake-ups in one autocommit statement. PostgreSQL delivers them when it
commits."""

CREATE_ONE = f"""
INSERT INTO {{job}} AS j (id, type_name, chain_id, chain_type_name, chain_index, input, created_at,
                          scheduled_at, chain_trace_context, trace_context, priority, limit_key)
SELECT $1::text::uuid, $2::text, $1::text::uuid, $3::text, 0, $4::text::json, {NOW},
       greatest(coalesce($5::timestamptz, {NOW} + $6::float8 * interval '1 second'), {NOW}),
       $7::text, $8::text, $9::int, $10::text
/*id*/
ON CONFLICT DO NOTHING
RETURNING {NOW} AS at, j.scheduled_at
"""
""":data:`CREATE_FIRST` for one chain start, with scalar arguments in the order of its arrays (no
arrays to encode and unnest). No row comes back when the id is taken (nothing was inserted); else
one: the statement's time (``created_at``) and ``scheduled_at``. Its ``_alone`` variant (without a
caller's transaction) raises a unique violation instead of skipping the row: see
:data:`SKIP_TAKEN`."""

CREATE_ONE_NOTIFY = f"""
WITH ins AS ({CREATE_ONE})
SELECT ins.at, ins.scheduled_at, pg_notify($11::text, $12::text) FROM ins
"""
""":data:`CREATE_ONE` that also sends the notification of channel ``$11`` with payload ``$12`` in its
transaction, only when the row was inserted (PostgreSQL delivers it when it commits). Only run
without a caller's transaction, so always without :data:`SKIP_TAKEN`."""

SKIP_TAKEN = "ON CONFLICT DO NOTHING\n"
"""The clause with which :data:`CREATE_FIRST` and :data:`CREATE_ONE` skip a row whose id is taken, so
that the caller's transaction goes on after the error. Their variants without a caller's
transaction leave it out: a taken id (stored, or repeated in the batch) then fails the statement
with a unique violation (SQLSTATE 23505) and nothing commits, as with :data:`ID_TAKEN`. An
``INSERT`` without it does not check each row's unique keys before inserting it and again after
(speculative insertion): about a third less server time for a batch of 100 starts."""

ID_TAKEN = "queuert: a job id is taken"
"""The text of the error the ``*_alone`` variants of :data:`CREATE` and :data:`CREATE_FIRST` raise
when not every row was inserted (the partitioned layout's check of the ids, or :data:`CREATE`'s) (SQLSTATE 22P02, from a cast of this text): without a caller's
transaction the statement commits on its own, and must then commit nothing."""

_ALL_FIRST = (
    f"HAVING CASE WHEN count(*) = cardinality({_IDS}) THEN true "
    f"ELSE ('{ID_TAKEN}, rows inserted: ' || count(*))::bool END"
)
"""In :data:`CREATE_FIRST` (``/*all*/``) without a caller's transaction: fail unless every row was
inserted. The text is not constant, so the cast runs only when reached, never while planning."""

_ALL_CREATE = (
    "WHERE CASE WHEN EXISTS (SELECT 1 FROM clash) "
    "OR (SELECT count(*) FROM ins) = (SELECT count(*) FROM x) THEN true "
    f"ELSE ('{ID_TAKEN}, rows inserted: ' || (SELECT count(*) FROM ins))::bool END"
)
"""In :data:`CREATE` (``/*all*/``) without a caller's transaction: fail when a row to insert was
skipped (a concurrent transaction committed a first job with its id after the check)."""

STORED_IDS = "SELECT id::text FROM {job} WHERE id = ANY($1::text[]::uuid[])"
"""Which of the ids ``$1`` stored jobs hold (to name the id that made a statement fail)."""

DEDUP_LOCKS = "SELECT pg_advisory_xact_lock(u.k) IS NULL FROM unnest($1::int8[]) AS u(k)"

UNDO_CREATE = "DELETE FROM {job} WHERE id = ANY($1::text[]::uuid[])"

ADD_BLOCKERS = f"""
WITH l AS (
    SELECT u.ord::int AS ord, u.job_id::uuid AS job_id, u.chain_id::uuid AS chain_id, u.ctx, u.item
    FROM unnest($1::text[], $2::text[], $3::text[], $4::int[])
         WITH ORDINALITY AS u(job_id, chain_id, ctx, item, ord)
),
bad AS (
    SELECT l.ord, l.item, l.job_id, l.chain_id,
           NOT EXISTS (SELECT 1 FROM {{job}} j WHERE j.id = l.job_id) AS no_job
    FROM l
    WHERE NOT EXISTS (SELECT 1 FROM {{job}} j WHERE j.id = l.job_id)
       OR (l.chain_id IS NOT NULL
           AND NOT EXISTS (SELECT 1 FROM {{job}} r WHERE r.id = l.chain_id AND r.chain_index = 0))
    ORDER BY l.ord
    LIMIT 1
),
tails AS (
    SELECT c.chain_id, t.id AS tail_id, t.outcome, t.succeeded_by_job_id
    FROM (SELECT DISTINCT l.chain_id FROM l
          WHERE l.chain_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM bad)
          ORDER BY l.chain_id) c
    CROSS JOIN LATERAL {tail_of("c.chain_id", lock="FOR NO KEY UPDATE")} t
),
prev AS (
    SELECT DISTINCT b.job_id, b.blocked_by_chain_id AS chain_id
    FROM {{blocker}} b WHERE b.job_id IN (SELECT l.job_id FROM l)
),
fresh AS (
    SELECT DISTINCT l.job_id, l.chain_id FROM l
    WHERE l.chain_id IS NOT NULL
      AND NOT EXISTS (SELECT 1 FROM prev WHERE prev.job_id = l.job_id AND prev.chain_id = l.chain_id)
),
ins AS (
    INSERT INTO {{blocker}} (job_id, slot, blocked_by_chain_id, trace_context)
    SELECT l.job_id,
           coalesce((SELECT max(b.slot) FROM {{blocker}} b WHERE b.job_id = l.job_id), -1)
             + row_number() OVER (PARTITION BY l.job_id ORDER BY l.ord),
           l.chain_id, l.ctx
    FROM l WHERE l.chain_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM bad)
),
incr AS (
    SELECT f.job_id, count(*)::int AS k
    FROM fresh f JOIN tails t ON t.chain_id = f.chain_id
    WHERE t.outcome IS NULL GROUP BY f.job_id
),
upd AS (
    UPDATE {{job}} j SET open_blockers = j.open_blockers + incr.k
    FROM incr WHERE j.id = incr.job_id
    RETURNING j.*
),
touch AS (
    -- a real write on every open blocker tail, so that a completer whose statement started
    -- before this transaction committed notices the change and re-reads the links
    UPDATE {{job}} tt SET open_blockers = tt.open_blockers
    WHERE tt.id IN (SELECT tails.tail_id FROM tails WHERE tails.outcome IS NULL)
      AND tt.id NOT IN (SELECT incr.job_id FROM incr)
),
jr AS (
    SELECT * FROM upd
    UNION ALL
    SELECT j.* FROM {{job}} j
    WHERE j.id IN (SELECT l.job_id FROM l) AND j.id NOT IN (SELECT upd.id FROM upd)
)
SELECT b.no_job, b.item, b.chain_id::text,
       l.item, l.chain_id::text,
       CASE WHEN t.outcome IS NULL THEN 'open'
            WHEN t.succeeded_by_job_id IS NULL THEN 'closed' ELSE 'follow' END,
       r.chain_trace_context,
       EXISTS (SELECT 1 FROM fresh f WHERE f.job_id = l.job_id AND f.chain_id = l.chain_id),
       {cols("jr")}
FROM (SELECT 1) one
LEFT JOIN bad b ON true
LEFT JOIN (l JOIN jr ON jr.id = l.job_id
           LEFT JOIN tails t ON t.chain_id = l.chain_id
           LEFT JOIN {{job}} r ON r.id = l.chain_id) ON b.ord IS NULL
ORDER BY l.ord
"""

LOCK_TAILS = f"""
WITH tails AS (
    SELECT c.chain_id, t.id AS tail_id, t.outcome, t.succeeded_by_job_id
    FROM (SELECT DISTINCT x::uuid AS chain_id FROM unnest($1::text[]) AS x ORDER BY 1) c
    CROSS JOIN LATERAL {tail_of("c.chain_id", lock="FOR NO KEY UPDATE")} t
),
touch AS (
    UPDATE {{job}} tt SET open_blockers = tt.open_blockers
    WHERE tt.id IN (SELECT tails.tail_id FROM tails WHERE tails.outcome IS NULL)
)
SELECT tails.chain_id::text,
       CASE WHEN tails.outcome IS NULL THEN 'open'
            WHEN tails.succeeded_by_job_id IS NULL THEN 'closed' ELSE 'follow' END
FROM tails
"""

ADD_OPEN_BLOCKERS = f"""
UPDATE {{job}} j SET open_blockers = j.open_blockers + n.k
FROM unnest($1::text[], $2::int[]) AS n(id, k)
WHERE j.id = n.id::uuid
RETURNING {cols("j")}
"""

GET_JOB = f"SELECT {cols('j')} FROM {{job}} j WHERE j.id = $1::uuid"
GET_JOB_LOCKED = GET_JOB + " FOR NO KEY UPDATE"

_GET_CHAIN = """
SELECT {r}, {t} FROM {{job}} r CROSS JOIN LATERAL {tail} t
WHERE r.id = $1::uuid AND r.chain_id = $1::uuid AND r.chain_index = 0
"""
GET_CHAIN = _GET_CHAIN.format(r=cols("r"), t=cols("t"), tail=tail_of("r.id"))
GET_CHAIN_LOCKED = _GET_CHAIN.format(
    r=cols("r"), t=cols("t"), tail=tail_of("r.id", lock="FOR NO KEY UPDATE")
)

GET_JOB_BLOCKERS = f"""
SELECT {cols("r")}, {cols("t")}
FROM {{blocker}} b JOIN {{job}} r ON r.id = b.blocked_by_chain_id
CROSS JOIN LATERAL {tail_of("r.id")} t
WHERE b.job_id = $1::uuid
ORDER BY b.slot
"""

NEXT_DUE = f"""
WITH RECURSIVE prio(type_name, priority) AS (
    SELECT q.type_name, (
        SELECT j.priority FROM {{job}} j
        WHERE j.type_name = q.type_name AND {READY.format(a="j")}
        ORDER BY j.priority DESC LIMIT 1
    ) FROM unnest($1::text[]) AS q(type_name)
    UNION ALL
    SELECT p.type_name, (
        SELECT j.priority FROM {{job}} j
        WHERE j.type_name = p.type_name AND {READY.format(a="j")} AND j.priority < p.priority
        ORDER BY j.priority DESC LIMIT 1
    ) FROM prio p WHERE p.priority IS NOT NULL
)
SELECT CASE WHEN min(x.scheduled_at) < {READABLE_FROM} THEN {READABLE_FROM}
    WHEN min(x.scheduled_at) > {READABLE_TO} THEN {READABLE_TO} ELSE min(x.scheduled_at) END, {NOW}
FROM prio p
CROSS JOIN LATERAL (
    SELECT j.scheduled_at FROM {{job}} j
    WHERE j.type_name = p.type_name AND {READY.format(a="j")} AND j.priority = p.priority
    ORDER BY j.scheduled_at, j.id
    LIMIT 1
    FOR NO KEY UPDATE SKIP LOCKED
) x
"""
"""The earliest due time of the ready jobs of these types, skipping locked rows. ``job_claim_idx``
orders each type's ready jobs by priority first, so the earliest due time is not its first entry: a
loose index scan walks the type's distinct priorities (``prio``: each step one probe for the next
lower priority), and for each reads its first unlocked job by due time; the minimum of those is the
answer. That reads O(distinct priorities) index entries per type instead of every ready job."""

BLOCKED = "{a}.outcome IS NULL AND {a}.open_blockers > 0 AND {a}.leased_until IS NULL"
"""Status ``blocked`` (the predicate of the blocked index)."""


def _queue_stats(types: str) -> str:
    """Per type, one row from each partial index over open jobs (``kind, type, n1, n2, age``): ready
    (ready, scheduled, seconds the oldest ready job has been due), leased (running, lease expired)
    and blocked (blocked)."""
    return f"""
SELECT 0, j.type_name, count(*) FILTER (WHERE j.scheduled_at <= {NOW}),
    count(*) FILTER (WHERE j.scheduled_at > {NOW}),
    extract(epoch FROM {NOW} - min(j.scheduled_at)
        FILTER (WHERE j.scheduled_at <= {NOW} AND j.scheduled_at >= {READABLE_FROM}))::float8
FROM {{job}} j WHERE {READY.format(a="j")}{types} GROUP BY j.type_name
UNION ALL
SELECT 1, j.type_name, count(*), count(*) FILTER (WHERE j.leased_until <= {NOW}), NULL
FROM {{job}} j WHERE j.outcome IS NULL AND j.leased_until IS NOT NULL{types} GROUP BY j.type_name
UNION ALL
SELECT 2, j.type_name, count(*), 0, NULL
FROM {{job}} j WHERE {BLOCKED.format(a="j")}{types} GROUP BY j.type_name
"""


QUEUE_STATS = _queue_stats("")
QUEUE_STATS_OF = _queue_stats(" AND j.type_name = ANY($1::text[])")


# The claims and the completion update the rows they found by id *and* chain id: in the partitioned
# layout the chain id is the partition key, so the executor updates each row in its own partition
# (run-time pruning in the nested loop) instead of probing every partition for the id.
CLAIM = f"""
WITH req AS (
    SELECT q.type_name, q.secs FROM unnest($1::text[], $2::float8[]) AS q(type_name, secs)
),
cand AS (
    SELECT c.id, c.chain_id, c.priority, c.scheduled_at, req.secs
    FROM req CROSS JOIN LATERAL (
        SELECT j.id, j.chain_id, j.priority, j.scheduled_at FROM {{job}} j
        WHERE j.type_name = req.type_name AND {READY.format(a="j")} AND j.scheduled_at <= {NOW}
        ORDER BY j.priority DESC, j.scheduled_at, j.id
        LIMIT $3::int + 1
        FOR NO KEY UPDATE SKIP LOCKED
    ) c
    ORDER BY c.priority DESC, c.scheduled_at, c.id
    LIMIT $3::int + 1
),
pick AS (
    SELECT * FROM cand ORDER BY cand.priority DESC, cand.scheduled_at, cand.id LIMIT $3::int
),
upd AS (
    UPDATE {{job}} j
    SET attempt = j.attempt + 1, last_attempt_at = {NOW}, leased_by = $4::text,
        leased_until = {NOW} + p.secs * interval '1 second'
    FROM pick p WHERE j.id = p.id AND j.chain_id = p.chain_id
    RETURNING j.*
)
SELECT (SELECT count(*) FROM cand) > $3::int, {cols("u", in_micros=True)}
FROM (SELECT 1) one LEFT JOIN upd u ON true
ORDER BY u.priority DESC, u.scheduled_at, u.id
"""

CLAIM_LIMITED = f"""
WITH req AS (
    SELECT q.type_name, q.secs, q.tlim, q.klim,
           CASE WHEN q.klim IS NULL THEN $3::int + 1 ELSE 4 * $3::int + 1 END AS win
    FROM unnest($1::text[], $2::float8[], $5::int[], $6::int[]) AS q(type_name, secs, tlim, klim)
),
run AS (
    SELECT j.type_name, coalesce(j.limit_key, '') AS k, count(*)::int AS n
    FROM {{job}} j
    WHERE j.type_name IN (SELECT req.type_name FROM req
                          WHERE req.tlim IS NOT NULL OR req.klim IS NOT NULL)
      AND j.outcome IS NULL AND j.leased_until IS NOT NULL
    GROUP BY j.type_name, coalesce(j.limit_key, '')
),
run_type AS (SELECT run.type_name, sum(run.n)::int AS n FROM run GROUP BY run.type_name),
cand AS (
    SELECT c.id, c.chain_id, c.priority, c.scheduled_at, c.k, req.type_name, req.secs, req.tlim,
           req.klim, req.win
    FROM req CROSS JOIN LATERAL (
        SELECT j.id, j.chain_id, j.priority, j.scheduled_at, coalesce(j.limit_key, '') AS k
        FROM {{job}} j
        WHERE j.type_name = req.type_name AND {READY.format(a="j")} AND j.scheduled_at <= {NOW}
          AND (req.tlim IS NULL OR coalesce(
                (SELECT rt.n FROM run_type rt WHERE rt.type_name = req.type_name), 0) < req.tlim)
          AND (req.klim IS NULL OR j.limit_key IS NULL OR coalesce(
                (SELECT r.n FROM run r WHERE r.type_name = req.type_name AND r.k = j.limit_key),
                0) < req.klim)
        ORDER BY j.priority DESC, j.scheduled_at, j.id
        LIMIT req.win
        FOR NO KEY UPDATE SKIP LOCKED
    ) c
),
keyfit AS (
    SELECT c.* FROM (
        SELECT c.*, row_number() OVER (PARTITION BY c.type_name, c.k
                                       ORDER BY c.priority DESC, c.scheduled_at, c.id) AS kr,
               coalesce((SELECT r.n FROM run r WHERE r.type_name = c.type_name AND r.k = c.k),
                        0) AS kn
        FROM cand c
    ) c
    WHERE c.klim IS NULL OR c.k = '' OR c.kn + c.kr <= c.klim
),
fit AS (
    SELECT f.* FROM (
        SELECT f.*, row_number() OVER (PARTITION BY f.type_name
                                       ORDER BY f.priority DESC, f.scheduled_at, f.id) AS tr,
               coalesce((SELECT rt.n FROM run_type rt WHERE rt.type_name = f.type_name), 0) AS tn
        FROM keyfit f
    ) f
    WHERE f.tlim IS NULL OR f.tn + f.tr <= f.tlim
),
chosen AS (SELECT * FROM fit ORDER BY fit.priority DESC, fit.scheduled_at, fit.id LIMIT $3::int),
bump AS (
    INSERT INTO {{job_limit}} AS l (type_name, limit_key, claims)
    SELECT w.type_name, w.k, 1 FROM (
        SELECT ch.type_name, ch.k FROM chosen ch WHERE ch.klim IS NOT NULL AND ch.k <> ''
        UNION
        SELECT ch.type_name, '' FROM chosen ch WHERE ch.tlim IS NOT NULL
    ) w
    ORDER BY w.type_name, w.k
    ON CONFLICT (type_name, limit_key) DO UPDATE SET claims = l.claims + 1
    RETURNING l.type_name, l.limit_key, l.claims
),
stale AS (
    SELECT b.type_name, b.limit_key FROM bump b
    WHERE b.claims - 1 <> coalesce((SELECT s.claims FROM {{job_limit}} s
                                    WHERE s.type_name = b.type_name
                                      AND s.limit_key = b.limit_key), 0)
),
pick AS (
    SELECT ch.* FROM chosen ch
    WHERE NOT EXISTS (
        SELECT 1 FROM stale s
        WHERE s.type_name = ch.type_name
          AND ((s.limit_key = '' AND ch.tlim IS NOT NULL)
               OR (s.limit_key = ch.k AND ch.k <> '' AND ch.klim IS NOT NULL))
    )
),
upd AS (
    UPDATE {{job}} j
    SET attempt = j.attempt + 1, last_attempt_at = {NOW}, leased_by = $4::text,
        leased_until = {NOW} + p.secs * interval '1 second'
    FROM pick p WHERE j.id = p.id AND j.chain_id = p.chain_id
    RETURNING j.*
),
more AS (
    SELECT (SELECT count(*) FROM fit) > (SELECT count(*) FROM chosen)
        OR EXISTS (SELECT 1 FROM stale)
        OR EXISTS (
            SELECT 1 FROM cand c GROUP BY c.type_name, c.win, c.tlim
            HAVING count(*) >= c.win
               AND (c.tlim IS NULL OR coalesce((SELECT rt.n FROM run_type rt
                                                WHERE rt.type_name = c.type_name), 0)
                                     + (SELECT count(*) FROM fit f
                                        WHERE f.type_name = c.type_name) < c.tlim)
        ) AS any
)
SELECT (SELECT more.any FROM more), {cols("u", in_micros=True)}
FROM (SELECT 1) one LEFT JOIN upd u ON true
ORDER BY u.priority DESC, u.scheduled_at, u.id
"""
"""A claim under concurrency limits, in one statement. Per type it counts the running jobs by limit
key (its snapshot), locks ready candidates in claim order (skipping types and keys already full),
keeps those that fit the key and then the type limit, and cuts to ``$3``. Only a type with a key
limit can skip candidates (those of a full key), so only it looks at more than ``$3 + 1`` of them. Each limited (type, key)
and type it takes jobs of has a row in ``job_limit`` whose counter it increments with an upsert,
which waits for a concurrent claimer's lock and sees its committed counter: a counter that moved
since the snapshot means another claim of that type or key committed after the counts were taken,
so this claim takes none of those jobs (and reports more). A release (completion, failure,
cancellation, retry, reaping, deletion) only lowers the running counts, so a count from an older
snapshot is never too low. ``$5``/``$6``: each type's limit and key limit, NULL where not set.
The adapter runs it when a requested type has a key limit, else :data:`CLAIM_TYPE_LIMITED`."""

CLAIM_TYPE_LIMITED = f"""
WITH room AS (
    SELECT q.type_name, q.secs, q.tlim,
           (CASE WHEN q.tlim IS NULL THEN $3::int + 1
                 ELSE least($3::int + 1, greatest(q.tlim - (
                     SELECT count(*) FROM {{job}} r
                     WHERE r.type_name = q.type_name AND {LEASED.format(a="r")}), 0)) END)::int
             AS cap
    FROM unnest($1::text[], $2::float8[], $5::int[]) AS q(type_name, secs, tlim)
),
cand AS (
    SELECT c.id, c.chain_id, c.priority, c.scheduled_at, room.type_name, room.secs, room.tlim
    FROM room CROSS JOIN LATERAL (
        SELECT j.id, j.chain_id, j.priority, j.scheduled_at FROM {{job}} j
        WHERE j.type_name = room.type_name AND {READY.format(a="j")} AND j.scheduled_at <= {NOW}
        ORDER BY j.priority DESC, j.scheduled_at, j.id
        LIMIT room.cap
        FOR NO KEY UPDATE SKIP LOCKED
    ) c
),
chosen AS (
    SELECT * FROM cand ORDER BY cand.priority DESC, cand.scheduled_at, cand.id LIMIT $3::int
),
bump AS (
    INSERT INTO {{job_limit}} AS l (type_name, limit_key, claims)
    SELECT DISTINCT ch.type_name, '', 1 FROM chosen ch WHERE ch.tlim IS NOT NULL
    ORDER BY 1
    ON CONFLICT (type_name, limit_key) DO UPDATE SET claims = l.claims + 1
    RETURNING l.type_name, l.claims
),
stale AS (
    SELECT b.type_name FROM bump b
    WHERE b.claims - 1 <> coalesce((SELECT s.claims FROM {{job_limit}} s
                                    WHERE s.type_name = b.type_name AND s.limit_key = ''), 0)
),
upd AS (
    UPDATE {{job}} j
    SET attempt = j.attempt + 1, last_attempt_at = {NOW}, leased_by = $4::text,
        leased_until = {NOW} + p.secs * interval '1 second'
    FROM chosen p
    WHERE j.id = p.id AND j.chain_id = p.chain_id
      AND NOT EXISTS (SELECT 1 FROM stale s WHERE s.type_name = p.type_name)
    RETURNING j.*
)
SELECT (SELECT count(*) FROM cand) > $3::int OR EXISTS (SELECT 1 FROM stale), {cols("u", in_micros=True)}
FROM (SELECT 1) one LEFT JOIN upd u ON true
ORDER BY u.priority DESC, u.scheduled_at, u.id
"""
"""The claim of :data:`CLAIM_LIMITED` when no requested type has a key limit (``$5``: each type's
limit, NULL where not set), in about the cost of :data:`CLAIM`. With only type limits, the rule
needs no ranking: a type may take its first ``limit - running`` ready jobs, so each type's
candidate walk stops there (``LIMIT``, at most ``$3 + 1`` as in :data:`CLAIM`), and the first
``$3`` of all candidates are the claim. No window function, no grouping by key, no candidate locked
beyond what may be taken. Any candidate left over fits its type's limit, hence ``has_more``. The
running count of each limited type comes from the statement's snapshot and is checked against the
type's ``job_limit`` counter exactly as in :data:`CLAIM_LIMITED`."""

RENEW = f"""
WITH r AS (
    SELECT u.id::uuid AS id, u.secs FROM unnest($1::text[], $2::float8[]) AS u(id, secs)
),
mine AS (
    SELECT j.id FROM {{job}} j
    WHERE j.id IN (SELECT r.id FROM r) AND j.leased_by = $3::text AND j.outcome IS NULL
      AND j.leased_until IS NOT NULL
),
free AS (
    SELECT j.id FROM {{job}} j WHERE j.id IN (SELECT mine.id FROM mine)
    ORDER BY j.id
    FOR NO KEY UPDATE SKIP LOCKED
),
upd AS (
    UPDATE {{job}} j SET leased_until = {NOW} + r.secs * interval '1 second'
    FROM r
    WHERE j.id = r.id AND j.id IN (SELECT free.id FROM free) AND j.leased_by = $3::text
      AND j.outcome IS NULL AND j.leased_until IS NOT NULL
    RETURNING j.id::text AS id, j.leased_until
)
SELECT true AS renewed, upd.id, upd.leased_until FROM upd
UNION ALL
SELECT false, mine.id::text, NULL FROM mine WHERE mine.id NOT IN (SELECT free.id FROM free)
"""
"""One statement for all of a worker's leases. A row locked by another transaction (typically the
worker's own atomic attempt, whose transaction holds the job row for the whole handler) is skipped,
not waited for, and reported as still held (``renewed`` false): waiting would stall every other lease
of the worker behind that one transaction."""

_UNBLOCK = f"""
dec AS (
    SELECT links.job_id, count(DISTINCT links.chain_id)::int AS k, max(links.ord) AS ord
    FROM links GROUP BY links.job_id
),
unb AS (
    UPDATE {{job}} d
    SET open_blockers = greatest(d.open_blockers - dec.k, 0),
        scheduled_at = CASE WHEN d.open_blockers <= dec.k THEN greatest(d.scheduled_at, {NOW})
                            ELSE d.scheduled_at END
    FROM dec WHERE d.id = dec.job_id AND d.open_blockers > 0
    RETURNING d.*, dec.ord AS by_ord
)"""

_COMPLETE_CLOSE = f"""upd AS (
    UPDATE {{job}} j
    SET outcome = ok.outcome, output = ok.output::json, succeeded_by_job_id = ok.succ,
        completed_at = {NOW}, completed_by = $6::text, leased_by = NULL, leased_until = NULL,
        last_attempt_error = CASE WHEN ok.outcome = 'completed' THEN NULL
                                  ELSE coalesce(ok.err, j.last_attempt_error) END
    FROM ok WHERE j.id = ok.id AND j.chain_id = ok.chain_id
    RETURNING j.*, ok.ord AS by_ord
),
closing AS (
    SELECT ok.ord, ok.chain_id, ok.moved FROM ok
    WHERE ok.succ IS NULL
      AND NOT EXISTS (SELECT 1 FROM {{job}} h
                      WHERE h.chain_id = ok.chain_id AND h.chain_index > ok.chain_index
                        AND h.chain_index > 0)
),
links AS (
    SELECT closing.ord, closing.chain_id, b.job_id, b.slot, b.trace_context
    FROM {{blocker}} b JOIN closing ON b.blocked_by_chain_id = closing.chain_id
),
{_UNBLOCK}
SELECT {CompleteRow.CLOSED} AS kind, u.by_ord AS ord, NULL::text AS text, NULL::text AS other,
       {cols("u")}
FROM upd u
UNION ALL
SELECT {CompleteRow.UNBLOCKED}, n.by_ord, NULL, NULL, {cols("n")} FROM unb n
WHERE n.open_blockers = 0 AND n.outcome IS NULL
UNION ALL
SELECT {CompleteRow.TRACE_CONTEXT}, l.ord, l.trace_context, NULL, {NULL_COLS}
FROM links l WHERE l.trace_context IS NOT NULL
UNION ALL
SELECT {CompleteRow.TAIL_MOVED}, cl.ord, cl.chain_id::text, l.job_id::text, {NULL_COLS}
FROM closing cl LEFT JOIN links l ON l.ord = cl.ord WHERE cl.moved
"""
"""What both completion statements share once ``ok`` holds the completions that may close their
job (found, open, leased by the owner): the close, the chain-closing checks, the unblocking of
dependents and the rows returned for them."""

COMPLETE = f"""
WITH c AS (
    SELECT u.ord::int AS ord, u.id::uuid AS id, coalesce(u.outcome, 'completed') AS outcome,
           u.output, u.succ::uuid AS succ, u.err
    FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[])
         WITH ORDINALITY AS u(id, outcome, output, succ, err, ord)
),
snap AS (
    SELECT j.id, j.xmin::text AS v FROM {{job}} j WHERE j.id IN (SELECT c.id FROM c)
),
cur AS (
    SELECT j.id, j.xmin::text AS v, j.chain_id, j.chain_index, j.outcome, j.leased_by
    FROM {{job}} j WHERE j.id IN (SELECT c.id FROM c)
    ORDER BY j.id
    FOR NO KEY UPDATE
),
ok AS (
    SELECT c.*, cur.chain_id, cur.chain_index, cur.v IS DISTINCT FROM snap.v AS moved
    FROM c JOIN cur ON cur.id = c.id LEFT JOIN snap ON snap.id = c.id
    WHERE cur.outcome IS NULL AND ($7::text IS NULL OR cur.leased_by = $7::text)
),
{_COMPLETE_CLOSE}UNION ALL
SELECT {CompleteRow.REFUSED}, c.ord, cur.outcome, cur.leased_by, cur.id::text,
       {", ".join(["NULL"] * (NCOLS - 1))}
FROM c LEFT JOIN cur ON cur.id = c.id WHERE NOT EXISTS (SELECT 1 FROM ok WHERE ok.ord = c.ord)
"""

COMPLETE_PLAIN = f"""
UPDATE {{job}} j
SET outcome = c.outcome, output = c.output::json, succeeded_by_job_id = c.succ,
    completed_at = {NOW}, completed_by = $6::text, leased_by = NULL, leased_until = NULL,
    last_attempt_error = CASE WHEN c.outcome = 'completed' THEN NULL
                              ELSE coalesce(c.err, j.last_attempt_error) END
FROM (
    SELECT u.ord::int AS ord, u.id::uuid AS id, coalesce(u.outcome, 'completed') AS outcome,
           u.output, u.succ::uuid AS succ, u.err
    FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[])
         WITH ORDINALITY AS u(id, outcome, output, succ, err, ord)
    ORDER BY 2
) c
JOIN {{job}} s ON s.id = c.id
WHERE j.id = s.id AND j.chain_id = s.chain_id AND j.xmin = s.xmin
  AND j.outcome IS NULL AND ($7::text IS NULL OR j.leased_by = $7::text)
  AND (c.succ IS NOT NULL
       OR NOT EXISTS (SELECT 1 FROM {{blocker}} b WHERE b.blocked_by_chain_id = s.chain_id))
RETURNING c.ord, {cols("j")}
"""
"""The common case of :data:`COMPLETE` (same arguments), as one guarded ``UPDATE``: what
:data:`COMPLETE_ONE_PLAIN` is to :data:`COMPLETE_ONE`, for each completion of the batch (taken in
job id order, the order the full statement locks in). It returns the ordinal and the columns of
each job it closed; the caller sends :data:`COMPLETE` for the others."""

COMPLETE_ONE = f"""
WITH cur AS (
    SELECT j.id, j.xmin::text AS v, j.chain_id, j.chain_index, j.outcome, j.leased_by
    FROM {{job}} j WHERE j.id = $1::text::uuid
    FOR NO KEY UPDATE
),
ok AS (
    SELECT 1 AS ord, cur.id, $2::text AS outcome, $3::text AS output, $4::text::uuid AS succ,
           $5::text AS err, cur.chain_id, cur.chain_index,
           cur.v IS DISTINCT FROM (SELECT s.xmin::text FROM {{job}} s
                                 WHERE s.id = cur.id AND s.chain_id = cur.chain_id) AS moved
    FROM cur WHERE cur.outcome IS NULL AND ($7::text IS NULL OR cur.leased_by = $7::text)
),
{_COMPLETE_CLOSE}UNION ALL
SELECT {CompleteRow.REFUSED}, 1, cur.outcome, cur.leased_by, cur.id::text,
       {", ".join(["NULL"] * (NCOLS - 1))}
FROM (SELECT 1) AS one LEFT JOIN cur ON true WHERE NOT EXISTS (SELECT 1 FROM ok)
"""
"""One completion with scalar arguments (``$1`` the job id, ``$2`` the outcome, ``$3`` the output
as JSON text, ``$4`` the successor, ``$5`` the error, ``$6`` the worker, ``$7`` the owner): the rows
of :data:`COMPLETE` for a single ordinal 1, with no arrays to build and unnest (the exactly-once
path closes one job per transaction; the server runs this in about four fifths of the time of the
array form)."""

COMPLETE_ONE_PLAIN = f"""
UPDATE {{job}} j
SET outcome = $2::text, output = $3::text::json, succeeded_by_job_id = $4::text::uuid,
    completed_at = {NOW}, completed_by = $6::text, leased_by = NULL, leased_until = NULL,
    last_attempt_error = CASE WHEN $2::text = 'completed' THEN NULL
                              ELSE coalesce($5::text, j.last_attempt_error) END
FROM {{job}} s
WHERE s.id = $1::text::uuid AND j.id = s.id AND j.chain_id = s.chain_id AND j.xmin = s.xmin
  AND j.outcome IS NULL AND ($7::text IS NULL OR j.leased_by = $7::text)
  AND ($4::text IS NOT NULL
       OR NOT EXISTS (SELECT 1 FROM {{blocker}} b WHERE b.blocked_by_chain_id = s.chain_id))
RETURNING {cols("j")}
"""
"""The common case of :data:`COMPLETE_ONE` (same arguments), as one guarded ``UPDATE``: it closes
the job only if it is open, held by the owner, unchanged since the statement's snapshot (``s``, the
same row as the snapshot saw it: a write committed after the snapshot, such as a blocker attachment
touching the tail, makes the update, which waits for it and re-checks the newest version, skip the
row) and, unless it continues its chain, no job waits for its chain. It returns the closed job's
columns, which are then the whole result of :data:`COMPLETE_ONE` (nothing released, no trace
context, no tail moved), or no row and changes nothing: the caller then sends
:data:`COMPLETE_ONE`, which handles the refusals, the dependents and the race. It skips the
statement's lock-then-update, the chain-closing checks and the release of dependents, whose plan
nodes cost a completion with nothing to release most of its server time."""

_CLOSED_COLS = f"{micros('j.completed_at')}, j.attempt, {micros('j.last_attempt_at')}"  # ClosedRow
_RETURN_ROW = f"RETURNING {cols('j')}\n"
_RETURN_ORD_ROW = f"RETURNING c.ord, {cols('j')}\n"
assert COMPLETE_ONE_PLAIN.count(_RETURN_ROW) == COMPLETE_PLAIN.count(_RETURN_ORD_ROW) == 1

COMPLETE_ONE_PLAIN_CLAIMED = COMPLETE_ONE_PLAIN.replace(_RETURN_ROW, f"RETURNING {_CLOSED_COLS}\n")
""":data:`COMPLETE_ONE_PLAIN` for a completion of a job the caller claimed
(:attr:`queuert.state.Completion.claimed`): it returns only the :class:`ClosedRow` columns, from
which and the claimed job the caller builds the closed one, instead of every column to decode."""

MESSAGE_SEPARATOR = "\x1f"
"""What joins the channels, and the payloads, of :data:`COMPLETE_PLAIN_CLAIMED_NOTIFY`'s messages
into one text each, and the outputs of :data:`COMPLETE_PLAIN_CLAIMED` (the caller checks that no
payload or output holds it; compact JSON text never does: it escapes every control character)."""

_ARRAYS = "unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[])"
_CLAIMED_TEXTS = (
    "unnest(string_to_array($1::text, ','), $2::text[],\n"
    "                string_to_array($3::text, E'\\x1f'), $4::text[], $5::text[])"
)
assert COMPLETE_PLAIN.count(_ARRAYS) == 1

COMPLETE_PLAIN_CLAIMED = COMPLETE_PLAIN.replace(
    _RETURN_ORD_ROW, f"RETURNING c.ord, {_CLOSED_COLS}\n"
).replace(_ARRAYS, _CLAIMED_TEXTS)
""":data:`COMPLETE_PLAIN` for completions of jobs the caller claimed, each closing its job with an
output: ``$1`` the job ids joined with commas and ``$3`` their outputs' JSON texts joined with
:data:`MESSAGE_SEPARATOR` (one text each rather than text arrays: the driver inspects and encodes
each element of an array one by one), ``$2``, ``$4`` and ``$5`` NULL. It returns the ordinal, then
the :class:`ClosedRow` columns (see :data:`COMPLETE_ONE_PLAIN_CLAIMED`)."""

COMPLETE_PLAIN_CLAIMED_NOTIFY = f"""
WITH closed (ord, completed_at, attempt, last_attempt_at) AS (
{COMPLETE_PLAIN_CLAIMED}),
m AS (
    SELECT * FROM unnest(string_to_array($8::text, E'\\x1f'), string_to_array($9::text, E'\\x1f'),
                         string_to_array($10::text, ',')::int[]) AS m(c, p, o)
)
SELECT closed.*, (SELECT count(pg_notify(m.c, m.p)) FROM m WHERE m.o = closed.ord)
FROM closed
"""
""":data:`COMPLETE_PLAIN_CLAIMED` that also sends, in its transaction, the notifications of the
completions it closed: the ``i``-th channel of ``$8`` with the ``i``-th payload of ``$9`` (each
joined with :data:`MESSAGE_SEPARATOR`) for the completion of the ``i``-th ordinal of ``$10``
(joined with commas): what that completion announces when it closes releasing nothing. A
completion it leaves open sends nothing: a group commit and its messages in one autocommit
statement, which PostgreSQL delivers when it commits. (One text each rather than text arrays: the
driver inspects and encodes each element of an array one by one.)"""

COMPLETE_ONE_PLAIN_CLAIMED_NOTIFY = f"""
WITH closed (completed_at, attempt, last_attempt_at) AS (
{COMPLETE_ONE_PLAIN_CLAIMED})
SELECT closed.*, pg_notify($8::text, $9::text) FROM closed
"""
""":data:`COMPLETE_ONE_PLAIN_CLAIMED` that also sends the notification of channel ``$8`` with
payload ``$9`` in its transaction, only when it closed the job."""

COMPLETE_CATCH_UP = f"""
WITH mc AS (
    SELECT u.chain_id::uuid AS chain_id, u.ord FROM unnest($1::text[], $2::int[]) AS u(chain_id, ord)
),
handled AS (
    SELECT u.chain_id::uuid AS chain_id, u.job_id::uuid AS job_id
    FROM unnest($3::text[], $4::text[]) AS u(chain_id, job_id)
),
links AS (
    SELECT mc.ord, mc.chain_id, b.job_id, b.slot, b.trace_context
    FROM {{blocker}} b JOIN mc ON b.blocked_by_chain_id = mc.chain_id
    WHERE NOT EXISTS (SELECT 1 FROM handled h
                      WHERE h.chain_id = mc.chain_id AND h.job_id = b.job_id)
),
{_UNBLOCK}
SELECT {CompleteRow.UNBLOCKED} AS kind, n.by_ord AS ord, NULL::text AS text, NULL::text AS other,
       {cols("n")}
FROM unb n
WHERE n.open_blockers = 0 AND n.outcome IS NULL
UNION ALL
SELECT {CompleteRow.TRACE_CONTEXT}, l.ord, l.trace_context, NULL, {NULL_COLS}
FROM links l WHERE l.trace_context IS NOT NULL
"""

RESCHEDULE = f"""
UPDATE {{job}} j
SET leased_by = NULL, leased_until = NULL,
    scheduled_at = greatest(coalesce($2::timestamptz, {NOW} + $3::float8 * interval '1 second'), {NOW}),
    last_attempt_error = coalesce($4::text, j.last_attempt_error)
WHERE j.id = $1::uuid
RETURNING {cols("j")}
"""

REAP = f"""
WITH c AS (
    SELECT x.id, x.leased_by, x.leased_until
    FROM unnest($1::text[]) AS q(type_name)
    CROSS JOIN LATERAL (
        SELECT j.id, j.leased_by, j.leased_until FROM {{job}} j
        WHERE j.type_name = q.type_name AND j.outcome IS NULL AND j.leased_until IS NOT NULL
          AND j.leased_until <= {NOW} AND j.id <> ALL($3::text[]::uuid[])
        ORDER BY j.leased_until, j.id
        LIMIT $2::int
        FOR NO KEY UPDATE SKIP LOCKED
    ) x
    ORDER BY x.leased_until, x.id
    LIMIT $2::int
),
upd AS (
    UPDATE {{job}} j SET leased_by = NULL, leased_until = NULL
    FROM c WHERE j.id = c.id
    RETURNING j.*, c.leased_by AS old_by, c.leased_until AS old_until
)
SELECT {cols("u")}, u.old_by, {readable("u.old_until")} FROM upd u ORDER BY u.old_until, u.id
"""

TRIGGER = f"""
WITH req AS (
    SELECT u.id::uuid AS id, u.ord::int AS ord FROM unnest($1::text[]) WITH ORDINALITY AS u(id, ord)
),
locked AS (
    SELECT j.id, {status_sql("j")} AS status FROM {{job}} j
    WHERE j.id IN (SELECT req.id FROM req)
    ORDER BY j.id
    FOR NO KEY UPDATE
),
bad AS (
    SELECT req.ord, req.id, l.status FROM req LEFT JOIN locked l ON l.id = req.id
    WHERE l.id IS NULL OR l.status NOT IN ('scheduled', 'ready')
),
upd AS (
    UPDATE {{job}} j SET scheduled_at = least(j.scheduled_at, {NOW})
    FROM locked l WHERE j.id = l.id AND NOT EXISTS (SELECT 1 FROM bad)
    RETURNING j.*
)
SELECT {TriggerRow.TRIGGERED} AS kind, req.ord, NULL::text AS status, {cols("u")}
FROM upd u JOIN req ON req.id = u.id
UNION ALL
SELECT {TriggerRow.REFUSED}, bad.ord, bad.status, bad.id::text, {", ".join(["NULL"] * (NCOLS - 1))}
FROM bad
ORDER BY 1, 2
"""

DELETE = f"""
WITH RECURSIVE targets(id) AS (
    SELECT r.id FROM {{job}} r WHERE r.id = ANY($1::text[]::uuid[]) AND r.chain_index = 0
    UNION
    SELECT b.blocked_by_chain_id
    FROM targets tg JOIN {{job}} m ON {chain_members("tg.id").format(a="m")}
    JOIN {{blocker}} b ON b.job_id = m.id
    WHERE $2::bool
),
members AS (
    SELECT j.id FROM {{job}} j
    WHERE (j.id, j.chain_id) IN (SELECT targets.id, targets.id FROM targets
                                 UNION ALL
                                 SELECT c.id, c.chain_id FROM {{job}} c
                                 WHERE c.chain_id IN (SELECT targets.id FROM targets)
                                   AND c.chain_index > 0)
    ORDER BY j.id
    FOR UPDATE
),
refs AS (
    SELECT DISTINCT b.blocked_by_chain_id AS chain_id, b.job_id
    FROM {{blocker}} b JOIN {{job}} d ON d.id = b.job_id
    WHERE b.blocked_by_chain_id IN (SELECT targets.id FROM targets)
      AND d.chain_id NOT IN (SELECT targets.id FROM targets)
),
chains AS (
    SELECT {cols("r")}, {cols("t")}
    FROM targets tg JOIN {{job}} r ON r.id = tg.id
    CROSS JOIN LATERAL {tail_of("r.id")} t
),
delb AS (
    DELETE FROM {{blocker}} b
    WHERE b.job_id IN (SELECT members.id FROM members) AND NOT EXISTS (SELECT 1 FROM refs)
),
delj AS (
    DELETE FROM {{job}} j
    WHERE j.id IN (SELECT members.id FROM members) AND NOT EXISTS (SELECT 1 FROM refs)
)
SELECT {DeleteRow.CHAIN} AS kind, NULL::text AS ref_chain, NULL::text AS ref_job, chains.*
FROM chains WHERE NOT EXISTS (SELECT 1 FROM refs)
UNION ALL
SELECT {DeleteRow.REFERENCE}, refs.chain_id::text, refs.job_id::text, {NULL_COLS}, {NULL_COLS}
FROM refs
"""

UNSUCCESSFUL = "{a}.outcome IN ('failed', 'cancelled')"
"""Statuses ``failed`` and ``cancelled`` (the predicate of the unsuccessful index)."""

STATUS_PREDICATES = {
    "ready": READY,
    "scheduled": READY,
    "running": LEASED,
    "blocked": BLOCKED,
    "failed": UNSUCCESSFUL,
    "cancelled": UNSUCCESSFUL,
}
"""For each status a partial index holds, the stored facts every job of that status has, written as
that index's predicate: a status filter adds it so that PostgreSQL can read the jobs from the index
instead of testing the derived status of every job (``completed`` and ``continued`` jobs, the bulk of
a store, have none)."""

JOB_ACTIVITY = f"""
WITH w AS (SELECT {NOW} AS now, {NOW} - make_interval(secs => $1::float8) AS since),
recent AS (
    SELECT j.type_name, NULL::timestamptz AS completed_at, NULL::text AS completed_by,
        CASE WHEN j.scheduled_at > {NOW} THEN 'scheduled' ELSE 'ready' END AS status
    FROM {{job}} j WHERE {READY.format(a="j")}
    UNION ALL
    SELECT j.type_name, NULL, NULL, 'running' FROM {{job}} j WHERE {LEASED.format(a="j")}
    UNION ALL
    SELECT j.type_name, NULL, NULL, 'blocked' FROM {{job}} j WHERE {BLOCKED.format(a="j")}
    UNION ALL
    SELECT j.type_name, j.completed_at, j.completed_by,
        CASE WHEN j.succeeded_by_job_id IS NOT NULL THEN 'continued' ELSE j.outcome END
    FROM {{job}} j WHERE j.completed_at >= (SELECT since FROM w) AND j.completed_at <= {READABLE_TO}
)
SELECT 'c', r.type_name, r.status, count(*)::int, NULL::int, NULL::timestamptz
FROM recent r GROUP BY r.type_name, r.status
UNION ALL
SELECT 'b', NULL, r.status, count(*)::int,
    floor(extract(epoch FROM r.completed_at - w.since) * $2::float8 / $1::float8)::int, NULL
FROM recent r, w WHERE r.completed_at IS NOT NULL
GROUP BY 5, r.status
UNION ALL
SELECT 'w', r.completed_by, NULL, count(*)::int, NULL, max(r.completed_at)
FROM recent r WHERE r.completed_by IS NOT NULL AND r.completed_at IS NOT NULL
GROUP BY r.completed_by
UNION ALL
SELECT 't', NULL, NULL, NULL, NULL, w.now FROM w
"""
"""Counts by type and status of open jobs and jobs closed since ``now - $1`` seconds, closings by
slice (``$2`` slices) and status, closings by worker, and the clock (kind ``t``). Open jobs are read
from the three partial indexes that together hold every open job (ready or scheduled, leased,
blocked), closed ones from the index on ``completed_at``: the cost follows the open jobs and the
window, not the history."""

_ALL = {
    "create": CREATE,
    "create_first": CREATE_FIRST,
    "create_first_notify": CREATE_FIRST_NOTIFY,
    "create_one": CREATE_ONE,
    "create_one_notify": CREATE_ONE_NOTIFY,
    "dedup_locks": DEDUP_LOCKS,
    "undo_create": UNDO_CREATE,
    "stored_ids": STORED_IDS,
    "add_blockers": ADD_BLOCKERS,
    "lock_tails": LOCK_TAILS,
    "add_open_blockers": ADD_OPEN_BLOCKERS,
    "get_job": GET_JOB,
    "get_job_locked": GET_JOB_LOCKED,
    "get_chain": GET_CHAIN,
    "get_chain_locked": GET_CHAIN_LOCKED,
    "get_job_blockers": GET_JOB_BLOCKERS,
    "next_due": NEXT_DUE,
    "queue_stats": QUEUE_STATS,
    "queue_stats_of": QUEUE_STATS_OF,
    "claim": CLAIM,
    "claim_limited": CLAIM_LIMITED,
    "claim_type_limited": CLAIM_TYPE_LIMITED,
    "renew": RENEW,
    "complete": COMPLETE,
    "complete_plain": COMPLETE_PLAIN,
    "complete_one": COMPLETE_ONE,
    "complete_one_plain": COMPLETE_ONE_PLAIN,
    "complete_plain_claimed": COMPLETE_PLAIN_CLAIMED,
    "complete_one_plain_claimed": COMPLETE_ONE_PLAIN_CLAIMED,
    "complete_plain_claimed_notify": COMPLETE_PLAIN_CLAIMED_NOTIFY,
    "complete_one_plain_claimed_notify": COMPLETE_ONE_PLAIN_CLAIMED_NOTIFY,
    "complete_catch_up": COMPLETE_CATCH_UP,
    "reschedule": RESCHEDULE,
    "reap": REAP,
    "trigger": TRIGGER,
    "delete": DELETE,
    "job_activity": JOB_ACTIVITY,
}


_PARTITIONED_IDS = "WHERE NOT EXISTS (SELECT 1 FROM {job} e WHERE e.id = u.id::uuid)"
_PARTITIONED_ID = "WHERE NOT EXISTS (SELECT 1 FROM {job} e WHERE e.id = $1::text::uuid)"
"""In the partitioned layout the primary key is (id, chain_id), which keeps a new chain's id from
repeating another chain's id but not a continuation job's (whose chain differs): :data:`CREATE_FIRST`
looks for the id among all jobs, and :data:`CREATE_ONE` for its one id. (:data:`CREATE` always
does.)"""


class Statements:
    """The statements above with the configured schema and table names filled in (``partitioned``:
    the variants for the partitioned layout)."""

    def __init__(self, names: Names, *, partitioned: bool = False) -> None:
        self.names = names
        templates = dict(_ALL)
        for key in ("create_first", "create_first_notify"):
            templates[key] = templates[key].replace(
                "/*ids*/", _PARTITIONED_IDS if partitioned else ""
            )
        for key in ("create_one", "create_one_notify"):
            templates[key] = templates[key].replace(
                "/*id*/", _PARTITIONED_ID if partitioned else ""
            )
        for key, check in (
            ("create", _ALL_CREATE),
            ("create_first", _ALL_FIRST),
            ("create_first_notify", _ALL_FIRST),
        ):
            templates[f"{key}_alone"] = templates[key].replace("/*all*/", check)
        templates["create_one_alone"] = templates["create_one"]
        for key in (
            "create_first_alone",
            "create_first_notify_alone",
            "create_one_alone",
            "create_one_notify",
        ):
            assert SKIP_TAKEN in templates[key], key
            templates[key] = templates[key].replace(SKIP_TAKEN, "")
        rendered = {key: Sql(names.render(text)) for key, text in templates.items()}
        self.create = rendered["create"]
        self.create_first = rendered["create_first"]
        self.create_first_notify = rendered["create_first_notify"]
        self.create_one = rendered["create_one"]
        self.create_one_alone = rendered["create_one_alone"]
        self.create_one_notify = rendered["create_one_notify"]
        self.dedup_locks = rendered["dedup_locks"]
        self.create_alone = rendered["create_alone"]
        self.create_first_alone = rendered["create_first_alone"]
        self.create_first_notify_alone = rendered["create_first_notify_alone"]
        self.undo_create = rendered["undo_create"]
        self.stored_ids = rendered["stored_ids"]
        self.add_blockers = rendered["add_blockers"]
        self.lock_tails = rendered["lock_tails"]
        self.add_open_blockers = rendered["add_open_blockers"]
        self.get_job = rendered["get_job"]
        self.get_job_locked = rendered["get_job_locked"]
        self.get_chain = rendered["get_chain"]
        self.get_chain_locked = rendered["get_chain_locked"]
        self.get_job_blockers = rendered["get_job_blockers"]
        self.next_due = rendered["next_due"]
        self.queue_stats = rendered["queue_stats"]
        self.queue_stats_of = rendered["queue_stats_of"]
        self.claim = rendered["claim"]
        self.claim_limited = rendered["claim_limited"]
        self.claim_type_limited = rendered["claim_type_limited"]
        self.renew = rendered["renew"]
        self.complete = rendered["complete"]
        self.complete_plain = rendered["complete_plain"]
        self.complete_one = rendered["complete_one"]
        self.complete_one_plain = rendered["complete_one_plain"]
        self.complete_plain_claimed = rendered["complete_plain_claimed"]
        self.complete_one_plain_claimed = rendered["complete_one_plain_claimed"]
        self.complete_plain_claimed_notify = rendered["complete_plain_claimed_notify"]
        self.complete_one_plain_claimed_notify = rendered["complete_one_plain_claimed_notify"]
        self.complete_catch_up = rendered["complete_catch_up"]
        self.reschedule = rendered["reschedule"]
        self.reap = rendered["reap"]
        self.trigger = rendered["trigger"]
        self.delete = rendered["delete"]
        self.job_activity = rendered["job_activity"]

    def render(self, template: str) -> Sql:
        return Sql(self.names.render(template))
