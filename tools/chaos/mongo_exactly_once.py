"""queuert exactly-once run on MongoDB: several worker processes on one collection prefix process
thousands of chains with continuations and blockers, woken through change streams; then a check
that every chain closed exactly once.

    uv run python tools/chaos/mongo_exactly_once.py run                  # starts a SecantusDB
    uv run python tools/chaos/mongo_exactly_once.py run --url "mongodb://127.0.0.1:27017/?replicaSet=rs0"
    uv run python tools/chaos/mongo_exactly_once.py run --workers 4 --chains 2000 --kill-every 10

Without ``--url`` the run starts a SecantusDB of its own (``secantusd-py``, installed with the
workspace) on a free local port and removes it afterwards. The workload is that of
``queuert_conformance.resilience``: two-step chains (a job that continues to another) and fan-ins (a
job blocked by four leaf chains), 80 % and 20 % of the chains. ``--kill-every S`` SIGKILLs a random
worker process every S seconds and starts a replacement under the same name.

The checks, on the final documents and on an audit of every write of a job's outcome read back from
a change stream over the whole run: every chain closed once with the right output, nothing left
leased or blocked, every job's outcome written exactly once and no closed job written again. The
report (JSON on stdout) gives the counts, the time to drain and the throughput; the exit status is 0
when every check passed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase
from queuert import Client
from queuert_conformance import resilience
from queuert_conformance.resilience import JOB_TYPES, OutcomeWrite, start_workload
from queuert_conformance.worker_process import Fleet, add_worker_arguments, run_worker_process
from queuert_mongodb import MongoNotifyAdapter, MongoStateAdapter

DATABASE = "queuert_exactly_once"
SCRIPT = Path(__file__).resolve()
_CLOSING_FIELDS = ("outcome", "output", "completed_at", "completed_by", "succeeded_by_job_id")


# -- a server of the run's own ------------------------------------------------------------------


class Secantus:
    """A SecantusDB on a free local port, its data in a temporary directory."""

    def __init__(self) -> None:
        binary = shutil.which("secantusd-py") or str(Path(sys.executable).with_name("secantusd-py"))
        if not Path(binary).exists():
            raise SystemExit(
                "no --url given and secantusd-py is not installed (uv sync installs it)"
            )
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1])
        self.data = tempfile.mkdtemp(prefix="queuert-exactly-once-")
        self.url = f"mongodb://127.0.0.1:{port}/?replicaSet=secantus"
        args = [binary, "--host", "127.0.0.1", "--port", str(port)]
        with open(os.path.join(self.data, "server.log"), "ab") as log:
            self.process = subprocess.Popen(
                [*args, "--storage-path", os.path.join(self.data, "db")],
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def remove(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        shutil.rmtree(self.data, ignore_errors=True)


@contextlib.asynccontextmanager
async def secantus() -> AsyncIterator[str]:
    """Starts a :class:`Secantus`, yields its URL once it answers, removes it afterwards."""
    server = await asyncio.to_thread(Secantus)
    try:
        client: AsyncMongoClient[Any] = AsyncMongoClient(
            server.url, serverSelectionTimeoutMS=60_000
        )
        try:
            await client.admin.command("ping")
        finally:
            await client.close()
        yield server.url
    finally:
        await asyncio.to_thread(server.remove)


# -- reading the store back ---------------------------------------------------------------------


async def operation_time(db: AsyncDatabase[Any]) -> Any:
    """The server's operation time now: :func:`audit` reads every change from there on."""
    async with db.client.start_session() as session:
        await db.command("ping", session=session)
        return session.operation_time


async def audit(db: AsyncDatabase[Any], prefix: str, since: Any) -> list[OutcomeWrite]:
    """Every update of a job since ``since`` that set its outcome, or touched the outcome fields of
    a closed job, in the order written: (job id, outcome before, outcome after)."""
    end = db[f"{prefix}audit_end"]
    await end.insert_one({"end": True})
    outcomes: dict[str, Any] = {}
    writes: list[OutcomeWrite] = []
    pipeline = [{"$match": {"ns.coll": {"$in": [f"{prefix}jobs", end.name]}}}]
    async with await db.watch(pipeline, start_at_operation_time=since) as stream:
        while True:
            change = await stream.try_next()
            if change is None:
                continue
            if change["ns"]["coll"] == end.name:
                return writes
            job_id = str(change["documentKey"]["_id"])
            before = outcomes.get(job_id)
            if change["operationType"] in ("insert", "replace"):
                after = change["fullDocument"].get("outcome")
                touched = change["operationType"] == "replace"
            elif change["operationType"] == "update":
                fields = change["updateDescription"]["updatedFields"]
                after = fields.get("outcome", before)
                touched = any(f in fields for f in _CLOSING_FIELDS)
            else:
                continue
            if touched and (before is not None or after != before):
                writes.append((job_id, before, after))
            outcomes[job_id] = after


async def job_rows(db: AsyncDatabase[Any], prefix: str) -> list[dict[str, Any]]:
    """The job documents as :data:`queuert_conformance.resilience.JOB_ROW_COLUMNS` rows."""
    rows = []
    async for doc in db[f"{prefix}jobs"].find({}):
        succeeded = doc.get("succeeded_by_job_id")
        open_blockers = sum(1 for b in doc.get("blockers") or [] if b.get("o"))
        rows.append(
            {
                "id": str(doc["_id"]),
                "type_name": doc["type_name"],
                "chain_id": str(doc["chain_id"]),
                "chain_index": doc["chain_index"],
                "outcome": doc.get("outcome"),
                "output": doc.get("output"),
                "succeeded_by_job_id": None if succeeded is None else str(succeeded),
                "leased_by": doc.get("leased_by"),
                "open_blockers": open_blockers or int(bool(doc.get("blocked"))),
            }
        )
    return rows


