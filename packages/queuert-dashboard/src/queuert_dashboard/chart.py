"""The overview's activity chart: bars of jobs completed and failed per time bucket, as geometry for
inline SVG (no script, no inline style: heights are attributes, colours come from classes)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from queuert.state import ActivityBucket

__all__ = ["Bar", "Chart", "activity_chart"]

WIDTH = 600
HEIGHT = 120
AXIS = 16


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    w: float
    h: float
    kind: str
    """``completed`` or ``failed``."""
    title: str


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    bars: list[Bar]
    peak: int
    start: datetime | None
    end: datetime | None
    total_completed: int
    total_failed: int


def activity_chart(buckets: Sequence[ActivityBucket], bucket_seconds: float) -> Chart:
    """One pair of stacked bars per bucket, scaled to the busiest bucket."""
    peak = max((b.completed + b.failed for b in buckets), default=0)
    bars: list[Bar] = []
    slot = WIDTH / max(len(buckets), 1)
    usable = HEIGHT - AXIS
    for i, bucket in enumerate(buckets):
        x = i * slot + 1
        w = max(slot - 2, 1)
        ok = usable * bucket.completed / peak if peak else 0
        bad = usable * bucket.failed / peak if peak else 0
        label = bucket.start.strftime("%H:%M")
        if bucket.completed:
            bars.append(
                Bar(x, usable - ok, w, ok, "completed", f"{label}: {bucket.completed} completed")
            )
        if bucket.failed:
            bars.append(
                Bar(x, usable - ok - bad, w, bad, "failed", f"{label}: {bucket.failed} failed")
            )
    return Chart(
        width=WIDTH,
        height=HEIGHT,
        bars=bars,
        peak=peak,
        start=buckets[0].start if buckets else None,
        end=buckets[-1].start if buckets else None,
        total_completed=sum(b.completed for b in buckets),
        total_failed=sum(b.failed for b in buckets),
    )
