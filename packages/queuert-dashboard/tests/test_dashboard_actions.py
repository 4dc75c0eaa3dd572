"""Actions: trigger, cancel, delete; each confirmed first, refused without the CSRF token or in
read-only mode, and announced to workers only after its transaction commits."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from dashboard_helpers import Site
from queuert.in_memory import InProcessNotifyAdapter
from queuert.state import StoredJob


def post(site: Site, path: str, **form: str) -> Any:
    return site.http.post(path, data={"csrf_token": site.csrf(), **form}, follow_redirects=False)


def test_trigger_runs_a_scheduled_job_now(site: Site) -> None:
    job = site.seed.start("mail.send", after=timedelta(hours=3))
    form = site.http.get(f"/jobs/{job.id}/trigger")
    assert form.status_code == 200 and 'name="csrf_token"' in form.text
    done = post(site, f"/jobs/{job.id}/trigger")
    assert done.status_code == 303
    assert done.headers["location"] == f"/jobs/{job.id}?notice=triggered"
    after = site.seed.get(job.id)
    assert after is not None and after.status == "ready"
    shown = site.http.get(done.headers["location"])
    assert "The job was made ready now." in shown.text


def test_trigger_refuses_a_running_job(site: Site) -> None:
    job = site.seed.start("mail.send")
    site.seed.claim("mail.send")
    refused = post(site, f"/jobs/{job.id}/trigger")
    assert refused.status_code == 409 and "its status is running" in refused.text


def test_cancel_closes_the_chain_and_releases_dependents(site: Site) -> None:
    blocker = site.seed.start("stock.check")
    waiting = site.seed.start("shop.order", blockers=[blocker.id])
    done = post(site, f"/chains/{blocker.id}/cancel")
    assert done.status_code == 303
    assert done.headers["location"] == f"/chains/{blocker.id}?notice=cancelled"
    cancelled = site.seed.get(blocker.id)
    released = site.seed.get(waiting.id)
    assert cancelled is not None and cancelled.status == "cancelled"
    assert released is not None and released.status == "ready"
    again = post(site, f"/chains/{blocker.id}/cancel")
    assert again.status_code == 409 and "already closed" in again.text


def test_delete_refuses_a_chain_others_wait_for_and_says_which(site: Site) -> None:
    blocker = site.seed.start("stock.check")
    waiting = site.seed.start("shop.order", blockers=[blocker.id])
    refused = post(site, f"/chains/{blocker.id}/delete")
    assert refused.status_code == 409
    assert "wait for it as a blocker" in refused.text
    assert f'href="/jobs/{waiting.id}"' in refused.text
    assert site.seed.get(blocker.id) is not None, "nothing was deleted"
    done = post(site, f"/chains/{waiting.id}/delete", cascade="1")
    assert done.status_code == 303 and done.headers["location"] == "/chains?notice=deleted&n=2"
    assert site.seed.get(waiting.id) is None and site.seed.get(blocker.id) is None
    shown = site.http.get(done.headers["location"])
    assert "Deleted 2 chain(s)." in shown.text


def test_actions_on_missing_chains_and_jobs_are_not_found(site: Site) -> None:
    unknown = site.client.state.ids.generate()
    for path in (
        f"/chains/{unknown}/cancel",
        f"/chains/{unknown}/delete",
        f"/jobs/{unknown}/trigger",
    ):
        assert site.http.get(path).status_code == 404, path
        assert post(site, path).status_code == 404, path


def test_csrf_token_is_required_and_must_match(site: Site) -> None:
    job = site.seed.start("mail.send", after=timedelta(hours=1))
    path = f"/jobs/{job.id}/trigger"
    site.csrf()
    assert site.http.post(path, data={}, follow_redirects=False).status_code == 403
    wrong = site.http.post(path, data={"csrf_token": "x" * 43}, follow_redirects=False)
    assert wrong.status_code == 403
    foreign = site.http.post(
        path,
        data={"csrf_token": site.csrf()},
        headers={"origin": "https://evil.example"},
        follow_redirects=False,
    )
    assert foreign.status_code == 403
    site.http.cookies.clear()
    no_cookie = site.http.post(path, data={"csrf_token": "x" * 43}, follow_redirects=False)
    assert no_cookie.status_code == 403
    still = site.seed.get(job.id)
    assert still is not None and still.status == "scheduled", "no refused request changed anything"
    same_origin = site.http.post(
        path,
        data={"csrf_token": site.csrf()},
        headers={"origin": "http://dashboard.test"},
        follow_redirects=False,
    )
    assert same_origin.status_code == 303


def test_read_only_hides_and_refuses_every_action(site: Site) -> None:
    site.serve(read_only=True)
    blocker = site.seed.start("stock.check", after=timedelta(hours=1))
    site.seed.start("shop.order", blockers=[blocker.id])
    for page in (f"/chains/{blocker.id}", f"/jobs/{blocker.id}", "/"):
        text = site.http.get(page).text
        assert "read-only" in text
        assert not re.search(r"/(cancel|delete|trigger)\"", text), page
    for path in (
        f"/chains/{blocker.id}/cancel",
        f"/chains/{blocker.id}/delete",
        f"/jobs/{blocker.id}/trigger",
    ):
        assert site.http.get(path).status_code == 403
        assert post(site, path).status_code == 403
    unchanged = site.seed.get(blocker.id)
    assert unchanged is not None and unchanged.status == "scheduled"


class CommitWatcher(InProcessNotifyAdapter):
    """Records, at each notification, the job as a reader outside the transaction sees it."""

    def __init__(self, site: Site, job_id: str) -> None:
        super().__init__()
        self.site = site
        self.job_id = job_id
        self.seen: list[StoredJob | None] = []

    async def notify_job_scheduled(self, type_name: str) -> None:
        self.seen.append(await self.site.client.state.get_job(self.job_id))
        await super().notify_job_scheduled(type_name)


def test_notifications_are_sent_after_the_commit(site: Site) -> None:
    from queuert import Client

    job = site.seed.start("mail.send", after=timedelta(hours=1))
    watcher = CommitWatcher(site, job.id)
    client: Client[Any] = Client(site.client.state, notify=watcher)
    from queuert_dashboard import create_dashboard

    site.serve(create_dashboard(client))
    assert post(site, f"/jobs/{job.id}/trigger").status_code == 303

    async def published() -> None:
        await client.wait_published()

    site.run(published)
    assert len(watcher.seen) == 1
    seen = watcher.seen[0]
    assert seen is not None and seen.status == "ready", "notified before the commit"
