"""``create_dashboard``: the dashboard as an ASGI application, to serve alone or to mount."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from queuert import Client
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp

from queuert_dashboard.actions import ACTIONS, confirm, perform
from queuert_dashboard.chains import chain_detail, chain_list
from queuert_dashboard.context import Dashboard
from queuert_dashboard.jobs import job_detail, job_list
from queuert_dashboard.overview import overview
from queuert_dashboard.rendering import Renderer
from queuert_dashboard.security import AuthHook, Guard

__all__ = ["create_dashboard"]

View = Callable[[Dashboard, Request], Awaitable[Response]]


def create_dashboard(
    client: Client[Any],
    *,
    read_only: bool = False,
    auth: AuthHook | None = None,
    title: str = "queuert",
    refresh_seconds: float = 3.0,
) -> ASGIApp:
    """The dashboard over ``client`` (its state adapter is read, its actions go through it).

    ``read_only`` hides the actions and refuses them with 403. ``auth`` is called with every
    request and allows it (``True``), refuses it (``False``: 403) or answers it (a response);
    without it anyone who reaches the application may use it. Open pages refresh in place every
    ``refresh_seconds``. The client stays open: close it when your application stops.

    Mount it under a path (``Mount("/queue", app=create_dashboard(client))``): its links follow the
    ASGI ``root_path``.
    """
    dash = Dashboard(
        client=client,
        renderer=Renderer(title=title, read_only=read_only, refresh_seconds=refresh_seconds),
        read_only=read_only,
    )

    def bind(view: View) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            return await view(dash, request)

        return endpoint

    routes = [
        Route("/", bind(overview), name="overview"),
        Route("/chains", bind(chain_list), name="chains"),
        Route("/chains/{chain_id:str}", bind(chain_detail), name="chain"),
        Route("/jobs", bind(job_list), name="jobs"),
        Route("/jobs/{job_id:str}", bind(job_detail), name="job"),
        Mount("/static", StaticFiles(packages=[("queuert_dashboard", "static")]), name="static"),
    ]
    for action, (kind, _) in ACTIONS.items():
        path = f"/{kind}/{{ident:str}}/{action}"
        routes.append(
            Route(path, bind(_with_action(action, confirm)), methods=["GET"], name=f"{action}_form")
        )
        routes.append(
            Route(path, bind(_with_action(action, perform)), methods=["POST"], name=action)
        )
    app = Starlette(routes=routes)
    return Guard(app, auth=auth)


def _with_action(action: str, view: View) -> View:
    async def with_action(dash: Dashboard, request: Request) -> Response:
        request.path_params["action"] = action
        return await view(dash, request)

    return with_action
