"""Open queuert's adapters on the database of a Django ``DATABASES`` alias.

The worker, ``queuert_migrate`` and the dashboard run on asyncio connections of their own, opened
with the same parameters as Django's (name, user, password, host, port and the libpq ``OPTIONS``);
they never use Django's synchronous connection. PostgreSQL: psycopg 3 for the state adapter,
LISTEN/NOTIFY (asyncpg) for wake-ups when ``NOTIFY`` is on. SQLite: the file of ``NAME``. With
``NOTIFY`` set to a Redis or NATS URL, wake-ups go through that broker on either database.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from importlib import import_module
from typing import Any
from urllib.parse import quote, urlencode

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from queuert import Client
from queuert.notify import NotifyAdapter
from queuert.state import StateAdapter

from queuert_django.conf import QueuertSettings, load_settings

__all__ = [
    "libpq_params",
    "open_broker_notify_adapter",
    "open_client",
    "open_nats_notify_adapter",
    "open_notify_adapter",
    "open_redis_notify_adapter",
    "open_state_adapter",
]

_DJANGO_ONLY_OPTIONS = frozenset(
    {
        "assume_role",
        "isolation_level",
        "pool",
        "server_side_binding",
        "prepare_threshold",
        "cursor_factory",
        "context",
    }
)
"""Keys of a PostgreSQL database's ``OPTIONS`` that Django consumes itself (not libpq's)."""

_ASYNCPG_OPTIONS = (
    "sslmode",
    "sslrootcert",
    "sslcert",
    "sslkey",
    "passfile",
    "target_session_attrs",
)
"""The libpq options the LISTEN/NOTIFY connection (asyncpg) understands in a DSN."""


def libpq_params(alias: str) -> dict[str, str]:
    """The libpq connection parameters of a PostgreSQL alias, as Django connects with them."""
    db = settings.DATABASES[alias]
    params: dict[str, str] = {"dbname": db.get("NAME") or "postgres"}
    for key, name in (("USER", "user"), ("PASSWORD", "password"), ("HOST", "host")):
        if db.get(key):
            params[name] = str(db[key])
    if db.get("PORT"):
        params["port"] = str(db["PORT"])
    for key, value in (db.get("OPTIONS") or {}).items():
        if key in _DJANGO_ONLY_OPTIONS:
            continue
        if not isinstance(value, (str, int)):
            raise ImproperlyConfigured(
                f"DATABASES[{alias!r}]['OPTIONS'][{key!r}] is not a libpq option queuert can pass on"
            )
        params[key] = str(value)
    return params


def _asyncpg_dsn(params: dict[str, str]) -> str:
    """A ``postgresql://`` URL for asyncpg with the same target as the libpq ``params``."""
    auth = quote(params.get("user", ""), safe="")
    if "password" in params:
        auth += ":" + quote(params["password"], safe="")
    netloc = f"{auth}@" if auth else ""
    host = params.get("host", "")
    query: dict[str, str] = {}
    if host and not host.startswith("/"):
        netloc += f"[{host}]" if ":" in host else host
        if "port" in params:
            netloc += f":{params['port']}"
    else:  # a Unix socket directory (or libpq's default one): host and port go in the query
        if host:
            query["host"] = host
        if "port" in params:
            query["port"] = params["port"]
    query.update({key: params[key] for key in _ASYNCPG_OPTIONS if key in params})
    suffix = f"?{urlencode(query)}" if query else ""
    return f"postgresql://{netloc}/{quote(params['dbname'], safe='')}{suffix}"


@asynccontextmanager
async def open_state_adapter(
    conf: QueuertSettings | None = None,
) -> AsyncIterator[StateAdapter[Any]]:
    """The state adapter on the database of ``QUEUERT["DATABASE"]``, closed on exit."""
    conf = conf or load_settings()
    if conf.backend == "sqlite":
        from queuert_sqlite import SqliteStateAdapter

        name = str(settings.DATABASES[conf.database].get("NAME") or "")
        if not name or name == ":memory:" or "mode=memory" in name:
            raise ImproperlyConfigured(
                "queuert needs a SQLite database file that the worker can open too, "
                f"not {name or 'an empty NAME'!r}"
            )
        async with SqliteStateAdapter.open(name, table_prefix=conf.table_prefix) as sqlite:
            yield sqlite
        return
    from psycopg.conninfo import make_conninfo
    from queuert_postgres import PgStateAdapter, PsycopgProvider

    provider = PsycopgProvider(make_conninfo(**libpq_params(conf.database)))
    adapter = PgStateAdapter(provider, schema=conf.schema, table_prefix=conf.table_prefix)
    try:
        yield adapter
    finally:
        await adapter.close()


