"""The exactly-once path's per-transaction Python, each part alone, as CPU time per operation: the
minimum over blocks (and the median), which a loaded machine disturbs far less than a throughput run.

    uv run python tools/bench/transaction_cpu.py --dsn postgresql://postgres@127.0.0.1:5432/test

Run it from two checkouts, alternating, to compare them. Parts:

* ``hooks``: a transaction's hooks with a closed chain and two events buffered, then flushed (no
  database; the in-process notify adapter's publisher);
* ``transaction``: ``AsyncpgProvider.transaction()`` around an empty block (BEGIN and COMMIT on a
  connection the provider keeps between its transactions);
* ``statement``: one ``SELECT`` of queuert's (``provider.fetch``) inside an open transaction, with
  the provider's statement timeout watching it.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable

from queuert import InProcessNotifyAdapter
from queuert._publishing import Publishing
from queuert.hooks import TransactionHooks
from queuert.observability import Event
from queuert_postgres import AsyncpgProvider, Sql


class Quiet:
    """An observability adapter that takes every event and does nothing with it."""

    def emit(self, event: Event) -> None:
        pass


async def cpu_per_call(
    call: Callable[[], Awaitable[None]], *, blocks: int, per_block: int
) -> tuple[float, float]:
    """(minimum, median) over ``blocks`` of the process's CPU µs per call."""
    figures = []
    for _ in range(blocks):
        start = time.process_time()
        for _ in range(per_block):
            await call()
        figures.append((time.process_time() - start) / per_block * 1e6)
    return min(figures), statistics.median(figures)


async def run(dsn: str, blocks: int) -> None:
    publishing = Publishing(InProcessNotifyAdapter(), Quiet())

    async def hooks_cycle() -> None:
        hooks = TransactionHooks()
        publishing.notify_buffer(hooks).closed_chains.add("chain")
        events = publishing.event_buffer(hooks).events
        events.extend([Event(), Event()])
        await hooks.flush()

    best, median = await cpu_per_call(hooks_cycle, blocks=blocks, per_block=500)
    await publishing.wait_published()
    print(f"hooks        min {best:8.2f} us   median {median:8.2f} us")

    provider = await AsyncpgProvider.connect(dsn, max_size=2)
    try:

        async def transaction_cycle() -> None:
            async with provider.transaction():
                pass

        for _ in range(200):  # warm: the kept connection, prepared nothing
            await transaction_cycle()
        best, median = await cpu_per_call(transaction_cycle, blocks=blocks, per_block=100)
        print(f"transaction  min {best:8.1f} us   median {median:8.1f} us")

        select = Sql("SELECT $1::int")
        async with provider.transaction() as tx:

            async def statement() -> None:
                await provider.fetch(select, (1,), tx)

            for _ in range(200):  # warm: the statement prepared
                await statement()
            best, median = await cpu_per_call(statement, blocks=blocks, per_block=100)
        print(f"statement    min {best:8.1f} us   median {median:8.1f} us")
    finally:
        await provider.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dsn", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--blocks", type=int, default=30)
    args = parser.parse_args()
    asyncio.run(run(args.dsn, args.blocks))


if __name__ == "__main__":
    main()
