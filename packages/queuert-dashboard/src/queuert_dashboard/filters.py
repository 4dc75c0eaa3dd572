"""The filters of the chain and job lists, read from the query string (so a link, a reload and the
live refresh keep them) and turned into arguments of the client's listing calls."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, get_args

from queuert.state import JobStatus
from starlette.datastructures import QueryParams

__all__ = ["JOB_STATUSES", "ListQuery", "parse_list_query"]

JOB_STATUSES: tuple[str, ...] = get_args(JobStatus)
CHAIN_STATUSES = ("open", "closed")
PAGE_SIZE = 50


@dataclass
class ListQuery:
    """What the user asked a list for; ``errors`` says which inputs were ignored and why."""

    type_name: str = ""
    status: str = ""
    created_from: datetime | None = None
    created_to: datetime | None = None
    search: str = ""
    cursor: str | None = None
    show_blockers: bool = False
    errors: list[str] = field(default_factory=list)

    def params(self, **override: Any) -> dict[str, Any]:
        """The query string of this list (for links to the next page, and for the filter form)."""
        values: dict[str, Any] = {
            "type": self.type_name,
            "status": self.status,
            "from": _form_time(self.created_from),
            "to": _form_time(self.created_to),
            "q": self.search,
            "blockers": "1" if self.show_blockers else "",
        }
        values.update(override)
        return values

    @property
    def form_from(self) -> str:
        return _form_time(self.created_from)

    @property
    def form_to(self) -> str:
        return _form_time(self.created_to)


def _form_time(moment: datetime | None) -> str:
    return "" if moment is None else moment.strftime("%Y-%m-%dT%H:%M")


def _moment(text: str, name: str, errors: list[str]) -> datetime | None:
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        errors.append(f"{name}: not a date and time (YYYY-MM-DDTHH:MM, UTC)")
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment


def parse_list_query(params: QueryParams, *, statuses: tuple[str, ...]) -> ListQuery:
    errors: list[str] = []
    status = params.get("status", "").strip()
    if status and status not in statuses:
        errors.append(f"status: unknown status {status!r}")
        status = ""
    return ListQuery(
        type_name=params.get("type", "").strip(),
        status=status,
        created_from=_moment(params.get("from", "").strip(), "from", errors),
        created_to=_moment(params.get("to", "").strip(), "to", errors),
        search=params.get("q", "").strip(),
        cursor=params.get("cursor") or None,
        show_blockers=params.get("blockers") == "1",
        errors=errors,
    )
