"""queuert benchmarks: processing capacity, enqueue-to-start latency and memory.

Every measurement runs in a fresh child process, several times; the report gives medians (and the
spread). Backends are chosen by URL: ``memory://``, ``sqlite:///path.db``, ``postgresql://...``,
``mysql://...`` (MySQL or MariaDB), ``mongodb://...`` (a replica set: ``?replicaSet=...``).

    uv run python tools/bench/bench.py processing --dsn postgresql://postgres@127.0.0.1/test --runs 5
    uv run python tools/bench/bench.py latency --dsn ... --notify postgres|redis|nats|mongodb|none --runs 3
    uv run python tools/bench/bench.py memory --dsn ... --runs 3

processing: start N chains one by one (``single``: one ``client.transaction()`` each; ``alone``: no
``tx``, each start commits on its own) and in batches of 100, then process them
with one worker at concurrency 10; reports chains/s, jobs/s and the worker's CPU time per job. The
handlers (``process`` column):

* ``noop``: returns its output; the worker writes the completions of attempts finishing together in
  one statement (no transaction of the job's own).
* ``noop-quiet``: ``noop`` with the client's default observability (``LoggingObservability``, which
  at the default ``WARNING`` level says it drops the per-job events, so the worker builds none), as
  an application that configures none runs; the run ends once the worker is closed (which writes
  the last group commit), since no event counts the completions.
* ``noop-atomic``: calls ``attempt.prepare("atomic")`` and returns its output: a transaction that
  holds the job is opened, and the completion commits in it (the exactly-once path, with no work).
* ``write-atomic``: ``prepare("atomic", insert)``: inserts one row of its own in the job's transaction,
  which commits with the completion (exactly once).
* ``write-staged``: ``prepare("staged")``, then ``complete(insert)``: the row is inserted in the
  transaction that completes the job (one opened at ``complete``, after re-checking the lease).

On PostgreSQL and MySQL/MariaDB each round also measures the floor of ``write-atomic`` with no
queuert code: 10 connections of the driver, each running ``BEGIN``, the handler's ``INSERT``, an
``UPDATE`` that marks one job row completed, and ``COMMIT``, over as many jobs; ``write-atomic``'s
ratio to it is printed. On a SQLite file each round also measures the floor of ``alone``: one hop
per start from asyncio to an aiosqlite thread running ``BEGIN IMMEDIATE``, queuert's job ``INSERT``
and ``COMMIT``, with the connections set up as queuert's (no queuert code); ``alone``'s ratio to it
is printed. It also measures the same starts through the SQLite state adapter alone
(``create_jobs`` of one new chain's job, as the client hands it, without ``tx``; no client), which
splits ``alone``'s distance to the floor into the adapter's share and the rest's. Both floor rows
print their process CPU time per start. Rounds are interleaved (every mode once per round) so drift
hits all alike.
The write modes need a database (not ``memory://``).
latency: start single jobs one at a time against an idle worker and measure how long until the handler
starts (min / median / p99), with the given notify adapter and a 1 s poll interval.
memory: Python heap (tracemalloc) for setup, peak while processing 1,000 jobs, and retained after
close, over repeated build -> process -> close cycles.
otel: batch start and processing with queuert-otel off and on (metrics, traces and logs with the
default settings, into the OpenTelemetry SDK's batch processors and in-memory exporters), on with
traces sampled at 10%, and ``sdk``: the SDK calls queuert-otel makes with no queuert-otel code
(the floor, in the same conditions), alternating run by run in one session, for each handler of
``--process`` (``noop-atomic``, the atomic mode, and ``noop``, group-committed completions, unless
given); reports the throughputs, the CPU time per processed job and their ratios to off, and
splits on's extra CPU per job into the SDK's share and queuert-otel's own.

    uv run python tools/bench/bench.py otel --dsn sqlite:///bench.db --runs 5
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from queuert import (
    Attempt,
    Client,
    EntryJobType,
    InProcessNotifyAdapter,
    NoopNotifyAdapter,
    TxContext,
    Worker,
)
from queuert.backends import open_state_adapter
from queuert.backoff import Lease
from queuert.observability import (
    AttemptCompleted,
    AttemptStarted,
    ChainClosed,
    ChainCreated,
    Event,
    JobCompleted,
    JobCreated,
    NoopObservability,
)


class Countdown:
    """Observability adapter that sets ``done`` once ``target`` attempts of the bench's jobs
    completed (not those of queuert's own ``queuert_*`` jobs, such as the partitioned layout's
    maintenance chain)."""

    def __init__(self, target: int) -> None:
        self.remaining = target
        self.done = asyncio.Event()

    def emit(self, event: Event) -> None:
        if isinstance(event, AttemptCompleted) and not event.job.type_name.startswith("queuert_"):
            self.remaining -= 1
            if self.remaining <= 0:
                self.done.set()


@dataclass
class Item:
    index: int


@dataclass
class Done:
    ok: bool


class BenchJob(EntryJobType[Item, Done], name="bench_job"):
    pass


# -- backends ---------------------------------------------------------------------------------------


def isolated_dsn(dsn: str, tag: str) -> str:
    """A DSN whose data does not collide with other runs (own SQLite file / own PG schema)."""
    if dsn.startswith("sqlite:///") and dsn != "sqlite:///:memory:":
        base = dsn[len("sqlite:///") :]
        root, ext = os.path.splitext(base)
        return f"sqlite:///{root}-{tag}{ext or '.db'}"
    if dsn.startswith(("postgresql://", "postgres://")):
        sep = "&" if "?" in dsn else "?"
        return f"{dsn}{sep}schema=bench_{tag}"
    if dsn.startswith(("mysql://", "mariadb://")):
        sep = "&" if "?" in dsn else "?"
        return f"{dsn}{sep}table_prefix=bench_{tag}_"
    if dsn.startswith(("mongodb://", "mongodb+srv://")):
        sep = "&" if "?" in dsn else "?"
        return f"{dsn}{sep}collection_prefix=bench_{tag}_"
    return dsn


async def open_backend(dsn: str, notify: str) -> tuple[Any, Any]:
    state = await open_state_adapter(dsn)
    await state.migrate()
    if notify == "in_process":
        return state, InProcessNotifyAdapter()
    if notify == "none":
        return state, NoopNotifyAdapter()
    if notify == "postgres":
        from queuert_postgres import PgNotifyAdapter

        return state, PgNotifyAdapter(dsn.split("?")[0], channel_prefix=f"b{uuid.uuid4().hex[:8]}")
    if notify == "redis":
        from queuert_redis import RedisNotifyAdapter

        url = os.environ.get("QUEUERT_REDIS_URL", "redis://127.0.0.1:6379/0")
        return state, RedisNotifyAdapter(url, prefix=f"bench-{uuid.uuid4().hex[:8]}")
    if notify == "nats":
        from queuert_nats import NatsNotifyAdapter

        url = os.environ.get("QUEUERT_NATS_URL", "nats://127.0.0.1:4222")
        return state, NatsNotifyAdapter(url, subject_prefix=f"bench{uuid.uuid4().hex[:8]}")
    if notify == "mongodb":
        from queuert_mongodb import MongoNotifyAdapter, MongoStateAdapter

        if not isinstance(state, MongoStateAdapter):
            raise SystemExit("--notify mongodb needs a mongodb:// --dsn (it rides on its client)")
        names = state.names
        notifier = MongoNotifyAdapter(
            state.client, database=names.database, collection_prefix=names.prefix
        )
        await notifier.migrate()
        return state, notifier
    raise SystemExit(f"unknown notify adapter {notify!r}")


def remove_sqlite_files(dsn: str) -> None:
    if dsn.startswith("sqlite:///") and dsn != "sqlite:///:memory:":
        path = dsn[len("sqlite:///") :]
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(path + suffix):
                os.remove(path + suffix)


async def drop_backend(dsn: str) -> None:
    if dsn.startswith(("mongodb://", "mongodb+srv://")) and "collection_prefix=bench_" in dsn:
        from pymongo import AsyncMongoClient
        from queuert_mongodb._url import parse_url as parse_mongodb_url

        driver_url, database, found = parse_mongodb_url(dsn)
        prefix = found["collection_prefix"]
        client: AsyncMongoClient[Any] = AsyncMongoClient(driver_url)
        try:
            db = client[database]
            for name in await db.list_collection_names():
                if name.startswith(prefix):
                    await db.drop_collection(name)
        finally:
            await client.close()
    if dsn.startswith(("postgresql://", "postgres://")) and "schema=bench_" in dsn:
        import asyncpg

        schema = dsn.split("schema=")[1].split("&")[0]
        conn = await asyncpg.connect(dsn.split("?")[0])
        try:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            await conn.close()
    if dsn.startswith(("mysql://", "mariadb://")) and "table_prefix=bench_" in dsn:
        import aiomysql
        from queuert_mysql._url import parse_url

        prefix = dsn.split("table_prefix=")[1].split("&")[0]
        conn = await aiomysql.connect(**parse_url(dsn)[0], autocommit=True)
        try:
            async with conn.cursor() as cur:
                for table in (
                    "job_blocker",
                    "job_limit",
                    "job",
                    "dedup_lock",
                    "migration",
                    "bench_row",
                    "floor_job",
                ):
                    await cur.execute(f"DROP TABLE IF EXISTS `{prefix}{table}`")
        finally:
            conn.close()


# -- the handler's own row (write modes) and the floor without queuert ------------------------------


def uuid7_sql(moment: str, seed: str) -> str:
    """SQL for a UUIDv7-shaped id made at ``moment`` (a timestamptz expression), its other bits from
    ``md5(seed)``: time-ordered like the ids queuert makes, so a history filled with them lands in
    the partitions of its time in the partitioned layout."""
    return (
        f"(lpad(to_hex((extract(epoch FROM {moment}) * 1000)::int8), 12, '0') || '7' || "
        f"substr(md5({seed}), 1, 3) || '8' || substr(md5({seed}), 4, 15))::uuid"
    )


def pg_schema(dsn: str) -> str:
    return dsn.split("schema=")[1].split("&")[0] if "schema=" in dsn else "public"


T = TypeVar("T")


def run_on_own_schema(tool: str, dsn: str, measure: Callable[[str], Coroutine[Any, Any, T]]) -> T:
    """``measure(dsn)`` on PostgreSQL in a schema of this run's own, dropped afterwards; another
    database is refused (``tool`` names the PostgreSQL-only tool)."""
    if not dsn.startswith(("postgresql://", "postgres://")):
        raise SystemExit(f"{tool} measures PostgreSQL only")
    own = isolated_dsn(dsn, uuid.uuid4().hex[:10])
    try:
        return asyncio.run(measure(own))
    finally:
        asyncio.run(drop_backend(own))


def mysql_prefix(dsn: str) -> str:
    return dsn.split("table_prefix=")[1].split("&")[0] if "table_prefix=" in dsn else ""


class RowWriter:
    """Creates the table a write handler inserts into, and inserts one row through the transaction
    object queuert hands the handler (an asyncpg connection, the SQLite adapter's connection or an
    aiomysql connection)."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        if dsn.startswith(("postgresql://", "postgres://")):
            self.kind = "postgres"
            self.table = f'"{pg_schema(dsn)}".bench_row'
        elif dsn.startswith(("mysql://", "mariadb://")):
            self.kind = "mysql"
            self.table = f"`{mysql_prefix(dsn)}bench_row`"
        elif dsn.startswith("sqlite:///"):
            self.kind = "sqlite"
            self.table = "bench_row"
        else:
            raise SystemExit(
                "the write modes need a database: postgresql://, mysql:// or sqlite:///"
            )

    async def create(self) -> None:
        if self.kind == "postgres":
            import asyncpg

            conn = await asyncpg.connect(self.dsn.split("?")[0])
            try:
                await conn.execute(
                    f"CREATE TABLE {self.table} (job_id text PRIMARY KEY, n integer NOT NULL)"
                )
            finally:
                await conn.close()
        elif self.kind == "mysql":
            import aiomysql
            from queuert_mysql._url import parse_url

            conn = await aiomysql.connect(**parse_url(self.dsn)[0], autocommit=True)
            try:
                async with conn.cursor() as cur:
                    await cur.execute(
                        f"CREATE TABLE {self.table} (job_id VARCHAR(36) PRIMARY KEY, n INT NOT NULL)"
                    )
            finally:
                conn.close()
        else:
            import sqlite3

            raw = sqlite3.connect(self.dsn[len("sqlite:///") :])
            try:
                raw.execute(
                    f"CREATE TABLE {self.table} (job_id TEXT PRIMARY KEY, n INTEGER NOT NULL)"
                )
                raw.commit()
            finally:
                raw.close()

    async def insert(self, tx: Any, job_id: str, n: int) -> None:
        if self.kind == "postgres":
            await tx.execute(f"INSERT INTO {self.table} (job_id, n) VALUES ($1, $2)", job_id, n)
        elif self.kind == "mysql":
            async with tx.cursor() as cur:
                await cur.execute(
                    f"INSERT INTO {self.table} (job_id, n) VALUES (%s, %s)", (job_id, n)
                )
        else:
            await tx.execute(f"INSERT INTO {self.table} (job_id, n) VALUES (?, ?)", (job_id, n))

    async def count(self, client: Client[Any]) -> int:
        async with client.transaction() as tx:
            if self.kind == "postgres":
                value: int = await tx.fetchval(f"SELECT count(*) FROM {self.table}")
                return value
            if self.kind == "mysql":
                async with tx.cursor() as cur:
                    await cur.execute(f"SELECT count(*) FROM {self.table}")
                    return int((await cur.fetchone())[0])
            return int((await tx.execute(f"SELECT count(*) FROM {self.table}"))[0][0])


