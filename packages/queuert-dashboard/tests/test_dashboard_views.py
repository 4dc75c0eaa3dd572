"""The pages: overview, chain list and page, job list and page, on every backend."""

from __future__ import annotations

import contextlib
import html
import re
import sqlite3
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from dashboard_helpers import Site, hrefs


def rows(page: str, section: str) -> str:
    match = re.search(rf'<section id="{section}"[^>]*>(.*?)</section>', page, re.S)
    assert match, f"no live section {section}"
    return match.group(1)


def test_overview_counts_by_type_and_status_and_lists_workers(site: Site) -> None:
    seed = site.seed
    seed.start("shop.order")
    seed.start("shop.order", after=timedelta(hours=1))
    done = seed.start("mail.send")
    failed = seed.start("mail.send")
    seed.claim("mail.send", worker_id="worker-7")
    seed.close(done.id, worker_id="worker-7", output="ok")
    seed.close(failed.id, "failed", worker_id="worker-7", error="SMTPError: refused")
    running = seed.start("report.build")
    seed.claim("report.build", worker_id="worker-9")
    page = site.http.get("/")
    assert page.status_code == 200
    counts = rows(page.text, "counts")
    order_row = re.search(r"<tr><th><a[^>]*>shop.order</a></th>(.*?)</tr>", counts, re.S)
    assert order_row
    cells = re.findall(r"<td>(.*?)</td>", order_row.group(1))
    numbers = [re.sub(r"<[^>]+>", "", c) for c in cells]
    # statuses in the order of JobStatus: blocked scheduled ready running continued completed ...
    assert numbers == ["0", "1", "1", "0", "0", "0", "0", "0"]
    mail = re.search(r"<tr><th><a[^>]*>mail.send</a></th>(.*?)</tr>", counts, re.S)
    assert mail
    assert [re.sub(r"<[^>]+>", "", c) for c in re.findall(r"<td>(.*?)</td>", mail.group(1))] == [
        "0",
        "0",
        "0",
        "0",
        "0",
        "1",
        "1",
        "0",
    ]
    workers = rows(page.text, "workers")
    assert "worker-7" in workers and "worker-9" in workers
    assert f"/jobs/{running.id}" in workers, "a worker's lease links to its job"
    activity = rows(page.text, "activity")
    assert activity.count('class="bar b-completed"') == 1
    assert activity.count('class="bar b-failed"') == 1
    cards = rows(page.text, "cards")
    assert re.search(r"Ready backlog</h2><p class=\"big\">1<", cards)


