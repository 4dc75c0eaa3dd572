"""Fixtures over the test project (see ``django_project``): Django's tables (``migrate``) and
queuert's (``queuert_migrate``) in both databases, created once per process and dropped at the end,
and each test run with queuert on SQLite ("default") and on PostgreSQL ("pg")."""

from __future__ import annotations

import io
import shutil
from collections.abc import Iterator

import pytest
from django_project import ALIASES, SCHEMA, SCRATCH, pg_execute, queuert_settings


@pytest.fixture(scope="session")
def databases() -> Iterator[None]:
    """Django's and queuert's tables in both databases of this process."""
    from django.core.management import call_command
    from django.db import connections
    from django.test.utils import override_settings

    pg_execute(f'CREATE SCHEMA "{SCHEMA}"')
    try:
        for alias in ALIASES:
            call_command("migrate", database=alias, verbosity=0)
            with override_settings(QUEUERT=queuert_settings(alias)):
                call_command("queuert_migrate", stdout=io.StringIO())
        yield
    finally:
        connections.close_all()
        pg_execute(f'DROP SCHEMA "{SCHEMA}" CASCADE')
        shutil.rmtree(SCRATCH, ignore_errors=True)


@pytest.fixture(params=ALIASES)
def alias(request: pytest.FixtureRequest, databases: None) -> Iterator[str]:
    """Each test on SQLite ("default") and PostgreSQL ("pg"), queuert configured on that alias."""
    from django.test.utils import override_settings

    with override_settings(QUEUERT=queuert_settings(request.param)):
        yield request.param
