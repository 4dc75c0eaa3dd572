"""End to end in Chromium: a live dashboard over SQLite and PostgreSQL with a worker running."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from dashboard_live import Live, SendMail, live_dashboard
from playwright.async_api import expect
from queuert import Schedule

TIMEOUT = 15_000
"""Milliseconds a browser expectation waits for the page to show what the test expects."""


@pytest.fixture(params=["sqlite", "postgres"])
async def live(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Live]:
    async with live_dashboard(request.param, tmp_path) as site:
        yield site
    csp = [
        line for line in site.console if "Content Security Policy" in line or "pageerror" in line
    ]
    assert csp == [], csp


def card(page: object, heading: str) -> object:
    return page.locator(".card", has=page.locator("h2", has_text=heading)).locator(".big")  # type: ignore[attr-defined]


async def test_the_overview_follows_chains_as_they_complete(live: Live) -> None:
    page = await live.page("/")
    await expect(card(page, "Last hour")).to_have_text("0", timeout=TIMEOUT)
    await page.evaluate("window.scrollTo(0, 200)")
    before = await page.evaluate("window.scrollY")
    for i in range(3):
        await live.start(SendMail({"to": f"user{i}@example.com"}))
    await live.start(SendMail({"to": "bounce@example.com", "fail": True}))
    await expect(card(page, "Last hour")).to_have_text("3", timeout=TIMEOUT)
    await expect(page.locator("#cards .bad")).to_have_text("1 failed", timeout=TIMEOUT)
    await expect(page.locator("#activity rect.b-completed")).to_have_count(1, timeout=TIMEOUT)
    assert await page.evaluate("window.scrollY") == before, "the refresh kept the scroll position"
    await expect(page.locator("#counts")).to_contain_text("mail.send")
    for i in range(2):
        await live.start(SendMail({"to": f"later{i}@example.com"}, schedule=Schedule(after=600)))
    await live.order("hold-overview")  # its stock check runs until the gate opens; it waits
    queues = page.locator("#queues tbody tr")
    await expect(queues).to_have_count(3, timeout=TIMEOUT)
    await expect(page.locator("#workers")).to_contain_text("stock.check", timeout=TIMEOUT)
    await live.screenshot(page, "overview")


async def test_a_chain_graph_shows_its_blockers_and_follows_them(live: Live) -> None:
    order, stock = await live.order("hold-1")
    page = await live.page(f"/chains/{order.id}")
    graph = page.locator("#chain-graph svg.graph")
    await expect(graph.locator(".n-blocker")).to_have_count(1, timeout=TIMEOUT)
    await expect(graph.locator(".n-blocker")).to_contain_text("stock.check")
    await expect(graph.locator(".n-job rect.s-blocked")).to_have_count(1, timeout=TIMEOUT)
    await expect(graph.locator(".n-blocker rect.s-running")).to_have_count(1, timeout=TIMEOUT)
    await live.screenshot(page, "chain")
    stock_page = await live.page(f"/chains/{stock.id}")
    await expect(stock_page.locator("#chain-graph .n-dependent")).to_contain_text("order.place")
    live.gate.set()
    # the stock check completes, the order continues to shipping and completes: the page follows
    await expect(graph.locator(".n-job")).to_have_count(2, timeout=TIMEOUT)
    await expect(graph.locator(".n-job rect.s-completed")).to_have_count(1, timeout=TIMEOUT)
    await expect(graph.locator(".n-job rect.s-continued")).to_have_count(1, timeout=TIMEOUT)
    await expect(graph.locator(".n-blocker rect.s-completed")).to_have_count(1, timeout=TIMEOUT)
    await graph.locator(".n-blocker").click()
    await expect(page).to_have_url(re.compile(f"/chains/{stock.id}$"))


async def test_trigger_cancel_and_delete_from_the_browser(live: Live) -> None:
    later = await live.start(SendMail({"to": "later@example.com"}, schedule=Schedule(after=3600)))
    page = await live.page(f"/jobs/{later.id}")
    await expect(page.locator("#job-detail .status").first).to_have_text("scheduled")
    await live.screenshot(page, "job")
    await page.get_by_role("link", name="Run now…").click()
    await expect(page.locator("h1")).to_have_text("Run this job now?")
    await live.screenshot(page, "confirm")
    await page.locator("#confirm").click()
    await expect(page.locator(".notice")).to_have_text("The job was made ready now.")
    # the worker picks it up at once; the page shows it completed without a reload
    await expect(page.locator("#job-detail .status").first).to_have_text(
        "completed", timeout=TIMEOUT
    )

    order, stock = await live.order("hold-2")
    await page.goto(f"{live.url}/chains/{stock.id}")
    await page.get_by_role("link", name="Delete chain…").click()
    await page.locator("#confirm").click()
    await expect(page.locator("h1")).to_contain_text("Cannot delete chain")
    await expect(page.locator("main")).to_contain_text(order.root.id)
    await page.goto(f"{live.url}/chains/{order.id}")
    await page.get_by_role("link", name="Cancel chain…").click()
    await page.locator("#confirm").click()
    await expect(page.locator(".notice")).to_have_text("The chain was cancelled.")
    await expect(page.locator("#chain-head .status")).to_have_text("cancelled")
    await page.get_by_role("link", name="Delete chain…").click()
    await page.get_by_label("also delete the chains it waits for").check()
    await page.locator("#confirm").click()
    await expect(page.locator(".notice")).to_have_text("Deleted 2 chain(s).")
    assert await live.client.get_chain(order.id) is None
    assert await live.client.get_chain(stock.id) is None


async def test_read_only_shows_no_action_and_refuses_them(live: Live) -> None:
    later = await live.start(SendMail({"to": "x@example.com"}, schedule=Schedule(after=3600)))
    page = await live.page(f"/ro/jobs/{later.id}")
    await expect(page.locator(".badge")).to_have_text("read-only")
    await expect(page.get_by_role("link", name="Run now…")).to_have_count(0)
    chain_page = await live.page(f"/ro/chains/{later.id}")
    await expect(chain_page.locator("a.button")).to_have_count(0)
    refused = await page.goto(f"{live.url}/ro/jobs/{later.id}/trigger")
    assert refused is not None and refused.status == 403
    posted = await page.request.post(f"{live.url}/ro/chains/{later.id}/cancel", form={})
    assert posted.status == 403
    chain = await live.client.get_chain(later.id)
    assert chain is not None and chain.tail.status == "scheduled"


async def test_lists_filter_and_page_in_the_browser(live: Live) -> None:
    for i in range(3):
        await live.start(SendMail({"to": f"list{i}@example.com", "fail": i == 1}))
    order, _ = await live.order("pick-1")
    page = await live.page("/chains")
    await expect(page.locator("#chain-list tbody tr")).to_have_count(4, timeout=TIMEOUT)
    await page.locator("input[name=type]").fill("mail.send")
    await page.get_by_role("button", name="Filter").click()
    await expect(page.locator("#chain-list tbody tr")).to_have_count(3)
    await expect(page.locator("input[name=type]")).to_have_value("mail.send")
    await live.screenshot(page, "chains")
    jobs = await live.page("/jobs?status=failed")
    await expect(jobs.locator("#job-list tbody tr")).to_have_count(1, timeout=TIMEOUT)
    await expect(jobs.locator("#job-list .err")).to_contain_text("ConnectionError")
    await live.screenshot(jobs, "jobs")
    await page.get_by_role("link", name="reset").click()
    await page.locator("input[name=q]").fill(order.id)
    await page.get_by_role("button", name="Filter").click()
    await expect(page.locator("#chain-list tbody tr")).to_have_count(1)
