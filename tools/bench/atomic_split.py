"""Where the exactly-once path's cost lies below the worker, on PostgreSQL: the same four statements
per job (``BEGIN``, the handler's ``INSERT``, the job's completion, ``COMMIT``) at concurrency 10,
built up from the bare driver to queuert's state adapter, with no worker.

    uv run python tools/bench/atomic_split.py --dsn postgresql://postgres@127.0.0.1:5432/test --runs 5

Variants, run interleaved round by round on the same claimed jobs of a fresh schema:

* ``driver``: 10 dedicated asyncpg connections, ``conn.transaction()``, the insert, a plain
  ``UPDATE`` closing the job row (guarded by ``leased_by``);
* ``pool``: the same statements on connections taken from the adapter's pool, one per job;
* ``adapter tx``: the adapter's own ``transaction()`` (pool, ``BEGIN``, the protected ``COMMIT``)
  with the same plain ``UPDATE``, on a provider that releases each transaction's connection to the
  pool (``keep_connections=False``);
* ``kept tx``: the same on a provider that keeps them for its next transactions (the default);
* ``complete_job``: the adapter's transaction and its guarded ``complete_job`` (what the worker's
  atomic path runs: the lease check, the close, unblocking of dependents, the closed row returned),
  connections released;
* ``kept complete_job``: the same, connections kept.

Every round runs the variants in turn, in reverse order every other round.

Reports jobs/s and this process's CPU time per job (medians, with the range).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import timedelta
from typing import Any

import asyncpg
from bench import BenchJob, Item, pg_schema, run_on_own_schema
from queuert import Client
from queuert.state import StoredJob
from queuert_postgres import AsyncpgProvider, PgStateAdapter

CONCURRENCY = 10
VARIANTS = ("driver", "pool", "adapter tx", "kept tx", "complete_job", "kept complete_job")


async def measure(
    dsn: str, jobs_per_variant: int, rounds: int
) -> dict[str, list[tuple[float, float]]]:
    schema = pg_schema(dsn)
    plain = dsn.split("?")[0]
    provider = await AsyncpgProvider.connect(plain, max_size=CONCURRENCY, keep_connections=False)
    state = PgStateAdapter(provider, schema=schema)
    await state.migrate()
    keeping = await AsyncpgProvider.connect(plain, max_size=CONCURRENCY)
    kept = PgStateAdapter(keeping, schema=schema)
    client: Client[Any] = Client(state, job_types=[BenchJob])
    rows = f'"{schema}".bench_row'
    job_table = state.names.job
    async with provider.pool.acquire() as conn:
        await conn.execute(f"CREATE TABLE {rows} (job_id text PRIMARY KEY, n integer NOT NULL)")
    total = jobs_per_variant * len(VARIANTS) * rounds
    for offset in range(0, total, 100):
        await client.start_chains(
            [BenchJob(Item(i)) for i in range(offset, min(offset + 100, total))]
        )
    claimed = await state.claim_jobs(
        leases={BenchJob.type_name: timedelta(hours=1)}, limit=total, worker_id="w"
    )
    assert len(claimed.jobs) == total
    queue = iter(claimed.jobs)
    insert = f"INSERT INTO {rows} (job_id, n) VALUES ($1, $2)"
    close = (
        f"UPDATE {job_table} SET outcome = 'completed', output = $2::json, completed_at = now(), "
        "completed_by = 'w', leased_by = NULL, leased_until = NULL "
        "WHERE id = $1::uuid AND leased_by = 'w' AND outcome IS NULL"
    )
    output = '{"ok": true}'
    dedicated = [await asyncpg.connect(plain) for _ in range(CONCURRENCY)]

    async def on_driver(conn: Any, batch: Iterator[StoredJob]) -> None:
        for job in batch:
            async with conn.transaction():
                await conn.execute(insert, job.id, 1)
                await conn.execute(close, job.id, output)

    async def on_pool(_: Any, batch: Iterator[StoredJob]) -> None:
        for job in batch:
            async with provider.pool.acquire() as conn, conn.transaction():
                await conn.execute(insert, job.id, 1)
                await conn.execute(close, job.id, output)

    async def close_plain(adapter: PgStateAdapter[Any], tx: Any, job: StoredJob) -> None:
        await tx.execute(close, job.id, output)

    async def close_guarded(adapter: PgStateAdapter[Any], tx: Any, job: StoredJob) -> None:
        await adapter.complete_job(
            job.id, outcome="completed", worker_id="w", output={"ok": True}, owner="w", tx=tx
        )

    def in_transactions(
        adapter: PgStateAdapter[Any],
        close_job: Callable[[PgStateAdapter[Any], Any, StoredJob], Awaitable[None]],
    ) -> Callable[[Any, Iterator[StoredJob]], Awaitable[None]]:
        """Per job, the adapter's own transaction: the insert, then ``close_job``."""

        async def run(_: Any, batch: Iterator[StoredJob]) -> None:
            for job in batch:
                async with adapter.transaction() as tx:
                    await tx.execute(insert, job.id, 1)
                    await close_job(adapter, tx, job)

        return run

    runs: dict[str, Callable[[Any, Iterator[StoredJob]], Awaitable[None]]] = {
        "driver": on_driver,
        "pool": on_pool,
        "adapter tx": in_transactions(state, close_plain),
        "kept tx": in_transactions(kept, close_plain),
        "complete_job": in_transactions(state, close_guarded),
        "kept complete_job": in_transactions(kept, close_guarded),
    }
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in VARIANTS}
    try:
        for round_ in range(rounds):
            for name in VARIANTS if round_ % 2 == 0 else VARIANTS[::-1]:
                batch = iter([next(queue) for _ in range(jobs_per_variant)])
                t0, cpu0 = time.perf_counter(), time.process_time()
                await asyncio.gather(*(runs[name](conn, batch) for conn in dedicated))
                elapsed, cpu = time.perf_counter() - t0, time.process_time() - cpu0
                results[name].append((jobs_per_variant / elapsed, cpu / jobs_per_variant * 1e6))
        async with provider.pool.acquire() as conn:
            written = await conn.fetchval(f"SELECT count(*) FROM {rows}")
        assert written == total, f"{written} rows for {total} jobs"
    finally:
        for conn in dedicated:
            await conn.close()
        await client.close()
        await kept.close()
        await state.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dsn", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--jobs", type=int, default=1000, help="jobs per variant and round")
    args = parser.parse_args()
    results = run_on_own_schema(
        "atomic_split", args.dsn, lambda dsn: measure(dsn, args.jobs, args.runs)
    )
    print(
        f"exactly-once statements at concurrency {CONCURRENCY}, {args.runs} rounds of "
        f"{args.jobs} jobs per variant, medians (min..max)"
    )
    print(f"{'variant':<20}{'jobs/s':>10}{'CPU us/job':>12}")
    for name in VARIANTS:
        rates = [r for r, _ in results[name]]
        cpus = [c for _, c in results[name]]
        print(
            f"{name:<20}{statistics.median(rates):>10,.0f}{statistics.median(cpus):>12,.0f}"
            f"   ({min(rates):,.0f}..{max(rates):,.0f} / {min(cpus):,.0f}..{max(cpus):,.0f})"
        )
    for released, kept in (("adapter tx", "kept tx"), ("complete_job", "kept complete_job")):
        saved = [
            r[1] - k[1] for r, k in zip(results[released], results[kept], strict=True)
        ]  # same round, next to each other
        print(
            f"{kept} against {released}: CPU us/job saved per round, median "
            f"{statistics.median(saved):,.0f} ({min(saved):,.0f}..{max(saved):,.0f})"
        )


if __name__ == "__main__":
    main()
