"""What every view of one dashboard shares: the client it reads and acts through, its renderer and
its mode."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from queuert import Client
from queuert.errors import UsageError
from starlette.requests import Request
from starlette.responses import HTMLResponse

from queuert_dashboard.rendering import Renderer

__all__ = ["Dashboard"]


@dataclass(frozen=True)
class Dashboard:
    client: Client[Any]
    renderer: Renderer
    read_only: bool

    def is_id(self, value: str) -> bool:
        """True if the store could hold ``value`` as a job or chain id."""
        try:
            return bool(value) and self.client.state.ids.is_valid(value)
        except (UsageError, TypeError, ValueError):
            return False

    def not_found(self, request: Request, what: str, ident: str) -> HTMLResponse:
        return self.renderer.page(
            request, "message.html", {"heading": f"{what} not found", "detail": ident}, status=404
        )
