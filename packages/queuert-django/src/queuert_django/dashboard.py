"""``with_dashboard``: Django's ASGI application with queuert's dashboard under a path.

Django's URL resolver routes to Django views, and the dashboard is an ASGI application, so it is
mounted in front of Django, in ``asgi.py``::

    from django.core.asgi import get_asgi_application
    from queuert_django.auth import staff_only
    from queuert_django.dashboard import with_dashboard

    application = with_dashboard(get_asgi_application(), "/admin/queue", auth=staff_only)

Requests under the path go to the dashboard (with the path moved into the ASGI ``root_path``, so
its links work), everything else to Django. The dashboard's client is opened on the server's event
loop, at the ASGI lifespan startup (or, if the server sends no lifespan events, at the first
request under the path), and closed at lifespan shutdown; Django itself does not take lifespan
events, so they are answered here.
"""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from typing import Any

from queuert_dashboard import AuthHook, create_dashboard
from starlette.responses import RedirectResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from queuert_django.conf import load_settings
from queuert_django.connections import open_client

__all__ = ["DashboardMount", "with_dashboard"]


class DashboardMount:
    """The ASGI application ``with_dashboard`` returns."""

    def __init__(
        self,
        django_app: ASGIApp,
        path: str,
        *,
        auth: AuthHook | None,
        read_only: bool,
        title: str,
    ) -> None:
        if not path.startswith("/") or path == "/":
            raise ValueError(
                f"the dashboard's path must start with / and not be / itself: {path!r}"
            )
        self.django_app = django_app
        self.path = path.rstrip("/")
        self._options: dict[str, Any] = {"auth": auth, "read_only": read_only, "title": title}
        self._dashboard: ASGIApp | None = None
        self._stack: AsyncExitStack | None = None
        self._opening = asyncio.Lock()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        path: str = scope.get("path", "")
        if scope["type"] == "http" and (path == self.path or path.startswith(self.path + "/")):
            if path == self.path:
                await RedirectResponse(path + "/", status_code=308)(scope, receive, send)
                return
            dashboard = await self._open()
            root_path = scope.get("root_path", "") + self.path
            await dashboard({**scope, "root_path": root_path}, receive, send)
            return
        await self.django_app(scope, receive, send)

    async def _open(self) -> ASGIApp:
        async with self._opening:
            if self._dashboard is None:
                stack = AsyncExitStack()
                client = await stack.enter_async_context(open_client(load_settings()))
                self._stack = stack
                self._dashboard = create_dashboard(client, **self._options)
            return self._dashboard

    async def close(self) -> None:
        """Close the dashboard's client and connections (lifespan shutdown does it)."""
        async with self._opening:
            stack, self._stack, self._dashboard = self._stack, None, None
            if stack is not None:
                await stack.aclose()

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self._open()
                except Exception as exc:
                    await send({"type": "lifespan.startup.failed", "message": repr(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.close()
                await send({"type": "lifespan.shutdown.complete"})
                return


def with_dashboard(
    django_app: ASGIApp,
    path: str = "/admin/queue",
    *,
    auth: AuthHook | None,
    read_only: bool = False,
    title: str = "queuert",
) -> DashboardMount:
    """``django_app`` with the dashboard over ``QUEUERT["DATABASE"]`` under ``path``.

    ``auth`` is required (pass ``None`` explicitly to let anyone who reaches the path in):
    :func:`queuert_django.auth.staff_only` admits logged-in staff users of Django's session.
    """
    return DashboardMount(django_app, path, auth=auth, read_only=read_only, title=title)
