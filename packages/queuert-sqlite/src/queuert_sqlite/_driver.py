"""The DB-API module that provides SQLite, and how to recognise its errors.

The adapter runs on the standard library's ``sqlite3`` or on a drop-in module with a newer SQLite
(sqlean.py, pysqlite3). Their exception classes differ, so errors are recognised by the DB-API
class name and SQLite's error code rather than by ``isinstance``.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from queuert.errors import QueuertError

__all__ = [
    "DRIVER_ENV",
    "MIN_SQLITE",
    "SqliteSetupError",
    "is_busy",
    "is_integrity_error",
    "load_driver",
]

DRIVER_ENV = "QUEUERT_SQLITE_DRIVER"
"""The environment variable naming the default driver."""
MIN_SQLITE = (3, 35, 0)
"""RETURNING (3.35) and json_each are required."""
_SQLITE_BUSY = 5
_SQLITE_LOCKED = 6


class SqliteSetupError(QueuertError):
    """The database cannot be used as configured (e.g. foreign keys cannot be enabled)."""


def load_driver(name: str) -> ModuleType:
    """The DB-API module of a SQLite driver, checked for the SQLite features the adapter needs."""
    try:
        module = importlib.import_module(name)
    except ImportError as exc:
        raise SqliteSetupError(
            f"SQLite driver {name!r} is not installed (pip install sqlean.py or pysqlite3-binary, "
            "or use the standard library's 'sqlite3')"
        ) from exc
    if not hasattr(module, "connect") and hasattr(module, "dbapi2"):
        module = module.dbapi2
    if not hasattr(module, "connect") or not hasattr(module, "sqlite_version_info"):
        raise SqliteSetupError(f"{name!r} is not a SQLite DB-API module")
    version = tuple(module.sqlite_version_info)
    if version < MIN_SQLITE:
        raise SqliteSetupError(
            f"SQLite {module.sqlite_version} from {name!r} is too old: queuert needs "
            f"{'.'.join(map(str, MIN_SQLITE))} or newer (RETURNING); try driver='sqlean'"
        )
    return module


def _is_dbapi_error(exc: BaseException, name: str) -> bool:
    """True if ``exc`` is a DB-API ``name`` error of any SQLite driver (stdlib, sqlean, ...)."""
    return any(cls.__name__ == name for cls in type(exc).__mro__)


def is_integrity_error(exc: BaseException) -> bool:
    return _is_dbapi_error(exc, "IntegrityError")


def is_busy(exc: BaseException) -> bool:
    """True for SQLITE_BUSY / SQLITE_LOCKED (another connection holds a conflicting lock)."""
    if not _is_dbapi_error(exc, "OperationalError"):
        return False
    code = getattr(exc, "sqlite_errorcode", None)
    if isinstance(code, int):
        return code & 0xFF in (_SQLITE_BUSY, _SQLITE_LOCKED)
    text = str(exc).lower()
    return "database is locked" in text or "database table is locked" in text or "busy" in text
