"""The actions: trigger a job, cancel a chain, delete a chain. Each has a confirmation page (GET)
and the action itself (POST, CSRF-checked), which runs in its own transaction through the client,
so its notifications go out only after the commit, then redirects to a page saying what happened.
In read-only mode both answer 403."""

from __future__ import annotations

from typing import Any

from queuert.errors import (
    BlockerReferenceError,
    ChainNotFoundError,
    JobAlreadyCompletedError,
    JobNotFoundError,
    JobNotTriggerableError,
)
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from queuert_dashboard.context import Dashboard
from queuert_dashboard.rendering import link
from queuert_dashboard.security import CSRF_FIELD, check_csrf

__all__ = ["ACTIONS", "confirm", "perform"]

ACTIONS: dict[str, tuple[str, str]] = {
    "trigger": ("jobs", "Run this job now"),
    "cancel": ("chains", "Cancel this chain"),
    "delete": ("chains", "Delete this chain"),
}
"""Action name → (what it applies to, its confirmation heading)."""


def _refused(dash: Dashboard, request: Request, heading: str, detail: str, status: int) -> Response:
    return dash.renderer.page(
        request, "message.html", {"heading": heading, "detail": detail}, status=status
    )


async def _target(dash: Dashboard, request: Request, kind: str, ident: str) -> Any:
    if not dash.is_id(ident):
        return None
    if kind == "jobs":
        return await dash.client.get_job(ident)
    return await dash.client.get_chain(ident)


async def confirm(dash: Dashboard, request: Request) -> Response:
    action = request.path_params["action"]
    kind, heading = ACTIONS[action]
    ident = request.path_params["ident"]
    if dash.read_only:
        return _refused(dash, request, "read-only dashboard", "actions are disabled", 403)
    target = await _target(dash, request, kind, ident)
    if target is None:
        return dash.not_found(request, kind[:-1], ident)
    return dash.renderer.page(
        request,
        "confirm.html",
        {"action": action, "kind": kind, "heading": heading, "target": target, "section": kind},
    )


async def perform(dash: Dashboard, request: Request) -> Response:
    action = request.path_params["action"]
    kind, _ = ACTIONS[action]
    ident = request.path_params["ident"]
    if dash.read_only:
        return _refused(dash, request, "read-only dashboard", "actions are disabled", 403)
    form = await request.form()
    if not check_csrf(request, form.get(CSRF_FIELD)):
        return _refused(
            dash, request, "request refused", "missing or wrong CSRF token: reload the page", 403
        )
    if not dash.is_id(ident):
        return dash.not_found(request, kind[:-1], ident)
    client = dash.client
    try:
        async with client.transaction() as tx:
            if action == "trigger":
                await client.trigger_jobs([ident], tx=tx)
                where = link(request, f"/jobs/{ident}", {"notice": "triggered"})
            elif action == "cancel":
                await client.cancel_chain(ident, tx=tx)
                where = link(request, f"/chains/{ident}", {"notice": "cancelled"})
            else:
                cascade = form.get("cascade") == "1"
                deleted = await client.delete_chains([ident], cascade=cascade, tx=tx)
                if not deleted:
                    raise ChainNotFoundError(ident)
                where = link(request, "/chains", {"notice": "deleted", "n": str(len(deleted))})
    except (JobNotFoundError, ChainNotFoundError):
        return dash.not_found(request, kind[:-1], ident)
    except JobNotTriggerableError as exc:
        return _refused(
            dash, request, "cannot run this job now", f"its status is {exc.status}", 409
        )
    except JobAlreadyCompletedError:
        return _refused(dash, request, "cannot cancel", "the chain is already closed", 409)
    except BlockerReferenceError as exc:
        return dash.renderer.page(
            request,
            "blocked_delete.html",
            {"chain_id": ident, "references": exc.references},
            status=409,
        )
    return RedirectResponse(where, status_code=303)
