"""Processing throughput with a concurrency limit on the job type against the same jobs without one.

    uv run python tools/bench/limits.py --dsn postgresql://postgres@127.0.0.1:5432/test --runs 5
    uv run python tools/bench/limits.py --dsn sqlite:///bench.db --runs 5
    uv run python tools/bench/limits.py --dsn postgresql://postgres@127.0.0.1:5432/test --claims 3000

Each run starts ``--chains`` one-job chains in batches of 100, then one worker at concurrency 10
processes them (a no-op handler whose output the worker group-commits), timed from the worker's start
to the last completion. The type is either unlimited or declares ``limit=`` larger than the
concurrency (``--limit``, default 50). Every job the worker holds counts against the limit: the 10
running, the prefetch buffer (up to twice the concurrency while handlers are short) and those whose
completion is being written, so with this no-op handler a limit of 50 does hold some claims back
(a PostgreSQL commit that waits for a WAL flush keeps many completions in flight), while one of 100
never does and leaves only the cost of the limited claim. The two alternate run by run, each in a
fresh child process on a fresh schema or database file; reported as medians with the range, and the
median number of claim calls per run and of those that took fewer jobs than they asked for (the
last claims of a run, and those a limit held back).

``--claims N`` measures the claim statement alone, in one process: two stores (fresh schemas or
database files) of N ready jobs each, one of the unlimited type and one of the limited one, claimed
5 at a time through the state adapter, alternating store claim by claim (so load on the machine
hits both alike); each store's oldest claimed jobs are completed whenever more than 20 run, so
both claim with about 20 jobs running, as a worker does. Reported: the median time of a claim
call of each, and the difference.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
import uuid
from datetime import timedelta
from typing import Any

from bench import (
    Countdown,
    Done,
    Item,
    describe_backend,
    drop_backend,
    isolated_dsn,
    open_backend,
    remove_sqlite_files,
    run_in_child,
)
from queuert import Attempt, Client, EntryJobType, Worker
from queuert.backoff import Lease
from queuert.state import Completion


class Plain(EntryJobType[Item, Done], name="bench_limits_plain"):
    pass


def limited_type(limit: int) -> type[EntryJobType[Item, Done]]:
    class Capped(EntryJobType[Item, Done], name="bench_limits_capped", limit=limit):
        pass

    return Capped


async def run(dsn: str, chains: int, limit: int | None) -> dict[str, float]:
    state, notifier = await open_backend(dsn, "in_process")
    job_type = Plain if limit is None else limited_type(limit)
    observability = Countdown(chains)
    client: Client[Any] = Client(
        state, job_types=[job_type], notify=notifier, observability=observability
    )
    worker: Worker[Any] = Worker(client, concurrency=10, poll_interval=1.0, lease=Lease(60, 30))

    async def noop(attempt: Attempt[Any]) -> Done:
        return Done(True)

    worker.register(job_type, noop)
    calls = [0, 0]  # claim calls, and those that took fewer jobs than asked for
    claim_jobs = state.claim_jobs

    async def counted(**kwargs: Any) -> Any:
        result = await claim_jobs(**kwargs)
        calls[0] += 1
        calls[1] += len(result.jobs) < kwargs["limit"]
        return result

    state.claim_jobs = counted
    try:
        for start in range(0, chains, 100):
            async with client.transaction() as tx:
                await client.start_chains(
                    [job_type(Item(i)) for i in range(start, min(start + 100, chains))], tx=tx
                )
        t0 = time.perf_counter()
        async with worker:
            await asyncio.wait_for(observability.done.wait(), 600)
        seconds = time.perf_counter() - t0
    finally:
        await client.close()
        await state.close()
        await drop_backend(dsn)
        remove_sqlite_files(dsn)
    return {"jobs_per_s": chains / seconds, "claims": calls[0], "short": calls[1]}


async def claims(dsn: str, jobs: int, limit: int) -> dict[str, float]:
    """Median seconds of a claim call on the unlimited and on the limited store (see the module's
    docstring)."""
    capped = limited_type(limit)
    tag = uuid.uuid4().hex[:8]
    dsns = [isolated_dsn(dsn, f"limc{tag}"), isolated_dsn(dsn, f"liml{tag}")]
    opened: list[tuple[Any, Client[Any]]] = []
    try:
        kinds: tuple[type[EntryJobType[Item, Done]], ...] = (Plain, capped)
        for one, job_type in zip(dsns, kinds, strict=True):
            state, notifier = await open_backend(one, "in_process")
            client: Client[Any] = Client(state, job_types=[job_type], notify=notifier)
            opened.append((state, client))
            for start in range(0, jobs, 100):
                async with client.transaction() as tx:
                    await client.start_chains(
                        [job_type(Item(i)) for i in range(start, min(start + 100, jobs))], tx=tx
                    )
        names = (Plain.type_name, capped.type_name)
        bounds = (None, {capped.type_name: capped.concurrency_limit})
        times: tuple[list[float], list[float]] = ([], [])
        held: tuple[list[str], list[str]] = ([], [])
        for turn in range(jobs // 5):
            for i in (0, 1) if turn % 2 == 0 else (1, 0):
                state = opened[i][0]
                t0 = time.perf_counter()
                got = await state.claim_jobs(
                    leases={names[i]: timedelta(minutes=5)},
                    limit=5,
                    worker_id="bench",
                    limits=bounds[i],
                )
                times[i].append(time.perf_counter() - t0)
                held[i].extend(job.id for job in got.jobs)
                if len(held[i]) > 20:
                    done = held[i][:5]
                    del held[i][:5]
                    await state.complete_jobs(
                        [Completion(job_id, output=None) for job_id in done], worker_id="bench"
                    )
        return {"no limit": statistics.median(times[0]), "limit": statistics.median(times[1])}
    finally:
        for state, client in opened:
            await client.close()
            await state.close()
        for one in dsns:
            await drop_backend(one)
            remove_sqlite_files(one)


def child(dsn: str, chains: int, limit: int | None) -> dict[str, float]:
    tagged = isolated_dsn(dsn, f"lim{uuid.uuid4().hex[:8]}")
    return run_in_child(__file__, [json.dumps([tagged, chains, limit])], "limits run")


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "_child":
        dsn, chains, limit = json.loads(sys.argv[2])
        print(json.dumps(asyncio.run(run(dsn, chains, limit))))
        return
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dsn", default="sqlite:///bench.db")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--chains", type=int, default=3000)
    parser.add_argument("--limit", type=int, default=50)
    parser.add_argument("--claims", type=int, default=0, metavar="N")
    args = parser.parse_args()
    if args.claims:
        medians = asyncio.run(claims(args.dsn, args.claims, args.limit))
        print(
            f"queuert bench: limits, claim calls, {describe_backend(args.dsn)}; {args.claims} jobs "
            f"per store, 5 per claim, about 20 running, limit {args.limit}; medians"
        )
        for label, seconds in medians.items():
            print(f"  {label:<9}{seconds * 1e6:>9,.0f} µs per claim")
        extra = (medians["limit"] - medians["no limit"]) * 1e6
        print(f"  limit - no limit: {extra:,.0f} µs")
        return
    print(
        f"queuert bench: limits, {describe_backend(args.dsn)}; {args.chains} chains, "
        f"concurrency 10, limit {args.limit}; {args.runs} runs each, medians (min..max)"
    )
    figures: dict[str, list[float]] = {"no limit": [], "limit": []}
    calls: dict[str, list[float]] = {"no limit": [], "limit": []}
    short: dict[str, list[float]] = {"no limit": [], "limit": []}
    for _ in range(args.runs):
        for label, limit in (("no limit", None), ("limit", args.limit)):
            result = child(args.dsn, args.chains, limit)
            figures[label].append(result["jobs_per_s"])
            calls[label].append(result["claims"])
            short[label].append(result["short"])
    for label, values in figures.items():
        print(
            f"  {label:<9}{statistics.median(values):>9,.0f} jobs/s "
            f"({min(values):,.0f}..{max(values):,.0f}); "
            f"claim calls {statistics.median(calls[label]):,.0f}, "
            f"short of what was asked {statistics.median(short[label]):,.0f}"
        )
    ratio = statistics.median(figures["limit"]) / statistics.median(figures["no limit"])
    print(f"  limit / no limit: {ratio:.2f}")


if __name__ == "__main__":
    main()
