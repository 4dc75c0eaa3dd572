"""SyncClient against a model: whatever mix of chain starts, savepoints that release or roll back,
and a final commit or rollback a transaction runs, exactly the chains of the committed parts exist
afterwards, and exactly those are announced, once, after the commit."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st
from queuert import EntryJobType, RecordingObservability, SyncClient
from queuert.observability import ChainCreated
from queuert_sqlite import SqliteSyncBackend
from queuert_sqlite._schema import apply_migrations


@dataclass
class Item:
    n: int


class Process(EntryJobType[Item, None]):
    pass


class Failed(Exception):
    pass


# A step: start one chain, or a savepoint holding steps that is released (True) or rolled back.
steps = st.recursive(
    st.just("start"),
    lambda inner: st.tuples(st.lists(inner, max_size=3), st.booleans()),
    max_leaves=8,
)


@given(program=st.lists(steps, max_size=5), commit=st.booleans())
@settings(max_examples=60, deadline=None)
def test_committed_chains_are_exactly_the_ones_of_committed_parts(
    program: list[object], commit: bool
) -> None:
    conn = sqlite3.connect(":memory:")
    apply_migrations(conn, "queuert_")
    conn.commit()
    recorded = RecordingObservability()
    sync = SyncClient(SqliteSyncBackend(), job_types=[Process], observability=recorded)
    expected: list[str] = []
    started: list[str] = []

    def run(part: list[object]) -> list[str]:
        """Runs the steps; the ids of the chains that survive if this part's savepoints do."""
        kept: list[str] = []
        for step in part:
            if step == "start":
                chain = sync.start_chain(Process(Item(len(started))), tx=conn)
                started.append(chain.id)
                kept.append(chain.id)
                continue
            assert isinstance(step, tuple)
            inner, release = step
            try:
                with sync.savepoint(conn):
                    survivors = run(inner)
                    if not release:
                        raise Failed
                kept.extend(survivors)
            except Failed:
                pass
        return kept

    try:
        try:
            with sync.transaction(conn):
                survivors = run(program)
                if not commit:
                    raise Failed
            expected = survivors
        except Failed:
            pass
        existing = {c.id for c in sync.list_chains(limit=500, tx=conn).items}
        assert existing == set(expected)
        assert all(sync.get_chain(i, tx=conn) is None for i in started if i not in expected)
        announced = [event.chain_id for event in recorded.of(ChainCreated)]
        assert sorted(announced) == sorted(expected)
    finally:
        conn.close()
