"""Observability: receive typed lifecycle events, or log them with ``LoggingObservability``.

    uv run python -m examples.observability

An observability adapter is any object with ``emit(event) -> None`` (it must not block or raise).
Events about work done in a transaction arrive only after that transaction commits. This example
counts events and measures attempts with a custom adapter, and forwards everything to
``LoggingObservability``, which logs each event with its fields in the record's ``extra``
(``record.queuert_event``, ``record.queuert``) for structured log handlers.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from dataclasses import dataclass

from queuert import (
    Attempt,
    Client,
    EntryJobType,
    InMemoryStateAdapter,
    LoggingObservability,
    ObservabilityAdapter,
    Worker,
)
from queuert.observability import AttemptCompleted, AttemptFailed, ChainClosed, Event


@dataclass
class Text:
    body: str


class Shout(EntryJobType[Text, Text]):
    pass


class Metrics:
    """A custom adapter: counts events by name and keeps attempt durations per job type."""

    def __init__(self, forward: ObservabilityAdapter) -> None:
        self.counts: Counter[str] = Counter()
        self.durations: dict[str, list[float]] = {}
        self._forward = forward

    def emit(self, event: Event) -> None:
        self.counts[event.name] += 1
        if isinstance(event, (AttemptCompleted, AttemptFailed)):
            self.durations.setdefault(event.job.type_name, []).append(event.duration)
        if isinstance(event, ChainClosed):
            print(f"  metrics: chain {event.type_name} closed as {event.outcome}")
        self._forward.emit(event)


class StructuredHandler(logging.Handler):
    """Shows what a structured log handler receives (a JSON formatter would serialise the fields)."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        fields = getattr(record, "queuert", {})
        print(
            f"  log: {record.levelname:<7} {getattr(record, 'queuert_event', '?'):<22} keys={sorted(fields)}"
        )


async def main() -> Counter[str]:
    logger = logging.getLogger("examples.observability")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    handler = StructuredHandler()
    logger.addHandler(handler)
    metrics = Metrics(forward=LoggingObservability(logger))

    async with InMemoryStateAdapter() as state, Client(state, observability=metrics) as client:
        worker = Worker(client)

        @worker.handler(Shout)
        async def shout(attempt: Attempt[Shout]) -> Text:
            return Text(attempt.input.body.upper())

        async with client.transaction() as tx:
            chain = await client.start_chain(Shout(Text("hello")), tx=tx)
            print(f"  (inside the transaction: {sum(metrics.counts.values())} events so far)")
        async with worker:
            result = await client.wait_for_chain(chain, timeout=10)
    print(f"  result: {result}")
    print(f"event counts: {dict(metrics.counts)}")
    for type_name, durations in metrics.durations.items():
        print(f"attempt durations of {type_name}: {[f'{d * 1000:.1f} ms' for d in durations]}")
    return metrics.counts


if __name__ == "__main__":
    asyncio.run(main())