def test_chain_list_filters_and_hides_blocker_chains(site: Site) -> None:
    seed = site.seed
    blocker = seed.start("stock.check")
    waiting = seed.start("shop.order", {"n": 1}, blockers=[blocker.id])
    keyed = seed.start("shop.order", {"n": 2}, key="order-42")
    closed = seed.start("mail.send")
    seed.close(closed.id)

    def listed(**query: str) -> list[str]:
        page = site.http.get("/chains", params=query)
        assert page.status_code == 200
        return re.findall(r'href="/chains/([^"/?]+)"', rows(page.text, "chain-list"))

    assert listed() == [closed.id, keyed.id, waiting.id], "newest first, blocker chain hidden"
    assert blocker.id in listed(blockers="1")
    assert listed(type="shop.order") == [keyed.id, waiting.id]
    assert listed(status="closed") == [closed.id]
    assert listed(q=keyed.id) == [keyed.id]
    assert listed(q=blocker.id) == [blocker.id], "a searched id is found even if it blocks"
    cont = seed.continue_chain(keyed, "shop.ship")
    assert listed(q=cont.id) == [keyed.id], "a job id finds its chain"
    assert listed(q="order-42") == [keyed.id], "a deduplication key finds its chain"
    assert listed(q="no-such-key") == []
    now = datetime.now(timezone.utc)
    assert listed(**{"from": (now + timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M")}) == []
    assert len(listed(**{"to": (now + timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M")})) == 3
    bad = site.http.get("/chains", params={"from": "yesterday", "status": "weird"})
    assert bad.status_code == 200
    assert "from: not a date" in bad.text and "unknown status" in bad.text


def test_chain_list_pages_with_a_cursor_keeping_filters(site: Site) -> None:
    made = [site.seed.start("bulk.item", {"i": i}).id for i in range(53)]
    site.seed.start("other.kind")
    first = site.http.get("/chains", params={"type": "bulk.item"})
    ids = re.findall(r'href="/chains/([^"/?]+)"', rows(first.text, "chain-list"))
    assert ids == made[::-1][:50]
    (next_link,) = [h for h in hrefs(first.text) if "cursor=" in h]
    query = parse_qs(urlsplit(html.unescape(next_link)).query)
    assert query["type"] == ["bulk.item"]
    second = site.http.get(html.unescape(next_link))
    ids2 = re.findall(r'href="/chains/([^"/?]+)"', rows(second.text, "chain-list"))
    assert ids2 == made[::-1][50:]
    assert not [h for h in hrefs(second.text) if "cursor=" in h and "rel" in h]
    garbage = site.http.get("/chains", params={"cursor": "not-a-cursor"})
    assert garbage.status_code == 200 and 'class="error"' in garbage.text


def test_chain_page_draws_jobs_blockers_and_dependents(site: Site) -> None:
    seed = site.seed
    stock = seed.start("stock.check")
    payment = seed.start("payment.auth")
    order = seed.start("shop.order", blockers=[stock.id])
    shipping = seed.continue_chain(order, "shop.ship")
    audit = seed.start("audit.log", blockers=[order.id])
    seed.close(payment.id, "failed", error="Traceback (most recent call last):\nValueError: card")
    page = site.http.get(f"/chains/{order.id}")
    assert page.status_code == 200
    graph = rows(page.text, "chain-graph")
    assert graph.count('class="node n-job"') == 2
    assert graph.count('class="node n-blocker"') == 1
    assert graph.count('class="node n-dependent"') == 1
    assert f'href="/chains/{stock.id}"' in graph
    assert f'href="/jobs/{audit.id}"' in graph
    assert 'class="s-continued"' in graph and 'class="s-ready"' in graph
    assert graph.count('class="edge e-continuation"') == 1
    assert graph.count('class="edge e-blocker"') == 1
    assert graph.count('class="edge e-dependent"') == 1
    jobs = rows(page.text, "chain-jobs")
    assert shipping.id in jobs and "stock.check" in jobs
    failed = site.http.get(f"/chains/{payment.id}")
    assert "ValueError: card" not in failed.text.split("<details>")[0].split("last error")[0]
    assert "Traceback (most recent call last):" in failed.text


def test_missing_and_malformed_ids_are_not_found(site: Site) -> None:
    unknown = site.client.state.ids.generate()
    for path in (f"/chains/{unknown}", f"/jobs/{unknown}", "/chains/not an id", "/jobs/%3Cx%3E"):
        page = site.http.get(path)
        assert page.status_code == 404, path


def test_job_list_and_page(site: Site) -> None:
    seed = site.seed
    ready = seed.start("mail.send", {"to": "a@example.com"})
    later = seed.start("mail.send", after=timedelta(hours=2))
    running = seed.start("report.build")
    seed.claim("report.build", worker_id="worker-3")
    listed = site.http.get("/jobs", params={"status": "scheduled"})
    assert re.findall(r'href="/jobs/([^"/?]+)"', rows(listed.text, "job-list")) == [later.id]
    by_type = site.http.get("/jobs", params={"type": "mail.send"})
    assert re.findall(r'href="/jobs/([^"/?]+)"', rows(by_type.text, "job-list")) == [
        later.id,
        ready.id,
    ]
    by_chain = site.http.get("/jobs", params={"q": running.chain_id})
    assert running.id in by_chain.text
    page = site.http.get(f"/jobs/{running.id}")
    assert page.status_code == 200
    assert "worker-3" in page.text and "lease" in page.text
    detail = site.http.get(f"/jobs/{ready.id}")
    assert "a@example.com" in detail.text


def test_overview_shows_each_queues_backlog_and_expired_leases(site: Site) -> None:
    seed = site.seed
    seed.start("mail.send")
    seed.start("mail.send")
    seed.start("report.build", after=timedelta(hours=1))
    seed.start("stalled.job")
    seed.claim("stalled.job", worker_id="worker-gone", lease=timedelta(0))  # expired at once
    page = site.http.get("/")
    queues = rows(page.text, "queues")
    mail = re.search(r"<tr><th><a[^>]*>mail.send</a></th>(.*?)</tr>", queues, re.S)
    assert mail
    cells = [
        re.sub(r"<[^>]+>", "", c).strip()
        for c in re.findall(r"<td>(.*?)</td>", mail.group(1), re.S)
    ]
    assert cells[0] == "2" and cells[1], "two ready, with the oldest one's wait"
    assert cells[2:] == ["0", "0", "0", "0"]
    report = re.search(r"<tr><th><a[^>]*>report.build</a></th>(.*?)</tr>", queues, re.S)
    assert report
    assert [
        re.sub(r"<[^>]+>", "", c).strip()
        for c in re.findall(r"<td>(.*?)</td>", report.group(1), re.S)
    ] == ["0", "", "1", "0", "0", "0"]
    stalled = re.search(r"<tr><th><a[^>]*>stalled.job</a></th>(.*?)</tr>", queues, re.S)
    assert stalled
    assert [
        re.sub(r"<[^>]+>", "", c).strip()
        for c in re.findall(r"<td>(.*?)</td>", stalled.group(1), re.S)
    ] == ["0", "", "0", "0", "1", "1"]
    cards = rows(page.text, "cards")
    assert re.search(r"Ready backlog</h2><p class=\"big\">2<", cards)
    assert "oldest waiting" in cards and "1 on an expired lease" in cards


def test_a_long_chain_shows_its_first_jobs_and_links_to_all(site: Site) -> None:
    job = site.seed.start("loop.step", {"i": 0})
    for i in range(1, 52):
        job = site.seed.continue_chain(job, "loop.step", {"i": i})
    page = site.http.get(f"/chains/{job.chain_id}")
    assert page.status_code == 200
    assert rows(page.text, "chain-graph").count('class="node n-job"') == 50
    jobs = rows(page.text, "chain-jobs")
    assert f'href="/jobs?q={job.chain_id}"' in jobs, "a link to every job of the chain"
    listed = site.http.get("/jobs", params={"q": job.chain_id})
    assert 'rel="next"' in listed.text, "the job list pages through all 52"


def test_a_row_that_cannot_be_read_is_shown_and_the_pages_still_render(
    sqlite_site: Site, tmp_path: Path
) -> None:
    """A job whose stored input is not JSON and whose ``scheduled_at`` is not a time (edited by
    hand in the SQLite file): every page that lists it still renders, and its page says what is
    wrong with it (the stored text, and which time cannot be read)."""
    site = sqlite_site
    bad = site.seed.start("mail.send", {"to": "a@example.com"})
    good = site.seed.start("mail.send", {"to": "b@example.com"})
    with contextlib.closing(sqlite3.connect(tmp_path / "dashboard.db")) as conn:
        conn.execute(
            "UPDATE queuert_job SET input = ?, scheduled_at = ? WHERE id = ?",
            ('{"to": "a@exa', "2000-01-01 not a time", bad.id),
        )
        conn.commit()
    for path in ("/", "/chains", "/jobs", f"/chains/{bad.chain_id}"):
        page = site.http.get(path)
        assert page.status_code == 200, (path, page.status_code)
    listed = site.http.get("/jobs", params={"type": "mail.send"})
    assert {bad.id, good.id} <= set(re.findall(r'href="/jobs/([^"/?]+)"', listed.text))
    detail = site.http.get(f"/jobs/{bad.id}")
    assert detail.status_code == 200
    text = html.unescape(detail.text)
    assert "stored scheduled_at cannot be read" in text, "the page says which time is bad"
    assert '{"to": "a@exa' in text, "the page shows the stored input as it is"