async def run_floor(dsn: str, chains: int, concurrency: int = 10) -> dict[str, float]:
    """``write-atomic`` without queuert: ``concurrency`` connections of the driver, each taking the
    next job and running ``BEGIN``, the handler's ``INSERT``, the completion ``UPDATE`` of the job's
    row and ``COMMIT`` (four round trips), on a job table with its primary key alone."""
    ids = [str(uuid.uuid4()) for _ in range(chains)]
    queue = iter(ids)
    if dsn.startswith(("postgresql://", "postgres://")):
        import asyncpg

        schema = pg_schema(dsn)
        plain = dsn.split("?")[0]
        setup = await asyncpg.connect(plain)
        try:
            await setup.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
            await setup.execute(
                f'CREATE TABLE "{schema}".floor_job (id text PRIMARY KEY, outcome text, '
                "output jsonb, completed_at timestamptz)"
            )
            await setup.execute(
                f'CREATE TABLE "{schema}".bench_row (job_id text PRIMARY KEY, n integer NOT NULL)'
            )
            await setup.execute(
                f'INSERT INTO "{schema}".floor_job (id) SELECT unnest($1::text[])', ids
            )
        finally:
            await setup.close()
        conns = [await asyncpg.connect(plain) for _ in range(concurrency)]

        async def pg_loop(conn: Any) -> None:
            for n, job_id in enumerate(queue):
                async with conn.transaction():
                    await conn.execute(
                        f'INSERT INTO "{schema}".bench_row (job_id, n) VALUES ($1, $2)', job_id, n
                    )
                    await conn.execute(
                        f"UPDATE \"{schema}\".floor_job SET outcome = 'completed', "
                        "output = $2::jsonb, completed_at = now() WHERE id = $1",
                        job_id,
                        '{"ok": true}',
                    )

        t0, cpu0 = time.perf_counter(), time.process_time()
        try:
            await asyncio.gather(*(pg_loop(conn) for conn in conns))
            elapsed, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        finally:
            for conn in conns:
                await conn.close()
        return {"process_per_s": chains / elapsed, "process_cpu_us": cpu / chains * 1e6}
    if dsn.startswith(("mysql://", "mariadb://")):
        import aiomysql
        from queuert_mysql._url import parse_url

        prefix = mysql_prefix(dsn)
        options = parse_url(dsn)[0]
        setup = await aiomysql.connect(**options, autocommit=True)
        try:
            async with setup.cursor() as cur:
                await cur.execute(
                    f"CREATE TABLE `{prefix}floor_job` (id VARCHAR(36) PRIMARY KEY, outcome "
                    "VARCHAR(16), output JSON, completed_at DATETIME(6))"
                )
                await cur.execute(
                    f"CREATE TABLE `{prefix}bench_row` (job_id VARCHAR(36) PRIMARY KEY, n INT NOT NULL)"
                )
                for offset in range(0, chains, 1000):
                    part = ids[offset : offset + 1000]
                    await cur.execute(
                        f"INSERT INTO `{prefix}floor_job` (id) VALUES "
                        + ", ".join(["(%s)"] * len(part)),
                        part,
                    )
        finally:
            setup.close()
        my_conns = [await aiomysql.connect(**options, autocommit=True) for _ in range(concurrency)]

        async def my_loop(conn: Any) -> None:
            async with conn.cursor() as cur:
                for n, job_id in enumerate(queue):
                    await cur.execute("BEGIN")
                    await cur.execute(
                        f"INSERT INTO `{prefix}bench_row` (job_id, n) VALUES (%s, %s)", (job_id, n)
                    )
                    await cur.execute(
                        f"UPDATE `{prefix}floor_job` SET outcome = 'completed', output = %s, "
                        "completed_at = NOW(6) WHERE id = %s",
                        ('{"ok": true}', job_id),
                    )
                    await cur.execute("COMMIT")

        t0, cpu0 = time.perf_counter(), time.process_time()
        try:
            await asyncio.gather(*(my_loop(conn) for conn in my_conns))
            elapsed, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        finally:
            for conn in my_conns:
                conn.close()
        return {"process_per_s": chains / elapsed, "process_cpu_us": cpu / chains * 1e6}
    raise SystemExit("the floor is measured on PostgreSQL and MySQL/MariaDB only")


