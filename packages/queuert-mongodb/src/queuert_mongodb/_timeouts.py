"""The time limits a client that queuert opens gets unless the URL or the caller sets its own.

PyMongo waits 30 s to find a server and, once connected, without limit for an answer
(``socketTimeoutMS`` unset): a server that accepts connections and then stops answering would hang a
worker for good. Like queuert's other adapters, a client the adapter opens gives up sooner.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlsplit

__all__ = ["DEFAULT_TIMEOUTS", "with_default_timeouts"]

DEFAULT_TIMEOUTS: dict[str, int] = {
    "connectTimeoutMS": 10_000,
    "serverSelectionTimeoutMS": 10_000,
    "socketTimeoutMS": 60_000,
}
"""Milliseconds: to connect, to find a suitable server, and to wait for one answer."""


def with_default_timeouts(url: str, options: dict[str, Any]) -> dict[str, Any]:
    """``options`` plus each of :data:`DEFAULT_TIMEOUTS` that neither ``options`` nor the URL's query
    sets (names compared case-insensitively, as PyMongo does). With ``timeoutMS`` (PyMongo's
    limit on whole operations) set, ``socketTimeoutMS`` is left to it."""
    given = {key.lower() for key in options}
    given |= {key.lower() for key, _ in parse_qsl(urlsplit(url).query, keep_blank_values=True)}
    merged = dict(options)
    for name, value in DEFAULT_TIMEOUTS.items():
        if name.lower() in given:
            continue
        if name == "socketTimeoutMS" and "timeoutms" in given:
            continue
        merged[name] = value
    return merged
