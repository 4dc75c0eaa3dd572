"""``QueuertTestRunner``: Django's test runner, with queuert's tables in the test database.

``manage.py test`` creates a test database for each alias the tests use and runs ``migrate`` in
it; queuert's tables are not Django models, so they would be missing there. With::

    # settings.py
    TEST_RUNNER = "queuert_django.testing.QueuertTestRunner"

queuert's migrations run in the test database of ``QUEUERT["DATABASE"]`` right after Django's
(on ``post_migrate``, before Django clones the database for ``--parallel``), on connections of
queuert's own, like ``manage.py queuert_migrate``. A project with its own runner subclasses this
one (it calls ``super().setup_databases()``).

On SQLite, give that database a test database *file* (``DATABASES[alias]["TEST"]["NAME"]``):
Django's default test database is in memory, which queuert's own connections cannot open.
"""

from __future__ import annotations

import io
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.db.models.signals import post_migrate
from django.test.runner import DiscoverRunner

from queuert_django.conf import load_settings

__all__ = ["QueuertTestRunner"]


class QueuertTestRunner(DiscoverRunner):  # type: ignore[misc]
    """Django's ``DiscoverRunner`` that creates queuert's tables in the test database of
    ``QUEUERT["DATABASE"]``, once per test run, after Django's own migrations."""

    def setup_databases(self, **kwargs: Any) -> Any:
        migrated: set[str] = set()

        def migrate_queuert(sender: Any, using: str = "default", **_: Any) -> None:
            conf = load_settings()
            if using != conf.database or using in migrated:
                return
            migrated.add(using)
            if conf.backend == "sqlite":
                name = str(settings.DATABASES[using].get("NAME") or "")
                if not name or name == ":memory:" or "mode=memory" in name:
                    raise ImproperlyConfigured(
                        f"queuert's tables need a SQLite test database file: set "
                        f'DATABASES["{using}"]["TEST"]["NAME"] to a file path (not in memory)'
                    )
            out = io.StringIO()
            call_command("queuert_migrate", stdout=out)
            if self.verbosity >= 2:
                self.log(f"queuert's tables in the test database {using!r}:\n{out.getvalue()}")

        post_migrate.connect(migrate_queuert, weak=False, dispatch_uid=_UID)
        try:
            return super().setup_databases(**kwargs)
        finally:
            post_migrate.disconnect(dispatch_uid=_UID)


_UID = "queuert_django.testing.migrate_queuert"
