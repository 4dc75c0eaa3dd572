"""What guards every request: the auth hook, the CSRF token and the response headers.

* **Auth.** ``auth`` is called with each request (pages, actions and static files alike) and returns
  ``True`` to allow it, ``False`` to refuse it with 403, or a response to send instead (a 401 with
  ``WWW-Authenticate`` for HTTP basic auth, a redirect to a login page). It may be async.
* **CSRF.** Every page sets a random token in a ``SameSite=Strict``, ``HttpOnly`` cookie and puts the
  same token in each form; a mutating request is refused with 403 unless the form's token equals the
  cookie's and the ``Origin`` header, when sent, is the dashboard's own.
* **Headers.** A strict ``Content-Security-Policy`` (scripts, styles, images and requests from the
  dashboard itself only; no inline script or style), ``nosniff``, no framing, no referrer sent to other sites.
"""

from __future__ import annotations

import hmac
import inspect
import secrets
from collections.abc import Awaitable, Callable

from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["CSP", "CSRF_COOKIE", "AuthHook", "Guard", "check_csrf"]

AuthHook = Callable[[Request], bool | Response | Awaitable[bool | Response]]
"""Allows (``True``) or denies (``False``: 403) a request, or answers it (a :class:`Response`)."""

CSRF_COOKIE = "queuert_csrf"
CSRF_FIELD = "csrf_token"

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)

_HEADERS = {
    "content-security-policy": CSP,
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "same-origin",
    "cache-control": "no-store",
}


class Guard:
    """ASGI middleware: runs the auth hook, gives the request its CSRF token and sets the
    security headers on every response."""

    def __init__(self, app: ASGIApp, *, auth: AuthHook | None) -> None:
        self.app = app
        self.auth = auth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        if self.auth is not None:
            verdict = self.auth(request)
            if inspect.isawaitable(verdict):
                verdict = await verdict
            if verdict is not True:
                response = (
                    verdict
                    if isinstance(verdict, Response)
                    else PlainTextResponse("forbidden", status_code=403)
                )
                await response(scope, receive, self._with_headers(send, None))
                return
        token = request.cookies.get(CSRF_COOKIE, "")
        fresh = None
        if len(token) != 43 or not token.replace("-", "").replace("_", "").isalnum():
            token = fresh = secrets.token_urlsafe(32)
        scope.setdefault("state", {})["csrf_token"] = token
        cookie_path = (scope.get("root_path", "") or "").rstrip("/") + "/"
        cookie = None
        if fresh is not None:
            secure = "; Secure" if scope.get("scheme") == "https" else ""
            cookie = f"{CSRF_COOKIE}={fresh}; Path={cookie_path}; HttpOnly; SameSite=Strict{secure}"
        await self.app(scope, receive, self._with_headers(send, cookie))

    @staticmethod
    def _with_headers(send: Send, cookie: str | None) -> Send:
        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in _HEADERS.items():
                    if name not in headers:
                        headers[name] = value
                if cookie is not None:
                    headers.append("set-cookie", cookie)
            await send(message)

        return send_with_headers


def check_csrf(request: Request, submitted: object) -> bool:
    """True if ``submitted`` (the form's token) matches the request's cookie and the request comes
    from a page of the dashboard's own origin."""
    cookie = request.cookies.get(CSRF_COOKIE)
    if not cookie or not isinstance(submitted, str):
        return False
    if not hmac.compare_digest(cookie.encode(), submitted.encode()):
        return False
    origin = request.headers.get("origin")
    if origin is not None and origin != "null":
        host = request.headers.get("host", "")
        if origin.split("://", 1)[-1] != host:
            return False
    return True
