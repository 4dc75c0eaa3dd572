"""MySQL server error codes the adapter acts on, read from whichever driver raised them."""

from __future__ import annotations

__all__ = [
    "DEADLOCK",
    "DUPLICATE_KEY",
    "LOCK_WAIT_TIMEOUT",
    "error_code",
    "is_retryable",
]

DEADLOCK = 1213
"""ER_LOCK_DEADLOCK: InnoDB chose this transaction as a deadlock victim and rolled it back whole."""
LOCK_WAIT_TIMEOUT = 1205
"""ER_LOCK_WAIT_TIMEOUT: a lock wait exceeded ``innodb_lock_wait_timeout``; only the statement was
rolled back (unless the server runs with ``innodb_rollback_on_timeout``)."""
DUPLICATE_KEY = 1062
"""ER_DUP_ENTRY: a unique key (a job id, a chain position) is taken."""


def error_code(exc: BaseException) -> int | None:
    """The server's error number of a driver exception (aiomysql/PyMySQL and asyncmy put it in
    ``args[0]``; SQLAlchemy wraps the driver's exception as ``orig``), else ``None``."""
    for error in (exc, getattr(exc, "orig", None)):
        if error is None:
            continue
        args = getattr(error, "args", ())
        if args and type(args[0]) is int:
            return args[0]
    return None


def is_retryable(exc: BaseException) -> bool:
    """A deadlock or a lock wait timeout: running the whole transaction again may succeed."""
    return error_code(exc) in (DEADLOCK, LOCK_WAIT_TIMEOUT)
