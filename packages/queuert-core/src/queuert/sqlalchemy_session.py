"""SQLAlchemy's synchronous ``Session`` and ``Connection`` as the caller's transaction of a
:class:`~queuert.SyncClient` backend.

Two things every SQLAlchemy sync backend needs, whatever the database: the DB-API connection under a
``Session`` or ``Connection`` (queuert's statements run on it, inside the session's transaction), and
the session's commit and rollback events, so that side effects follow the commit without a
``sync_client.hooks()`` block. SQLAlchemy is imported only when these are used.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from queuert.errors import UsageError

__all__ = ["attach_session_commit_hooks", "driver_connection"]


def driver_connection(tx: Any) -> Any:
    """The DB-API connection under ``tx``, a SQLAlchemy ``Session`` (its transaction begins if it
    has not) or an open ``Connection``; :class:`UsageError` for anything else."""
    from sqlalchemy.engine import Connection
    from sqlalchemy.orm import Session

    if isinstance(tx, Session):
        conn = tx.connection()
    elif isinstance(tx, Connection):
        if tx.closed:
            raise UsageError("the SQLAlchemy connection is closed")
        conn = tx
    else:
        raise UsageError(
            f"tx={tx!r:.80} is not a SQLAlchemy Session or Connection: pass the one of your "
            "transaction"
        )
    return conn.connection.driver_connection


@dataclass
class _Pending:
    on_commit: Callable[[], None]
    on_rollback: Callable[[], None]
    scope: Any
    """The session transaction (root or nested) that was innermost when the call ran."""


_pending: weakref.WeakKeyDictionary[Any, list[_Pending]] = weakref.WeakKeyDictionary()
"""Callbacks per session, waiting for its commit or rollback (one listener set per session)."""


def attach_session_commit_hooks(
    tx: Any, on_commit: Callable[[], None], on_rollback: Callable[[], None]
) -> bool:
    """For a ``Session``: ``on_commit()`` after its transaction commits, ``on_rollback()`` after it
    (or a savepoint, ``begin_nested()``, that was innermost when this was called) rolls back. False
    for anything else (a ``Connection`` has no events after its commit)."""
    from sqlalchemy import event
    from sqlalchemy.orm import Session

    if not isinstance(tx, Session):
        return False
    pending = _pending.get(tx)
    if pending is None:
        pending = _pending[tx] = []
        event.listen(tx, "after_commit", _committed)
        event.listen(tx, "after_rollback", _rolled_back)
        event.listen(tx, "after_soft_rollback", _soft_rolled_back)
    scope = tx.get_nested_transaction() or tx.get_transaction()
    pending.append(_Pending(on_commit, on_rollback, scope))
    return True


def _take(session: Any, within: Any = None) -> list[_Pending]:
    """Remove and return the session's pending callbacks (only those of ``within`` and the
    transactions nested in it, when given)."""
    pending = _pending.get(session)
    if not pending:
        return []
    if within is None:
        taken = pending[:]
        pending.clear()
        return taken
    taken = [p for p in pending if _inside(p.scope, within)]
    pending[:] = [p for p in pending if not _inside(p.scope, within)]
    return taken


def _inside(scope: Any, ancestor: Any) -> bool:
    while scope is not None:
        if scope is ancestor:
            return True
        scope = scope.parent
    return False


# SQLAlchemy fires after_commit and after_rollback for savepoints too, while the savepoint is still
# the session's innermost transaction: only the outermost transaction's end counts here, and a
# savepoint's rollback is handled by after_soft_rollback, which names it.


def _committed(session: Any) -> None:
    if session.get_nested_transaction() is None:
        for pending in _take(session):
            pending.on_commit()


def _rolled_back(session: Any) -> None:
    if session.get_nested_transaction() is None:
        for pending in _take(session):
            pending.on_rollback()


def _soft_rolled_back(session: Any, previous_transaction: Any) -> None:
    if previous_transaction.nested:  # a savepoint: only what ran inside it is dropped
        for pending in _take(session, previous_transaction):
            pending.on_rollback()
