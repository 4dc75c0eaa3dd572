"""next_due and any_ready walk the claim index one distinct priority at a time: the answers equal
a plain reading of every ready job, whatever the priorities, due times and other jobs."""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing

from hypothesis import given, settings
from hypothesis import strategies as st
from queuert_sqlite._schema import apply_migrations
from queuert_sqlite._sql import Statements
from sqlite_helpers import DBAPI

PREFIX = "t_"
TYPES = ["a", "b", "c"]
NOW = "2026-01-01 00:30:00.000"

_job = st.tuples(
    st.sampled_from(TYPES),
    st.integers(-3, 3),  # priority
    st.integers(0, 59),  # minute of the due time
    st.sampled_from(["ready", "ready", "leased", "blocked", "closed"]),
)


def _load(raw: sqlite3.Connection, jobs: list[tuple[str, int, int, str]]) -> None:
    sql = Statements(PREFIX)
    for i, (type_name, priority, minute, state) in enumerate(jobs):
        id = f"j{i}"
        raw.execute(
            sql.insert_job,
            (id, type_name, id, type_name, 0, "null", NOW, f"2026-01-01 00:{minute:02}:00.000",
             None, None, None, priority, None),
        )  # fmt: skip
        if state == "leased":
            raw.execute(f"UPDATE {PREFIX}job SET leased_until = ?1 WHERE id = ?2", (NOW, id))
        elif state == "blocked":
            raw.execute(f"UPDATE {PREFIX}job SET blocked = 1 WHERE id = ?1", (id,))
        elif state == "closed":
            raw.execute(f"UPDATE {PREFIX}job SET outcome = 'completed' WHERE id = ?1", (id,))


@settings(max_examples=150, deadline=None)
@given(jobs=st.lists(_job, max_size=30), types=st.lists(st.sampled_from(TYPES), max_size=3))
def test_next_due_and_any_ready_equal_a_plain_reading(
    jobs: list[tuple[str, int, int, str]], types: list[str]
) -> None:
    with closing(DBAPI.connect(":memory:", isolation_level=None)) as raw:
        apply_migrations(raw, PREFIX)
        _load(raw, jobs)
        sql = Statements(PREFIX)
        wanted = json.dumps(types)
        ready = [
            f"2026-01-01 00:{minute:02}:00.000"
            for type_name, _, minute, state in jobs
            if state == "ready" and type_name in types
        ]
        assert raw.execute(sql.next_due, (wanted,)).fetchone()[0] == min(ready, default=None)
        any_ready = raw.execute(sql.any_ready, (NOW, wanted)).fetchone()[0]
        assert bool(any_ready) == any(due <= NOW for due in ready)
