"""``manage.py queuert_migrate``: create or upgrade queuert's tables in ``QUEUERT["DATABASE"]``.

queuert's schema is versioned by queuert itself (not by Django's migrations): run this command
beside ``manage.py migrate`` at every deployment; it is idempotent and safe to run from several
processes at once.
"""

from __future__ import annotations

import asyncio
from typing import Any

from django.core.management.base import BaseCommand
from queuert.state import MigrationResult

from queuert_django.conf import load_settings
from queuert_django.connections import open_state_adapter


class Command(BaseCommand):  # type: ignore[misc]
    help = "Create or upgrade queuert's tables in the database of QUEUERT['DATABASE']."

    def handle(self, *args: Any, **options: Any) -> None:
        conf = load_settings()
        result = asyncio.run(_migrate(conf))
        for name in result.applied:
            self.stdout.write(f"applied  {name}")
        for name in result.unrecognized:
            self.stdout.write(
                f"unknown  {name} (recorded in the database, not known to this version)"
            )
        if not result.applied:
            self.stdout.write(f"queuert's schema is up to date in {conf.database!r}")


async def _migrate(conf: Any) -> MigrationResult:
    async with open_state_adapter(conf) as state:
        return await state.migrate()
