"""queuert-dashboard page times on PostgreSQL with a million jobs, and the plans of their queries.

    uv run python tools/bench/dashboard.py --dsn postgresql://postgres@127.0.0.1:5432/test
    uv run python tools/bench/dashboard.py --dsn ... --plans       # also EXPLAIN ANALYZE each query
    uv run python tools/bench/dashboard.py --dsn ... --rebuild     # drop and rebuild the data

The data (built once in the schema ``bench_dashboard`` by one ``INSERT ... SELECT generate_series``,
then kept for later runs) is 30 days of history: ``--jobs`` jobs (default 1,000,000) of six types,
created at an even pace; one chain in ten continues to a second job; one chain in five has a
deduplication key; one closed chain in a hundred waited for another chain. The oldest 98% are closed
(completed, 3% failed with an error, 2% cancelled); the newest 2% are ready, scheduled, running
(leased by eight workers), blocked by an open chain, or closed within the last hours.

Each page is requested through the ASGI application in this process (templates rendered, no
network), once to warm up and then ``--repeat`` times; the report gives the median and the slowest
time per page. With ``--plans``, every statement a page ran is shown with ``EXPLAIN (ANALYZE,
BUFFERS)`` the way the adapter runs it (prepared, with a generic plan).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from datetime import datetime, timedelta, timezone
from typing import Any

import asyncpg
from queuert import Client
from queuert_dashboard import create_dashboard
from queuert_postgres import AsyncpgProvider, PgStateAdapter

try:
    import httpx2 as httpx
except ImportError:  # httpx2 needs Python 3.11; 3.10 has httpx
    import httpx  # type: ignore[no-redef, import-not-found, unused-ignore]

SCHEMA = "bench_dashboard"
PREFIX = "queuert_"
TYPES = ["mail.send", "invoice.render", "report.build", "stock.check", "image.resize", "sms.send"]


def build_sql(jobs: int) -> list[str]:
    """The statements that fill the schema's (migrated, empty) tables with ``jobs`` jobs."""
    job = f'"{SCHEMA}"."{PREFIX}job"'
    blocker = f'"{SCHEMA}"."{PREFIX}job_blocker"'
    recent = int(jobs * 0.98)
    types = "ARRAY[" + ", ".join(f"'{t}'" for t in TYPES) + "]"
    # i: position; old rows pair up as (order.place continued -> order.ship) when i % 10 in (1, 2)
    return [
        f"""
INSERT INTO {job} (id, type_name, chain_id, chain_type_name, chain_index, input, output, outcome,
    succeeded_by_job_id, created_at, scheduled_at, completed_at, completed_by, attempt,
    last_attempt_at, last_attempt_error, leased_by, leased_until, open_blockers, deduplication_key)
SELECT
    md5('q' || i)::uuid,
    CASE WHEN pair = 1 THEN 'order.place' WHEN pair = 2 THEN 'order.ship'
         ELSE ({types})[1 + i % 6] END,
    CASE WHEN pair = 2 THEN md5('q' || (i - 1))::uuid ELSE md5('q' || i)::uuid END,
    CASE WHEN pair IN (1, 2) THEN 'order.place' ELSE ({types})[1 + i % 6] END,
    CASE WHEN pair = 2 THEN 1 ELSE 0 END,
    json_build_object('n', i, 'email', 'user' || i || '@example.com'),
    CASE WHEN state = 'completed' AND pair <> 1 THEN '"ok"'::json END,
    CASE WHEN state IN ('completed', 'failed', 'cancelled') THEN state END,
    CASE WHEN pair = 1 THEN md5('q' || (i + 1))::uuid END,
    created,
    CASE WHEN state = 'scheduled' THEN now() + interval '1 hour' ELSE created END,
    CASE WHEN state IN ('completed', 'failed', 'cancelled')
         THEN created + (i % 5) * interval '1 second' END,
    CASE WHEN state IN ('completed', 'failed') THEN 'worker-' || (i % 8) END,
    CASE WHEN state = 'failed' THEN 3 WHEN state IN ('completed', 'running') THEN 1 ELSE 0 END,
    CASE WHEN state IN ('completed', 'failed', 'running') THEN created END,
    CASE WHEN state = 'failed' THEN 'ConnectionError: upstream refused job ' || i
        || E'\\nTraceback (most recent call last):\\n  File "app.py", line 12, in handle' END,
    CASE WHEN state = 'running' THEN 'worker-' || (i % 8) END,
    CASE WHEN state = 'running' THEN now() + interval '5 minutes' END,
    CASE WHEN state = 'blocked' THEN 1 ELSE 0 END,
    CASE WHEN pair <> 2 AND i % 5 = 0 THEN 'key-' || i END
FROM (
    SELECT i,
        CASE WHEN i <= {recent} AND i % 10 IN (1, 2) THEN i % 10 ELSE 0 END AS pair,
        now() - interval '30 days' + i * (interval '30 days' / {jobs}) AS created,
        CASE
            WHEN i <= {recent} THEN
                CASE WHEN i % 10 = 1 THEN 'completed'
                     WHEN i % 100 IN (3, 13, 23) THEN 'failed'
                     WHEN i % 100 IN (4, 14) THEN 'cancelled'
                     ELSE 'completed' END
            ELSE (ARRAY['ready', 'ready', 'ready', 'scheduled', 'running', 'blocked',
                        'completed', 'failed'])[1 + i % 8]
        END AS state
    FROM generate_series(1, {jobs}) AS i
) g
""",
        # blocked recent jobs wait for the ready chain five rows before; old chains each waited for
        # a closed chain seven rows before (i % 100 = 50: a root, and i - 7 is a root too)
        f"""
INSERT INTO {blocker} (job_id, slot, blocked_by_chain_id)
SELECT md5('q' || i)::uuid, 0, md5('q' || (i - 5))::uuid
FROM generate_series({recent + 1}, {jobs}) AS i WHERE 1 + i % 8 = 6
UNION ALL
SELECT md5('q' || i)::uuid, 0, md5('q' || (i - 7))::uuid
FROM generate_series(1, {recent}) AS i WHERE i % 100 = 50
""",
    ]


