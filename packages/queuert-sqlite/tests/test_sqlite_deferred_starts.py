"""Chain starts written later in their transaction.

A new chain whose id the client generated (uuid7) and that has no deduplication key cannot clash
with anything, so the adapter knows the result without asking SQLite: its INSERT is queued and sent
with the transaction's next operation or with its COMMIT. A transaction that only starts a chain is
then one hop (BEGIN IMMEDIATE, INSERT, COMMIT) instead of two. These tests pin what must not change
for the caller: what the transaction sees, savepoints, rollbacks, failures and busy retries.
"""

from __future__ import annotations

import asyncio
import sqlite3
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from queuert import Attempt, Backoff, Client, Deduplication, EntryJobType, TxContext, Worker
from queuert.errors import DuplicateJobIdError, StateAdapterClosedError, TransactionAbortedError
from queuert.ids import uuid7
from queuert.observability import Event
from queuert_sqlite import SqliteConnection, SqliteStateAdapter
from sqlite_helpers import DBAPI, HopCounter, external_write_lock, new_job, statements_of

ORDERS = "CREATE TABLE orders (id INTEGER PRIMARY KEY, note TEXT NOT NULL)"


@dataclass
class Note:
    text: str


class Mail(EntryJobType[Note, None], name="deferred_mail"):
    pass


class Boom(EntryJobType[Note, None], name="deferred_boom"):
    """Its INSERT fails: a trigger refuses it (stands for a disk or I/O error at write time)."""


@pytest.fixture
async def client(adapter: SqliteStateAdapter) -> AsyncIterator[Client[SqliteConnection]]:
    table = f"{adapter.table_prefix}job"
    async with adapter.transaction() as tx:
        await tx.execute(ORDERS)
        await tx.execute(
            f"CREATE TRIGGER refuse_boom BEFORE INSERT ON {table} "
            "WHEN NEW.type_name = 'deferred_boom' BEGIN SELECT RAISE(ABORT, 'boom refused'); END"
        )
    c: Client[SqliteConnection] = Client(adapter, job_types=[Mail, Boom])
    try:
        yield c
    finally:
        await c.close()


def rows(path: Path, sql: str) -> list[tuple[Any, ...]]:
    """Read with a connection of its own: only what was committed (through the driver under test:
    two SQLite libraries in one process would break each other's locks on the file)."""
    conn: sqlite3.Connection = DBAPI.connect(str(path))
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def job_ids(adapter: SqliteStateAdapter, path: Path) -> set[str]:
    return {r[0] for r in rows(path, f"SELECT id FROM {adapter.table_prefix}job")}


def order_notes(path: Path) -> list[str]:
    return [r[0] for r in rows(path, "SELECT note FROM orders ORDER BY id")]


