"""Queue-health gauges: observable instruments read from the store when a metric reader collects.

A collection never waits on the database from the event loop and never reads it more often than
``min_interval``, however many readers (Prometheus scrapers, periodic exporters) collect: the
callbacks serve the last reading, and a reading older than ``min_interval`` starts one refresh
(concurrent collections share it). A collection on another thread (a periodic exporting reader)
waits up to ``timeout`` for that refresh, so its values are at most ``min_interval`` old; a collection
on the event loop's own thread cannot wait and gets the previous reading.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Iterable
from typing import Any

from opentelemetry.metrics import CallbackOptions, Meter, Observation
from queuert.state import QueueStats

from queuert_otel import _attributes as a

__all__ = ["QueueHealth"]

logger = logging.getLogger("queuert.otel")


class QueueHealth:
    """The gauges of one client's queues (see :meth:`~queuert_otel.OtelObservability.watch`)."""

    def __init__(
        self,
        meter: Meter,
        client: Any,
        *,
        min_interval: float,
        timeout: float,
        type_names: list[str] | None,
    ) -> None:
        self._client = client
        self._min_interval = min_interval
        self._timeout = timeout
        self._type_names = type_names
        self._loop = asyncio.get_running_loop()
        self._stats: list[QueueStats] = []
        self._read_at = float("-inf")
        self._refresh: asyncio.Task[None] | None = None
        self._closed = False
        self.reads = 0
        """How many times the store was read (for tests and the curious)."""
        gauges = (
            ("queuert.queue.ready", "{job}", "Jobs ready to run now (the backlog).", "ready"),
            (
                "queuert.queue.oldest_ready_age",
                "s",
                "How long the oldest ready job has been due.",
                "oldest_ready_age",
            ),
            ("queuert.queue.scheduled", "{job}", "Jobs due later.", "scheduled"),
            ("queuert.queue.blocked", "{job}", "Jobs waiting for blocker chains.", "blocked"),
            ("queuert.queue.running", "{job}", "Jobs holding a lease.", "running"),
            (
                "queuert.queue.lease_expired",
                "{job}",
                "Running jobs whose lease expired and that no reaper has taken back yet.",
                "lease_expired",
            ),
        )
        self._instruments = [
            meter.create_observable_gauge(
                name, callbacks=[self._callback(field)], unit=unit, description=description
            )
            for name, unit, description, field in gauges
        ]

    def _callback(self, field: str) -> Any:
        def observe(options: CallbackOptions) -> Iterable[Observation]:
            stats = self._current()
            out: list[Observation] = []
            for s in stats:
                value = getattr(s, field)
                if field == "oldest_ready_age":
                    value = 0.0 if value is None else value.total_seconds()
                out.append(Observation(value, {a.JOB_TYPE: s.type_name}))
            return out

        return observe

    def _current(self) -> list[QueueStats]:
        """The latest reading, refreshed first if it is older than ``min_interval`` (waiting for the
        refresh only off the event loop's thread)."""
        if self._closed:
            return []
        if time.monotonic() - self._read_at < self._min_interval:
            return self._stats
        try:
            on_loop = asyncio.get_running_loop() is self._loop
        except RuntimeError:
            on_loop = False
        if on_loop:
            self._start_refresh()
            return self._stats
        if self._loop.is_closed():
            return self._stats
        done = threading.Event()

        def start() -> None:
            task = self._start_refresh()
            if task is None:
                done.set()
            else:
                task.add_done_callback(lambda _: done.set())

        try:
            self._loop.call_soon_threadsafe(start)
        except RuntimeError:  # the loop closed meanwhile
            return self._stats
        done.wait(self._timeout)
        return self._stats

    def _start_refresh(self) -> asyncio.Task[None] | None:
        if self._closed:
            return None
        if self._refresh is None or self._refresh.done():
            if time.monotonic() - self._read_at < self._min_interval:
                return None  # another collection refreshed meanwhile
            self._refresh = self._loop.create_task(self.refresh(), name="queuert-otel-queue-stats")
        return self._refresh

    async def refresh(self) -> None:
        """Read the queue statistics now (errors are logged; the previous reading stays)."""
        try:
            stats = await self._client.get_queue_stats(self._type_names)
        except Exception:
            logger.warning("reading queue statistics failed", exc_info=True)
            self._read_at = time.monotonic()  # do not retry at every collection
            return
        self.reads += 1
        self._stats = stats
        self._read_at = time.monotonic()

    async def settled(self) -> None:
        """Wait for the refresh a collection started, if one is underway."""
        task = self._refresh
        if task is not None and not task.done():
            await asyncio.shield(task)

    async def close(self) -> None:
        """Stop reading (the gauges then report nothing); waits for a refresh underway."""
        self._closed = True
        task = self._refresh
        if task is not None and not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