@asynccontextmanager
async def open_notify_adapter(
    conf: QueuertSettings | None = None,
) -> AsyncIterator[NotifyAdapter | None]:
    """The Redis or NATS notify adapter when ``NOTIFY`` is such a URL; PostgreSQL's LISTEN/NOTIFY
    adapter when it is on; else ``None`` (the client's in-process notifications: workers of other
    processes find new jobs at their next poll)."""
    conf = conf or load_settings()
    if conf.broker_url is not None:
        async with open_broker_notify_adapter(conf) as broker:
            yield broker
        return
    if conf.backend != "postgresql" or not conf.notify:
        yield None
        return
    from queuert_postgres import PgNotifyAdapter

    adapter = PgNotifyAdapter(
        _asyncpg_dsn(libpq_params(conf.database)), channel_prefix=conf.channel_prefix
    )
    try:
        yield adapter
    finally:
        await adapter.close()


@asynccontextmanager
async def open_broker_notify_adapter(conf: QueuertSettings) -> AsyncIterator[NotifyAdapter]:
    """The notify adapter of ``NOTIFY``'s Redis or NATS URL, closed on exit."""
    if conf.redis_url is not None:
        async with open_redis_notify_adapter(conf.redis_url, conf.channel_prefix) as redis:
            yield redis
    elif conf.nats_url is not None:
        async with open_nats_notify_adapter(conf.nats_url, conf.channel_prefix) as nats:
            yield nats
    else:
        raise ImproperlyConfigured('QUEUERT["NOTIFY"] is not a Redis or NATS URL')


def open_redis_notify_adapter(url: str, prefix: str) -> AbstractAsyncContextManager[NotifyAdapter]:
    """A :class:`queuert_redis.RedisNotifyAdapter` on ``url`` with ``prefix``, closed on exit."""
    adapter = _broker_adapter("queuert_redis", "RedisNotifyAdapter", "a Redis URL", "redis")
    return _closing(adapter(url, prefix=prefix))


def open_nats_notify_adapter(url: str, prefix: str) -> AbstractAsyncContextManager[NotifyAdapter]:
    """A :class:`queuert_nats.NatsNotifyAdapter` on ``url`` with ``prefix`` (its subjects' prefix),
    closed on exit."""
    adapter = _broker_adapter("queuert_nats", "NatsNotifyAdapter", "a NATS URL", "nats")
    return _closing(adapter(url, subject_prefix=prefix))


def _broker_adapter(module: str, name: str, what: str, extra: str) -> Any:
    """The notify adapter class ``name`` of ``module``; if that package is not installed, the
    configuration error that names the extra to install."""
    try:
        return getattr(import_module(module), name)
    except ImportError as exc:
        raise ImproperlyConfigured(
            f'QUEUERT["NOTIFY"] is {what}: install queuert-django[{extra}]'
        ) from exc


@asynccontextmanager
async def _closing(adapter: Any) -> AsyncIterator[NotifyAdapter]:
    """``adapter``, closed on exit."""
    try:
        yield adapter
    finally:
        await adapter.close()


@asynccontextmanager
async def open_client(conf: QueuertSettings | None = None) -> AsyncIterator[Client[Any]]:
    """A :class:`~queuert.Client` over the configured database, job types and notifications;
    the client and its adapters are closed on exit."""
    conf = conf or load_settings()
    async with AsyncExitStack() as stack:
        state = await stack.enter_async_context(open_state_adapter(conf))
        notify = await stack.enter_async_context(open_notify_adapter(conf))
        client = await stack.enter_async_context(
            Client(state, notify=notify, job_types=conf.job_types)
        )
        yield client
