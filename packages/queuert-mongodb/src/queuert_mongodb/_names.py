"""The collections of one queuert store, named from a validated prefix."""

from __future__ import annotations

import re
from dataclasses import dataclass

from queuert.errors import InvalidIdentifierError

__all__ = ["Names"]

_PREFIX = re.compile(r"[A-Za-z0-9_]{0,40}")
_DATABASE = re.compile(r"[A-Za-z0-9_-]{1,63}")


@dataclass(frozen=True)
class Names:
    """``database`` and the collection names ``{prefix}jobs``, ``{prefix}locks`` (deduplication
    locks) and ``{prefix}meta`` (applied migrations, the clock document, the migration lock), and
    the notify adapter's ``{prefix}notify`` (messages) and ``{prefix}wake_hints`` (budgets)."""

    database: str
    prefix: str

    def __post_init__(self) -> None:
        if not isinstance(self.database, str) or not _DATABASE.fullmatch(self.database):
            raise InvalidIdentifierError("database", str(self.database))
        if not isinstance(self.prefix, str) or not _PREFIX.fullmatch(self.prefix):
            raise InvalidIdentifierError("collection prefix", str(self.prefix))

    @property
    def jobs(self) -> str:
        return f"{self.prefix}jobs"

    @property
    def locks(self) -> str:
        return f"{self.prefix}locks"

    @property
    def meta(self) -> str:
        return f"{self.prefix}meta"

    @property
    def notify(self) -> str:
        return f"{self.prefix}notify"

    @property
    def wake_hints(self) -> str:
        return f"{self.prefix}wake_hints"
