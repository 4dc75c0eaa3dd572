"""A time edited by hand into another BSON type (a string, say) never fails a read: the job reads
marked ``unreadable`` and the rest of the page is read as usual (``job_from_doc`` reads every
document, so its check is inline; the cases below check it field by field). (MongoDB compares values of
different types by type, so such a job is never due and no claim selects it.)"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import bson
from bson import DatetimeMS, ObjectId
from hypothesis import given
from hypothesis import strategies as st
from mongo_helpers import drop_prefix, open_adapter, unique_prefix
from queuert import Client, EntryJobType
from queuert.state import UNREADABLE_TIME
from queuert_mongodb._docs import job_from_doc
from queuert_mongodb.state import _CODEC


@dataclass
class N:
    value: int


class Job(EntryJobType[N, N], name="unreadable_times_job"):
    pass


async def test_a_time_of_another_type_is_read_marked() -> None:
    prefix = unique_prefix()
    adapter = await open_adapter(prefix)
    try:
        await adapter.migrate()
        async with Client(adapter, job_types=[Job]) as client:
            bad = await client.start_chain(Job(N(1)))
            good = await client.start_chain(Job(N(2)))
            await adapter.jobs.update_one(
                {"_id": ObjectId(bad.id)}, {"$set": {"scheduled_at": "tomorrow"}}
            )
            listed = {job.id: job for job in (await client.list_jobs(limit=10)).items}
            assert listed[good.id].unreadable is None
            marked = listed[bad.id].unreadable
            assert marked is not None and "stored scheduled_at cannot be read" in marked
            assert listed[bad.id].input == N(1), "the readable fields are still read"
            chain = await client.get_chain(bad.id)
            assert chain is not None and chain.root.unreadable == marked
            assert await adapter.get_queue_stats() is not None
    finally:
        await adapter.close()
        await drop_prefix(prefix)


_TIMES = ("created_at", "scheduled_at", "completed_at", "last_attempt_at", "leased_until")
_NOW = datetime(2026, 1, 2, 3, 4, 5, 6000, tzinfo=timezone.utc)


def _document(**times: object) -> dict[str, Any]:
    job_id = ObjectId()
    return {
        "_id": job_id,
        "type_name": "t",
        "chain_id": job_id,
        "chain_type_name": "t",
        "chain_index": 0,
        "input": "{}",
        "output": None,
        "outcome": None,
        "completed_by": None,
        "succeeded_by_job_id": None,
        "attempt": 1,
        "last_attempt_error": None,
        "leased_by": "w",
        "blocked": False,
        **dict.fromkeys(_TIMES, _NOW),
        **times,
    }


def test_a_document_with_readable_times_reads_them() -> None:
    job = job_from_doc(_document(completed_at=None), _NOW)
    assert job.unreadable is None
    assert (job.created_at, job.scheduled_at, job.completed_at) == (_NOW, _NOW, None)
    assert (job.last_attempt_at, job.leased_until) == (_NOW, _NOW)


not_a_time = st.one_of(
    st.text(max_size=60),
    st.integers(),
    st.floats(allow_nan=False),
    st.booleans(),
    st.lists(st.integers(), max_size=3),
    st.builds(ObjectId),
)


@given(field=st.sampled_from(_TIMES), value=not_a_time)
def test_any_time_field_of_another_type_reads_marked(field: str, value: object) -> None:
    job = job_from_doc(_document(**{field: value}), _NOW)
    assert job.unreadable is not None
    assert job.unreadable[0] == field
    assert "is not a time" in job.unreadable[1]
    expected = UNREADABLE_TIME if field in ("created_at", "scheduled_at") else None
    assert getattr(job, field) == expected
    for other in _TIMES:
        if other != field:
            assert getattr(job, other) == _NOW, f"{other} is read as stored"


@given(
    field=st.sampled_from(_TIMES),
    millis=st.one_of(
        st.integers(min_value=-(2**63), max_value=-62_135_596_800_001),  # before the year 1
        st.integers(min_value=253_402_300_800_000, max_value=2**63 - 1),  # after 9999
    ),
)
def test_a_date_python_cannot_read_decodes_and_reads_marked(field: str, millis: int) -> None:
    """MongoDB holds dates far outside Python's years 1-9999 (written by another program). The
    adapter's codec decodes one instead of failing the whole batch (every job of the page or the
    claim), and the job reads marked."""
    raw = bson.encode(_document(**{field: DatetimeMS(millis)}))
    doc = bson.decode(raw, codec_options=_CODEC)
    job = job_from_doc(doc, _NOW)
    assert job.unreadable is not None and job.unreadable[0] == field, job.unreadable
    expected = UNREADABLE_TIME if field in ("created_at", "scheduled_at") else None
    assert getattr(job, field) == expected
