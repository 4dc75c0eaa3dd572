"""``from_url``: the entry point ``queuert migrate --dsn postgresql://...`` uses."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from queuert.errors import UsageError
from queuert.opening import Opening

from queuert_postgres._partitions import Partitioning
from queuert_postgres.state import PgStateAdapter

__all__ = ["from_url"]

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _flag(name: str, value: str) -> bool:
    lowered = value.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise UsageError(f"query parameter {name}={value!r} must be true or false")


def _int(name: str, value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise UsageError(f"query parameter {name}={value!r} must be an integer") from None


def from_url(url: str, **options: Any) -> Opening[PgStateAdapter[Any]]:
    """A :class:`PgStateAdapter` over a new asyncpg pool for a ``postgresql://`` or ``postgres://`` DSN:
    ``async with from_url(url) as adapter:`` (closed when the block ends) or
    ``adapter = await from_url(url)``.

    queuert's own options may be given as keyword arguments or as query parameters of the URL:
    ``schema``, ``table_prefix``, ``prepared_statements`` (``false`` behind PgBouncer in transaction
    mode), ``generic_plans`` (see :class:`AsyncpgProvider`), ``pool_min_size``, ``pool_max_size``,
    ``partitioned`` (``true``: the partitioned layout, see :class:`Partitioning`) with
    ``partition_minutes`` (the span of one partition; a day by default), ``partitions_ahead`` and
    ``partition_counts`` (``exact`` or ``estimated``).
    Other query parameters stay in the DSN for asyncpg.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("postgresql", "postgres"):
        raise UsageError(f"not a PostgreSQL URL: {url!r} (expected postgresql://...)")
    keep: list[tuple[str, str]] = []
    found: dict[str, str] = {}
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key in (
            "schema",
            "table_prefix",
            "prepared_statements",
            "generic_plans",
            "pool_min_size",
            "pool_max_size",
            "partitioned",
            "partition_minutes",
            "partitions_ahead",
            "partition_counts",
        ):
            found[key] = value
        else:
            keep.append((key, value))
    dsn = urlunsplit(parts._replace(query=urlencode(keep)))
    schema = options.pop("schema", found.get("schema", "public"))
    table_prefix = options.pop("table_prefix", found.get("table_prefix", "queuert_"))
    prepared = options.pop(
        "prepared_statements",
        _flag("prepared_statements", found["prepared_statements"])
        if "prepared_statements" in found
        else True,
    )
    if "generic_plans" in found:
        options.setdefault("generic_plans", _flag("generic_plans", found["generic_plans"]))
    min_size = int(options.pop("min_size", found.get("pool_min_size", 1)))
    max_size = int(options.pop("max_size", found.get("pool_max_size", 10)))
    if "partitioning" not in options and _flag("partitioned", found.get("partitioned", "false")):
        options["partitioning"] = Partitioning(
            timedelta(minutes=_int("partition_minutes", found.get("partition_minutes", "1440"))),
            ahead=_int("partitions_ahead", found.get("partitions_ahead", "7")),
            counts=_counts(found.get("partition_counts", "exact")),
        )
    elif any(k in found for k in ("partition_minutes", "partitions_ahead", "partition_counts")):
        raise UsageError(
            "partition_minutes, partitions_ahead and partition_counts need partitioned=true"
        )
    return PgStateAdapter.connect(
        dsn,
        schema=schema,
        table_prefix=table_prefix,
        min_size=min_size,
        max_size=max_size,
        prepared_statements=prepared,
        **options,
    )


def _counts(value: str) -> Literal["exact", "estimated"]:
    if value == "exact":
        return "exact"
    if value == "estimated":
        return "estimated"
    raise UsageError(f"partition_counts must be exact or estimated, not {value!r}")
