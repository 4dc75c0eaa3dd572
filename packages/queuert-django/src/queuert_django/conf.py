"""``QueuertSettings``: the ``QUEUERT`` dictionary of the Django settings, read and checked.

Every key is optional::

    QUEUERT = {
        "DATABASE": "default",              # the DATABASES alias that holds queuert's tables
        "JOB_TYPES": "shop.jobs.JOB_TYPES",  # dotted path of a sequence of job types
        "WORKER": "shop.jobs.build_worker",  # dotted path of function(client) -> Worker
        "NOTIFY": True,                      # PostgreSQL: wake workers with LISTEN/NOTIFY;
                                             # or a Redis or NATS URL: wake them through it
        "SCHEMA": "public",                  # PostgreSQL: the schema of queuert's tables
        "TABLE_PREFIX": "queuert_",
        "CHANNEL_PREFIX": "queuert",         # the prefix of the LISTEN/NOTIFY channels (or of the
                                             # Redis channels and keys, or the NATS subjects)
    }

The settings are read on every call (not cached), so ``override_settings`` works in tests.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string
from queuert.job_types import AnyJobType

__all__ = ["KEYS", "QueuertSettings", "load_settings"]

KEYS = frozenset(
    {"DATABASE", "JOB_TYPES", "WORKER", "NOTIFY", "SCHEMA", "TABLE_PREFIX", "CHANNEL_PREFIX"}
)

ENGINES = {
    "django.db.backends.postgresql": "postgresql",
    "django.db.backends.sqlite3": "sqlite",
}
"""The Django database engines queuert runs on, and the backend each maps to."""

_REDIS_SCHEMES = ("redis://", "rediss://", "unix://")
_NATS_SCHEMES = ("nats://", "tls://")


@dataclass(frozen=True)
class QueuertSettings:
    database: str
    """The ``DATABASES`` alias of the database that holds queuert's tables."""
    backend: str
    """``"postgresql"`` or ``"sqlite"``, from that database's ``ENGINE``."""
    job_types: Sequence[AnyJobType]
    worker: str | None
    """Dotted path of ``function(client) -> Worker`` (``manage.py queuert_worker`` calls it)."""
    notify: bool
    schema: str
    table_prefix: str
    channel_prefix: str
    redis_url: str | None = None
    """``NOTIFY`` given as a Redis URL: wake-ups go through Redis (on either database) instead of
    PostgreSQL's LISTEN/NOTIFY."""
    nats_url: str | None = None
    """``NOTIFY`` given as a NATS URL: wake-ups go through NATS (on either database)."""

    @property
    def broker_url(self) -> str | None:
        """The Redis or NATS URL that wake-ups go through, if ``NOTIFY`` is one."""
        return self.redis_url or self.nats_url

    def build_worker(self) -> Callable[..., Any]:
        if self.worker is None:
            raise ImproperlyConfigured(
                'QUEUERT["WORKER"] is not set: give the dotted path of a function that takes '
                "the client and returns a queuert Worker"
            )
        factory = _import(self.worker, "WORKER")
        if not callable(factory):
            raise ImproperlyConfigured(f'QUEUERT["WORKER"] ({self.worker}) is not callable')
        return factory


def load_settings() -> QueuertSettings:
    """The ``QUEUERT`` setting, checked: unknown keys and wrong types raise ImproperlyConfigured."""
    raw: Any = getattr(settings, "QUEUERT", {})
    if not isinstance(raw, dict):
        raise ImproperlyConfigured("QUEUERT must be a dict")
    unknown = sorted(set(raw) - KEYS)
    if unknown:
        raise ImproperlyConfigured(
            f"unknown QUEUERT keys: {', '.join(unknown)} (known: {', '.join(sorted(KEYS))})"
        )
    database = _text(raw, "DATABASE", "default")
    if database not in settings.DATABASES:
        raise ImproperlyConfigured(
            f'QUEUERT["DATABASE"] is {database!r}, which is not an alias of DATABASES'
        )
    engine = settings.DATABASES[database].get("ENGINE", "")
    backend = ENGINES.get(engine)
    if backend is None:
        raise ImproperlyConfigured(
            f"queuert runs on PostgreSQL and SQLite; the database {database!r} uses {engine!r}"
        )
    notify = raw.get("NOTIFY", True)
    redis_url: str | None = None
    nats_url: str | None = None
    if isinstance(notify, str) and notify.startswith(_REDIS_SCHEMES):
        redis_url, notify = notify, True
    elif isinstance(notify, str) and notify.startswith(_NATS_SCHEMES):
        nats_url, notify = notify, True
    elif not isinstance(notify, bool):
        raise ImproperlyConfigured(
            'QUEUERT["NOTIFY"] must be True, False, a Redis URL (redis://, rediss://, unix://) '
            "or a NATS URL (nats://, tls://)"
        )
    worker = raw.get("WORKER")
    if worker is not None and not isinstance(worker, str):
        raise ImproperlyConfigured('QUEUERT["WORKER"] must be a dotted path (a str)')
    return QueuertSettings(
        database=database,
        backend=backend,
        job_types=_job_types(raw.get("JOB_TYPES", ())),
        worker=worker,
        notify=notify,
        schema=_text(raw, "SCHEMA", "public"),
        table_prefix=_text(raw, "TABLE_PREFIX", "queuert_"),
        channel_prefix=_text(raw, "CHANNEL_PREFIX", "queuert"),
        redis_url=redis_url,
        nats_url=nats_url,
    )


def _text(raw: dict[str, Any], key: str, default: str) -> str:
    value = raw.get(key, default)
    if not isinstance(value, str) or not value:
        raise ImproperlyConfigured(f'QUEUERT["{key}"] must be a non-empty str')
    return value


def _job_types(value: object) -> Sequence[AnyJobType]:
    if isinstance(value, str):
        value = _import(value, "JOB_TYPES")
    if not isinstance(value, (list, tuple)):
        raise ImproperlyConfigured(
            'QUEUERT["JOB_TYPES"] must be a sequence of job types or the dotted path of one'
        )
    return tuple(value)


def _import(path: str, key: str) -> object:
    try:
        return import_string(path)
    except ImportError as exc:
        raise ImproperlyConfigured(f'QUEUERT["{key}"]: cannot import {path!r}: {exc}') from exc
