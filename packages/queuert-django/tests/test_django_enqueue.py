"""Chains started in ``transaction.atomic()`` on Django's connection, on SQLite and PostgreSQL:
they exist exactly when the outermost block commits, nested blocks (savepoints) included, and
their side effects (events; wake-ups on PostgreSQL) come only after that commit."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import transaction
from queuert import Chain, UsageError
from queuert_django import db_connection, get_sync_client, start_chain, start_chains
from shop.jobs import OrderRef, SendReceipt
from shop.models import Order

WAIT = 30.0
"""Upper bound of every wait: a bug fails the test instead of hanging it."""


class Boom(Exception):
    pass


def _reference() -> str:
    return f"o-{uuid.uuid4().hex[:8]}"


def _exists(chain: Chain[Any]) -> bool:
    return get_sync_client().get_chain(chain.id, SendReceipt, tx=db_connection()) is not None


def _order_exists(alias: str, reference: str) -> bool:
    return Order.objects.using(alias).filter(reference=reference).exists()


@pytest.fixture
def created() -> Iterator[list[str]]:
    """The chain ids of the ``chain_created`` events queuert has emitted so far."""
    events: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if getattr(record, "queuert_event", None) == "chain_created":
                events.append(record.queuert["chain_id"])  # type: ignore[attr-defined]

    handler = Collect(logging.INFO)
    logger = logging.getLogger("queuert")
    logger.addHandler(handler)
    old = logger.level
    logger.setLevel(logging.INFO)
    try:
        yield events
    finally:
        logger.setLevel(old)
        logger.removeHandler(handler)


def test_a_chain_started_in_a_committed_block_exists_with_the_rows_beside_it(
    alias: str, created: list[str]
) -> None:
    reference = _reference()
    with transaction.atomic(using=alias):
        Order.objects.using(alias).create(reference=reference)
        chain = start_chain(SendReceipt(OrderRef(reference)))
        assert created == []  # side effects wait for the commit
    assert _order_exists(alias, reference)
    stored = get_sync_client().get_chain(chain.id, SendReceipt, tx=db_connection())
    assert stored is not None
    assert stored.input == OrderRef(reference)
    assert created == [chain.id]


def test_a_rolled_back_block_leaves_neither_the_rows_nor_the_chain(
    alias: str, created: list[str]
) -> None:
    reference = _reference()
    chains: list[Chain[SendReceipt]] = []
    with pytest.raises(Boom), transaction.atomic(using=alias):
        Order.objects.using(alias).create(reference=reference)
        chains.append(start_chain(SendReceipt(OrderRef(reference))))
        raise Boom
    assert not _order_exists(alias, reference)
    assert not _exists(chains[0])
    assert created == []


def test_a_nested_block_that_rolls_back_takes_only_its_own_chain(
    alias: str, created: list[str]
) -> None:
    with transaction.atomic(using=alias):
        kept = start_chain(SendReceipt(OrderRef(_reference())))
        dropped: list[Chain[SendReceipt]] = []
        with pytest.raises(Boom), transaction.atomic(using=alias):  # a savepoint
            dropped.extend(start_chains([SendReceipt(OrderRef(_reference()))] * 2))
            raise Boom
        after = start_chain(SendReceipt(OrderRef(_reference())))
    assert _exists(kept)
    assert _exists(after)
    assert not any(_exists(chain) for chain in dropped)
    assert sorted(created) == sorted([kept.id, after.id])


def test_a_savepoint_opened_before_any_statement_rolls_back_only_its_chain(
    alias: str, created: list[str]
) -> None:
    dropped: list[Chain[SendReceipt]] = []
    with transaction.atomic(using=alias):
        with pytest.raises(Boom), transaction.atomic(using=alias):  # the first statement
            dropped.append(start_chain(SendReceipt(OrderRef(_reference()))))
            raise Boom
        with transaction.atomic(using=alias):
            kept = start_chain(SendReceipt(OrderRef(_reference())))
        assert created == []
    assert not _exists(dropped[0])
    assert _exists(kept)
    assert created == [kept.id]


def test_a_nested_block_that_committed_goes_with_the_outer_rollback(
    alias: str, created: list[str]
) -> None:
    chains: list[Chain[SendReceipt]] = []
    with pytest.raises(Boom), transaction.atomic(using=alias):
        with transaction.atomic(using=alias):
            chains.append(start_chain(SendReceipt(OrderRef(_reference()))))
        assert created == []  # a released savepoint is not a commit
        raise Boom
    assert not _exists(chains[0])
    assert created == []


def test_outside_atomic_a_chain_starts_in_a_transaction_of_its_own(
    alias: str, created: list[str]
) -> None:
    chain = start_chain(SendReceipt(OrderRef(_reference())))
    assert _exists(chain)
    assert created == [chain.id]


def test_other_calls_run_on_the_sync_client_with_django_s_connection(alias: str) -> None:
    queuert = get_sync_client()
    with transaction.atomic(using=alias):
        chain = start_chain(SendReceipt(OrderRef(_reference())))
    with transaction.atomic(using=alias):
        cancelled = queuert.cancel_chain(chain, tx=db_connection())
    assert (cancelled.status, cancelled.outcome) == ("closed", "cancelled")
    with pytest.raises(Boom), transaction.atomic(using=alias):
        queuert.delete_chains([chain], tx=db_connection())
        raise Boom
    assert _exists(chain)  # the deletion was rolled back


def test_a_write_outside_atomic_is_refused_before_anything_is_written(alias: str) -> None:
    with transaction.atomic(using=alias):
        chain = start_chain(SendReceipt(OrderRef(_reference())))
    with pytest.raises(UsageError, match=r"inside transaction\.atomic\("):
        get_sync_client().cancel_chain(chain, tx=db_connection())
    stored = get_sync_client().get_chain(chain.id, tx=db_connection())  # reads need no block
    assert stored is not None
    assert stored.status == "open"


def test_on_postgresql_workers_are_woken_after_the_outermost_commit_only(databases: None) -> None:
    import psycopg
    from django.test.utils import override_settings
    from django_project import PG_DSN, SCHEMA, queuert_settings

    with (
        override_settings(QUEUERT=queuert_settings("pg")),
        psycopg.connect(PG_DSN, autocommit=True) as listener,
    ):
        listener.execute(f"LISTEN {SCHEMA}_sched")

        def pending() -> list[str]:
            # a round trip delivers what the server has sent so far
            listener.execute("SELECT 1")
            return [n.channel for n in listener.notifies(timeout=0.5, stop_after=1)]

        with pytest.raises(Boom), transaction.atomic(using="pg"):
            start_chain(SendReceipt(OrderRef(_reference())))
            raise Boom
        with transaction.atomic(using="pg"):
            with transaction.atomic(using="pg"):
                start_chain(SendReceipt(OrderRef(_reference())))
            assert pending() == []  # not before the commit
        assert pending() == [f"{SCHEMA}_sched"]


def test_a_view_writes_the_order_and_its_chain_or_neither(alias: str) -> None:
    from django.test import Client as Browser

    browser = Browser()
    reference = _reference()
    placed = browser.post("/orders/", {"reference": reference})
    assert placed.status_code == 201
    chain_id = placed.json()["chain_id"]
    assert get_sync_client().get_chain(chain_id, SendReceipt, tx=db_connection()) is not None
    again = browser.post("/orders/", {"reference": reference})  # the order exists: rolled back
    assert again.status_code == 409
    chains = get_sync_client().list_chains(type_names=[SendReceipt], tx=db_connection())
    assert [c.id for c in chains.items if c.input == OrderRef(reference)] == [chain_id]


@pytest.mark.parametrize("broker", ["redis", "nats"])
def test_with_broker_wake_ups_follow_the_outermost_commit_only(alias: str, broker: str) -> None:
    """``QUEUERT["NOTIFY"]`` a Redis or NATS URL: the wake-up is published after the outermost
    commit, by the process's notify thread, and never for a rolled-back block or savepoint."""
    from django.test.utils import override_settings
    from django_brokers import BROKERS, scheduled_jobs
    from django_project import SCHEMA, queuert_settings
    from shop.jobs import Pause, SlowJob

    with (
        override_settings(QUEUERT=queuert_settings(alias, NOTIFY=BROKERS[broker])),
        scheduled_jobs(broker, SCHEMA, WAIT) as subscription,
    ):
        queuert = get_sync_client()
        with pytest.raises(Boom), transaction.atomic(using=alias):
            start_chain(SlowJob(Pause(0)))
            raise Boom
        with transaction.atomic(using=alias):
            with pytest.raises(Boom), transaction.atomic(using=alias):
                start_chain(SlowJob(Pause(0)))
                raise Boom
            start_chain(SendReceipt(OrderRef(_reference())))
            queuert.wait_published()  # whatever was handed over so far is out
            subscription.publish("marker")  # so a wake-up sent before the commit precedes this
        queuert.wait_published()
        received: list[str] = []
        while len(received) < 2:
            data = subscription.next(WAIT)
            assert data is not None, f"only {received} arrived"
            received.append(data)
        # neither the rolled-back block nor the savepoint sent one; the commit sent one, after it
        assert received == ["marker", "send_receipt"]
