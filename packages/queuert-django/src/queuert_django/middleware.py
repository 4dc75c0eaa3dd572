"""``close_old_connections``: worker middleware that treats each attempt like Django treats a request.

Handlers reach the ORM through ``sync_to_async`` (or the ORM's ``a``-prefixed methods), which run
on threads that live as long as the worker; Django's own connections on those threads are kept only
as long as ``CONN_MAX_AGE`` allows and are dropped when broken, before and after every attempt, as
Django does around each request.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import sync_to_async
from django.db import close_old_connections as _close_old_connections
from queuert import Attempt

__all__ = ["close_old_connections"]

_close = sync_to_async(_close_old_connections)


async def close_old_connections(
    attempt: Attempt[Any], call_next: Callable[[], Awaitable[None]]
) -> None:
    await _close()
    try:
        await call_next()
    finally:
        await _close()
