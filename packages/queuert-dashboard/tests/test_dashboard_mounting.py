"""Mounted under a path of another ASGI application, every link, form and cookie stays under it."""

from __future__ import annotations

import re
from datetime import timedelta

from dashboard_helpers import Site, hrefs
from queuert_dashboard import create_dashboard
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route


def test_mounted_under_a_path(site: Site) -> None:
    async def home(request: object) -> PlainTextResponse:
        return PlainTextResponse("the host application")

    host = Starlette(
        routes=[
            Route("/", home),
            Mount("/admin/queue", app=create_dashboard(site.client)),
        ]
    )
    site.serve(host)
    job = site.seed.start("mail.send", after=timedelta(hours=1))
    assert site.http.get("/").text == "the host application"
    page = site.http.get("/admin/queue/")
    assert page.status_code == 200
    links = [h for h in hrefs(page.text) if h.startswith("/")]
    assert links and all(h.startswith("/admin/queue/") for h in links), links
    assert re.search(r'src="/admin/queue/static/dashboard.js"', page.text)
    assert site.http.get("/admin/queue/static/dashboard.css").status_code == 200
    assert "path=/admin/queue/" in page.headers["set-cookie"].lower()
    form = site.http.get(f"/admin/queue/jobs/{job.id}/trigger")
    assert f'action="/admin/queue/jobs/{job.id}/trigger"' in form.text
    token = site.http.cookies.get("queuert_csrf")
    done = site.http.post(
        f"/admin/queue/jobs/{job.id}/trigger", data={"csrf_token": token}, follow_redirects=False
    )
    assert done.status_code == 303
    assert done.headers["location"] == f"/admin/queue/jobs/{job.id}?notice=triggered"
