"""Bounded retries of the adapter's own units of work, driven by the server's failCommand fail point
(a private server started with test commands, or ``QUEUERT_MONGODB_FAILPOINT_URL``)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from typing import Any

import pytest
from mongo_server import SecantusServer
from pymongo import AsyncMongoClient
from queuert.state import NewJob
from queuert_mongodb import MongoStateAdapter, TransactionRetriesExhaustedError


@pytest.fixture(scope="module")
def failpoint_url() -> Any:
    url = os.environ.get("QUEUERT_MONGODB_FAILPOINT_URL")
    if url:
        yield url
        return
    server = SecantusServer(test_commands=True)
    server.start()
    try:
        yield server.url
    finally:
        server.remove()


@pytest.fixture
async def adapter(failpoint_url: str) -> AsyncIterator[MongoStateAdapter]:
    state = await MongoStateAdapter.connect(failpoint_url, collection_prefix="retries_", retries=4)
    await state.migrate()
    yield state
    await state.client.admin.command({"configureFailPoint": "failCommand", "mode": "off"})
    await state.client.drop_database(state.names.database)
    await state.close()


async def fail(client: AsyncMongoClient[Any], command: str, label: str, times: int | None) -> None:
    await client.admin.command(
        {
            "configureFailPoint": "failCommand",
            "mode": "alwaysOn" if times is None else {"times": times},
            "data": {"failCommands": [command], "errorCode": 112, "errorLabels": [label]},
        }
    )


def new_job(adapter: MongoStateAdapter) -> NewJob:
    return NewJob(id=adapter.ids.generate(), type_name="t", chain_type_name="t", input=1)


async def test_a_transient_error_reruns_the_unit_of_work(adapter: MongoStateAdapter) -> None:
    await fail(adapter.client, "insert", "TransientTransactionError", times=2)
    (created,) = await adapter.create_jobs([new_job(adapter)])
    assert await adapter.get_job(created.job.id) is not None


async def test_retries_are_bounded_and_end_in_a_typed_error(adapter: MongoStateAdapter) -> None:
    await fail(adapter.client, "insert", "TransientTransactionError", times=None)
    with pytest.raises(TransactionRetriesExhaustedError) as raised:
        await adapter.create_jobs([new_job(adapter)])
    assert raised.value.attempts == 4 and raised.value.operation == "create_jobs"


async def test_a_commit_with_an_unknown_result_is_retried(adapter: MongoStateAdapter) -> None:
    await fail(adapter.client, "commitTransaction", "UnknownTransactionCommitResult", times=2)
    (created,) = await adapter.create_jobs([new_job(adapter)])
    assert await adapter.get_job(created.job.id) is not None


async def test_the_callers_transaction_is_never_rerun(adapter: MongoStateAdapter) -> None:
    await fail(adapter.client, "insert", "TransientTransactionError", times=1)
    runs = 0
    with pytest.raises(Exception) as raised:
        async with adapter.transaction() as tx:
            runs += 1
            await adapter.jobs.insert_one({"_id": "mine"}, session=tx)
    assert runs == 1
    assert not isinstance(raised.value, TransactionRetriesExhaustedError)
