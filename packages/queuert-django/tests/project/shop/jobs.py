"""The shop's job types and its worker (``QUEUERT["JOB_TYPES"]`` and ``QUEUERT["WORKER"]``)."""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from typing import Any

from queuert import Attempt, Client, EntryJobType, Worker
from queuert_django.conf import load_settings
from queuert_django.middleware import close_old_connections

from shop.models import Order


@dataclass
class OrderRef:
    reference: str


@dataclass
class Receipt:
    reference: str


@dataclass
class Pause:
    seconds: float


@dataclass
class Paused:
    seconds: float


class SendReceipt(EntryJobType[OrderRef, Receipt]): ...


class SlowJob(EntryJobType[Pause, Paused]): ...


JOB_TYPES = [SendReceipt, SlowJob]


def build_worker(client: Client[Any]) -> Worker[Any]:
    worker: Worker[Any] = Worker(
        client,
        name="shop",
        concurrency=2,
        poll_interval=float(os.environ.get("SHOP_POLL_INTERVAL", "60")),
        shutdown_timeout=float(os.environ.get("SHOP_SHUTDOWN_TIMEOUT", "10")),
        middleware=[close_old_connections],
    )

    @worker.handler(SendReceipt)
    async def send_receipt(attempt: Attempt[SendReceipt]) -> Receipt:
        reference = attempt.input.reference
        # the shop's rows live in the database of queuert's tables ("default" or "pg" here)
        orders = Order.objects.using(load_settings().database)
        await orders.filter(reference=reference).aupdate(receipt_sent=True)
        return Receipt(reference)

    @worker.handler(SlowJob)
    async def slow(attempt: Attempt[SlowJob]) -> Paused:
        print(f"started {attempt.job.id}", flush=True)  # the test waits for this line
        await asyncio.sleep(attempt.input.seconds)  # the work
        return Paused(attempt.input.seconds)

    return worker
