"""Security: the auth hook, the response headers, no inline script or style, and every value a
user or a job controls escaped on every page."""

from __future__ import annotations

import base64
import re
from datetime import timedelta

from dashboard_helpers import HOSTILE, Site
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response


def test_auth_hook_denies_with_403(site: Site) -> None:
    site.serve(auth=lambda request: False)
    for path in ("/", "/chains", "/jobs", "/static/dashboard.js"):
        page = site.http.get(path)
        assert page.status_code == 403, path
        assert "content-security-policy" in page.headers


def test_auth_hook_may_answer_http_basic_auth(site: Site) -> None:
    expected = "Basic " + base64.b64encode(b"ops:secret").decode()

    async def basic(request: Request) -> bool | Response:
        if request.headers.get("authorization") == expected:
            return True
        return PlainTextResponse(
            "login required", status_code=401, headers={"WWW-Authenticate": 'Basic realm="q"'}
        )

    site.serve(auth=basic)
    challenged = site.http.get("/")
    assert challenged.status_code == 401
    assert challenged.headers["www-authenticate"] == 'Basic realm="q"'
    assert site.http.get("/", auth=("ops", "wrong")).status_code == 401
    assert site.http.get("/", auth=("ops", "secret")).status_code == 200


def test_auth_hook_guards_actions_too(site: Site) -> None:
    job = site.seed.start("mail.send", after=timedelta(hours=1))
    token = site.csrf()
    site.serve(auth=lambda request: request.method == "GET")
    refused = site.http.post(
        f"/jobs/{job.id}/trigger", data={"csrf_token": token}, follow_redirects=False
    )
    assert refused.status_code == 403
    unchanged = site.seed.get(job.id)
    assert unchanged is not None and unchanged.status == "scheduled"


def test_every_response_carries_the_security_headers(site: Site) -> None:
    job = site.seed.start("mail.send")
    for path in (
        "/",
        "/chains",
        "/jobs",
        f"/jobs/{job.id}",
        f"/chains/{job.id}",
        "/jobs/nope",
        "/static/dashboard.css",
        f"/chains/{job.id}/delete",
    ):
        page = site.http.get(path)
        csp = page.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "default-src 'none'" in csp, path
        assert "unsafe-inline" not in csp
        assert page.headers["x-content-type-options"] == "nosniff"
        assert page.headers["x-frame-options"] == "DENY"


def test_pages_have_no_inline_script_or_style(site: Site) -> None:
    blocker = site.seed.start("stock.check")
    job = site.seed.start("shop.order", {"a": 1}, blockers=[blocker.id])
    for path in (
        "/",
        "/chains",
        "/jobs",
        f"/jobs/{job.id}",
        f"/chains/{job.id}",
        f"/chains/{job.id}/cancel",
    ):
        text = site.http.get(path).text
        for script in re.findall(r"<script[^>]*>(.*?)</script>", text, re.S):
            assert script.strip() == "", f"inline script on {path}"
        assert re.findall(r"<script(?![^>]*\bsrc=)", text) == [], path
        assert " style=" not in text and "<style" not in text, path
        assert not re.search(r"\son[a-z]+=", text), f"event handler attribute on {path}"
        assert "javascript:" not in text


def test_hostile_values_are_escaped_everywhere(site: Site) -> None:
    seed = site.seed
    blocker = seed.start(HOSTILE, {HOSTILE: HOSTILE}, key=HOSTILE)
    job = seed.start(HOSTILE, [HOSTILE], blockers=[blocker.id])
    failed = seed.start("mail.send", HOSTILE)
    seed.claim("mail.send", worker_id=HOSTILE)
    seed.close(failed.id, "failed", worker_id=HOSTILE, error=f"{HOSTILE}\n{HOSTILE}")
    done = seed.start("report.build")
    seed.close(done.id, output={"html": HOSTILE})
    pages: list[tuple[str, dict[str, str]]] = [
        ("/", {}),
        ("/chains", {}),
        ("/chains", {"blockers": "1", "q": HOSTILE}),
        ("/chains", {"type": HOSTILE, "from": HOSTILE, "status": HOSTILE}),
        ("/chains", {"cursor": HOSTILE}),
        (f"/chains/{blocker.id}", {}),
        (f"/chains/{job.id}", {}),
        (f"/chains/{failed.id}", {}),
        (f"/chains/{done.id}", {}),
        ("/jobs", {"q": HOSTILE, "status": HOSTILE}),
        ("/jobs", {"type": HOSTILE}),
        (f"/jobs/{failed.id}", {}),
        (f"/jobs/{job.id}", {}),
        (f"/jobs/{done.id}", {}),
        (f"/chains/{blocker.id}/delete", {}),
        (f"/jobs/{HOSTILE}", {}),
    ]
    for path, params in pages:
        page = site.http.get(path, params=params)
        assert page.status_code in (200, 404), path
        assert "<script>alert" not in page.text, (path, params)
        assert "<img src=x" not in page.text, (path, params)
    shown = site.http.get(f"/jobs/{failed.id}").text
    assert "&lt;script&gt;alert(" in shown, "the error is shown, escaped"
    chain = site.http.get(f"/chains/{blocker.id}").text
    assert "&lt;script&gt;" in chain and HOSTILE not in chain
