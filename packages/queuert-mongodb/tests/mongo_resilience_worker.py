"""A worker process for the MongoDB multi-process resilience tests (run as a script, not collected
by pytest): :func:`queuert_conformance.worker_process.run_worker_process` under one collection
prefix, woken through change streams, until SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import logging

from queuert_conformance.worker_process import add_worker_arguments, run_worker_process
from queuert_mongodb import MongoNotifyAdapter, MongoStateAdapter


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--database", required=True)
    parser.add_argument("--prefix", required=True)
    return add_worker_arguments(parser).parse_args()


async def main(args: argparse.Namespace) -> None:
    state = await MongoStateAdapter.connect(
        args.url, database=args.database, collection_prefix=args.prefix
    )
    notify = MongoNotifyAdapter(state.client, database=args.database, collection_prefix=args.prefix)
    await run_worker_process(args, state, notify)


if __name__ == "__main__":
    logging.basicConfig(
        level=logging.WARNING, format="%(created).3f %(name)s %(levelname)s %(message)s"
    )
    asyncio.run(main(parse()))
