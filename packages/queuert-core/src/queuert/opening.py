"""Opening an adapter: one call that reads well both ways.

Adapters that connect before they can be used (a pool, a file) are opened by a function returning
an :class:`Opening`, which is both awaitable and an async context manager::

    async with from_url("sqlite:///app.db") as state:  # closed when the block ends
        ...

    state = await from_url("sqlite:///app.db")  # closed by you: await state.close()
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator
from typing import Any, Generic, Protocol, TypeVar

from queuert.errors import UsageError

__all__ = ["Closable", "Opening"]


class Closable(Protocol):
    async def close(self) -> None: ...


A = TypeVar("A", bound=Closable)


class Opening(Generic[A]):
    """An adapter being opened: ``await`` it for the adapter, or ``async with`` it to have the
    adapter closed when the block ends (also when it raises). Open it once."""

    __slots__ = ("_adapter", "_open")

    def __init__(self, open: Callable[[], Awaitable[A]]) -> None:
        self._open: Callable[[], Awaitable[A]] | None = open
        self._adapter: A | None = None

    def _take(self) -> Callable[[], Awaitable[A]]:
        open, self._open = self._open, None
        if open is None:
            raise UsageError("this adapter was already opened: call the opening function again")
        return open

    def __await__(self) -> Generator[Any, None, A]:
        return self._take()().__await__()

    async def __aenter__(self) -> A:
        self._adapter = await self._take()()
        return self._adapter

    async def __aexit__(self, *exc: object) -> None:
        adapter, self._adapter = self._adapter, None
        if adapter is not None:
            await adapter.close()
