"""``sqlite:`` URLs: ``sqlite:///relative/path.db``, ``sqlite:////abs/path.db``, ``sqlite://:memory:``.

Options may ride in the query string (``?table_prefix=app_&readers=4&busy_timeout=10``); keyword
arguments of :func:`from_url` override them.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, unquote

from queuert.errors import UsageError
from queuert.opening import Opening

from queuert_sqlite._adapter import SqliteStateAdapter

__all__ = ["from_url", "parse_url"]

_INT_OPTIONS = frozenset({"readers", "busy_retries", "cached_statements"})
_FLOAT_OPTIONS = frozenset({"busy_timeout", "checkpoint_interval"})
_STR_OPTIONS = frozenset({"table_prefix", "journal_mode", "synchronous", "driver"})
_BOOL_OPTIONS = frozenset({"inline_writes"})
_BOOLS = {
    "1": True,
    "true": True,
    "yes": True,
    "on": True,
    "0": False,
    "false": False,
    "no": False,
    "off": False,
}


def parse_url(url: str) -> tuple[str, dict[str, Any]]:
    """The database (path or ``":memory:"``) and the options of a ``sqlite:`` URL."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() != "sqlite":
        raise UsageError(
            f"not a sqlite URL: {url!r} (use sqlite:///relative.db, sqlite:////abs/path.db or "
            "sqlite://:memory:)"
        )
    location, _, query = rest.partition("?")
    if location in (":memory:", "/:memory:"):
        database = ":memory:"
    elif location.startswith("/") and len(location) > 1:
        database = unquote(location[1:])
    else:
        raise UsageError(
            f"sqlite URL {url!r} names no database file (use sqlite:///relative.db, "
            "sqlite:////abs/path.db or sqlite://:memory:)"
        )
    options: dict[str, Any] = {}
    for key, value in parse_qsl(query, keep_blank_values=True):
        try:
            if key in _INT_OPTIONS:
                options[key] = int(value)
            elif key in _FLOAT_OPTIONS:
                options[key] = float(value)
            elif key in _STR_OPTIONS:
                options[key] = value
            elif key in _BOOL_OPTIONS:
                options[key] = _BOOLS[value.lower()]
            else:
                raise UsageError(f"unknown sqlite URL option {key!r}")
        except (ValueError, KeyError) as exc:
            raise UsageError(f"invalid value {value!r} for sqlite URL option {key!r}") from exc
    return database, options


def from_url(url: str, **options: Any) -> Opening[SqliteStateAdapter]:
    """Open the SQLite state adapter a URL names (the ``queuert.state_adapters`` entry point):
    ``async with from_url(url) as adapter:`` (closed when the block ends) or
    ``adapter = await from_url(url)``.

    Does not migrate: call ``await adapter.migrate()`` (or ``queuert migrate --dsn URL``).
    """
    database, parsed = parse_url(url)
    parsed.update(options)
    return SqliteStateAdapter.open(database, **parsed)
