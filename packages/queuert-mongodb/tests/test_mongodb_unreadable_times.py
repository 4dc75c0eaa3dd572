"""A time edited by hand into another BSON type (a string, say) never fails a read: the job reads
marked ``unreadable`` and the rest of the page is read as usual. (MongoDB compares values of
different types by type, so such a job is never due and no claim selects it.)"""

from __future__ import annotations

from dataclasses import dataclass

from bson import ObjectId
from mongo_helpers import drop_prefix, open_adapter, unique_prefix
from queuert import Client, EntryJobType


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
