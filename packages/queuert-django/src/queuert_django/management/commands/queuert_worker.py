"""``manage.py queuert_worker``: run the worker of ``QUEUERT["WORKER"]`` until SIGTERM or SIGINT.

``QUEUERT["WORKER"]`` (or ``--worker``) is the dotted path of a function that takes the client and
returns a :class:`queuert.Worker`. On SIGTERM or SIGINT the worker stops claiming, lets in-flight
handlers finish within its ``shutdown_timeout``, returns what is left to the queue, then the command
closes the client and its connections and exits with status 0.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from dataclasses import replace
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError
from queuert import Worker

from queuert_django.conf import QueuertSettings, load_settings
from queuert_django.connections import open_client

logger = logging.getLogger("queuert.django")


class Command(BaseCommand):  # type: ignore[misc]
    help = "Run the queuert worker of QUEUERT['WORKER'] until SIGTERM or SIGINT."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--worker",
            help="dotted path of function(client) -> Worker (default: QUEUERT['WORKER'])",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        conf = load_settings()
        path = options.get("worker") or conf.worker
        if path is None:
            raise CommandError(
                "no worker: set QUEUERT['WORKER'] or pass --worker (the dotted path of a "
                "function that takes the client and returns a queuert Worker)"
            )
        try:
            factory = replace(conf, worker=path).build_worker()
        except ImproperlyConfigured as exc:
            raise CommandError(str(exc)) from exc
        asyncio.run(_run(conf, factory, path))


async def _run(conf: QueuertSettings, factory: Any, path: str) -> None:
    async with open_client(conf) as client:
        worker = factory(client)
        if inspect.isawaitable(worker):
            worker = await worker
        if not isinstance(worker, Worker):
            raise CommandError(f"{path} returned {type(worker).__name__}, not a queuert Worker")
        logger.info(
            "worker starting",
            extra={"worker_id": worker.id, "database": conf.database, "backend": conf.backend},
        )
        await worker.run()
