"""``from_url``: the entry point ``queuert migrate --dsn mysql://...`` uses."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from queuert.errors import UsageError
from queuert.opening import Opening

from queuert_mysql.state import MysqlStateAdapter

__all__ = ["from_url", "parse_url"]

_SCHEMES = ("mysql", "mariadb")
_OPTIONS = ("table_prefix", "database", "pool_min_size", "pool_max_size")


def parse_url(url: str) -> tuple[dict[str, Any], dict[str, str]]:
    """The ``aiomysql.connect`` arguments of a ``mysql://user:password@host:port/db?...`` URL, and
    queuert's own options found among its query parameters."""
    parts = urlsplit(url)
    if parts.scheme not in _SCHEMES:
        raise UsageError(
            f"not a MySQL or MariaDB URL: {url!r} (expected mysql://... or mariadb://...)"
        )
    connect: dict[str, Any] = {"host": parts.hostname or "127.0.0.1", "port": parts.port or 3306}
    if parts.username:
        connect["user"] = unquote(parts.username)
    if parts.password:
        connect["password"] = unquote(parts.password)
    db = parts.path.lstrip("/")
    if db:
        connect["db"] = unquote(db)
    found: dict[str, str] = {}
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key in _OPTIONS:
            found[key] = value
        elif key == "unix_socket":
            connect["unix_socket"] = value
        elif key == "charset":
            connect["charset"] = value
        elif key == "connect_timeout":
            connect["connect_timeout"] = float(value)
        else:
            raise UsageError(f"unknown query parameter {key!r} in {url!r}")
    return connect, found


def from_url(url: str, **options: Any) -> Opening[MysqlStateAdapter[Any]]:
    """A :class:`MysqlStateAdapter` over a new aiomysql pool for a ``mysql://`` or ``mariadb://``
    URL (``mysql://user:password@host:3306/database``): ``async with from_url(url) as adapter:``
    (closed when the block ends) or ``adapter = await from_url(url)``.

    queuert's own options may be given as keyword arguments or as query parameters of the URL:
    ``table_prefix`` (default ``queuert_``), ``database`` (where the tables live, when not the
    connection's database), ``pool_min_size``, ``pool_max_size``. ``unix_socket``, ``charset`` and
    ``connect_timeout`` go to the driver; any other query parameter is an error.
    """
    connect, found = parse_url(url)
    table_prefix = options.pop("table_prefix", found.get("table_prefix", "queuert_"))
    database = options.pop("database", found.get("database"))
    try:
        minsize = int(options.pop("minsize", found.get("pool_min_size", 1)))
        maxsize = int(options.pop("maxsize", found.get("pool_max_size", 10)))
    except ValueError as exc:
        raise UsageError(f"pool sizes must be integers: {exc}") from None
    connect.update(options)
    return MysqlStateAdapter.connect(
        database=database, table_prefix=table_prefix, minsize=minsize, maxsize=maxsize, **connect
    )
