"""A transaction bound with its hooks: the state adapter's transaction and the
:class:`~queuert.hooks.TransactionHooks` that flush after it commits, held together.

Everything in the core that writes inside a transaction takes a :class:`BoundTransaction`, so the
buffered side effects of a write always land in the hooks of the transaction that made it.
:class:`Transactions` opens bound transactions and savepoints, and finds the hooks of a transaction the
caller opened (``client.start_chain(job, tx=tx)``): hooks bound to ``tx`` by ``client.transaction()``,
``client.hooks(tx)`` or a savepoint, else hooks attached to the adapter's own commit event where the
adapter offers one, else :class:`~queuert.errors.TransactionHooksRequiredError`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any, Generic, TypeVar

from queuert._publishing import Publishing
from queuert.errors import TransactionHooksRequiredError, UsageError
from queuert.hooks import TransactionHooks
from queuert.state import StateAdapter

__all__ = ["BoundTransaction", "Transactions"]

TxT = TypeVar("TxT")


class BoundTransaction(Generic[TxT]):
    """A transaction (``tx``, the adapter's handle) and the hooks that flush after it commits."""

    __slots__ = ("hooks", "tx")

    def __init__(self, tx: TxT, hooks: TransactionHooks) -> None:
        self.tx = tx
        self.hooks = hooks

    def __repr__(self) -> str:
        return f"BoundTransaction(tx={self.tx!r})"


class Transactions(Generic[TxT]):
    """Opens bound transactions and savepoints, and keeps which hooks serve which open transaction."""

    def __init__(self, state: StateAdapter[TxT], publishing: Publishing) -> None:
        self._state = state
        self._publishing = publishing
        self._bound: dict[int, list[TransactionHooks]] = {}
        """Hooks by ``id(tx)``, innermost last (a savepoint may share its transaction's handle)."""

    def transaction(self) -> TransactionScope[TxT]:
        """A transaction of the state adapter with new hooks: flushed after the commit, dropped on
        rollback (``async with transactions.transaction() as bound``)."""
        return TransactionScope(self)

    @asynccontextmanager
    async def hooks_around(self, tx: Any = None) -> AsyncIterator[TransactionHooks]:
        """New hooks for a transaction the caller opens inside this block (bound to ``tx`` if given):
        flushed when the block exits normally, dropped when it raises."""
        hooks = TransactionHooks()
        try:
            if tx is None:
                yield hooks
            else:
                with self._bind(tx, hooks):
                    yield hooks
        except BaseException:
            hooks.discard()
            raise
        await hooks.flush()

    @asynccontextmanager
    async def savepoint(self, bound: BoundTransaction[TxT]) -> AsyncIterator[BoundTransaction[TxT]]:
        """A savepoint in ``bound`` covering its side effects too: if the block raises, its writes
        roll back and what it buffered in the hooks is dropped."""
        hooks = bound.hooks
        restore = hooks.checkpoint()
        try:
            async with self._state.savepoint(bound.tx) as inner:
                with self._bind(inner, hooks):
                    yield BoundTransaction(inner, hooks)
        except BaseException:
            restore()
            raise

    def bound(self, tx: TxT, hooks: TransactionHooks | None) -> BoundTransaction[TxT]:
        """``tx`` with the hooks to use for it: ``hooks`` if given, else the ones bound to ``tx``,
        else hooks attached to the adapter's commit event (see the module docstring)."""
        if tx is None:
            raise UsageError("this call changes state and needs the transaction: pass tx=...")
        if hooks is None:
            stack = self._bound.get(id(tx))
            if stack:
                hooks = stack[-1]
            else:
                hooks = self._attach_commit_hooks(tx)
                if hooks is None:
                    raise TransactionHooksRequiredError()
        return BoundTransaction(tx, hooks)

    @contextmanager
    def _bind(self, tx: Any, hooks: TransactionHooks) -> Iterator[None]:
        self.push(tx, hooks)
        try:
            yield
        finally:
            self.pop(tx)

    def push(self, tx: Any, hooks: TransactionHooks) -> None:
        """Bind ``hooks`` to ``tx`` (innermost)."""
        self._bound.setdefault(id(tx), []).append(hooks)

    def pop(self, tx: Any) -> None:
        """Undo the innermost :meth:`push` for ``tx``."""
        stack = self._bound[id(tx)]
        stack.pop()
        if not stack:
            del self._bound[id(tx)]

    def _attach_commit_hooks(self, tx: Any) -> TransactionHooks | None:
        """Hooks flushed by the transaction's own commit event, where the adapter offers one.

        New hooks for every call, never bound to ``tx``: each call's side effects then belong to
        the (sub)transaction the call ran in, so a savepoint of the caller's that rolls back (a
        SQLAlchemy ``begin_nested()``) drops exactly the calls made inside it, if the adapter's
        events tell savepoints apart."""
        attach = getattr(self._state, "attach_commit_hooks", None)
        if attach is None:
            return None
        hooks = TransactionHooks()
        publishing = self._publishing
        if not attach(tx, lambda: publishing.flush_later(hooks), hooks.discard):
            return None
        return hooks


class TransactionScope(Generic[TxT]):
    """``async with`` a new bound transaction (see :meth:`Transactions.transaction`).

    A class rather than an ``@asynccontextmanager``: every chain started one by one opens one, and
    async generators cost several microseconds each on that path.
    """

    __slots__ = ("_entered", "_hooks", "_transactions", "_tx")

    def __init__(self, transactions: Transactions[TxT]) -> None:
        self._transactions = transactions

    async def __aenter__(self) -> BoundTransaction[TxT]:
        hooks = self._hooks = TransactionHooks()
        entered = self._entered = self._transactions._state.transaction()
        tx = self._tx = await entered.__aenter__()
        self._transactions.push(tx, hooks)
        return BoundTransaction(tx, hooks)

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: Any
    ) -> bool:
        transactions = self._transactions
        transactions.pop(self._tx)
        publishing = transactions._publishing
        if exc_type is None and publishing.sends_before_commit(self._hooks):
            try:
                # notifications the notify adapter sends inside the transaction: on commit only
                await publishing.before_commit(self._tx, self._hooks)
            except BaseException as error:
                self._hooks.discard()
                if not await self._entered.__aexit__(type(error), error, error.__traceback__):
                    raise
                return True
        try:
            suppressed = bool(await self._entered.__aexit__(exc_type, exc, tb))
        except BaseException:
            self._hooks.discard()
            raise
        if exc_type is not None and not suppressed:
            self._hooks.discard()
            return False
        await self._hooks.flush()
        return suppressed
