"""The test project's own tests (``shop/tests.py``, Django's ``TestCase`` and
``TransactionTestCase``) run by Django's test runner, ``manage.py test shop``, as a subprocess, with
queuert on SQLite and on PostgreSQL. Django creates the test database (a name of this test's own,
so parallel test processes never share one), ``QueuertTestRunner`` creates queuert's tables in it,
and Django drops it at the end."""

from __future__ import annotations

import re
import subprocess
import uuid

import pytest
from django_project import ALIASES, SCRATCH, manage, pg_execute

RUN_TIMEOUT = 180.0
"""Upper bound of the whole ``manage.py test`` run: a hang fails the test instead of CI."""


def _pg_database_exists(name: str) -> bool:
    import psycopg
    from django_project import PG_DSN

    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        row = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
    return row is not None


def _run_tests(
    alias: str, env: dict[str, str], *options: str, start_method: str | None = None
) -> tuple[int, str, str]:
    process = manage(
        "test", "shop", "--noinput", *options, alias=alias, env=env, start_method=start_method
    )
    try:
        out, err = process.communicate(timeout=RUN_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
        raise AssertionError(f"manage.py test still running after {RUN_TIMEOUT} s\n{err}") from None
    return process.returncode, out, err


@pytest.mark.parametrize("parallel", [False, True], ids=["serial", "parallel"])
@pytest.mark.parametrize("alias", ALIASES)
def test_django_s_test_runner_passes_the_shop_s_tests_in_a_test_database_it_drops(
    alias: str, parallel: bool
) -> None:
    """``--parallel 2``: Django clones the test database (queuert's tables with it) for each of
    its processes. Started with ``fork`` on every Python: with ``spawn`` Django's SQLite clones are
    in memory, and Python 3.14's default (``forkserver``) is not one Django 5.2 runs in parallel."""
    suffix = uuid.uuid4().hex[:10]
    sqlite_test = SCRATCH / f"test_{suffix}.sqlite3"
    pg_test = f"test_qdj_{suffix}"
    env = {
        "QUEUERT_DJANGO_SQLITE_TEST": str(sqlite_test),
        "QUEUERT_DJANGO_PG_TEST_DB": pg_test,
        # a fresh database: Django's and queuert's tables go in its public schema
        "QUEUERT_DJANGO_PG_SCHEMA": "public",
    }
    try:
        if parallel:
            status, _, err = _run_tests(alias, env, "--parallel", "2", start_method="fork")
        else:
            status, _, err = _run_tests(alias, env)
        assert status == 0, err
        ran = re.search(r"^Ran (\d+) tests?", err, re.MULTILINE)
        assert ran is not None, err
        assert int(ran.group(1)) >= 9, err
        assert re.search(r"^OK$", err, re.MULTILINE), err
        assert f"Creating test database for alias '{alias}'" in err
        if parallel:
            assert f"Cloning test database for alias '{alias}'" in err
        # dropped by Django at the end of the run, with their clones
        if alias == "pg":
            assert not _pg_database_exists(pg_test)
            assert not any(_pg_database_exists(f"{pg_test}_{n}") for n in (1, 2))
        else:
            assert not list(SCRATCH.glob(f"test_{suffix}*"))
    finally:
        if alias == "pg":
            for name in (pg_test, f"{pg_test}_1", f"{pg_test}_2"):
                pg_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        for leftover in SCRATCH.glob(f"test_{suffix}*"):
            leftover.unlink()


def test_queuert_s_test_runner_refuses_an_in_memory_sqlite_test_database() -> None:
    status, _, err = _run_tests("default", {"QUEUERT_DJANGO_SQLITE_TEST": ":memory:"})
    assert status != 0
    assert "queuert's tables need a SQLite test database file" in err
    assert 'DATABASES["default"]["TEST"]["NAME"]' in err
