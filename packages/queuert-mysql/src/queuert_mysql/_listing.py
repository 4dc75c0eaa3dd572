"""The listing queries (chains, jobs, blocked jobs): their filter conditions and the keyset page in
creation order, built once for every listing."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from queuert.state import UNREADABLE_TIME

from queuert_mysql._rows import naive
from queuert_mysql._sql import marks

__all__ = ["Where"]


class Where:
    """The conditions of a listing's ``WHERE`` and their arguments, in order; ``alias`` is the
    listed table's alias (its ``created_at`` and ``id`` order the page)."""

    def __init__(self, alias: str, first: str = "TRUE", *args: Any) -> None:
        self.alias = alias
        self.conditions = [first]
        self.args: list[Any] = list(args)

    def add(self, condition: str, *args: Any) -> None:
        self.conditions.append(condition)
        self.args.extend(args)

    def one_of(self, expression: str, values: Sequence[Any] | None) -> None:
        """``expression IN (values)``; an empty list matches nothing, ``None`` anything."""
        if values is None:
            return
        if not values:
            self.conditions.append("FALSE")
            return
        self.add(f"{expression} IN ({marks(len(values))})", *values)

    def created_between(self, start: datetime | None, end: datetime | None) -> None:
        """Created at ``start`` or later and before ``end`` (either may be open)."""
        if start is not None:
            self.add(f"{self.alias}.created_at >= %s", naive(start))
        if end is not None:
            self.add(f"{self.alias}.created_at < %s", naive(end))

    def page(self, select: str, after: tuple[datetime, str] | None, desc: bool, rows: int) -> str:
        """``select`` (which names the table under ``alias``) with these conditions, the rows
        after the cursor position ``after`` (a ``created_at`` and an id) in list order, ordered by
        creation and at most ``rows`` of them."""
        a = self.alias
        if after is not None:
            at, row_id = after
            op = "<" if desc else ">"
            if at == UNREADABLE_TIME:
                # The page ended on a job whose created_at is no date (a zero date reads as
                # 1970): go on after what it holds (the cursor names the job, or the chain, whose
                # id is its first job's).
                held = "COALESCE((SELECT k.created_at FROM {job} k WHERE k.id = %s), %s)"
                self.add(
                    f"({a}.created_at {op} {held} OR ({a}.created_at = {held} AND {a}.id {op} %s))",
                    *(row_id, naive(at)),
                    *(row_id, naive(at)),
                    row_id,
                )
            else:
                self.add(
                    f"({a}.created_at {op} %s OR ({a}.created_at = %s AND {a}.id {op} %s))",
                    naive(at),
                    naive(at),
                    row_id,
                )
        direction = "DESC" if desc else "ASC"
        return (
            f"{select} WHERE {' AND '.join(self.conditions)} "
            f"ORDER BY {a}.created_at {direction}, {a}.id {direction} LIMIT {rows}"
        )
