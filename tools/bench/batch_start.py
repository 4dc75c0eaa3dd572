"""The cost of a batch of chain starts on PostgreSQL against the job table's schema: this checkout's
adapter starts batches into two job tables of a fresh schema (table prefixes ``a_`` and ``b_``),
one migrated by this checkout and one by the migrations of another checkout (``--base``), the two
alternating call by call (the order swapped every call), so that the machine's drift reaches both
alike.

    uv run python tools/bench/batch_start.py --dsn postgresql://postgres@127.0.0.1:5432/test \\
        --base ../base-checkout

Each side holds one transaction open on a connection of its own for all its calls (no commit
waits: what differs is the server's work on the table and its indexes, the statement and the client
being the same). Without ``--base`` both tables are this checkout's (the spread of identical sides).
Reports, per side, the median wall time per batch (with the quartiles) and the server's execution
time per batch from ``EXPLAIN (ANALYZE, TIMING OFF)`` of the statement the adapter sends (one more
batch, explained, after every ``--explain-every`` measured calls; it inserts its rows too).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import sys
import time
from collections.abc import Sequence
from contextlib import suppress
from pathlib import Path
from typing import Any

import asyncpg
from bench import pg_schema, run_on_own_schema
from queuert.ids import uuid7
from queuert.state import NewJob
from queuert_postgres import AsyncpgProvider, PgStateAdapter
from queuert_postgres._provider import Sql
from queuert_postgres._schema import BOOTSTRAP, Names


def base_migrations(checkout: str) -> list[tuple[str, str]]:
    """(name, script template) of the migrations of another checkout."""
    path = Path(checkout) / "packages/queuert-postgres/src/queuert_postgres/_schema.py"
    spec = importlib.util.spec_from_file_location("base_schema", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"no schema at {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[spec.name]
    return [(m.name, m.sql) for m in module.MIGRATIONS]


async def migrate_raw(dsn: str, names: Names, migrations: Sequence[tuple[str, str]]) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {names.schema_q}")
        await conn.execute(names.render(BOOTSTRAP))
        for name, sql in migrations:
            async with conn.transaction():
                await conn.execute(names.render(sql))
                await conn.execute(names.render("INSERT INTO {migration} (name) VALUES ($1)"), name)
    finally:
        await conn.close()


def batch(size: int) -> list[NewJob]:
    return [
        NewJob(id=uuid7(), type_name=f"t{i % 3}", chain_type_name=f"t{i % 3}", input={"n": i})
        for i in range(size)
    ]


class Side:
    """One job table, and what its batches took."""

    def __init__(self, name: str, state: PgStateAdapter[Any]) -> None:
        self.name = name
        self.state = state
        self.walls: list[float] = []
        self.server: list[float] = []
        self.explain = False


class _Explained(Exception):
    """Raised in place of the rows of an explained statement (the adapter's call ends there)."""


def explaining(side: Side) -> None:
    """Make the side's provider run its next statement under ``EXPLAIN (ANALYZE, TIMING OFF)``
    when ``side.explain`` is set: the rows are inserted as by the statement itself, the server's
    execution time is recorded, and the call ends with :class:`_Explained`."""
    provider = side.state.provider
    fetch = provider.fetch

    async def fetch_or_explain(
        sql: Sql, args: Sequence[Any], tx: Any = None
    ) -> list[Sequence[Any]]:
        if not side.explain:
            return await fetch(sql, args, tx)
        side.explain = False
        rows = await fetch(Sql("EXPLAIN (ANALYZE, TIMING OFF, FORMAT JSON) " + sql.text), args, tx)
        plan = rows[0][0]
        side.server.append(
            float((json.loads(plan) if isinstance(plan, str) else plan)[0]["Execution Time"])
        )
        raise _Explained

    provider.fetch = fetch_or_explain  # type: ignore[method-assign]


async def measure(
    dsn: str, base: str | None, calls: int, size: int, explain_every: int
) -> list[Side]:
    schema = pg_schema(dsn)
    plain = dsn.split("?")[0]
    sides: list[Side] = []
    for name, prefix in (("this checkout", "a_"), ("base" if base else "this checkout", "b_")):
        names = Names(schema, prefix)
        provider = await AsyncpgProvider.connect(plain, min_size=1, max_size=2)
        state = PgStateAdapter(provider, schema=names.schema, table_prefix=names.prefix)
        if base and prefix == "b_":
            await migrate_raw(plain, names, base_migrations(base))
        else:
            await state.migrate()
        side = Side(name, state)
        await state.create_jobs(batch(size * 5))  # warm the connections, plans and first pages
        explaining(side)
        sides.append(side)
    try:
        async with sides[0].state.transaction() as tx_a, sides[1].state.transaction() as tx_b:
            txs = [tx_a, tx_b]
            order = [0, 1]
            for call in range(calls):
                for i in order:
                    side = sides[i]
                    jobs = batch(size)
                    t0 = time.perf_counter()
                    await side.state.create_jobs(jobs, tx=txs[i])
                    side.walls.append((time.perf_counter() - t0) * 1e3)
                    if call % explain_every == 0:
                        side.explain = True
                        with suppress(_Explained):
                            await side.state.create_jobs(batch(size), tx=txs[i])
                order.reverse()
    finally:
        for side in sides:
            await side.state.close()
    return sides


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dsn", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--base", help="a checkout whose migrations make the other table")
    parser.add_argument("--calls", type=int, default=300, help="batches per side")
    parser.add_argument("--size", type=int, default=100, help="chain starts per batch")
    parser.add_argument("--explain-every", type=int, default=3)
    args = parser.parse_args()
    sides = run_on_own_schema(
        "batch_start",
        args.dsn,
        lambda dsn: measure(dsn, args.base, args.calls, args.size, args.explain_every),
    )
    print(
        f"batches of {args.size} chain starts in one open transaction per side, {args.calls} "
        "calls per side, alternating; median (quartiles)"
    )
    print(f"{'side':<16}{'wall ms/batch':>24}{'server ms/batch':>26}")
    for side in sides:
        q1, median, q3 = statistics.quantiles(side.walls, n=4)
        s1, smedian, s3 = statistics.quantiles(side.server, n=4)
        print(
            f"{side.name:<16}{median:>10.3f} ({q1:.3f}..{q3:.3f})"
            f"{smedian:>12.3f} ({s1:.3f}..{s3:.3f})"
        )


if __name__ == "__main__":
    main()
