"""A worker process for the MySQL multi-process resilience tests (run as a script, not collected by
pytest): :func:`queuert_conformance.worker_process.run_worker_process` under one table prefix, woken
over Redis (MySQL has no LISTEN/NOTIFY), until SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import logging

from queuert_conformance.worker_process import add_worker_arguments, run_worker_process
from queuert_mysql import from_url
from queuert_redis import RedisNotifyAdapter


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dsn", required=True)
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--redis", required=True)
    return add_worker_arguments(parser).parse_args()


async def main(args: argparse.Namespace) -> None:
    state = await from_url(args.dsn, table_prefix=args.prefix, maxsize=args.concurrency + 4)
    notify = RedisNotifyAdapter(args.redis, prefix=args.channel_prefix)
    await run_worker_process(args, state, notify)


if __name__ == "__main__":
    logging.basicConfig(
        level=logging.WARNING, format="%(created).3f %(name)s %(levelname)s %(message)s"
    )
    asyncio.run(main(parse()))
