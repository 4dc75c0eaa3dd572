"""Sessions and transactions: the adapter's own (retried) and the caller's (never retried).

The transaction object of every operation is a PyMongo ``AsyncClientSession`` inside a
multi-document transaction: one the adapter opened (``transaction()``) or the caller's own.
"""

from __future__ import annotations

import asyncio
import logging
import random
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.errors import PyMongoError
from queuert.errors import TransactionAbortedError, UsageError

from queuert_mongodb.errors import TransactionRetriesExhaustedError

__all__ = ["Sessions", "TxState", "is_transient", "is_unknown_commit"]

T = TypeVar("T")

logger = logging.getLogger("queuert.mongodb")

try:  # the driver's transaction states, to tell a transaction in which nothing ran yet
    from pymongo.client_session_shared import _TxnState

    _STARTING: object = _TxnState.STARTING
except ImportError:  # pragma: no cover - older or newer layouts: never restart
    _STARTING = object()

TRANSIENT = "TransientTransactionError"
UNKNOWN_COMMIT = "UnknownTransactionCommitResult"

_ABORTED = (
    "a command failed in this MongoDB transaction, which aborted it (MongoDB has no savepoints): "
    "end the transaction and run it again"
)


def is_transient(exc: BaseException) -> bool:
    return isinstance(exc, PyMongoError) and exc.has_error_label(TRANSIENT)


def is_unknown_commit(exc: BaseException) -> bool:
    return isinstance(exc, PyMongoError) and exc.has_error_label(UNKNOWN_COMMIT)


@dataclass
class TxState:
    """What the adapter tracks per transaction: whether a command failed in it (the server has then
    aborted it) and the server's clock read at its first operation."""

    aborted: bool = False
    now: datetime | None = None
    opened_here: bool = False
    """Opened by :meth:`Sessions.transaction` (the adapter knows how it was started)."""
    deferred: list[dict[str, Any]] = field(default_factory=list)
    """Documents of new chains whose insert waits for the transaction's next command (or its
    commit), so that the transaction stays restartable until then."""
    written: int = 0
    """How many of ``deferred`` were inserted in the current server transaction (a restart makes a
    new one, in which all of them are inserted again)."""


class Sessions:
    """Opens sessions and transactions on ``client`` and keeps a :class:`TxState` per session."""

    def __init__(
        self,
        client: Any,
        *,
        retries: int,
        flush: Callable[[Any, TxState], Awaitable[None]],
    ) -> None:
        self.client = client
        self.retries = retries
        self.flush = flush
        self._states: weakref.WeakKeyDictionary[Any, TxState] = weakref.WeakKeyDictionary()

    def state(self, session: Any) -> TxState:
        """The state of the caller's (or our) session; refuses a session outside a transaction and an
        aborted transaction."""
        if not isinstance(session, AsyncClientSession):
            raise UsageError(
                f"tx must be a pymongo AsyncClientSession inside a transaction, not {session!r}"
            )
        if not session.in_transaction:
            raise UsageError(
                "tx must be an AsyncClientSession inside a transaction "
                "(await session.start_transaction() first; a transaction that ended is refused)"
            )
        state = self._states.get(session)
        if state is None:
            state = TxState()
            self._states[session] = state
        elif state.aborted:
            raise TransactionAbortedError(_ABORTED)
        return state

    async def run(self, session: Any, fn: Callable[[Any], Awaitable[T]]) -> T:
        """``fn(session)`` in the caller's transaction: a MongoDB error marks it aborted (the server
        aborted it), a typed error raised before any failed command leaves it usable."""
        state = self.state(session)
        try:
            return await fn(session)
        except PyMongoError:
            state.aborted = True
            raise

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Any]:
        """A transaction for the caller: committed when the block ends (the commit is retried on an
        unknown result, which is safe), aborted when it raises. The block itself is never re-run."""
        async with self.client.start_session() as session:
            await session.start_transaction()
            state = TxState(opened_here=True)
            self._states[session] = state
            try:
                yield session
            except BaseException:
                await _abort(session)
                raise
            state = self._states.get(session, state)  # restart() may have replaced it
            if state.aborted:
                await _abort(session)
                raise TransactionAbortedError(_ABORTED)
            try:
                await self.flush(session, state)
            except BaseException:
                await _abort(session)
                raise
            await self.commit(session, "transaction")

    def fresh(self, session: Any) -> bool:
        """True if ``session`` is a transaction this adapter opened and in which no command has
        run yet: restarting it then loses nothing."""
        if not isinstance(session, AsyncClientSession):
            return False
        state = self._states.get(session)
        transaction = getattr(session, "_transaction", None)
        return (
            state is not None
            and state.opened_here
            and not state.aborted
            and transaction is not None
            and getattr(transaction, "state", None) == _STARTING
        )

    async def restart(self, session: Any) -> None:
        """Abort ``session``'s transaction and start a new one in its place (see :meth:`fresh`);
        the deferred inserts are written again by the next command."""
        old = self._states.get(session)
        await _abort(session)
        await session.start_transaction()
        state = TxState(opened_here=True)
        if old is not None:
            state.now = old.now
            state.deferred = old.deferred
        self._states[session] = state

    async def commit(self, session: Any, operation: str) -> None:
        attempt = 0
        while True:
            try:
                await session.commit_transaction()
                return
            except PyMongoError as exc:
                if not is_unknown_commit(exc):
                    raise
                attempt += 1
                if attempt >= self.retries:
                    raise TransactionRetriesExhaustedError(operation, attempt, exc) from exc
                logger.debug(
                    "retrying a commit with an unknown result",
                    extra={"queuert_operation": operation, "queuert_attempt": attempt},
                )

    async def own(self, operation: str, fn: Callable[[Any], Awaitable[T]]) -> T:
        """``fn`` in a transaction of the adapter's own, run again whole (it is queuert's code, never
        the caller's) after a transient transaction error, up to ``retries`` times."""
        attempt = 0
        while True:
            try:
                async with self.client.start_session() as session:
                    await session.start_transaction()
                    self._states[session] = TxState()
                    try:
                        result = await fn(session)
                    except BaseException:
                        await _abort(session)
                        raise
                    await self.commit(session, operation)
                    return result
            except PyMongoError as exc:
                if not is_transient(exc):
                    raise
                attempt += 1
                if attempt >= self.retries:
                    raise TransactionRetriesExhaustedError(operation, attempt, exc) from exc
                logger.debug(
                    "retrying after a transient transaction error",
                    extra={"queuert_operation": operation, "queuert_attempt": attempt},
                )
                await asyncio.sleep(random.uniform(0, 0.004 * attempt))


async def _abort(session: Any) -> None:
    if session.in_transaction:
        # the server aborts it anyway when the session ends or the transaction times out
        with suppress(PyMongoError):
            await session.abort_transaction()
