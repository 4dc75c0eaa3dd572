"""``staff_only``: the dashboard's auth hook for Django's logged-in staff users.

It reads Django's session cookie and resolves the user as ``django.contrib.auth`` does for a view
(session engine, authentication backend, session hash check), on a thread (the ORM is synchronous).
Anonymous visitors are redirected to ``settings.LOGIN_URL``; logged-in users who are not active
staff get 403.
"""

from __future__ import annotations

from importlib import import_module
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlencode

from asgiref.sync import sync_to_async
from django.conf import settings
from django.shortcuts import resolve_url
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

__all__ = ["staff_only"]


def _user(session_key: str | None) -> Any:
    from django.contrib.auth import get_user

    engine = import_module(settings.SESSION_ENGINE)
    request = SimpleNamespace(session=engine.SessionStore(session_key))
    return get_user(request)


async def staff_only(request: Request) -> bool | Response:
    user = await sync_to_async(_user)(request.cookies.get(settings.SESSION_COOKIE_NAME))
    if not user.is_authenticated:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        login = resolve_url(settings.LOGIN_URL)
        return RedirectResponse(f"{login}?{urlencode({'next': target})}", status_code=302)
    return bool(user.is_active and user.is_staff)