async def count_closed(db: AsyncDatabase[Any], prefix: str) -> int:
    """Chains whose tail is closed without a successor."""
    return await db[f"{prefix}jobs"].count_documents(
        {"outcome": {"$ne": None}, "succeeded_by_job_id": None}
    )


# -- the run ------------------------------------------------------------------------------------


async def run(args: argparse.Namespace) -> dict[str, Any]:
    async with contextlib.AsyncExitStack() as stack:
        url = args.url or await stack.enter_async_context(secantus())
        prefix = f"x{os.urandom(5).hex()}_"
        state = await MongoStateAdapter.connect(url, database=DATABASE, collection_prefix=prefix)
        stack.push_async_callback(state.close)
        await state.migrate()
        notify = MongoNotifyAdapter(state.client, database=DATABASE, collection_prefix=prefix)
        stack.push_async_callback(notify.close)
        producer: Client[Any] = Client(state, job_types=JOB_TYPES, notify=notify)
        stack.push_async_callback(producer.close)
        since = await operation_time(state.client[DATABASE])

        root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="queuert-fleet-")))
        command = [sys.executable, str(SCRIPT), "worker", "--url", url]
        fleet = Fleet(root, [*command, "--prefix", prefix])
        stack.push_async_callback(fleet.close)
        options = [
            f"--concurrency={args.concurrency}",
            f"--lease={args.lease}",
            f"--renew-every={args.lease / 4}",
            "--reap-interval=1",
            "--job-seconds=0",
            "--poll-interval=1",
        ]
        workers = [await fleet.spawn(f"w{i}", *options) for i in range(args.workers)]

        joins = max(1, args.chains // 25)  # each fan-in is 5 chains: 4 leaves and the join
        started_at = time.monotonic()
        work = await start_workload(
            producer, two_step=args.chains - 5 * joins, joins=joins, leaves_per_join=4
        )
        started = time.monotonic() - started_at
        kills = 0
        rng = random.Random(args.seed)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + args.timeout
        next_kill = loop.time() + args.kill_every if args.kill_every else None
        while (closed := await count_closed(state.client[DATABASE], prefix)) < work.chains:
            if loop.time() > deadline:
                raise SystemExit(f"only {closed} of {work.chains} chains closed in {args.timeout}s")
            if next_kill is not None and loop.time() >= next_kill:
                victim = rng.choice([w for w in workers if w.process.returncode is None])
                os.kill(victim.pid, signal.SIGKILL)
                await victim.process.wait()
                workers[workers.index(victim)] = await fleet.spawn(victim.name, *options)
                kills += 1
                next_kill = loop.time() + args.kill_every
            await asyncio.sleep(0.2)
        drained = time.monotonic() - started_at
        for worker in workers:
            if await fleet.stop(worker) != 0:
                raise SystemExit(f"worker {worker.name} did not stop cleanly:\n{fleet.logs()}")

        rows = await job_rows(state.client[DATABASE], prefix)
        writes = await audit(state.client[DATABASE], prefix, since)
        resilience.check_exactly_once(rows, writes, work)
        attempts = len(fleet.marks())
        report = {
            "server": "SecantusDB (started by the run)" if not args.url else "given by --url",
            "workers": args.workers,
            "concurrency": args.concurrency,
            "chains": work.chains,
            "jobs": work.jobs,
            "lease_seconds": args.lease,
            "kills": kills,
            "attempts": attempts,
            "re_runs": attempts - work.jobs,
            "outcome_writes": len(writes),
            "start_seconds": round(started, 2),
            "drain_seconds": round(drained, 2),
            "jobs_per_second": round(work.jobs / drained, 1),
            "exactly_once": True,
        }
        if not args.keep:
            client = state.client
            for name in await client[DATABASE].list_collection_names():
                if name.startswith(prefix):
                    await client[DATABASE].drop_collection(name)
        return report


async def worker(args: argparse.Namespace) -> None:
    state = await MongoStateAdapter.connect(
        args.url, database=DATABASE, collection_prefix=args.prefix
    )
    notify = MongoNotifyAdapter(state.client, database=DATABASE, collection_prefix=args.prefix)
    await run_worker_process(args, state, notify)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run_parser = commands.add_parser("run", help="start the workers and the chains, then check")
    run_parser.add_argument("--url", help="a MongoDB replica set (default: start a SecantusDB)")
    run_parser.add_argument("--workers", type=int, default=4)
    run_parser.add_argument("--concurrency", type=int, default=8)
    run_parser.add_argument("--chains", type=int, default=2000)
    run_parser.add_argument("--kill-every", type=float, default=0.0)
    run_parser.add_argument(
        "--lease", type=float, default=20.0, help="seconds (a slow server needs a long lease)"
    )
    run_parser.add_argument("--timeout", type=float, default=900.0)
    run_parser.add_argument("--seed", type=int, default=1)
    run_parser.add_argument("--keep", action="store_true", help="keep the collections")
    worker_parser = commands.add_parser("worker", help="(started by run) one worker process")
    worker_parser.add_argument("--url", required=True)
    worker_parser.add_argument("--prefix", required=True)
    add_worker_arguments(worker_parser)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(created).3f %(name)s %(message)s")
    if args.command == "worker":
        asyncio.run(worker(args))
        return
    if args.chains < 25:
        parser.error("--chains must be at least 25")
    report = asyncio.run(run(args))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
