"""The shop's own tests, as a Django project writes them, run by Django's test runner::

    python manage.py test shop

``TEST_RUNNER = "queuert_django.testing.QueuertTestRunner"`` (settings) creates queuert's tables in
the test database beside Django's. The test project keeps queuert (and the shop's rows) in the
database of ``QUEUERT["DATABASE"]``, SQLite or PostgreSQL, so the tests use that alias; a project
with everything in "default" leaves out ``databases`` and ``using=``.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from django.conf import settings
from django.db import transaction
from django.test import TestCase, TransactionTestCase
from queuert_django import db_connection, get_sync_client, open_client, start_chain

from shop.jobs import OrderRef, Receipt, SendReceipt, build_worker
from shop.models import Order

DB = settings.QUEUERT["DATABASE"]
WAIT = 30.0
"""Upper bound of the waits on queuert: a bug fails the test instead of hanging it."""


class Rollback(Exception):
    pass


def _created(records: list[logging.LogRecord]) -> list[str]:
    """The chains of the ``chain_created`` events among queuert's log records."""
    return [
        r.queuert["chain_id"] for r in records if getattr(r, "queuert_event", "") == "chain_created"
    ]


async def _read_chain(chain_id: str) -> Any:
    """The chain as queuert's asyncio client reads it, on a connection of its own."""
    async with open_client() as client:
        return await client.get_chain(chain_id, SendReceipt)


async def _process(chain_id: str) -> Receipt:
    """Run the shop's worker in this process until the chain is done; its result."""
    async with open_client() as client, build_worker(client):
        result: Receipt = await client.wait_for_chain(
            chain_id, SendReceipt, timeout=WAIT, poll_interval=0.1
        )
        return result


class PlaceOrderTests(TestCase):
    """Each test runs in a transaction that Django rolls back at its end: queuert's rows written in
    it vanish with the shop's, and ``on_commit`` callbacks do not run on their own."""

    databases = {DB}

    def test_a_chain_started_in_atomic_is_there_with_the_order(self) -> None:
        with transaction.atomic(using=DB):
            Order.objects.using(DB).create(reference="o-1")
            chain = start_chain(SendReceipt(OrderRef("o-1")))
        found = get_sync_client().get_chain(chain.id, SendReceipt, tx=db_connection())
        assert found is not None
        self.assertEqual(found.status, "open")
        self.assertEqual(found.input, OrderRef("o-1"))

    def test_a_chain_started_in_a_rolled_back_atomic_is_gone(self) -> None:
        with self.assertRaises(Rollback), transaction.atomic(using=DB):
            Order.objects.using(DB).create(reference="o-2")
            chain = start_chain(SendReceipt(OrderRef("o-2")))
            raise Rollback
        self.assertFalse(Order.objects.using(DB).filter(reference="o-2").exists())
        self.assertIsNone(get_sync_client().get_chain(chain.id, tx=db_connection()))

    def test_the_place_order_view_writes_the_order_and_its_chain(self) -> None:
        response = self.client.post("/orders/", {"reference": "o-3"})
        self.assertEqual(response.status_code, 201)
        chain_id = response.json()["chain_id"]
        chain = get_sync_client().get_chain(chain_id, SendReceipt, tx=db_connection())
        assert chain is not None
        self.assertEqual(chain.input, OrderRef("o-3"))
        self.assertTrue(Order.objects.using(DB).filter(reference="o-3").exists())

    def test_queuert_s_events_wait_for_the_commit_in_an_on_commit_callback(self) -> None:
        # TestCase never commits, so Django never runs on_commit callbacks on its own: capture
        # them, then run them as the commit would
        with (
            self.captureOnCommitCallbacks(using=DB) as callbacks,
            self.assertNoLogs("queuert", level="INFO"),
            transaction.atomic(using=DB),
        ):
            chain = start_chain(SendReceipt(OrderRef("o-4")))
        self.assertEqual(len(callbacks), 1)
        with self.assertLogs("queuert", level="INFO") as logs:
            callbacks[0]()
        self.assertEqual(_created(logs.records), [chain.id])

    def test_a_rolled_back_chain_leaves_no_on_commit_callback(self) -> None:
        with (
            self.captureOnCommitCallbacks(using=DB) as callbacks,
            self.assertRaises(Rollback),
            transaction.atomic(using=DB),
        ):
            start_chain(SendReceipt(OrderRef("o-5")))
            raise Rollback
        self.assertEqual(callbacks, [])

    def test_a_chain_completed_without_a_worker(self) -> None:
        queuert = get_sync_client()
        with transaction.atomic(using=DB):
            chain = start_chain(SendReceipt(OrderRef("o-6")))
        with transaction.atomic(using=DB):
            queuert.complete_chain(chain, SendReceipt, Receipt("o-6"), tx=db_connection())
        done = queuert.get_chain(chain.id, SendReceipt, tx=db_connection())
        assert done is not None
        self.assertEqual(done.status, "closed")
        self.assertEqual(done.output, Receipt("o-6"))


class CommittedOrderTests(TransactionTestCase):
    """Real commits: queuert's own connections (the worker's, the asyncio client's) see them.
    Django empties its tables after each test, not queuert's: use references of their own."""

    databases = {DB}

    def test_a_chain_is_visible_to_queuert_s_own_connections_once_committed(self) -> None:
        with transaction.atomic(using=DB):
            Order.objects.using(DB).create(reference="c-1")
            chain = start_chain(SendReceipt(OrderRef("c-1")))
            self.assertIsNone(asyncio.run(_read_chain(chain.id)))  # not committed yet
        found = asyncio.run(_read_chain(chain.id))
        assert found is not None
        self.assertEqual(found.input, OrderRef("c-1"))

    def test_queuert_s_events_follow_the_real_commit(self) -> None:
        with self.assertLogs("queuert", level="INFO") as logs, transaction.atomic(using=DB):
            chain = start_chain(SendReceipt(OrderRef("c-2")))
            self.assertEqual(_created(logs.records), [])  # not before the commit
        self.assertEqual(_created(logs.records), [chain.id])

    def test_the_worker_processes_a_committed_chain(self) -> None:
        with transaction.atomic(using=DB):
            Order.objects.using(DB).create(reference="c-3")
            chain = start_chain(SendReceipt(OrderRef("c-3")))
        self.assertEqual(asyncio.run(_process(chain.id)), Receipt("c-3"))
        self.assertTrue(Order.objects.using(DB).get(reference="c-3").receipt_sent)
