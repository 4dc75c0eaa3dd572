"""The server's cost of one completion on PostgreSQL: each form alone, on one connection inside one
open transaction (no commit waits), the forms alternating call by call over claimed jobs of a fresh
schema, so that the machine's drift reaches every form alike.

    uv run python tools/bench/completion.py --dsn postgresql://postgres@127.0.0.1:5432/test
    uv run python tools/bench/completion.py --dsn postgresql://... --base ../base-checkout

Forms, on jobs in chains of one with nothing waiting for them:

* ``update``: the floor's guarded ``UPDATE`` closing the job row (nothing returned);
* ``update returning``: the same ``UPDATE ... RETURNING`` the job's columns;
* ``one-job statements``: what ``complete_job`` sends, raw through the adapter's provider (the
  plain ``UPDATE``, and the full one-job statement when it closed nothing);
* ``complete_job``: the adapter's guarded ``complete_job`` (the same, with the rows decoded);
* ``array statements``: the array statements with that one completion (what a group commit
  sends: the plain ``UPDATE``, and the full statement for what it did not close);
* with ``--base DIR`` (a checkout of another commit): ``base: one-job statement`` and ``base: array
  form``, that checkout's statements sent raw through this adapter's provider;

and on jobs whose chain blocks one dependent (``--dependents``, 0 to skip), which the completion
releases: ``one-job statements``, ``complete_job`` and with ``--base`` the base's one-job statement.

Reports, per form, the median wall time per call (with the quartiles) and this process's CPU time
per call. Only the server's work and the driver's differ between forms: compare them within one
run.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

from bench import pg_schema, run_on_own_schema
from queuert.ids import uuid7
from queuert.state import NewJob
from queuert_postgres import AsyncpgProvider, PgStateAdapter
from queuert_postgres._provider import Sql
from queuert_postgres._sql import cols

Call = Callable[[str, Any], Awaitable[object]]


def load_sql(checkout: str) -> ModuleType:
    """The statements module of another checkout (rendered with this checkout's helpers)."""
    path = Path(checkout) / "packages/queuert-postgres/src/queuert_postgres/_sql.py"
    spec = importlib.util.spec_from_file_location("base_sql", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"no statements at {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def new_job(type_name: str) -> NewJob:
    return NewJob(id=uuid7(), type_name=type_name, chain_type_name=type_name, input={"n": 1})


async def measure(
    dsn: str, jobs: int, dependents: int, base: ModuleType | None
) -> dict[str, tuple[list[float], list[float]]]:
    schema = pg_schema(dsn)
    provider = await AsyncpgProvider.connect(dsn.split("?")[0], max_size=2)
    state = PgStateAdapter(provider, schema=schema)
    await state.migrate()
    job_table = state.names.job
    output = '{"ok": true}'
    floor = Sql(
        f"UPDATE {job_table} SET outcome = 'completed', output = $2::json, completed_at = now(), "
        "completed_by = 'w', leased_by = NULL, leased_until = NULL "
        "WHERE id = $1::uuid AND leased_by = 'w' AND outcome IS NULL"
    )
    returning = Sql(
        f"UPDATE {job_table} j SET outcome = 'completed', output = $2::json, "
        "completed_at = now(), completed_by = 'w', leased_by = NULL, leased_until = NULL "
        f"WHERE j.id = $1::uuid AND j.leased_by = 'w' AND j.outcome IS NULL RETURNING {cols('j')}"
    )

    def one_args(job_id: str) -> list[Any]:
        return [job_id, "completed", output, None, None, "w", "w"]

    def array_args(job_id: str) -> list[Any]:
        return [[job_id], None, [output], None, None, "w", "w"]

    async def on_complete_job(job_id: str, tx: Any) -> object:
        return await state.complete_job(
            job_id, outcome="completed", worker_id="w", output={"ok": True}, owner="w", tx=tx
        )

    def statement(sql: Sql, args: Callable[[str], list[Any]]) -> Call:
        async def call(job_id: str, tx: Any) -> object:
            return await provider.fetch(sql, args(job_id), tx)

        return call

    async def plain_then_full(job_id: str, tx: Any) -> object:
        if await provider.fetch(state.sql.complete_one_plain, one_args(job_id), tx):
            return None
        return await provider.fetch(state.sql.complete_one, one_args(job_id), tx)

    async def plain_then_full_array(job_id: str, tx: Any) -> object:
        if await provider.fetch(state.sql.complete_plain, array_args(job_id), tx):
            return None
        return await provider.fetch(state.sql.complete, array_args(job_id), tx)

    plain: dict[str, Call] = {
        "update": statement(floor, lambda job_id: [job_id, output]),
        "update returning": statement(returning, lambda job_id: [job_id, output]),
        "one-job statements": plain_then_full,
        "complete_job": on_complete_job,
        "array statements": plain_then_full_array,
    }
    blocked: dict[str, Call] = {
        "one-job statements, 1 dep.": plain_then_full,
        "complete_job, 1 dep.": on_complete_job,
    }
    if base is not None:
        statements = base.Statements(state.names)
        plain["base: one-job statement"] = statement(statements.complete_one, one_args)
        plain["base: array form"] = statement(statements.complete, array_args)
        blocked["base: one-job, 1 dep."] = statement(statements.complete_one, one_args)

    total = jobs * len(plain)
    for offset in range(0, total, 500):
        await state.create_jobs([new_job("work") for _ in range(offset, min(offset + 500, total))])
    blockers: list[str] = []
    for offset in range(0, dependents * len(blocked), 500):
        count = min(500, dependents * len(blocked) - offset)
        created = [
            c.job.id for c in await state.create_jobs([new_job("blocker") for _ in range(count)])
        ]
        waiting = [
            c.job.id for c in await state.create_jobs([new_job("dep") for _ in range(count)])
        ]
        await state.add_blockers([(d, [b]) for d, b in zip(waiting, created, strict=True)])
        blockers.extend(created)
    lease = {"work": timedelta(hours=1), "blocker": timedelta(hours=1)}
    claimed = await state.claim_jobs(leases=lease, limit=total + len(blockers), worker_id="w")
    assert len(claimed.jobs) == total + len(blockers)
    blocker_ids = set(blockers)
    queues = {
        "plain": iter([j.id for j in claimed.jobs if j.id not in blocker_ids]),
        "blocked": iter([j.id for j in claimed.jobs if j.id in blocker_ids]),
    }
    results: dict[str, tuple[list[float], list[float]]] = {}
    try:
        async with state.transaction() as tx:
            for kind, forms in (("plain", plain), ("blocked", blocked)):
                names = list(forms)
                for name in names:
                    results[name] = ([], [])
                count = jobs if kind == "plain" else dependents
                for _ in range(count):
                    for name in names:
                        job_id = next(queues[kind])
                        t0, cpu0 = time.perf_counter(), time.process_time()
                        await forms[name](job_id, tx)
                        walls, cpus = results[name]
                        walls.append((time.perf_counter() - t0) * 1e6)
                        cpus.append((time.process_time() - cpu0) * 1e6)
                    names = names[1:] + names[:1]
    finally:
        await state.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dsn", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--jobs", type=int, default=600, help="calls per form on plain jobs")
    parser.add_argument("--dependents", type=int, default=200, help="calls per form with one")
    parser.add_argument("--base", help="a checkout of another commit to compare with")
    args = parser.parse_args()
    base = load_sql(args.base) if args.base else None
    results = run_on_own_schema(
        "completion", args.dsn, lambda dsn: measure(dsn, args.jobs, args.dependents, base)
    )
    print(
        f"one completion per call in one transaction, {args.jobs} calls per form "
        f"({args.dependents} with a dependent), forms alternating; median (quartiles)"
    )
    print(f"{'form':<28}{'wall us/call':>24}{'CPU us/call':>14}")
    for name, (walls, cpus) in results.items():
        q1, median, q3 = statistics.quantiles(walls, n=4)
        print(f"{name:<28}{median:>10,.0f} ({q1:,.0f}..{q3:,.0f}){statistics.median(cpus):>14,.0f}")


if __name__ == "__main__":
    main()
