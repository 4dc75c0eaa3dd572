"""A worker process for the multi-process resilience tests (run as a script, not collected by
pytest): :func:`queuert_conformance.worker_process.run_worker_process` on one schema, woken by
LISTEN/NOTIFY, until SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import logging

from queuert_conformance.worker_process import add_worker_arguments, run_worker_process
from queuert_postgres import PgNotifyAdapter, PgStateAdapter


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dsn", required=True)
    parser.add_argument("--schema", required=True)
    parser.add_argument("--prefix", default="queuert_")
    return add_worker_arguments(parser).parse_args()


async def main(args: argparse.Namespace) -> None:
    state = await PgStateAdapter.connect(
        args.dsn, schema=args.schema, table_prefix=args.prefix, max_size=args.concurrency + 4
    )
    notify = PgNotifyAdapter(args.dsn, channel_prefix=args.channel_prefix)
    await run_worker_process(args, state, notify)


if __name__ == "__main__":
    logging.basicConfig(
        level=logging.WARNING, format="%(created).3f %(name)s %(levelname)s %(message)s"
    )
    asyncio.run(main(parse()))