def has_floor(dsn: str) -> bool:
    return dsn.startswith(("postgresql://", "postgres://", "mysql://", "mariadb://"))


def has_start_floor(dsn: str) -> bool:
    return dsn.startswith("sqlite:///") and dsn != "sqlite:///:memory:"


async def run_start_floor(dsn: str, chains: int) -> dict[str, float]:
    """``alone`` starts without queuert, on SQLite: ``chains`` one-row transactions, one after
    another from asyncio, each one hop to an aiosqlite connection's thread running ``BEGIN
    IMMEDIATE``, queuert's own INSERT of a job row (every column it writes, into its schema with its
    indexes) and ``COMMIT``. The connections are set up as queuert's provider sets up its own (WAL,
    ``synchronous = NORMAL``, foreign keys on, no automatic checkpoints in the writer: a passive
    checkpoint on a connection of its own at most every 0.25 s after a commit), so the one thing
    left out is queuert's Python."""
    import sqlite3

    import aiosqlite
    from queuert.ids import uuid7
    from queuert_sqlite._sql import Statements
    from queuert_sqlite._time import now

    state = await open_state_adapter(dsn)  # queuert's schema, indexes included
    await state.migrate()
    await state.close()
    path = dsn[len("sqlite:///") :]
    insert = Statements("queuert_").insert_job

    def opener(writer: bool) -> Any:
        def connect() -> sqlite3.Connection:
            raw = sqlite3.connect(path, isolation_level=None)
            raw.execute("PRAGMA foreign_keys = ON")
            raw.execute("PRAGMA synchronous = NORMAL")
            raw.execute("PRAGMA journal_mode = WAL")
            if writer:
                raw.execute("PRAGMA wal_autocheckpoint = 0")
            return raw

        return connect

    writer = await aiosqlite.Connection(opener(True), 64)
    checkpointer = await aiosqlite.Connection(opener(False), 64)
    raw = writer._conn
    raw_checkpointer = checkpointer._conn
    # aiosqlite's one primitive that runs a function on the connection's thread (queuert uses it)
    on_writer: Callable[..., Awaitable[Any]] = writer._execute
    on_checkpointer: Callable[..., Awaitable[Any]] = checkpointer._execute
    loop = asyncio.get_running_loop()
    checkpoint: asyncio.Future[Any] | None = None
    last = 0.0

    def one(row: tuple[Any, ...]) -> None:
        raw.execute("BEGIN IMMEDIATE")
        raw.execute(insert, row)
        raw.execute("COMMIT")

    def passive() -> None:
        raw_checkpointer.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()

    t0, cpu0 = time.perf_counter(), time.process_time()
    try:
        for i in range(chains):
            job_id = uuid7()
            at, _ = now()
            row = (job_id, "bench_job", job_id, "bench_job", 0, f'{{"index":{i}}}', at, at)
            await on_writer(one, (*row, None, None, None, 0, None))
            if (checkpoint is None or checkpoint.done()) and loop.time() - last >= 0.25:
                last = loop.time()
                checkpoint = asyncio.ensure_future(on_checkpointer(passive))
        elapsed, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        if checkpoint is not None:
            await checkpoint
    finally:
        await writer.close()
        await checkpointer.close()
    return {"start_per_s": chains / elapsed, "start_cpu_us": cpu / chains * 1e6}


