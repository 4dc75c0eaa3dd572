"""Rendering pages: the Jinja2 environment (autoescaped), links under the mount path, and the
formatting of times, durations and values shared by every template."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlencode

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from queuert.json import UndecodableValue
from starlette.requests import Request
from starlette.responses import HTMLResponse

__all__ = ["Renderer", "ago", "as_json", "link"]


def link(request: Request, path: str, query: Mapping[str, Any] | None = None) -> str:
    """``path`` (starting with ``/``) under the path the dashboard is mounted at, with ``query``
    (``None`` and empty values left out)."""
    url = request.scope.get("root_path", "").rstrip("/") + path
    if query:
        kept = [(k, v) for k, v in query.items() if v not in (None, "", False)]
        if kept:
            url += "?" + urlencode(kept, doseq=True)
    return str(url)


def ago(moment: datetime | None, now: datetime | None = None) -> str:
    """``moment`` relative to ``now``: ``12s ago``, ``in 3m``; empty for ``None``."""
    if moment is None:
        return ""
    now = now or datetime.now(timezone.utc)
    seconds = (now - moment).total_seconds()
    text = duration(abs(seconds))
    return f"{text} ago" if seconds >= 0 else f"in {text}"


def duration(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 60:
        return f"{seconds:.0f}s"
    if seconds < 3600:
        return f"{seconds // 60:.0f}m{seconds % 60:02.0f}s"
    if seconds < 86400:
        return f"{seconds // 3600:.0f}h{seconds % 3600 // 60:02.0f}m"
    return f"{seconds // 86400:.0f}d{seconds % 86400 // 3600:02.0f}h"


def stamp(moment: datetime | None) -> str:
    """A UTC timestamp to the second, or empty."""
    if moment is None:
        return ""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return dump(mode="json")
    return repr(value)


def as_json(value: Any) -> str:
    """A job's input or output as indented JSON (decoded values are shown by their fields); one
    that cannot be read as it is stored, followed by what is wrong with it."""
    if isinstance(value, UndecodableValue):
        raw = value.raw if isinstance(value.raw, str) else as_json(value.raw)
        return f"{raw}\n\n(cannot be read: {value.reason})"
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True, default=_plain)


def first_line(text: str | None) -> str:
    if not text:
        return ""
    return text.strip().splitlines()[0] if text.strip() else ""


class Renderer:
    """Renders the package's templates with autoescaping on every value."""

    def __init__(self, *, title: str, read_only: bool, refresh_seconds: float) -> None:
        self.env = Environment(
            loader=PackageLoader("queuert_dashboard", "templates"),
            autoescape=select_autoescape(default=True, default_for_string=True),
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.filters.update(ago=ago, stamp=stamp, as_json=as_json, first_line=first_line)
        self.env.globals.update(duration=duration)
        self.title = title
        self.read_only = read_only
        self.refresh_seconds = refresh_seconds

    def page(
        self, request: Request, template: str, context: Mapping[str, Any], *, status: int = 200
    ) -> HTMLResponse:
        def url(path: str, **query: Any) -> str:
            return link(request, path, query)

        html = self.env.get_template(template).render(
            request=request,
            url=url,
            title=self.title,
            read_only=self.read_only,
            refresh_ms=int(self.refresh_seconds * 1000),
            csrf_token=request.state.csrf_token,
            now=datetime.now(timezone.utc),
            **{"section": "", "notice_key": "", **context},
        )
        return HTMLResponse(html, status_code=status)
