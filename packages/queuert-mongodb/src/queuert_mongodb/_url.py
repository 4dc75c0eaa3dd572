"""``from_url``: the entry point ``queuert migrate --dsn mongodb://...`` and ``queuert worker`` use."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from queuert.errors import UsageError
from queuert.opening import Opening

from queuert_mongodb.state import MongoStateAdapter

__all__ = ["from_url", "parse_url"]

_SCHEMES = ("mongodb", "mongodb+srv")
_OPTIONS = ("collection_prefix",)


def parse_url(url: str) -> tuple[str, str, dict[str, str]]:
    """The driver's URL (queuert's own query parameters removed), the database (the URL's path,
    ``queuert`` when empty) and queuert's options found among the query parameters."""
    parts = urlsplit(url)
    if parts.scheme not in _SCHEMES:
        raise UsageError(
            f"not a MongoDB URL: {url!r} (expected mongodb://... or mongodb+srv://...)"
        )
    found: dict[str, str] = {}
    kept: list[tuple[str, str]] = []
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key in _OPTIONS:
            found[key] = value
        else:
            kept.append((key, value))
    database = parts.path.lstrip("/") or "queuert"
    driver_url = urlunsplit((parts.scheme, parts.netloc, "/", urlencode(kept), parts.fragment))
    return driver_url, database, found


def from_url(url: str, **options: Any) -> Opening[MongoStateAdapter]:
    """A :class:`MongoStateAdapter` over a new ``AsyncMongoClient`` for a ``mongodb://`` or
    ``mongodb+srv://`` URL (``mongodb://host:27017/database?replicaSet=rs0``): ``async with
    from_url(url) as adapter:`` (closed when the block ends) or ``adapter = await from_url(url)``.

    The URL's path names the database (``queuert`` when empty); ``collection_prefix`` (default
    ``queuert_``) may be given as a query parameter or a keyword argument. Every other query
    parameter goes to the driver, as do other keyword arguments.
    """
    driver_url, database, found = parse_url(url)
    prefix = options.pop("collection_prefix", found.get("collection_prefix", "queuert_"))
    database = options.pop("database", database)
    return MongoStateAdapter.connect(
        driver_url, database=database, collection_prefix=prefix, **options
    )
