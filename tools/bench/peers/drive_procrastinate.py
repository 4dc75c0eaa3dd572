"""Drives procrastinate through its public API (run in procrastinate's own environment; see
compare.py).

Its ``PsycopgConnector`` (a psycopg connection pool) for the enqueuer and for the worker, which
runs ``run_worker_async(concurrency=10, wait=False)``: it stops when it has caught up with the
queue. Defaults otherwise (LISTEN/NOTIFY on, finished jobs kept).
"""

from __future__ import annotations

from importlib.metadata import version

from driver_protocol import BATCH, CONCURRENCY, Clock, main, payload
from procrastinate import App, PsycopgConnector

done = 0


def build(dsn: str) -> tuple[App, object]:
    app = App(connector=PsycopgConnector(conninfo=dsn))

    @app.task(name="bench")  # type: ignore[untyped-decorator]
    async def bench(index: int) -> None:
        global done
        done += 1

    return app, bench


async def setup(dsn: str, jobs: int, clock: Clock) -> None:
    app, _ = build(dsn)
    async with app.open_async():
        await app.schema_manager.apply_schema_async()


async def enqueue_single(dsn: str, jobs: int, clock: Clock) -> None:
    app, task = build(dsn)
    async with app.open_async():
        clock.start()
        for i in range(jobs):
            await task.defer_async(**payload(i))  # type: ignore[attr-defined]
    clock.stop()


async def enqueue_batch(dsn: str, jobs: int, clock: Clock) -> None:
    app, task = build(dsn)
    async with app.open_async():
        clock.start()
        for offset in range(0, jobs, BATCH):
            count = min(BATCH, jobs - offset)
            await task.batch_defer_async(  # type: ignore[attr-defined]
                *[payload(offset + i) for i in range(count)]
            )
    clock.stop()


async def work(dsn: str, jobs: int, clock: Clock) -> None:
    app, _ = build(dsn)
    async with app.open_async():
        clock.start()
        await app.run_worker_async(
            concurrency=CONCURRENCY, wait=False, install_signal_handlers=False
        )
        clock.stop()
    assert done == jobs, f"processed {done} of {jobs}"


if __name__ == "__main__":
    main(
        {
            "setup": setup,
            "enqueue-single": enqueue_single,
            "enqueue-batch": enqueue_batch,
            "work": work,
        },
        version("procrastinate"),
    )
