"""Chains started in the application's own ``AsyncClientSession`` transaction; retries of the
adapter's own units of work."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from mongo_helpers import DATABASE, drop_prefix, open_adapter, unique_prefix
from queuert import Attempt, Client, EntryJobType, Worker
from queuert.errors import TransactionAbortedError, UsageError
from queuert_mongodb import MongoStateAdapter


@dataclass
class Order:
    order_id: str


@dataclass
class Receipt:
    text: str


class SendReceipt(EntryJobType[Order, Receipt]):
    pass


class Declined(Exception):
    pass


@pytest.fixture
async def adapter() -> AsyncIterator[MongoStateAdapter]:
    prefix = unique_prefix()
    state = await open_adapter(prefix)
    await state.migrate()
    yield state
    await state.close()
    await drop_prefix(prefix)


async def test_a_chain_in_the_users_session_commits_and_rolls_back_with_it(
    adapter: MongoStateAdapter,
) -> None:
    mongo = adapter.client
    orders = mongo[DATABASE][f"{adapter.names.prefix}orders"]
    async with Client(adapter) as client:
        worker = Worker(client, name="receipts")

        @worker.handler(SendReceipt)
        async def send(attempt: Attempt[SendReceipt]) -> Receipt:
            return Receipt(f"receipt for {attempt.input.order_id}")

        rolled_back_id = ""
        with pytest.raises(Declined):
            async with (
                mongo.start_session() as session,
                client.hooks(session),
                await session.start_transaction(),
            ):
                await orders.insert_one({"_id": "o-1"}, session=session)
                chain = await client.start_chain(SendReceipt(Order("o-1")), tx=session)
                rolled_back_id = chain.id
                raise Declined()
        assert await client.get_chain(rolled_back_id) is None, "rollback: the chain never existed"
        assert await orders.find_one({"_id": "o-1"}) is None

        async with (
            mongo.start_session() as session,
            client.hooks(session),
            await session.start_transaction(),
        ):
            await orders.insert_one({"_id": "o-2"}, session=session)
            chain = await client.start_chain(SendReceipt(Order("o-2")), tx=session)
        assert await orders.find_one({"_id": "o-2"}) is not None
        async with worker:
            receipt = await client.wait_for_chain(chain, timeout=30)
        assert receipt == Receipt("receipt for o-2"), "commit: the chain is stored and runs"


async def test_a_session_outside_a_transaction_is_refused(adapter: MongoStateAdapter) -> None:
    async with adapter.client.start_session() as session:
        with pytest.raises(UsageError, match="inside a transaction"):
            await adapter.get_job(adapter.ids.generate(), tx=session)


async def test_a_failed_command_aborts_the_users_transaction(adapter: MongoStateAdapter) -> None:
    async with adapter.client.start_session() as session:
        await session.start_transaction()
        await adapter.poison(session)
        with pytest.raises(TransactionAbortedError):
            await adapter.get_job(adapter.ids.generate(), tx=session)
        await session.abort_transaction()