async def run_start_adapter(dsn: str, chains: int) -> dict[str, float]:
    """``alone`` starts through the SQLite state adapter alone: ``chains`` calls of ``create_jobs``
    without ``tx``, one after another, each with one new chain's job as the client builds it (a
    fresh id of the adapter's id policy, the input with its JSON text); no client, no notify
    adapter. Between the start floor and ``alone``: what the adapter and its provider add to the
    floor, and what the client adds to them."""
    from queuert.state import NewJob

    state = await open_state_adapter(dsn)
    await state.migrate()
    generate = state.ids.generate
    try:
        t0, cpu0 = time.perf_counter(), time.process_time()
        for i in range(chains):
            new = NewJob(
                id=generate(),
                type_name="bench_job",
                chain_type_name="bench_job",
                input={"index": i},
                fresh_id=True,
                input_text=f'{{"index":{i}}}',
            )
            await state.create_jobs([new])
        elapsed, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    finally:
        await state.close()
    return {"start_per_s": chains / elapsed, "start_cpu_us": cpu / chains * 1e6}


# -- one measured run (child process) --------------------------------------------------------------


def otel_providers(sample: float = 1.0) -> tuple[Any, Any, Any]:
    """The tracer, meter and logger providers of the otel runs: the SDK's batch processors (export
    on the SDK's thread, as in production) into its in-memory exporters, and an in-memory metric
    reader; traces sampled ``ParentBased(TraceIdRatioBased(sample))``."""
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs import export as log_export
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

    tracer_provider = TracerProvider(sampler=ParentBased(TraceIdRatioBased(sample)))
    tracer_provider.add_span_processor(BatchSpanProcessor(InMemorySpanExporter()))
    meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
    exporter = (
        getattr(log_export, "InMemoryLogRecordExporter", None) or log_export.InMemoryLogExporter
    )
    logger_provider = LoggerProvider()
    logger_provider.add_log_record_processor(log_export.BatchLogRecordProcessor(exporter()))
    return tracer_provider, meter_provider, logger_provider


def counting_otel(target: int, sample: float = 1.0) -> tuple[Any, asyncio.Event]:
    """An ``OtelObservability`` exporting everything into the SDK's in-memory exporters (see
    :func:`otel_providers`), which also counts completed attempts like :class:`Countdown`."""
    from queuert_otel import OtelObservability

    tracer_provider, meter_provider, logger_provider = otel_providers(sample)
    countdown = Countdown(target)

    class Counting(OtelObservability):
        def emit(self, event: Event) -> None:
            super().emit(event)
            countdown.emit(event)

    otel = Counting(
        tracer_provider=tracer_provider,
        meter_provider=meter_provider,
        logger_provider=logger_provider,
    )
    return otel, countdown.done


PROCESS_HISTOGRAMS = (
    "messaging.process.duration",
    "queuert.job.wait.duration",
    "queuert.job.duration",
    "queuert.chain.duration",
)
"""The histograms queuert-otel records for every processed job (its counters are summed in
queuert-otel and read by the SDK only at collection: no SDK call per job)."""

MESSAGING = {
    "messaging.system": "queuert",
    "messaging.destination.name": "bench_job",
    "messaging.operation.name": "process",
    "messaging.operation.type": "process",
}
JOB = {"queuert.job.type": "bench_job", "queuert.chain.type": "bench_job"}


