"""The partitioned layout: the job table partitioned by ranges of ``chain_id``, one range per time
bucket of the chain's creation (ids are time-ordered UUIDv7s, whose first 48 bits are the Unix
milliseconds they were made at), so that a whole chain lives in one partition and retention drops a
partition instead of deleting its rows.

Partitions of the job table ``{p}job``:

* ``{p}job_phistory``: every chain id below the first bucket (the history of an installation moved
  to this layout, and ids from before it); dropped like a bucket once everything in it has expired.
* ``{p}job_pYYYYMMDDtHHMM``: one per bucket (``Partitioning.interval``), created ahead.
* ``{p}job_pdefault``: any other id (beyond the buckets created so far, or a caller's own id that
  is not time-ordered); retention deletes its rows one chain at a time.

The blocker link table stays unpartitioned (without its foreign keys: a key can only reference a
unique index of a partitioned table that includes the partition key); the links of a partition's
jobs are deleted before the partition is dropped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Literal

from queuert.duration import Duration, to_timedelta
from queuert.errors import ConfigurationError

from queuert_postgres._schema import Names

__all__ = [
    "LAYOUT_MIGRATION",
    "PARTITION_STORAGE",
    "Bounds",
    "Partitioning",
    "bucket_start",
    "parse_bound",
    "uuid_at",
]

LAYOUT_MIGRATION = "layout_partitioned"
"""Recorded in the migration table once the job table is partitioned."""

PARTITION_STORAGE = (
    "fillfactor = 75, autovacuum_vacuum_scale_factor = 0.02, "
    "autovacuum_analyze_scale_factor = 0.02, autovacuum_vacuum_cost_delay = 0"
)
"""The storage parameters of every partition (those the unpartitioned table has, migration 0002)."""

_MINUTE = timedelta(minutes=1)
_HOUR = timedelta(hours=1)


@dataclass(frozen=True, init=False)
class Partitioning:
    """The partitioned layout of :class:`~queuert_postgres.PgStateAdapter` (``partitioning=``).

    ``interval``: the span of chain creation times one partition holds (whole minutes, at least
    one; a day by default). ``ahead``: how many buckets after the current one exist at any time
    (created by ``migrate()`` and by every maintenance run). ``lock_timeout``: how long dropping or
    creating a partition waits for the table lock before it gives up until the next run.
    ``maintain``: the workers run the layout's maintenance (partitions created ahead, drops a
    stopped run left half done) every :attr:`maintenance_every`, with or without retention (see
    :mod:`queuert.storage_maintenance`); False: only ``migrate()`` and retention runs do.
    ``counts``: how a dropped partition's chains and jobs are counted for the run's result and
    event: ``"exact"`` (a read of the whole detached table before it is dropped: exact, one core
    busy for about 0.1 s per million jobs) or ``"estimated"`` (the table's row count and share of
    first jobs as the last ``VACUUM`` or ``ANALYZE`` recorded them, reported with ``estimated``;
    counted exactly when the table has no such statistics).
    """

    interval: timedelta
    ahead: int
    lock_timeout: timedelta
    maintain: bool
    counts: Literal["exact", "estimated"]

    def __init__(
        self,
        interval: Duration = timedelta(days=1),
        *,
        ahead: int = 7,
        lock_timeout: Duration = timedelta(seconds=2),
        maintain: bool = True,
        counts: Literal["exact", "estimated"] = "exact",
    ) -> None:
        span = to_timedelta(interval, name="Partitioning interval", positive=True)
        if span < _MINUTE or span % _MINUTE:
            raise ConfigurationError(
                f"Partitioning interval must be a whole number of minutes, not {span}"
            )
        if isinstance(ahead, bool) or not isinstance(ahead, int) or not 1 <= ahead <= 1000:
            raise ConfigurationError(f"Partitioning ahead must be an int in 1..1000, not {ahead!r}")
        wait = to_timedelta(lock_timeout, name="Partitioning lock_timeout", positive=True)
        object.__setattr__(self, "interval", span)
        object.__setattr__(self, "ahead", ahead)
        object.__setattr__(self, "lock_timeout", wait)
        if counts not in ("exact", "estimated"):
            raise ConfigurationError(
                f"Partitioning counts must be 'exact' or 'estimated', not {counts!r}"
            )
        object.__setattr__(self, "maintain", bool(maintain))
        object.__setattr__(self, "counts", counts)

    @property
    def maintenance_every(self) -> timedelta | None:
        """How often the workers run the layout's maintenance: half an interval, at most an hour
        (None without ``maintain``)."""
        if not self.maintain:
            return None
        return min(self.interval / 2, _HOUR)

    @property
    def interval_ms(self) -> int:
        return self.interval // timedelta(milliseconds=1)

    @property
    def lock_timeout_ms(self) -> int:
        return max(1, self.lock_timeout // timedelta(milliseconds=1))


def uuid_at(ms: int) -> str:
    """The smallest UUID whose first 48 bits are ``ms`` (the lower bound of a bucket)."""
    ms = max(0, min(ms, 0xFFFF_FFFF_FFFF))
    return f"{ms >> 16:08x}-{ms & 0xFFFF:04x}-0000-0000-000000000000"


def ms_of(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def bucket_start(ms: int, interval_ms: int) -> int:
    return ms - ms % interval_ms


def bucket_name(names: Names, ms: int) -> str:
    stamp = datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime("%Y%m%dt%H%M")
    return f"{names.prefix}job_p{stamp}"


def history_name(names: Names) -> str:
    return f"{names.prefix}job_phistory"


def dropping_name(names: Names, partition: str) -> str:
    """The name a partition takes when it is detached to be dropped (``{p}job_pdrop_...``), so that
    a table left by a stopped run is told apart from one a person detached to keep (at most 63
    characters: the prefix has at most 40)."""
    return f"{names.prefix}job_pdrop_{partition[len(names.prefix) + len('job_p') :]}"


def dropping_pattern(names: Names) -> str:
    """A regular expression for the names of :func:`dropping_name` (the prefix is an identifier:
    letters, digits and ``_``, nothing a regular expression reads)."""
    return f"^{names.prefix}job_pdrop_([0-9]{{8}}t[0-9]{{4}}|history)$"


def default_name(names: Names) -> str:
    return f"{names.prefix}job_pdefault"


@dataclass(frozen=True)
class Bounds:
    """A partition of the job table: its name and range (``low`` None: from MINVALUE; both None:
    the default partition)."""

    name: str
    low: str | None
    high: str | None

    @property
    def is_default(self) -> bool:
        return self.low is None and self.high is None

    def where(self, column: str) -> str:
        """The partition's range as a predicate on ``column`` (literals are UUIDs from the catalog,
        checked by :func:`parse_bound`)."""
        parts = []
        if self.low is not None:
            parts.append(f"{column} >= '{self.low}'::uuid")
        if self.high is not None:
            parts.append(f"{column} < '{self.high}'::uuid")
        return " AND ".join(parts) or "true"


_UUID = re.compile(r"'([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})'")
_RANGE = re.compile(r"FOR VALUES FROM \((.+)\) TO \((.+)\)")


def _value(text: str) -> str | None:
    if text == "MINVALUE":
        return None
    found = _UUID.fullmatch(text)
    if found is None:
        raise ValueError(f"unexpected partition bound {text!r}")
    return found.group(1)


def parse_bound(name: str, expression: str) -> Bounds:
    """A partition from its name and ``pg_get_expr(relpartbound, oid)``."""
    if expression == "DEFAULT":
        return Bounds(name, None, None)
    found = _RANGE.fullmatch(expression)
    if found is None:
        raise ValueError(f"unexpected partition bound {expression!r}")
    high = _value(found.group(2))
    if high is None:
        raise ValueError(f"unexpected partition bound {expression!r}")
    return Bounds(name, _value(found.group(1)), high)


def q(names: Names, table: str) -> str:
    """A table of the configured schema, quoted (``table`` is built from validated parts)."""
    return f'{names.schema_q}."{table}"'


def create_partition_sql(names: Names, table: str, low: str | None, high: str) -> str:
    start = "MINVALUE" if low is None else f"'{low}'"
    return (
        f"CREATE TABLE {q(names, table)} PARTITION OF {names.job} "
        f"FOR VALUES FROM ({start}) TO ('{high}') WITH ({PARTITION_STORAGE})"
    )


def overlaps(bounds: list[Bounds], low: str, high: str) -> bool:
    for b in bounds:
        if b.is_default:
            continue
        if (b.low is None or b.low < high) and (b.high is None or low < b.high):
            return True
    return False


def wanted_buckets(partitioning: Partitioning, now_ms: int) -> list[tuple[int, str, str]]:
    """(start ms, low, high) of the current bucket and the ``ahead`` after it."""
    step = partitioning.interval_ms
    first = bucket_start(now_ms, step)
    return [
        (first + i * step, uuid_at(first + i * step), uuid_at(first + (i + 1) * step))
        for i in range(partitioning.ahead + 1)
    ]


def first_row(rows: list[Any]) -> Any:
    return rows[0] if rows else None
