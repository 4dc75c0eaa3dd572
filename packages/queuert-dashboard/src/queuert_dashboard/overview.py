"""The overview: counts by status and type, the ready backlog, recent throughput and failures, and
the workers seen recently with the leases they hold."""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta
from typing import Any

from queuert import Job
from starlette.requests import Request
from starlette.responses import Response

from queuert_dashboard.chart import activity_chart
from queuert_dashboard.context import Dashboard
from queuert_dashboard.filters import JOB_STATUSES

__all__ = ["overview"]

WINDOW = timedelta(hours=1)
BUCKETS = 60
MAX_LEASES = 200
"""The overview lists at most this many running jobs under their workers."""


async def overview(dash: Dashboard, request: Request) -> Response:
    client = dash.client
    activity = await client.get_job_activity(window=WINDOW, buckets=BUCKETS)
    by_type: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(JOB_STATUSES, 0))
    totals = dict.fromkeys(JOB_STATUSES, 0)
    for row in activity.counts:
        by_type[row.type_name][row.status] += row.count
        totals[row.status] += row.count
    running = await client.list_jobs(statuses=["running"], order="asc", limit=MAX_LEASES)
    leases: dict[str, list[Job]] = defaultdict(list)
    for job in running.items:
        leases[job.leased_by or "?"].append(job)
    workers: dict[str, dict[str, Any]] = {}
    for seen in activity.workers:
        workers[seen.worker_id] = {"closed": seen.closed, "last_closed_at": seen.last_closed_at}
    for worker_id in leases:
        workers.setdefault(worker_id, {"closed": 0, "last_closed_at": None})
    queues = await client.get_queue_stats()
    ages = [q.oldest_ready_age for q in queues if q.oldest_ready_age is not None]
    chart = activity_chart(activity.buckets, WINDOW.total_seconds() / BUCKETS)
    return dash.renderer.page(
        request,
        "overview.html",
        {
            "section": "overview",
            "activity": activity,
            "statuses": JOB_STATUSES,
            "by_type": dict(sorted(by_type.items())),
            "totals": totals,
            "queues": queues,
            "ready_backlog": sum(q.ready for q in queues),
            "oldest_ready_age": max(ages) if ages else None,
            "lease_expired": sum(q.lease_expired for q in queues),
            "chart": chart,
            "window": WINDOW,
            "workers": dict(sorted(workers.items())),
            "leases": leases,
            "more_leases": running.next_cursor is not None,
        },
    )
