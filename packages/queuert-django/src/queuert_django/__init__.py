"""Django integration for queuert: add ``"queuert_django"`` to ``INSTALLED_APPS``.

* ``QUEUERT`` setting: :mod:`queuert_django.conf`;
* ``manage.py queuert_migrate`` and ``manage.py queuert_worker``;
* :func:`open_client`: an asyncio client over the configured database (on connections of its own);
* the dashboard in front of Django's ASGI application: :mod:`queuert_django.dashboard`.
"""

from queuert_django.conf import QueuertSettings, load_settings
from queuert_django.connections import open_client

__all__ = ["QueuertSettings", "load_settings", "open_client"]