class RecordingProvider:
    """The adapter's asyncpg provider, recording every statement it runs (for ``--plans``)."""

    def __init__(self, inner: AsyncpgProvider) -> None:
        self._inner = inner
        self.statements: list[tuple[str, list[Any]]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def fetch(self, sql: Any, args: Any, tx: Any) -> Any:
        self.statements.append((sql.text, list(args)))
        return await self._inner.fetch(sql, args, tx)


async def ensure_data(dsn: str, jobs: int, rebuild: bool) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        if rebuild:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{SCHEMA}" CASCADE')
        have = await conn.fetchval(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = $1", SCHEMA
        )
        if have:
            count = await conn.fetchval(f'SELECT count(*) FROM "{SCHEMA}"."{PREFIX}job"')
            if count == jobs:
                print(f"reusing {count:,} jobs in schema {SCHEMA}", flush=True)
            else:
                raise SystemExit(f"{SCHEMA} holds {count:,} jobs, not {jobs:,}: pass --rebuild")
    finally:
        await conn.close()
    async with PgStateAdapter.connect(dsn, schema=SCHEMA, table_prefix=PREFIX) as state:
        result = await state.migrate()
    for name in result.applied:
        print(f"migration {name} applied", flush=True)
    if have:
        if result.applied:
            await analyze(dsn)
        return
    conn = await asyncpg.connect(dsn)
    try:
        started = time.perf_counter()
        for statement in build_sql(jobs):
            await conn.execute(statement)
        print(f"built {jobs:,} jobs in {time.perf_counter() - started:.1f} s", flush=True)
    finally:
        await conn.close()
    await analyze(dsn)


async def analyze(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        started = time.perf_counter()
        await conn.execute(f'VACUUM ANALYZE "{SCHEMA}"."{PREFIX}job"')
        await conn.execute(f'VACUUM ANALYZE "{SCHEMA}"."{PREFIX}job_blocker"')
        print(f"vacuum analyze in {time.perf_counter() - started:.1f} s", flush=True)
    finally:
        await conn.close()


async def sample_ids(dsn: str) -> dict[str, str]:
    """Ids the pages are asked about: a chain with a blocker and dependents, a failed job, a key."""
    job = f'"{SCHEMA}"."{PREFIX}job"'
    blocker = f'"{SCHEMA}"."{PREFIX}job_blocker"'
    conn = await asyncpg.connect(dsn)
    try:
        blocked = await conn.fetchrow(
            f"SELECT b.job_id::text AS job, b.blocked_by_chain_id::text AS blocker "
            f"FROM {blocker} b JOIN {job} j ON j.id = b.job_id WHERE j.open_blockers > 0 LIMIT 1"
        )
        failed = await conn.fetchval(
            f"SELECT id::text FROM {job} WHERE outcome = 'failed' ORDER BY created_at LIMIT 1"
        )
        pair = await conn.fetchval(
            f"SELECT chain_id::text FROM {job} WHERE chain_index = 1 ORDER BY created_at LIMIT 1"
        )
        key = await conn.fetchval(
            f"SELECT deduplication_key FROM {job} WHERE deduplication_key IS NOT NULL "
            "ORDER BY created_at LIMIT 1"
        )
    finally:
        await conn.close()
    return {
        "blocked": blocked["job"],
        "blocker": blocked["blocker"],
        "failed": failed,
        "pair": pair,
        "key": key,
    }


def pages(ids: dict[str, str], cursor: str) -> list[tuple[str, str]]:
    week_ago = (datetime.now(timezone.utc) - timedelta(days=7)).strftime("%Y-%m-%dT%H:%M")
    six_days = (datetime.now(timezone.utc) - timedelta(days=6)).strftime("%Y-%m-%dT%H:%M")
    return [
        ("overview", "/"),
        ("chains", "/chains"),
        ("chains, page 2", f"/chains?cursor={cursor}"),
        ("chains, with blocker chains", "/chains?blockers=1"),
        ("chains of a type", "/chains?type=invoice.render"),
        ("open chains", "/chains?status=open"),
        ("closed chains of a type", "/chains?type=sms.send&status=closed"),
        ("chains created in a day", f"/chains?from={week_ago}&to={six_days}"),
        ("chain by id", f"/chains?q={ids['pair']}"),
        ("chain by job id", f"/chains?q={ids['blocked']}"),
        ("chain by deduplication key", f"/chains?q={ids['key']}"),
        ("chain page (continued)", f"/chains/{ids['pair']}"),
        ("chain page (blocker, dependents)", f"/chains/{ids['blocker']}"),
        ("chain page (blocked)", f"/chains/{ids['blocked']}"),
        ("jobs", "/jobs"),
        ("ready jobs", "/jobs?status=ready"),
        ("scheduled jobs", "/jobs?status=scheduled"),
        ("running jobs", "/jobs?status=running"),
        ("blocked jobs", "/jobs?status=blocked"),
        ("failed jobs", "/jobs?status=failed"),
        ("cancelled jobs of a type", "/jobs?status=cancelled&type=mail.send"),
        ("jobs of a chain", f"/jobs?q={ids['pair']}"),
        ("job page (failed)", f"/jobs/{ids['failed']}"),
        ("job page (blocked)", f"/jobs/{ids['blocked']}"),
    ]


async def measure(
    dsn: str, repeat: int, plans: bool, only: str | None
) -> list[tuple[str, str, float, float]]:
    ids = await sample_ids(dsn)
    provider = RecordingProvider(await AsyncpgProvider.connect(dsn, min_size=1, max_size=4))
    state: PgStateAdapter[Any] = PgStateAdapter(
        provider,
        schema=SCHEMA,
        table_prefix=PREFIX,
    )
    results: list[tuple[str, str, float, float]] = []
    async with state, Client(state) as client:
        app = create_dashboard(client)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as http:
            first = (await client.list_chains(root_only=True)).next_cursor or ""
            for name, path in pages(ids, first):
                if only is not None and only not in name:
                    continue
                times: list[float] = []
                provider.statements.clear()
                for run in range(repeat + 1):
                    started = time.perf_counter()
                    response = await http.get(path)
                    elapsed = (time.perf_counter() - started) * 1000
                    if response.status_code != 200:
                        raise SystemExit(f"{path}: HTTP {response.status_code}")
                    if run == 0:
                        ran = list(provider.statements)
                    else:
                        times.append(elapsed)
                median, worst = statistics.median(times), max(times)
                results.append((name, path, median, worst))
                print(f"{median:8.1f} ms  (max {worst:6.1f})  {name}", flush=True)
                if plans:
                    await explain(dsn, ran)
    return results


def literal(value: Any) -> str:
    """``value`` as an untyped SQL literal (the prepared statement's casts give it its type)."""
    if value is None:
        return "NULL"
    if isinstance(value, (list, tuple)):
        items = ",".join(
            '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"' for v in value
        )
        value = "{" + items + "}"
    elif isinstance(value, datetime):
        value = value.isoformat()
    return "'" + str(value).replace("'", "''") + "'"


async def explain(dsn: str, statements: list[tuple[str, list[Any]]]) -> None:
    """EXPLAIN ANALYZE each statement as the adapter runs it: prepared, with a generic plan."""
    conn = await asyncpg.connect(
        dsn, statement_cache_size=0, server_settings={"plan_cache_mode": "force_generic_plan"}
    )
    try:
        for sql, args in statements:
            if not sql.lstrip().upper().startswith(("SELECT", "WITH")):
                continue
            await conn.execute("PREPARE bench_statement AS " + sql)
            params = ", ".join(literal(arg) for arg in args)
            execute = "EXECUTE bench_statement" + (f"({params})" if args else "")
            rows = await conn.fetch("EXPLAIN (ANALYZE, BUFFERS) " + execute)
            await conn.execute("DEALLOCATE bench_statement")
            print("    " + " ".join(sql.split())[:160])
            for row in rows:
                print("      " + row[0])
    finally:
        await conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dsn", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--jobs", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=11)
    parser.add_argument("--rebuild", action="store_true")
    parser.add_argument("--plans", action="store_true")
    parser.add_argument("--only", help="measure only the pages whose name contains this")
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f}", flush=True)
    asyncio.run(ensure_data(args.dsn, args.jobs, args.rebuild))
    results = asyncio.run(measure(args.dsn, args.repeat, args.plans, args.only))
    print(f"load average after: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f}")
    print("\n| page | median ms | slowest ms |\n|---|---|---|")
    for name, _, median, worst in results:
        print(f"| {name} | {median:.1f} | {worst:.1f} |")


if __name__ == "__main__":
    main()