async def test_a_transaction_that_only_starts_a_chain_is_one_hop(
    client: Client[SqliteConnection],
    adapter: SqliteStateAdapter,
    db_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    hops = HopCounter(monkeypatch)
    async with client.transaction() as tx:
        chain = await client.start_chain(Mail(Note("a")), tx=tx)
        assert hops.count == 0  # nothing sent yet
    assert hops.count == 1  # BEGIN IMMEDIATE, INSERT and COMMIT together
    assert job_ids(adapter, db_path) == {chain.id}
    stored = await client.get_chain(chain.id)
    assert stored is not None and stored.status == "open"
    assert stored.root.created_at == chain.root.created_at
    assert stored.root.scheduled_at == chain.root.scheduled_at

    hops.reset()
    async with client.transaction() as tx:
        chains = await client.start_chains([Mail(Note(str(i))) for i in range(100)], tx=tx)
    assert hops.count == 1
    assert {c.id for c in chains} <= job_ids(adapter, db_path)


@pytest.mark.parametrize("inline", [False, True], ids=["thread", "inline"])
async def test_a_start_without_tx_is_one_hop_of_begin_insert_and_commit(
    db_path: Path, table_prefix: str, monkeypatch: pytest.MonkeyPatch, inline: bool
) -> None:
    """On the writer's thread: one hop. Inline (the writer idle): none, the same statements."""
    adapter = await SqliteStateAdapter.open(
        db_path, table_prefix=table_prefix, inline_writes=inline
    )
    await adapter.migrate()
    client: Client[SqliteConnection] = Client(adapter, job_types=[Mail])
    try:
        warm = await client.start_chain(Mail(Note("warm")))  # statements prepared and cached
        seen = await statements_of(adapter)
        hops = HopCounter(monkeypatch)
        chain = await client.start_chain(Mail(Note("alone")))
        assert hops.count == (0 if inline else 1)
        assert [statement.split()[0] for statement in seen] == ["BEGIN", "INSERT", "COMMIT"]
        assert job_ids(adapter, db_path) == {warm.id, chain.id}  # committed when it returns
        stored = await client.get_chain(chain.id)
        assert stored is not None and stored.status == "open"
        assert stored.root.created_at == chain.root.created_at
        assert stored.root.scheduled_at == chain.root.scheduled_at
        assert stored.root.input == Note("alone")
    finally:
        await client.close()
        await adapter.close()


@pytest.mark.parametrize("batch", [1, 3])
async def test_a_failed_start_without_tx_writes_and_announces_nothing(
    adapter: SqliteStateAdapter, db_path: Path, batch: int
) -> None:
    table = f"{adapter.table_prefix}job"
    async with adapter.transaction() as tx:
        await tx.execute(
            f"CREATE TRIGGER refuse_boom BEFORE INSERT ON {table} "
            "WHEN NEW.type_name = 'deferred_boom' BEGIN SELECT RAISE(ABORT, 'boom refused'); END"
        )
    events: list[Event] = []

    class Recorder:
        def emit(self, event: Event) -> None:
            events.append(event)

    client: Client[SqliteConnection] = Client(
        adapter, job_types=[Mail, Boom], observability=Recorder()
    )
    try:
        jobs: list[Any] = [Mail(Note(str(i))) for i in range(batch - 1)] + [Boom(Note("no"))]
        with pytest.raises(DBAPI.IntegrityError, match="boom refused"):
            await client.start_chains(jobs)
        await client.wait_published()
        assert job_ids(adapter, db_path) == set()  # all or nothing
        assert events == []  # nothing announced for what never committed
        kept = await client.start_chain(Mail(Note("next")))  # the writer is usable again
        await client.wait_published()
        assert job_ids(adapter, db_path) == {kept.id}
        assert [type(e).__name__ for e in events] == ["ChainCreated", "JobCreated"]
    finally:
        await client.close()


@pytest.mark.parametrize("case", ["explicit id", "deduplication key"])
async def test_starts_that_can_clash_are_written_at_once(
    adapter: SqliteStateAdapter, monkeypatch: pytest.MonkeyPatch, case: str
) -> None:
    client: Client[SqliteConnection] = Client(adapter, job_types=[Mail])
    job = {
        "explicit id": Mail(Note("x"), id=uuid7()),
        "deduplication key": Mail(Note("x"), deduplication=Deduplication(key="k")),
    }[case]
    hops = HopCounter(monkeypatch)
    async with client.transaction() as tx:
        await client.start_chain(job, tx=tx)
        assert hops.count == 1
    assert hops.count == 2
    await client.close()


async def test_an_explicit_id_that_exists_raises_at_the_call(
    client: Client[SqliteConnection], adapter: SqliteStateAdapter, db_path: Path
) -> None:
    async with client.transaction() as tx:
        first = await client.start_chain(Mail(Note("first")), tx=tx)
    async with client.transaction() as tx:
        pending = await client.start_chain(Mail(Note("pending")), tx=tx)
        with pytest.raises(DuplicateJobIdError):
            await client.start_chain(Mail(Note("again"), id=first.id), tx=tx)
    assert job_ids(adapter, db_path) == {first.id, pending.id}


async def test_the_transaction_sees_its_queued_starts(
    client: Client[SqliteConnection], adapter: SqliteStateAdapter
) -> None:
    table = f"{adapter.table_prefix}job"
    async with client.transaction() as tx:
        a = await client.start_chain(Mail(Note("a")), tx=tx)
        seen = await client.get_chain(a.id, tx=tx)
        assert seen is not None and seen.id == a.id
        b = await client.start_chain(Mail(Note("b")), tx=tx)
        assert await tx.execute(f"SELECT count(*) FROM {table} WHERE id = ?", (b.id,)) == [(1,)]
        c = await client.start_chain(Mail(Note("c")), tx=tx)
        # reads without tx= go to a reader connection: committed work only, as for any write
        assert await client.get_chain(c.id) is None
        d = await client.start_chain(Mail(Note("d")), tx=tx)
        raw = await tx.aiosqlite_connection()
        async with raw.execute(f"SELECT count(*) FROM {table} WHERE id = ?", (d.id,)) as cur:
            assert await cur.fetchone() == (1,)
        # statements on the handed-out connection bypass the adapter: no more deferring
        e = await client.start_chain(Mail(Note("e")), tx=tx)
        async with raw.execute(f"SELECT count(*) FROM {table} WHERE id = ?", (e.id,)) as cur:
            assert await cur.fetchone() == (1,)


async def test_without_readers_the_transactions_task_reads_its_queued_starts(db_path: Path) -> None:
    adapter = await SqliteStateAdapter.open(db_path, readers=0)
    await adapter.migrate()
    client: Client[SqliteConnection] = Client(adapter, job_types=[Mail])
    try:
        async with client.transaction() as tx:
            chain = await client.start_chain(Mail(Note("a")), tx=tx)
            # one connection: the task holding the transaction reads through it, without tx= too
            unbound = await client.get_chain(chain.id)
            assert unbound is not None and unbound.id == chain.id
    finally:
        await client.close()
        await adapter.close()


async def test_starts_keep_their_order_with_your_own_writes(
    client: Client[SqliteConnection], adapter: SqliteStateAdapter, db_path: Path
) -> None:
    table = f"{adapter.table_prefix}job"
    async with client.transaction() as tx:
        chain = await client.start_chain(Mail(Note("a")), tx=tx)
        # a statement that reads the job table in the same transaction sees the queued row
        await tx.execute(
            f"INSERT INTO orders (note) SELECT 'job ' || id FROM {table} WHERE id = ?", (chain.id,)
        )
    assert order_notes(db_path) == [f"job {chain.id}"]


async def test_a_rolled_back_transaction_writes_nothing(
    client: Client[SqliteConnection],
    adapter: SqliteStateAdapter,
    db_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    hops = HopCounter(monkeypatch)
    with pytest.raises(RuntimeError):
        async with client.transaction() as tx:
            await client.start_chain(Mail(Note("a")), tx=tx)
            raise RuntimeError("business logic failed")
    assert hops.count == 0  # nothing had reached SQLite, so nothing to roll back
    assert job_ids(adapter, db_path) == set()
    async with client.transaction() as tx:  # the writer is free and clean
        kept = await client.start_chain(Mail(Note("b")), tx=tx)
    assert job_ids(adapter, db_path) == {kept.id}


async def test_savepoints_roll_back_only_their_own_starts(
    client: Client[SqliteConnection], adapter: SqliteStateAdapter, db_path: Path
) -> None:
    async with client.transaction() as tx:
        outer = await client.start_chain(Mail(Note("outer")), tx=tx)
        with pytest.raises(RuntimeError):
            async with client.savepoint(tx) as sp:
                await client.start_chain(Mail(Note("dropped")), tx=sp)
                async with client.savepoint(sp) as inner:
                    await client.start_chain(Mail(Note("dropped too")), tx=inner)
                raise RuntimeError
        async with client.savepoint(tx) as sp:
            released = await client.start_chain(Mail(Note("released")), tx=sp)
        await tx.execute("INSERT INTO orders (note) VALUES ('sent')")
        with pytest.raises(RuntimeError):
            async with client.savepoint(tx) as sp:  # opened after statements reached SQLite
                await tx.execute("INSERT INTO orders (note) VALUES ('dropped')")
                await client.start_chain(Mail(Note("dropped")), tx=sp)
                raise RuntimeError
        last = await client.start_chain(Mail(Note("last")), tx=tx)
    assert job_ids(adapter, db_path) == {outer.id, released.id, last.id}
    assert order_notes(db_path) == ["sent"]


async def test_a_rolled_back_savepoint_of_queued_starts_never_reaches_sqlite(
    client: Client[SqliteConnection], adapter: SqliteStateAdapter, db_path: Path
) -> None:
    seen = await statements_of(adapter)
    async with client.transaction() as tx:
        with pytest.raises(RuntimeError):
            async with client.savepoint(tx) as sp:
                await client.start_chain(Mail(Note("dropped")), tx=sp)
                raise RuntimeError
        kept = await client.start_chain(Mail(Note("kept")), tx=tx)
    assert not [s for s in seen if "SAVEPOINT" in s or "ROLLBACK" in s], seen
    assert job_ids(adapter, db_path) == {kept.id}


async def test_a_failed_queued_write_fails_the_next_statement_and_the_transaction(
    client: Client[SqliteConnection], adapter: SqliteStateAdapter, db_path: Path
) -> None:
    with pytest.raises(TransactionAbortedError):
        async with client.transaction() as tx:
            await tx.execute("INSERT INTO orders (note) VALUES ('before')")
            await client.start_chain(Mail(Note("ok")), tx=tx)
            await client.start_chain(Boom(Note("refused")), tx=tx)  # queued: nothing fails yet
            with pytest.raises(DBAPI.IntegrityError, match="boom refused"):
                await tx.execute("INSERT INTO orders (note) VALUES ('after')")
            with pytest.raises(TransactionAbortedError):  # the transaction cannot go on ...
                await client.start_chain(Mail(Note("more")), tx=tx)
            async with client.savepoint(tx):  # ... not even from a savepoint opened after it
                pass
    assert job_ids(adapter, db_path) == set()  # ... and cannot commit
    assert order_notes(db_path) == []


async def test_a_failed_queued_write_in_a_savepoint_fails_only_that_savepoint(
    client: Client[SqliteConnection], adapter: SqliteStateAdapter, db_path: Path
) -> None:
    async with client.transaction() as tx:
        await tx.execute("INSERT INTO orders (note) VALUES ('kept')")
        kept = await client.start_chain(Mail(Note("kept")), tx=tx)
        with pytest.raises(DBAPI.IntegrityError, match="boom refused"):
            async with client.savepoint(tx) as sp:
                # one INSERT for both: the first row goes in before the second one fails
                await client.start_chains([Mail(Note("half")), Boom(Note("refused"))], tx=sp)
                await sp.execute("INSERT INTO orders (note) VALUES ('dropped')")
        # rolling the savepoint back ended it all: the transaction goes on
        after = await client.start_chain(Mail(Note("after")), tx=tx)
    assert job_ids(adapter, db_path) == {kept.id, after.id}
    assert order_notes(db_path) == ["kept"]


async def test_a_failed_queued_write_of_a_released_savepoint_fails_the_transaction(
    client: Client[SqliteConnection], adapter: SqliteStateAdapter, db_path: Path
) -> None:
    with pytest.raises(TransactionAbortedError):
        async with client.transaction() as tx:
            async with client.savepoint(tx) as first:
                await client.start_chain(Boom(Note("refused")), tx=first)
            # released with its INSERT still queued: the INSERT now belongs to the transaction
            with pytest.raises(DBAPI.IntegrityError, match="boom refused"):
                async with client.savepoint(tx) as second:  # a sibling, at the same depth
                    await second.execute("INSERT INTO orders (note) VALUES ('in second')")
            # rolling back the sibling must not end the aborted state
            with pytest.raises(TransactionAbortedError):
                await tx.execute("INSERT INTO orders (note) VALUES ('after')")
    assert job_ids(adapter, db_path) == set()
    assert order_notes(db_path) == []


async def test_a_failed_queued_write_fails_the_commit(
    client: Client[SqliteConnection],
    adapter: SqliteStateAdapter,
    db_path: Path,
) -> None:
    with pytest.raises(DBAPI.IntegrityError, match="boom refused"):
        async with client.transaction() as tx:
            await tx.execute("INSERT INTO orders (note) VALUES ('business write')")
            await client.start_chain(Mail(Note("ok")), tx=tx)
            await client.start_chain(Boom(Note("refused")), tx=tx)
    assert job_ids(adapter, db_path) == set()
    assert order_notes(db_path) == []
    async with client.transaction() as tx:  # the writer is usable again
        kept = await client.start_chain(Mail(Note("b")), tx=tx)
    assert job_ids(adapter, db_path) == {kept.id}


class Parent(EntryJobType[Note, str], name="deferred_parent"):
    """Its handler starts a Flaky chain in the attempt's transaction and completes."""


class Flaky(EntryJobType[Note, None], name="deferred_flaky"):
    """Its INSERT fails on the first attempt of its parent (a trigger refuses ``try 1``)."""


async def test_a_handler_whose_deferred_start_fails_is_retried_and_leaves_nothing(
    adapter: SqliteStateAdapter, db_path: Path
) -> None:
    table = f"{adapter.table_prefix}job"
    async with adapter.transaction() as tx:
        await tx.execute(
            f"CREATE TRIGGER refuse_flaky BEFORE INSERT ON {table} "
            "WHEN NEW.type_name = 'deferred_flaky' AND json_extract(NEW.input, '$.text') = 'try 1' "
            "BEGIN SELECT RAISE(ABORT, 'flaky refused'); END"
        )
    client: Client[SqliteConnection] = Client(adapter, job_types=[Parent, Flaky])
    worker: Worker[SqliteConnection] = Worker(
        client, poll_interval=0.05, backoff=Backoff(initial=0.05, maximum=0.1, jitter=0)
    )
    attempts = 0

    @worker.handler(Parent)
    async def parent(attempt: Attempt[Parent]) -> None:
        nonlocal attempts
        attempts += 1

        async def write(ctx: TxContext[SqliteConnection]) -> str:
            child = await ctx.start_chain(Flaky(Note(f"try {attempts}")))
            return child.id

        await attempt.complete(write)

    async with client.transaction() as tx:
        chain = await client.start_chain(Parent(Note("p")), tx=tx)
    await worker.start()
    try:
        child_id = await client.wait_for_chain(chain, timeout=30, poll_interval=0.05)
    finally:
        await worker.close()
        await client.close()
    assert attempts == 2
    flaky = rows(db_path, f"SELECT id, input FROM {table} WHERE type_name = 'deferred_flaky'")
    # the first attempt's start is gone with its transaction, the second one's is there
    assert flaky == [(child_id, '{"text":"try 2"}')]
    parent_job = await adapter.get_job(chain.id)
    assert parent_job is not None and parent_job.attempt == 2 and parent_job.outcome == "completed"


# -- busy: another process holds the write lock when the one hop wants to BEGIN -------------------


async def test_a_busy_begin_at_commit_is_retried(db_path: Path) -> None:
    adapter = await SqliteStateAdapter.open(db_path, busy_timeout=0.02, busy_retries=100)
    await adapter.migrate()
    client: Client[SqliteConnection] = Client(adapter, job_types=[Mail])
    try:
        with external_write_lock(db_path) as other:

            async def start() -> str:
                async with client.transaction() as tx:
                    chain = await client.start_chain(Mail(Note("waits")), tx=tx)
                return chain.id

            started = asyncio.create_task(start())
            await asyncio.sleep(0.3)
            assert not started.done(), "the commit must wait for the other process's lock"
            other.execute("COMMIT")
            chain_id = await asyncio.wait_for(started, 30)
        assert job_ids(adapter, db_path) == {chain_id}
    finally:
        await client.close()
        await adapter.close()


async def test_a_begin_that_stays_busy_fails_the_commit_and_writes_nothing(db_path: Path) -> None:
    adapter = await SqliteStateAdapter.open(db_path, busy_timeout=0.01, busy_retries=2)
    await adapter.migrate()
    client: Client[SqliteConnection] = Client(adapter, job_types=[Mail])
    try:
        with (
            external_write_lock(db_path),
            pytest.raises(DBAPI.OperationalError, match="locked"),
        ):
            async with client.transaction() as tx:
                await client.start_chain(Mail(Note("never")), tx=tx)
        assert job_ids(adapter, db_path) == set()
        async with client.transaction() as tx:  # usable again once the lock is gone
            kept = await client.start_chain(Mail(Note("kept")), tx=tx)
        assert job_ids(adapter, db_path) == {kept.id}
    finally:
        await client.close()
        await adapter.close()


# -- programs: any mix of starts, own writes, reads and savepoints, some starts refused --------------

Step = tuple[Any, ...]


def programs(refused: bool) -> st.SearchStrategy[list[Step]]:
    """Nested programs; with ``refused``, also starts whose INSERT a trigger refuses when sent."""
    start = st.tuples(st.just("start"), st.booleans())  # True: the client generates the id
    boom = [st.tuples(st.just("boom"))] if refused else []
    return st.recursive(
        st.lists(
            st.one_of(start, *boom, st.tuples(st.just("order")), st.tuples(st.just("read"))),
            max_size=4,
        ),
        lambda inner: st.lists(
            st.one_of(
                start,
                *boom,
                st.tuples(st.just("order")),
                st.tuples(st.just("savepoint"), inner, st.booleans()),  # True: the block raises
            ),
            max_size=4,
        ),
        max_leaves=12,
    )


class _Abandon(Exception):
    pass


@dataclass
class _Unit:
    """A savepoint block, or the transaction: ``ok`` is False once it ended with an exception."""

    ok: bool = True


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(program=programs(refused=False), commit=st.booleans())
def test_any_program_commits_what_a_direct_write_would(program: list[Step], commit: bool) -> None:
    """Without failures, exactly the starts and rows of blocks that were not abandoned commit, and
    each committed job equals what ``start_chain`` returned."""
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(_run_program(Path(tmp) / "q.db", program, commit, refused=False))


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(program=programs(refused=True), commit=st.booleans())
def test_a_start_commits_exactly_when_every_block_around_it_succeeded(
    program: list[Step], commit: bool
) -> None:
    """Whatever fails where (a queued INSERT refused when some later statement, savepoint or the
    commit sends it), the committed chains and rows are exactly those whose every enclosing block,
    the transaction included, ended without an exception. A refused start can never be committed,
    so if the caller were never told (no enclosing block failed), this would not hold."""
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(_run_program(Path(tmp) / "q.db", program, commit, refused=True))


async def _run_program(path: Path, program: list[Step], commit: bool, *, refused: bool) -> None:
    """Run ``program`` in a transaction; without ``refused`` starts, only ``_Abandon`` may end a
    block (anything else is a failure of the test)."""
    adapter = await SqliteStateAdapter.open(path)
    await adapter.migrate()
    async with adapter.transaction() as tx:
        await tx.execute(ORDERS)
        await tx.execute(
            f"CREATE TRIGGER refuse_boom BEFORE INSERT ON {adapter.table_prefix}job "
            "WHEN NEW.type_name = 'deferred_boom' BEGIN SELECT RAISE(ABORT, 'boom refused'); END"
        )
    client: Client[SqliteConnection] = Client(adapter, job_types=[Mail, Boom])
    started: list[tuple[Any, tuple[_Unit, ...]]] = []  # (the job start_chain returned, its blocks)
    written: list[tuple[str, tuple[_Unit, ...]]] = []
    counter = iter(range(10_000))

    def holds(units: tuple[_Unit, ...]) -> bool:
        return all(unit.ok for unit in units)

    async def run(body: list[Step], tx: SqliteConnection, units: tuple[_Unit, ...]) -> None:
        for step in body:
            if step[0] in ("start", "boom"):
                if step[0] == "boom":
                    job: Mail | Boom = Boom(Note("b"))
                else:
                    job = Mail(Note("s")) if step[1] else Mail(Note("e"), id=uuid7())
                started.append(((await client.start_chain(job, tx=tx)).root, units))
            elif step[0] == "order":
                note = f"o{next(counter)}"
                await tx.execute("INSERT INTO orders (note) VALUES (?)", (note,))
                written.append((note, units))
            elif step[0] == "read":
                for root, around in started:
                    if holds(around):
                        assert await client.get_job(root.id, tx=tx) is not None
            else:
                _, inner, fail = step
                unit = _Unit()
                try:
                    async with client.savepoint(tx) as sp:
                        await run(inner, sp, (*units, unit))
                        if fail:
                            raise _Abandon
                except Exception as exc:
                    if not refused and not isinstance(exc, _Abandon):
                        raise
                    unit.ok = False

    top = _Unit()
    try:
        try:
            async with client.transaction() as tx:
                await run(program, tx, (top,))
                if not commit:
                    raise _Abandon
        except Exception as exc:
            if not refused and not isinstance(exc, _Abandon):
                raise
            top.ok = False
        committed = {root.id: root for root, units in started if holds(units)}
        assert job_ids(adapter, path) == set(committed)
        assert order_notes(path) == [note for note, units in written if holds(units)]
        for job_id, returned in committed.items():
            assert await client.get_job(job_id) == returned
    finally:
        await client.close()
        await adapter.close()


async def test_a_start_without_tx_returns_its_job_as_stored(adapter: SqliteStateAdapter) -> None:
    new = replace(new_job({"n": 1}), fresh_id=True, priority=3, limit_key="k")
    (created,) = await adapter.create_jobs([new])
    assert not created.deduplicated
    assert created.job == await adapter.get_job(new.id)
    await adapter.close()
    with pytest.raises(StateAdapterClosedError):  # refused before anything is sent
        await adapter.create_jobs([replace(new_job(None), fresh_id=True)])
