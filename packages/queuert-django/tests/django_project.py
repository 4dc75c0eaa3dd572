"""The test project (``tests/project``) set up in this process.

Each test process gets a SQLite file and a PostgreSQL schema of its own (environment variables the
project's settings read, inherited by the ``manage.py`` subprocesses).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

PROJECT = Path(__file__).parent / "project"
PG_DSN = os.environ.get("QUEUERT_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")
SCHEMA = f"qdj_{uuid.uuid4().hex[:10]}"
SCRATCH = Path(tempfile.mkdtemp(prefix="queuert-django-"))

os.environ["QUEUERT_DJANGO_SQLITE"] = str(SCRATCH / "shop.sqlite3")
os.environ["QUEUERT_DJANGO_PG_SCHEMA"] = SCHEMA
os.environ["QUEUERT_PG_DSN"] = PG_DSN
os.environ["DJANGO_SETTINGS_MODULE"] = "testproject.settings"
sys.path.insert(0, str(PROJECT))

import django  # noqa: E402

django.setup()

ALIASES = ["default", "pg"]
"""SQLite, PostgreSQL."""


def pg_execute(sql: str) -> None:
    import psycopg

    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        conn.execute(sql)


def queuert_settings(alias: str, **extra: object) -> dict[str, object]:
    return {
        "DATABASE": alias,
        "JOB_TYPES": "shop.jobs.JOB_TYPES",
        "WORKER": "shop.jobs.build_worker",
        "SCHEMA": SCHEMA,
        "CHANNEL_PREFIX": SCHEMA,
        **extra,
    }


def manage(
    *args: str,
    alias: str,
    env: dict[str, str] | None = None,
    start_method: str | None = None,
) -> subprocess.Popen[str]:
    """``python manage.py ARGS`` of the test project, with queuert on ``alias``; with
    ``start_method``, multiprocessing's start method set to it first."""
    launch = ["manage.py"]
    if start_method is not None:
        launch = [
            "-c",
            f"import multiprocessing, runpy; multiprocessing.set_start_method({start_method!r}); "
            "runpy.run_path('manage.py', run_name='__main__')",
        ]
    return subprocess.Popen(
        [sys.executable, *launch, *args],
        cwd=PROJECT,
        env={
            **os.environ,
            "QUEUERT_DJANGO_DATABASE": alias,
            "QUEUERT_DJANGO_LOG_STDOUT": "1",
            **(env or {}),
        },
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
