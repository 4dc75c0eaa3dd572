"""Transaction hooks: side effects buffered until the transaction commits.

Notifications (wake-ups, chain closed, ownership lost) and observability events produced while a
transaction is open are collected in a :class:`TransactionHooks` tied to that transaction. They are
flushed after COMMIT and dropped on rollback; a savepoint that rolls back drops its share only.

A hooks object must *enclose* the transaction it serves, so that it flushes after the commit::

    async with client.transaction() as tx:          # opens both; flushes after commit
        await client.start_chain(SendEmail(...), tx=tx)

    async with client.hooks(conn):                  # your own transaction (e.g. asyncpg)
        async with conn.transaction():
            await client.start_chain(SendEmail(...), tx=conn)
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar

__all__ = ["CallbackBuffer", "HookState", "TransactionHooks"]

logger = logging.getLogger("queuert.hooks")

S = TypeVar("S", bound="HookState")


class HookState(Protocol):
    """One kind of buffered side effect (e.g. "notifications")."""

    async def flush(self) -> None:
        """Run the side effects (after commit). Errors are logged by the caller, never raised."""
        ...

    def discard(self) -> None:
        """Forget everything (after rollback)."""
        ...

    def snapshot(self) -> object:
        """A value from which :meth:`restore` can bring the state back (for savepoints)."""
        ...

    def restore(self, snapshot: object) -> None: ...


class TransactionHooks:
    """Buffers of side effects for one transaction, keyed by kind."""

    def __init__(self) -> None:
        self._states: dict[object, HookState] = {}
        self._done = False

    def get(self, key: object, factory: Callable[[], S]) -> S:
        """The buffer registered under ``key``, created with ``factory()`` on first use."""
        if self._done:
            raise RuntimeError("these transaction hooks were already flushed or discarded")
        state = self._states.get(key)
        if state is None:
            state = factory()
            self._states[key] = state
        return state  # type: ignore[return-value]

    def find(self, key: object) -> HookState | None:
        """The buffer registered under ``key``, if any (never creates one)."""
        return self._states.get(key)

    def checkpoint(self) -> Callable[[], None]:
        """Remember the current buffers; the returned function restores them (savepoint rollback).

        Buffers created after the checkpoint are discarded by the restore.
        """
        saved = {key: state.snapshot() for key, state in self._states.items()}

        def restore() -> None:
            for key in list(self._states):
                state = self._states[key]
                if key in saved:
                    state.restore(saved[key])
                else:
                    state.discard()
                    del self._states[key]

        return restore

    async def flush(self) -> None:
        """Run every buffered side effect, kind by kind; errors are logged, never raised."""
        if self._done:
            return
        self._done = True
        states = self._states
        if not states:
            return
        self._states = {}
        for state in states.values():
            # inline rather than a helper coroutine: this runs after every commit
            try:
                await state.flush()
            except Exception:
                logger.exception(
                    "flushing transaction hooks failed",
                    extra={"queuert_hook": type(state).__name__},
                )

    def discard(self) -> None:
        if self._done:
            return
        self._done = True
        for state in self._states.values():
            try:
                state.discard()
            except Exception:
                logger.exception("discarding transaction hooks failed")
        self._states.clear()

    @property
    def is_done(self) -> bool:
        return self._done


class CallbackBuffer:
    """An ordered list of callbacks run one by one at flush (observability events use this)."""

    def __init__(self) -> None:
        self.callbacks: list[Callable[[], Awaitable[None] | None]] = []

    async def flush(self) -> None:
        for callback in self.callbacks:
            try:
                result = callback()
                if result is not None:
                    await result
            except Exception:
                logger.exception("after-commit callback failed")
        self.callbacks.clear()

    def discard(self) -> None:
        self.callbacks.clear()

    def snapshot(self) -> object:
        return len(self.callbacks)

    def restore(self, snapshot: object) -> None:
        assert isinstance(snapshot, int)
        del self.callbacks[snapshot:]
