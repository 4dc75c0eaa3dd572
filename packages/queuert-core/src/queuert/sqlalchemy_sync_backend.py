"""The SQLAlchemy side of a :class:`~queuert.SyncClient` backend, written once for every database.

Each adapter package ships a ``SqlAlchemySyncBackend``: a :class:`SqlAlchemySessionBackend` over
that package's backend for the DB-API driver (``sqlite3``, psycopg 3, PyMySQL). It finds the
driver's connection under the caller's ``Session`` or ``Connection``, checks that it is the
expected driver's, hands it to the driver backend, and ties queuert's side effects to the session's
commit and rollback events.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

from queuert.errors import UsageError
from queuert.notify import NotifyInTransaction
from queuert.sqlalchemy_session import attach_session_commit_hooks, driver_connection
from queuert.state import StateAdapter
from queuert.sync_backend import SyncBackend, TracksTransactions

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection
    from sqlalchemy.orm import Session

__all__ = ["SqlAlchemySessionBackend"]


class SqlAlchemySessionBackend:
    """:class:`~queuert.sync_backend.SyncBackend` for SQLAlchemy 2 sync ``Session`` and
    ``Connection`` objects, over ``driver_backend``, the backend of the engine's DB-API driver.

    Subclasses name the driver (``driver``: its top-level module) and the engines it serves
    (``engines``, for the error message). With a ``Session`` the side effects follow its commit and
    rollback events (no ``sync_client.hooks()`` block needed; a rolled-back ``begin_nested()`` drops
    its own); a ``Connection`` has no events after its commit, so open
    ``with sync_client.hooks(conn):`` around its transaction. A driver backend that keeps state per
    transaction (:class:`~queuert.sync_backend.TracksTransactions`) is told when a session's
    transaction ends, since the pool hands the connection to the next session."""

    driver: ClassVar[str]
    """The top-level module of the DB-API connections this backend accepts."""
    engines: ClassVar[str]
    """The engines it serves, as the error for another driver names them."""

    def __init__(self, driver_backend: SyncBackend[Any]) -> None:
        self.driver_backend = driver_backend

    @property
    def state(self) -> StateAdapter[Any]:
        return self.driver_backend.state

    def _raw(self, tx: Session | Connection) -> Any:
        raw = driver_connection(tx)
        if type(raw).__module__.split(".")[0] != self.driver:
            raise UsageError(
                f"{type(self).__name__} runs on {self.engines}, not {type(raw).__module__}"
            )
        return raw

    def transaction_of(self, tx: Session | Connection, *, write: bool) -> Any:
        return self.driver_backend.transaction_of(self._raw(tx), write=write)

    def notifier_in_transaction(self) -> NotifyInTransaction | None:
        return self.driver_backend.notifier_in_transaction()

    def attach_commit_hooks(
        self,
        tx: Session | Connection,
        on_commit: Callable[[], None],
        on_rollback: Callable[[], None],
    ) -> bool:
        driver_backend = self.driver_backend
        if not isinstance(driver_backend, TracksTransactions):
            return attach_session_commit_hooks(tx, on_commit, on_rollback)
        raw = driver_connection(tx)

        def ended(then: Callable[[], None]) -> Callable[[], None]:
            def run() -> None:
                driver_backend.transaction_begins(raw)  # the next session's is another one
                then()

            return run

        return attach_session_commit_hooks(tx, ended(on_commit), ended(on_rollback))