class SdkOnly(Countdown):
    """The SDK floor inside a processing run: an observability adapter that makes, with no
    queuert-otel code, the OpenTelemetry SDK calls queuert-otel makes for a one-job chain, on the
    same providers. At the start (the client's trace contexts, then the events after the commit):
    the chain's and the job's PRODUCER spans, held until their commit. Per processed job: the
    attempt's CONSUMER span (parented on the job's stored context, the same seven attributes, the
    processing mode and the chain's outcome set before it ends) and the four histogram records of
    :data:`PROCESS_HISTOGRAMS` with the same attribute sets. Not done: the handler does not run in
    the attempt's span (queuert-otel's attempt scope), and no counters, queue-health gauges or log
    records (none is an SDK call per job at the default log level)."""

    def __init__(self, target: int) -> None:
        from opentelemetry.trace import SpanKind

        super().__init__(target)
        tracer_provider, meter_provider, _ = otel_providers(1.0)
        self.tracer = tracer_provider.get_tracer("queuert")
        meter = meter_provider.get_meter("queuert")
        self.histograms = [meter.create_histogram(n, unit="s") for n in PROCESS_HISTOGRAMS]
        self.pending: dict[str, Any] = {}
        self.attempts: dict[str, Any] = {}
        self.process = {
            mode: {**MESSAGING, "queuert.processing.mode": mode} for mode in ("atomic", "staged")
        }
        self.producer = SpanKind.PRODUCER
        self.consumer = SpanKind.CONSUMER

    def _hold(self, span: Any) -> str:
        c = span.get_span_context()
        context = f"00-{c.trace_id:032x}-{c.span_id:016x}-{int(c.trace_flags):02x}"
        self.pending[context] = span
        return context

    def start_chain(self, chain_type_name: str) -> str | None:
        attributes = {"queuert.chain.type": chain_type_name}
        span = self.tracer.start_span(
            f"create chain {chain_type_name}", kind=self.producer, attributes=attributes
        )
        return self._hold(span)

    def start_job(
        self,
        type_name: str,
        chain_type_name: str,
        chain_trace_context: str | None,
        origin_trace_context: str | None,
    ) -> str | None:
        from opentelemetry.trace import set_span_in_context

        chain = self.pending.get(chain_trace_context or "")
        span = self.tracer.start_span(
            f"create {type_name}",
            context=None if chain is None else set_span_in_context(chain),
            kind=self.producer,
            attributes={**MESSAGING, "messaging.operation.name": "create"},
        )
        return self._hold(span)

    def start_blockers(
        self, trace_context: str | None, blocker_chain_ids: Sequence[str]
    ) -> list[str | None]:
        return [None] * len(blocker_chain_ids)

    def abandon(self, trace_contexts: Sequence[str]) -> None:
        for context in trace_contexts:
            span = self.pending.pop(context, None)
            if span is not None:
                span.end()

    def emit(self, event: Event) -> None:
        from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags
        from opentelemetry.trace import set_span_in_context as in_context

        if isinstance(event, ChainCreated) and event.trace_context is not None:
            chain = self.pending.pop(event.trace_context)
            chain.set_attribute("queuert.chain.id", event.chain_id)
            chain.end()
        elif isinstance(event, JobCreated) and event.job.trace_context is not None:
            created = self.pending.pop(event.job.trace_context)
            created.set_attribute("messaging.message.id", event.job.id)
            created.set_attribute("queuert.chain.id", event.job.chain_id)
            created.end()
        elif isinstance(event, AttemptStarted):
            job, stored = event.job, event.job.trace_context or ""
            parent = SpanContext(int(stored[3:35], 16), int(stored[36:52], 16), True, TraceFlags(1))
            self.attempts[job.chain_id] = self.tracer.start_span(
                f"process {job.type_name}",
                context=in_context(NonRecordingSpan(parent)),
                kind=self.consumer,
                attributes={
                    **MESSAGING,
                    "messaging.message.id": job.id,
                    "queuert.job.attempt": job.attempt,
                    "queuert.worker.id": event.worker_id,
                },
            )
            self.histograms[1].record(event.waited, JOB)
        elif isinstance(event, JobCompleted):
            self.histograms[2].record(event.duration, JOB)
        elif isinstance(event, ChainClosed):
            if event.duration is not None:
                self.histograms[3].record(event.duration, JOB)
            self.attempts[event.chain_id].set_attribute("queuert.chain.outcome", event.outcome)
        elif isinstance(event, AttemptCompleted):
            span = self.attempts.pop(event.job.chain_id)
            span.set_attribute("queuert.processing.mode", event.mode)
            span.end()
            self.histograms[0].record(event.duration, self.process[event.mode])
        super().emit(event)


def run_otel_floor(chains: int) -> dict[str, float]:
    """What the OpenTelemetry SDK alone costs per processed job for what queuert-otel records of
    it, with the same providers as ``counting_otel``, no queuert code and no database: the
    attempt's span (a remote parent, the same attributes, mode and outcome set before its end) and
    the four histogram records of :data:`PROCESS_HISTOGRAMS` (the chain's and the job's creation
    spans belong to the start, not to processing)."""
    from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, TraceFlags
    from opentelemetry.trace import set_span_in_context as in_context

    tracer_provider, meter_provider, _ = otel_providers(1.0)
    tracer = tracer_provider.get_tracer("queuert")
    meter = meter_provider.get_meter("queuert")
    histograms = [meter.create_histogram(name, unit="s") for name in PROCESS_HISTOGRAMS]
    process = {**MESSAGING, "queuert.processing.mode": "atomic"}
    parents = [
        in_context(NonRecordingSpan(SpanContext(i + 1, i + 1, True, TraceFlags(1))))
        for i in range(chains)
    ]
    began = time.process_time()
    for i in range(chains):
        attempt = tracer.start_span(
            "process bench_job",
            context=parents[i],
            kind=SpanKind.CONSUMER,
            attributes={
                **MESSAGING,
                "messaging.message.id": str(i),
                "queuert.job.attempt": 1,
                "queuert.worker.id": "worker",
            },
        )
        histograms[1].record(0.001, JOB)
        histograms[2].record(0.001, JOB)
        histograms[3].record(0.001, JOB)
        attempt.set_attribute("queuert.chain.outcome", "completed")
        attempt.set_attribute("queuert.processing.mode", "atomic")
        attempt.end()
        histograms[0].record(0.001, process)
    used = time.process_time() - began
    tracer_provider.shutdown()
    return {"floor_cpu_us": used / chains * 1e6}


