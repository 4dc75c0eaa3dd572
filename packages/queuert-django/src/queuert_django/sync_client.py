"""Start and manage chains from Django's synchronous code, on Django's connection, in its transaction.

::

    from django.db import transaction
    from queuert_django import start_chain

    with transaction.atomic():
        order = Order.objects.create(reference="o-1")
        start_chain(SendReceipt(OrderRef(order.reference)))

The chain is written on the connection of ``QUEUERT["DATABASE"]``, inside the transaction Django has
open there: it exists when the outermost ``atomic()`` block commits and vanishes when the block rolls
back, or with the savepoint of a nested block that rolls back. Wake-ups follow the commit: on
PostgreSQL a ``NOTIFY`` sent in the transaction (delivered by the server on commit, dropped on
rollback); with ``QUEUERT["NOTIFY"]`` a Redis or NATS URL, a message published after the commit
(``transaction.on_commit``) by the process's notify thread (:class:`queuert.notify_thread.NotifyThread`, stopped
at interpreter exit);
otherwise, on SQLite, workers in other processes find the jobs at their next poll.

:func:`start_chain` and :func:`start_chains` open an ``atomic()`` block of their own when called
outside one. Every other call of :class:`queuert.SyncClient` (workerless completion, cancellation,
deletion, reads) is on :func:`get_sync_client`, with ``tx=db_connection()`` inside ``atomic()``.
"""

from __future__ import annotations

import atexit
import os
import threading
from collections.abc import Sequence
from typing import Any, TypeVar

from django.db import connections, transaction
from queuert import Chain, EntryJobType, SyncClient
from queuert.notify_thread import NotifyThread

from queuert_django.conf import QueuertSettings, load_settings
from queuert_django.connections import open_broker_notify_adapter
from queuert_django.sync_backends import sync_backend

__all__ = ["db_connection", "get_sync_client", "start_chain", "start_chains"]

J = TypeVar("J", bound=EntryJobType[Any, Any])

_clients: dict[tuple[QueuertSettings, int], SyncClient[Any]] = {}
"""The sync clients by setting and process id (a forked process builds its own)."""
_lock = threading.Lock()


def get_sync_client() -> SyncClient[Any]:
    """The process's :class:`queuert.SyncClient` for the ``QUEUERT`` setting (one per setting,
    shared by every thread; each thread passes its own connection, :func:`db_connection`)."""
    conf = load_settings()
    key = (conf, os.getpid())
    client = _clients.get(key)
    if client is None:
        with _lock:
            client = _clients.get(key)
            if client is None:
                client = _clients[key] = _build(conf)
    return client


def _build(conf: QueuertSettings) -> SyncClient[Any]:
    if conf.broker_url is None:
        return SyncClient(sync_backend(conf), job_types=conf.job_types)
    thread = NotifyThread(lambda: open_broker_notify_adapter(conf), name="queuert-django-notify")
    client: SyncClient[Any] = SyncClient(
        sync_backend(conf), job_types=conf.job_types, notify=thread.adapter, notify_loop=thread.loop
    )
    thread.before_stop.append(client.wait_published)
    atexit.register(thread.stop)  # publish what is left before the process ends
    return client


def db_connection() -> Any:
    """The DB-API connection under Django's connection to ``QUEUERT["DATABASE"]`` on this thread
    (psycopg 3 or ``sqlite3``), connected: the ``tx=`` of :class:`queuert.SyncClient`'s calls."""
    connection = connections[load_settings().database]
    connection.ensure_connection()
    return connection.connection


def start_chain(job: J) -> Chain[J]:
    """Start a chain with ``job`` in Django's transaction on ``QUEUERT["DATABASE"]`` (see
    :meth:`queuert.Client.start_chain`)."""
    (chain,) = start_chains([job])
    return chain


def start_chains(jobs: Sequence[J]) -> list[Chain[J]]:
    """Start several chains in one batch in Django's transaction; results in input order."""
    client = get_sync_client()
    with transaction.atomic(using=load_settings().database, savepoint=False):
        return client.start_chains(jobs, tx=db_connection())
