"""Django integration for queuert: add ``"queuert_django"`` to ``INSTALLED_APPS``.

* ``QUEUERT`` setting: :mod:`queuert_django.conf`;
* :func:`start_chain` / :func:`start_chains` inside ``transaction.atomic()``, and every other call
  of :class:`queuert.SyncClient` on :func:`get_sync_client` with ``tx=db_connection()``;
* ``manage.py queuert_migrate`` and ``manage.py queuert_worker``;
* :func:`open_client`: an asyncio client over the configured database (on connections of its own);
* the dashboard in front of Django's ASGI application: :mod:`queuert_django.dashboard`;
* ``manage.py test`` with queuert's tables in the test database: :mod:`queuert_django.testing`.
"""

from queuert_django.conf import QueuertSettings, load_settings
from queuert_django.connections import open_client
from queuert_django.sync_client import db_connection, get_sync_client, start_chain, start_chains

__all__ = [
    "QueuertSettings",
    "db_connection",
    "get_sync_client",
    "load_settings",
    "open_client",
    "start_chain",
    "start_chains",
]
