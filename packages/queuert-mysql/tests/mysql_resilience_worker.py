"""A worker process for the MySQL multi-process resilience tests (run as a script, not collected by
pytest).

It processes the job types of :mod:`mysql_resilience_support` under one table prefix until SIGTERM;
wake-ups come over Redis (MySQL has no LISTEN/NOTIFY). Each attempt
first writes a marker file ``<markers>/<job id>.<pid>.<attempt number>`` with a JSON line (job, type,
worker id, pid, attempt, wall-clock time), so the test sees which process ran which job and when.

* ``--job-seconds S``: every handler works S seconds (in staged mode, or atomic for even inputs with
  ``--mode mixed``) before it completes.
* ``--hang-after K``: after K attempts have started, every further attempt writes its marker and then a
  ``hanging.<pid>.<job id>`` marker and never returns: the test SIGKILLs the process mid-job.
* ``--ready FILE``: written once the worker has started.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

from queuert import Attempt, Backoff, Client, Lease, Worker
from queuert_mysql import from_url
from queuert_redis import RedisNotifyAdapter

sys.path.insert(0, str(Path(__file__).parent))
from mysql_resilience_support import JOB_TYPES, N, RFinish, RJoin, RLeaf, RStart


def write_atomically(path: Path, text: str) -> None:
    """Readers see the whole file or none (written under a hidden name, then renamed)."""
    hidden = path.with_name(f".{path.name}.tmp")
    hidden.write_text(text)
    os.replace(hidden, path)


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dsn", required=True)
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--redis", required=True)
    parser.add_argument("--channel-prefix", required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--markers", required=True)
    parser.add_argument("--ready", required=True)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--lease", type=float, default=2.0)
    parser.add_argument("--renew-every", type=float, default=0.5)
    parser.add_argument("--reap-interval", type=float, default=0.25)
    parser.add_argument("--poll-interval", type=float, default=1.0)
    parser.add_argument("--job-seconds", type=float, default=0.02)
    parser.add_argument("--mode", choices=["staged", "mixed"], default="staged")
    parser.add_argument("--hang-after", type=int, default=0)
    return parser.parse_args()


async def main(args: argparse.Namespace) -> None:
    markers = Path(args.markers)
    state = await from_url(args.dsn, table_prefix=args.prefix, maxsize=args.concurrency + 4)
    notify = RedisNotifyAdapter(args.redis, prefix=args.channel_prefix)
    client: Client[Any] = Client(state, job_types=JOB_TYPES, notify=notify)
    pid = os.getpid()
    started = 0
    never = asyncio.Event()

    async def begin(attempt: Attempt[Any]) -> None:
        """Mark the attempt, choose its mode, hang if asked, then do the work."""
        nonlocal started
        started += 1
        value = attempt.input.value
        atomic = args.mode == "mixed" and value % 2 == 0
        await attempt.prepare("atomic" if atomic else "staged")
        mark = {
            "job": attempt.job.id,
            "type": attempt.job.type_name,
            "worker": attempt.worker_id,
            "pid": pid,
            "attempt": attempt.number,
            "mode": "atomic" if atomic else "staged",
            "t": time.time(),
        }
        path = markers / f"{attempt.job.id}.{pid}.{attempt.number}"
        write_atomically(path, json.dumps(mark))
        if args.hang_after and started > args.hang_after:
            write_atomically(markers / f"hanging.{pid}.{attempt.job.id}", json.dumps(mark))
            await never.wait()
        await asyncio.sleep(args.job_seconds)

    async def start(attempt: Attempt[RStart]) -> None:
        await begin(attempt)
        await attempt.complete(RFinish(N(attempt.input.value)))

    async def finish(attempt: Attempt[RFinish]) -> None:
        await begin(attempt)
        await attempt.complete(N(2 * attempt.input.value + 1))

    async def leaf(attempt: Attempt[RLeaf]) -> None:
        await begin(attempt)
        await attempt.complete(N(attempt.input.value))

    async def join(attempt: Attempt[RJoin]) -> None:
        await begin(attempt)
        total = attempt.input.value + sum(chain.output.value for chain in attempt.blockers)
        await attempt.complete(N(total))

    worker: Worker[Any] = Worker(
        client,
        name=args.name,
        concurrency=args.concurrency,
        handlers={RStart: start, RFinish: finish, RLeaf: leaf, RJoin: join},
        poll_interval=args.poll_interval,
        lease=Lease(duration=args.lease, renew_every=args.renew_every),
        reap_interval=args.reap_interval,
        backoff=Backoff(initial=0.05, maximum=0.2),
        recovery_backoff=Backoff(initial=0.05, maximum=0.5),
        shutdown_timeout=5,
    )
    try:
        await worker.start()
        ready = Path(args.ready)
        info = json.dumps({"worker": worker.id, "pid": pid})
        await asyncio.to_thread(write_atomically, ready, info)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        import signal

        loop.add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()
    finally:
        await worker.close()
        await client.close()
        await notify.close()
        await state.close()


if __name__ == "__main__":
    logging.basicConfig(
        level=logging.WARNING, format="%(created).3f %(name)s %(levelname)s %(message)s"
    )
    asyncio.run(main(parse()))
