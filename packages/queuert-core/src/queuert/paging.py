"""Keyset pages of the list operations: the check of their arguments, and the building of a page.

The client calls :func:`check_page` before a list operation, so an adapter receives a valid
``order``, ``limit`` and ``cursor``. The adapter then fetches ``limit + 1`` rows (:func:`fetch_size`)
in the list's order after the position its cursor decodes to (``queuert.cursor``), and returns the
page built by the list's builder here: the extra row only proves that a next page exists, so
``next_cursor`` is never set on the last page.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, TypeVar

from queuert.cursor import (
    decode_blocked_jobs_cursor,
    decode_chain_jobs_cursor,
    decode_chains_cursor,
    decode_jobs_cursor,
    encode_blocked_jobs_cursor,
    encode_chain_jobs_cursor,
    encode_chains_cursor,
    encode_jobs_cursor,
)
from queuert.errors import UsageError
from queuert.ids import IdPolicy
from queuert.state import Page, StoredChain, StoredJob

__all__ = [
    "MAX_LIMIT",
    "ListName",
    "blocked_jobs_page",
    "chain_jobs_page",
    "chains_page",
    "check_page",
    "fetch_size",
    "jobs_page",
]

T = TypeVar("T")

MAX_LIMIT = 1000
"""The largest page a list operation returns."""

ListName = Literal["chains", "jobs", "chain_jobs", "blocked_jobs"]
"""The list operations: ``list_chains``, ``list_jobs``, ``list_chain_jobs``, ``list_blocked_jobs``."""

_TIME_DECODERS = {
    "chains": decode_chains_cursor,
    "jobs": decode_jobs_cursor,
    "blocked_jobs": decode_blocked_jobs_cursor,
}


def check_page(
    list_name: ListName, *, order: object, limit: object, cursor: object, ids: IdPolicy
) -> None:
    """Raise :class:`~queuert.errors.UsageError` unless ``order`` is ``"asc"`` or ``"desc"``,
    ``limit`` an int from 1 to :data:`MAX_LIMIT` and ``cursor`` ``None`` or a cursor of the list
    ``list_name`` (whose row id ``ids`` accepts)."""
    if order not in ("asc", "desc"):
        raise UsageError(f"order must be 'asc' or 'desc', not {order!r}")
    if type(limit) is not int or not 1 <= limit <= MAX_LIMIT:
        raise UsageError(f"limit must be an int from 1 to {MAX_LIMIT}, not {limit!r}")
    if cursor is None:
        return
    if not isinstance(cursor, str):
        raise UsageError(f"a cursor is a str, not {cursor!r}")
    if list_name == "chain_jobs":
        if decode_chain_jobs_cursor(cursor) < 0:
            raise UsageError(f"invalid cursor {cursor!r}")
        return
    decode = _TIME_DECODERS.get(list_name)
    if decode is None:
        raise UsageError(f"unknown list {list_name!r}")
    _, row_id = decode(cursor)
    if type(row_id) is not str or not ids.is_valid(row_id):
        raise UsageError(f"invalid cursor {cursor!r}")


def fetch_size(limit: int) -> int:
    """How many rows to fetch for a page of ``limit``: one more, to learn whether another exists."""
    return limit + 1


def _page(rows: list[T], limit: int, cursor_of: Callable[[T], str]) -> Page[T]:
    if len(rows) > limit:
        items = rows[:limit]
        return Page(items=items, next_cursor=cursor_of(items[-1]))
    return Page(items=rows, next_cursor=None)


def chains_page(rows: list[StoredChain], limit: int) -> Page[StoredChain]:
    """The page of ``list_chains`` from up to ``limit + 1`` chains fetched in the list's order."""
    return _page(rows, limit, lambda c: encode_chains_cursor(c.root.created_at, c.root.id))


def jobs_page(rows: list[StoredJob], limit: int) -> Page[StoredJob]:
    """The page of ``list_jobs`` from up to ``limit + 1`` jobs fetched in the list's order."""
    return _page(rows, limit, lambda j: encode_jobs_cursor(j.created_at, j.id))


def blocked_jobs_page(rows: list[StoredJob], limit: int) -> Page[StoredJob]:
    """The page of ``list_blocked_jobs`` from up to ``limit + 1`` jobs fetched in the list's order."""
    return _page(rows, limit, lambda j: encode_blocked_jobs_cursor(j.created_at, j.id))


def chain_jobs_page(rows: list[StoredJob], limit: int) -> Page[StoredJob]:
    """The page of ``list_chain_jobs`` from up to ``limit + 1`` jobs fetched in the list's order."""
    return _page(rows, limit, lambda j: encode_chain_jobs_cursor(j.chain_index))
