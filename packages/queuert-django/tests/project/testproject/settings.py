"""Settings of the test project: a shop on SQLite ("default") and on PostgreSQL ("pg").

The environment chooses the files and the schema, so test processes running side by side (pytest
with xdist, the worker subprocesses) never share state:

* ``QUEUERT_DJANGO_SQLITE``: the SQLite database file of "default";
* ``QUEUERT_PG_DSN`` (``postgresql://user@host:port/db``) and ``QUEUERT_DJANGO_PG_SCHEMA``: the
  PostgreSQL database of "pg" and the schema (``search_path``) of both Django's and queuert's tables,
  also the prefix of queuert's LISTEN/NOTIFY channels;
* ``QUEUERT_DJANGO_DATABASE``: the alias queuert uses ("default" unless set);
* ``QUEUERT_DJANGO_NOTIFY``: a Redis or NATS URL, for wake-ups through it (``QUEUERT["NOTIFY"]``);
* ``QUEUERT_DJANGO_SQLITE_TEST`` and ``QUEUERT_DJANGO_PG_TEST_DB``: the test databases that
  ``manage.py test`` creates and drops (a SQLite file, a PostgreSQL database).
"""

import os
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

_pg = urlsplit(os.environ.get("QUEUERT_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test"))
_schema = os.environ.get("QUEUERT_DJANGO_PG_SCHEMA", "public")
_sqlite = os.environ.get(
    "QUEUERT_DJANGO_SQLITE", str(Path(tempfile.gettempdir()) / "queuert-django.sqlite3")
)

SECRET_KEY = "test-only-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["*"]
USE_TZ = True
ROOT_URLCONF = "testproject.urls"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
LOGIN_URL = "/login/"

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "queuert_django",
    "shop",
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": _sqlite,
        "OPTIONS": {"timeout": 10},
        # a file, not Django's in-memory test database: queuert's own connections open it too
        "TEST": {"NAME": os.environ.get("QUEUERT_DJANGO_SQLITE_TEST", _sqlite + ".test")},
    },
    "pg": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": _pg.path.lstrip("/") or "test",
        "USER": _pg.username or "",
        "PASSWORD": _pg.password or "",
        "HOST": _pg.hostname or "",
        "PORT": str(_pg.port or ""),
        "OPTIONS": {"options": f"-c search_path={_schema}"},
        "TEST": {
            "NAME": os.environ.get("QUEUERT_DJANGO_PG_TEST_DB"),  # None: test_<NAME>
            "DEPENDENCIES": [],  # tests that use "pg" only need no test database of "default"
        },
    },
}

# manage.py test: Django's runner, plus queuert's tables in the test database
TEST_RUNNER = "queuert_django.testing.QueuertTestRunner"

QUEUERT = {
    "DATABASE": os.environ.get("QUEUERT_DJANGO_DATABASE", "default"),
    "JOB_TYPES": "shop.jobs.JOB_TYPES",
    "WORKER": "shop.jobs.build_worker",
    "SCHEMA": _schema,
    "CHANNEL_PREFIX": _schema,  # notifications are database-wide: one channel set per test process
}
if os.environ.get("QUEUERT_DJANGO_NOTIFY"):  # a Redis or NATS URL: wake-ups through it
    QUEUERT["NOTIFY"] = os.environ["QUEUERT_DJANGO_NOTIFY"]

# queuert's events on stdout in the manage.py subprocesses of the tests, which wait for the
# worker's "worker_started" line (QUEUERT_DJANGO_LOG_STDOUT=1)
if os.environ.get("QUEUERT_DJANGO_LOG_STDOUT") == "1":
    LOGGING = {
        "version": 1,
        "disable_existing_loggers": False,
        "handlers": {"stdout": {"class": "logging.StreamHandler", "stream": "ext://sys.stdout"}},
        "loggers": {"queuert": {"handlers": ["stdout"], "level": "INFO"}},
    }