async def run_processing(
    dsn: str,
    chains: int,
    start_mode: str,
    process_mode: str,
    notify: str,
    otel: float | None = None,
    sdk_only: bool = False,
) -> dict[str, float]:
    """``otel``: ``None`` for queuert-otel off, else on with that trace sampling ratio;
    ``sdk_only``: :class:`SdkOnly` instead (the SDK floor)."""
    state, notifier = await open_backend(dsn, notify)
    observability: Any
    if sdk_only:
        observability = SdkOnly(chains)
        done = observability.done
    elif otel is not None:
        observability, done = counting_otel(chains, otel)
    elif process_mode == "noop-quiet":
        observability = None  # the client's default
        done = asyncio.Event()
    else:
        observability = Countdown(chains)
        done = observability.done
    client: Client[Any] = Client(
        state, job_types=[BenchJob], notify=notifier, observability=observability
    )
    worker: Worker[Any] = Worker(client, concurrency=10, poll_interval=1.0, lease=Lease(60, 30))

    writer: RowWriter | None = None
    if process_mode.startswith("write-"):
        writer = RowWriter(dsn)
        await writer.create()
    if process_mode == "noop":

        @worker.handler(BenchJob)
        async def noop(attempt: Attempt[BenchJob]) -> Done:
            return Done(True)  # a returned output: the worker's group commit writes it

    elif process_mode == "noop-quiet":
        handled = 0

        @worker.handler(BenchJob)
        async def noop_quiet(attempt: Attempt[BenchJob]) -> Done:
            nonlocal handled
            handled += 1
            if handled == chains:
                done.set()
            return Done(True)

    elif process_mode == "noop-atomic":

        @worker.handler(BenchJob)
        async def noop_atomic(attempt: Attempt[BenchJob]) -> Done:
            await attempt.prepare("atomic")  # the job's own transaction, committed on return
            return Done(True)

    elif process_mode == "write-atomic":
        assert writer is not None
        atomic_writer = writer

        @worker.handler(BenchJob)
        async def write_atomic(attempt: Attempt[BenchJob]) -> Done:
            async def insert(ctx: TxContext[Any]) -> None:
                await atomic_writer.insert(ctx.tx, attempt.job.id, attempt.input.index)

            await attempt.prepare("atomic", insert)
            return Done(True)

    elif process_mode == "write-staged":
        assert writer is not None
        staged_writer = writer

        @worker.handler(BenchJob)
        async def write_staged(attempt: Attempt[BenchJob]) -> None:
            await attempt.prepare("staged")

            async def insert(ctx: TxContext[Any]) -> Done:
                await staged_writer.insert(ctx.tx, attempt.job.id, attempt.input.index)
                return Done(True)

            await attempt.complete(insert)

    else:
        raise SystemExit(f"unknown process mode {process_mode!r}")

    t0 = time.perf_counter()
    if start_mode == "single":
        for i in range(chains):
            async with client.transaction() as tx:
                await client.start_chain(BenchJob(Item(i)), tx=tx)
    elif start_mode == "alone":
        for i in range(chains):
            await client.start_chain(BenchJob(Item(i)))
    else:
        for offset in range(0, chains, 100):
            async with client.transaction() as tx:
                await client.start_chains(
                    [BenchJob(Item(i)) for i in range(offset, min(offset + 100, chains))], tx=tx
                )
    started = time.perf_counter() - t0

    t1 = time.perf_counter()
    cpu1 = time.process_time()
    await worker.start()
    await done.wait()
    if process_mode == "noop-quiet":
        await worker.close()  # writes the completions still waiting for their group commit
    processed = time.perf_counter() - t1
    cpu = time.process_time() - cpu1
    await worker.close()
    if writer is not None:
        rows = await writer.count(client)
        assert rows == chains, f"{rows} rows written for {chains} jobs: each exactly once"
    await client.close()
    remaining = await client.list_jobs(
        type_names=[BenchJob], statuses=["ready", "running", "scheduled"], limit=1
    )
    assert not remaining.items, "every job was processed"
    await notifier.close()
    await state.close()
    return {
        "start_per_s": chains / started,
        "process_per_s": chains / processed,
        "process_cpu_us": cpu / chains * 1e6,
    }


async def run_latency(dsn: str, samples: int, notify: str) -> dict[str, float]:
    state, notifier = await open_backend(dsn, notify)
    client: Client[Any] = Client(
        state, job_types=[BenchJob], notify=notifier, observability=NoopObservability()
    )
    started: dict[int, float] = {}
    arrived: dict[int, asyncio.Event] = {}
    worker: Worker[Any] = Worker(client, concurrency=1, poll_interval=1.0)

    @worker.handler(BenchJob)
    async def handle(attempt: Attempt[BenchJob]) -> None:
        started[attempt.input.index] = time.perf_counter()
        arrived[attempt.input.index].set()
        await attempt.complete(Done(True))

    await worker.start()
    await asyncio.sleep(0.3)  # let the worker reach its idle wait
    latencies: list[float] = []
    for i in range(samples):
        arrived[i] = asyncio.Event()
        async with client.transaction() as tx:
            await client.start_chain(BenchJob(Item(i)), tx=tx)
        committed = time.perf_counter()
        await asyncio.wait_for(arrived[i].wait(), 10)
        latencies.append((started[i] - committed) * 1000)
        await asyncio.sleep(0.02)
    await worker.close()
    await client.close()
    await notifier.close()
    await state.close()
    latencies.sort()
    return {
        "min_ms": latencies[0],
        "median_ms": statistics.median(latencies),
        "p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
    }


async def run_memory(dsn: str, jobs: int, cycles: int) -> dict[str, float]:
    import gc
    import tracemalloc

    async def cycle() -> tuple[int, int]:
        base = tracemalloc.get_traced_memory()[0]
        state, notifier = await open_backend(dsn, "in_process")
        countdown = Countdown(jobs)
        client: Client[Any] = Client(
            state, job_types=[BenchJob], notify=notifier, observability=countdown
        )
        worker: Worker[Any] = Worker(client, concurrency=10, poll_interval=1.0)

        @worker.handler(BenchJob)
        async def handle(attempt: Attempt[BenchJob]) -> None:
            await attempt.complete(Done(True))

        setup = tracemalloc.get_traced_memory()[0] - base
        async with client.transaction() as tx:
            await client.start_chains([BenchJob(Item(i)) for i in range(jobs)], tx=tx)
        tracemalloc.reset_peak()
        await worker.start()
        await countdown.done.wait()
        peak = tracemalloc.get_traced_memory()[1] - base
        await worker.close()
        await client.close()
        await notifier.close()
        await state.close()
        return setup, peak

    tracemalloc.start()
    await cycle()  # warm-up: imports, caches, prepared statements
    gc.collect()
    # Pre-sized so that recording the measurements allocates nothing between readings.
    setups, peaks, retained = [0] * cycles, [0] * cycles, [0] * cycles
    start = tracemalloc.get_traced_memory()[0]
    for i in range(cycles):
        setups[i], peaks[i] = await cycle()
        gc.collect()
        retained[i] = tracemalloc.get_traced_memory()[0] - start
    return {
        "setup_kb": statistics.median(setups) / 1024,
        "peak_kb": statistics.median(peaks) / 1024,
        "retained_after_first_kb": retained[0] / 1024,
        "retained_after_last_kb": retained[-1] / 1024,
        "growth_per_cycle_b": (retained[-1] - retained[0]) / max(cycles - 1, 1),
    }


# -- driver ----------------------------------------------------------------------------------------


def run_in_child(script: str, args: list[str], what: str) -> dict[str, float]:
    """Run ``script _child *args`` in a fresh interpreter (measured runs share no state, caches or
    loop) and return the JSON object its last output line prints; exit naming ``what`` if it fails.
    Every tool of this directory runs its measurements this way."""
    out = subprocess.run(
        [sys.executable, script, "_child", *args], capture_output=True, text=True, check=False
    )
    if out.returncode != 0:
        raise SystemExit(f"{what} failed:\n{out.stderr}")
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def child(args: list[str]) -> dict[str, float]:
    return run_in_child(__file__, args, "benchmark run")


def describe_backend(dsn: str) -> str:
    if dsn.startswith(("postgresql://", "postgres://")):
        return "PostgreSQL (server defaults: fsync and synchronous_commit as configured, not tuned)"
    if dsn.startswith(("mysql://", "mariadb://")):
        return "MySQL/MariaDB (server defaults: innodb_flush_log_at_trx_commit as configured, not tuned)"
    if dsn.startswith(("mongodb://", "mongodb+srv://")):
        return "MongoDB (or a wire-compatible server), replica set"
    if dsn.startswith("sqlite"):
        import sqlite3

        return f"SQLite {sqlite3.sqlite_version} (file, WAL)"
    return "in-memory"


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "_child":
        kind, payload = sys.argv[2], json.loads(sys.argv[3])
        dsn = isolated_dsn(payload["dsn"], uuid.uuid4().hex[:10])
        payload["dsn"] = dsn
        try:
            if kind == "processing":
                result = asyncio.run(run_processing(**payload))
            elif kind == "floor":
                result = asyncio.run(run_floor(**payload))
            elif kind == "start_floor":
                result = asyncio.run(run_start_floor(**payload))
            elif kind == "start_adapter":
                result = asyncio.run(run_start_adapter(**payload))
            elif kind == "otel_floor":
                result = run_otel_floor(payload["chains"])
            elif kind == "latency":
                result = asyncio.run(run_latency(**payload))
            else:
                result = asyncio.run(run_memory(**payload))
        finally:
            remove_sqlite_files(dsn)
            asyncio.run(drop_backend(dsn))
        print(json.dumps(result))
        return
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("kind", choices=["processing", "latency", "memory", "otel"])
    parser.add_argument("--dsn", default="memory://")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--chains", type=int, default=5000)
    parser.add_argument("--notify", default="in_process")
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument(
        "--process",
        nargs="+",
        choices=["noop", "noop-atomic"],
        default=["noop-atomic", "noop"],
        help="otel: the handlers to measure (default: both)",
    )
    args = parser.parse_args()
    print(f"queuert bench: {args.kind}, backend {describe_backend(args.dsn)}, notify {args.notify}")
    print(
        f"python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} cpus; {args.runs} runs, medians"
    )
    if args.kind == "processing":
        modes = [
            ("single", "noop"),
            ("alone", "noop"),
            ("batch", "noop"),
            ("batch", "noop-quiet"),
            ("batch", "noop-atomic"),
        ]
        # the write modes insert a row through the handler's SQL transaction: SQL backends only
        if not args.dsn.startswith(("memory", "mongodb")):
            modes += [("batch", "write-atomic"), ("batch", "write-staged")]
        measured: dict[tuple[str, str], list[dict[str, float]]] = {mode: [] for mode in modes}
        floors: list[dict[str, float]] = []
        start_floors: list[dict[str, float]] = []
        start_adapters: list[dict[str, float]] = []
        for _ in range(args.runs):  # interleaved: every mode once per round
            for start_mode, process_mode in modes:
                payload = {
                    "dsn": args.dsn,
                    "chains": args.chains,
                    "start_mode": start_mode,
                    "process_mode": process_mode,
                    "notify": args.notify,
                }
                measured[start_mode, process_mode].append(
                    child(["processing", json.dumps(payload)])
                )
            if has_floor(args.dsn):
                floor_payload = {"dsn": args.dsn, "chains": args.chains}
                floors.append(child(["floor", json.dumps(floor_payload)]))
            if has_start_floor(args.dsn):
                floor_payload = {"dsn": args.dsn, "chains": args.chains}
                start_floors.append(child(["start_floor", json.dumps(floor_payload)]))
                start_adapters.append(child(["start_adapter", json.dumps(floor_payload)]))
        print(
            f"{'start':<8}{'process':<14}{'start chains/s':>16}{'process jobs/s':>16}"
            f"{'CPU us/job':>12}   (min..max)"
        )
        for (start_mode, process_mode), runs in measured.items():
            starts = [r["start_per_s"] for r in runs]
            procs = [r["process_per_s"] for r in runs]
            cpus = [r["process_cpu_us"] for r in runs]
            print(
                f"{start_mode:<8}{process_mode:<14}{statistics.median(starts):>16,.0f}"
                f"{statistics.median(procs):>16,.0f}{statistics.median(cpus):>12,.0f}"
                f"   ({min(starts):,.0f}..{max(starts):,.0f} / {min(procs):,.0f}..{max(procs):,.0f}"
                f" / {min(cpus):,.0f}..{max(cpus):,.0f})"
            )
        if floors:
            rates = [r["process_per_s"] for r in floors]
            floor_cpus = [r["process_cpu_us"] for r in floors]
            floor = statistics.median(rates)
            print(
                f"{'floor':<8}{'write-atomic':<14}{'':>16}{floor:>16,.0f}"
                f"{statistics.median(floor_cpus):>12,.0f}"
                f"   ({min(rates):,.0f}..{max(rates):,.0f} / {min(floor_cpus):,.0f}.."
                f"{max(floor_cpus):,.0f}; no queuert: 10 driver connections, BEGIN, INSERT, UPDATE,"
                " COMMIT)"
            )
            atomic = statistics.median(
                r["process_per_s"] for r in measured["batch", "write-atomic"]
            )
            print(f"write-atomic / floor: {atomic / floor:.2f} (target 0.80)")
        if start_floors:
            rates = [r["start_per_s"] for r in start_floors]
            start_floor = statistics.median(rates)
            start_cpu = statistics.median(r["start_cpu_us"] for r in start_floors)
            print(
                f"{'floor':<8}{'(start)':<14}{start_floor:>16,.0f}{'':>16}{'':>12}"
                f"   ({min(rates):,.0f}..{max(rates):,.0f}; CPU {start_cpu:,.0f} us/start; no"
                " queuert: one hop per start to an aiosqlite thread running BEGIN IMMEDIATE, the"
                " job INSERT, COMMIT)"
            )
            rates = [r["start_per_s"] for r in start_adapters]
            adapter = statistics.median(rates)
            adapter_cpu = statistics.median(r["start_cpu_us"] for r in start_adapters)
            print(
                f"{'adapter':<8}{'(start)':<14}{adapter:>16,.0f}{'':>16}{'':>12}"
                f"   ({min(rates):,.0f}..{max(rates):,.0f}; CPU {adapter_cpu:,.0f} us/start; the"
                " state adapter's create_jobs without tx, no client)"
            )
            alone = statistics.median(r["start_per_s"] for r in measured["alone", "noop"])
            print(
                f"alone / start floor: {alone / start_floor:.2f}; adapter / start floor:"
                f" {adapter / start_floor:.2f}; alone / adapter: {alone / adapter:.2f}"
            )
    elif args.kind == "otel":
        # "sdk": SdkOnly, the SDK calls queuert-otel makes and nothing else (the floor, same run)
        variants: dict[str, float | None] = {"off": None, "sdk": 1.0, "on": 1.0, "on 10%": 0.1}
        rows = [(process, name) for process in args.process for name in variants]
        results: dict[tuple[str, str], list[dict[str, float]]] = {row: [] for row in rows}
        for _ in range(args.runs):
            for process, name in rows:  # alternating, so drift hits all alike
                payload = {
                    "dsn": args.dsn,
                    "chains": args.chains,
                    "start_mode": "batch",
                    "process_mode": process,
                    "notify": args.notify,
                    "otel": variants[name],
                    "sdk_only": name == "sdk",
                }
                results[process, name].append(child(["processing", json.dumps(payload)]))
        # CPU time of this process per processed job: far less sensitive than throughput to other
        # processes competing for the machine (it includes the SDK's export threads)
        print(
            "on: traces of every chain; on 10%: traces sampled (ParentBased, 10% of chains);"
            " sdk: the SDK calls queuert-otel makes, without it (the floor)"
        )
        print(
            f"{'process':<13}{'otel':<8}{'start chains/s':>16}{'process jobs/s':>16}"
            f"{'process CPU us/job':>20}   (min..max)"
        )
        medians: dict[tuple[str, str], tuple[float, float, float]] = {}
        for process, name in rows:
            runs = results[process, name]
            starts = [r["start_per_s"] for r in runs]
            procs = [r["process_per_s"] for r in runs]
            cpus = [r["process_cpu_us"] for r in runs]
            m = medians[process, name] = (
                statistics.median(starts),
                statistics.median(procs),
                statistics.median(cpus),
            )
            print(
                f"{process:<13}{name:<8}{m[0]:>16,.0f}{m[1]:>16,.0f}{m[2]:>20,.0f}"
                f"   ({min(starts):,.0f}..{max(starts):,.0f} / {min(procs):,.0f}..{max(procs):,.0f}"
                f" / {min(cpus):,.0f}..{max(cpus):,.0f})"
            )
        for process in args.process:
            off = medians[process, "off"]
            for name in ("sdk", "on", "on 10%"):
                m = medians[process, name]
                label = name + "/off"
                print(
                    f"{process:<13}{label:<8}{m[0] / off[0]:>16.2f}{m[1] / off[1]:>16.2f}"
                    f"{m[2] / off[2]:>20.2f}"
                )
        for process in args.process:
            off_cpu, sdk_cpu, on_cpu = (medians[process, name][2] for name in ("off", "sdk", "on"))
            print(
                f"{process}: CPU per job, on - off = {on_cpu - off_cpu:,.0f} us, of which the SDK"
                f" (sdk - off) {sdk_cpu - off_cpu:,.0f} us and queuert-otel (on - sdk)"
                f" {on_cpu - sdk_cpu:,.0f} us"
            )
        sdk_floors = [
            child(["otel_floor", json.dumps({"dsn": "memory://", "chains": args.chains})])[
                "floor_cpu_us"
            ]
            for _ in range(args.runs)
        ]
        sdk_floor = statistics.median(sdk_floors)
        print(
            f"SDK floor alone (per processed job: the attempt's span and 4 histogram records, no"
            f" queuert, no database): {sdk_floor:,.0f} us/job"
            f" ({min(sdk_floors):,.0f}..{max(sdk_floors):,.0f})"
        )
        for process in args.process:
            off_cpu = medians[process, "off"][2]
            print(
                f"{process}: off + floor alone = {(off_cpu + sdk_floor) / off_cpu:.2f} x off's CPU"
                " per job"
            )
    elif args.kind == "latency":
        runs = [
            child(
                [
                    "latency",
                    json.dumps({"dsn": args.dsn, "samples": args.samples, "notify": args.notify}),
                ]
            )
            for _ in range(args.runs)
        ]
        for key in ("min_ms", "median_ms", "p99_ms"):
            values = [r[key] for r in runs]
            print(
                f"{key:<10}{statistics.median(values):>10.2f}   ({min(values):.2f}..{max(values):.2f})"
            )
    else:
        runs = [
            child(["memory", json.dumps({"dsn": args.dsn, "jobs": 1000, "cycles": 10})])
            for _ in range(args.runs)
        ]
        print("Python heap (tracemalloc) over 10 build -> process 1,000 jobs -> close cycles")
        for key in ("setup_kb", "peak_kb", "retained_after_first_kb", "retained_after_last_kb"):
            values = [r[key] for r in runs]
            print(
                f"{key:<26}{statistics.median(values):>10.1f} KiB   ({min(values):.1f}..{max(values):.1f})"
            )
        values = [r["growth_per_cycle_b"] for r in runs]
        print(
            f"{'growth_per_cycle':<26}{statistics.median(values):>10.0f} B     "
            f"({min(values):.0f}..{max(values):.0f})"
        )


if __name__ == "__main__":
    main()
