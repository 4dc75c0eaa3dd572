"""The ``QUEUERT`` setting is checked, and PostgreSQL connections are opened as Django's are."""

from __future__ import annotations

import re
import sys
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test.utils import override_settings
from django_project import SCHEMA
from queuert_django.conf import load_settings
from queuert_django.connections import (
    _asyncpg_dsn,
    libpq_params,
    open_nats_notify_adapter,
    open_redis_notify_adapter,
)


def test_the_defaults_use_the_default_database_with_notifications() -> None:
    with override_settings(QUEUERT={}):
        conf = load_settings()
    assert (conf.database, conf.backend, conf.notify) == ("default", "sqlite", True)
    assert (conf.schema, conf.table_prefix, conf.job_types, conf.worker) == (
        "public",
        "queuert_",
        (),
        None,
    )


@pytest.mark.parametrize(
    ("url", "broker"),
    [
        ("redis://cache:6379/0", "redis"),
        ("rediss://cache:6380/0", "redis"),
        ("unix:///run/redis.sock", "redis"),
        ("nats://bus:4222", "nats"),
        ("tls://bus:4222", "nats"),
    ],
)
def test_notify_may_name_a_broker_that_wake_ups_go_through(url: str, broker: str) -> None:
    with override_settings(QUEUERT={"NOTIFY": url}):
        conf = load_settings()
    assert (conf.notify, conf.broker_url) == (True, url)
    assert (conf.redis_url, conf.nats_url) == ((url, None) if broker == "redis" else (None, url))


@pytest.mark.parametrize(
    ("opener", "module", "extra"),
    [
        (open_redis_notify_adapter, "queuert_redis", "queuert-django[redis]"),
        (open_nats_notify_adapter, "queuert_nats", "queuert-django[nats]"),
    ],
)
def test_a_broker_url_without_its_adapter_installed_names_the_extra(
    opener: Any, module: str, extra: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # importing it raises ImportError
    with pytest.raises(ImproperlyConfigured, match=re.escape(f"install {extra}")):
        opener("redis://cache:6379/0", "queuert")


def test_job_types_load_from_a_dotted_path() -> None:
    from shop.jobs import SendReceipt, SlowJob

    with override_settings(QUEUERT={"DATABASE": "pg", "JOB_TYPES": "shop.jobs.JOB_TYPES"}):
        conf = load_settings()
    assert conf.backend == "postgresql"
    assert conf.job_types == (SendReceipt, SlowJob)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"DATABSE": "pg"}, "unknown QUEUERT keys: DATABSE"),
        ({"DATABASE": "replica"}, "'replica', which is not an alias of DATABASES"),
        ({"NOTIFY": "yes"}, 'QUEUERT["NOTIFY"] must be True, False, a Redis URL'),
        ({"JOB_TYPES": "shop.jobs.NOTHING"}, "cannot import 'shop.jobs.NOTHING'"),
        ({"JOB_TYPES": 3}, "must be a sequence of job types"),
        ({"TABLE_PREFIX": ""}, 'QUEUERT["TABLE_PREFIX"] must be a non-empty str'),
        ({"WORKER": 1}, "must be a dotted path"),
        ([], "QUEUERT must be a dict"),
    ],
)
def test_a_wrong_setting_is_refused_with_what_is_wrong(value: Any, message: str) -> None:
    with (
        override_settings(QUEUERT=value),
        pytest.raises(ImproperlyConfigured, match=re.escape(message)),
    ):
        load_settings()


@pytest.mark.filterwarnings("ignore:Overriding setting DATABASES")
def test_a_database_engine_queuert_does_not_run_on_is_refused() -> None:
    databases = {"default": {"ENGINE": "django.db.backends.mysql", "NAME": "shop"}}
    with (
        override_settings(DATABASES=databases, QUEUERT={}),
        pytest.raises(ImproperlyConfigured, match="runs on PostgreSQL and SQLite"),
    ):
        load_settings()


@pytest.mark.filterwarnings("ignore:Overriding setting DATABASES")
def test_libpq_parameters_are_django_s_without_django_s_own_options() -> None:
    params = libpq_params("pg")
    assert params["options"] == f"-c search_path={SCHEMA}"
    databases = {
        "pg": {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": "shop",
            "USER": "app",
            "PASSWORD": "p@ss word",
            "HOST": "db.internal",
            "PORT": "6432",
            "OPTIONS": {"sslmode": "require", "isolation_level": 1, "pool": True},
        }
    }
    with override_settings(DATABASES=databases):
        params = libpq_params("pg")
    assert params == {
        "dbname": "shop",
        "user": "app",
        "password": "p@ss word",
        "host": "db.internal",
        "port": "6432",
        "sslmode": "require",
    }
    assert (
        _asyncpg_dsn(params)
        == "postgresql://app:p%40ss%20word@db.internal:6432/shop?sslmode=require"
    )


def test_a_unix_socket_directory_goes_in_the_notification_dsn_s_query() -> None:
    dsn = _asyncpg_dsn({"dbname": "shop", "host": "/run/postgresql", "port": "5433"})
    assert dsn == "postgresql:///shop?host=%2Frun%2Fpostgresql&port=5433"
    assert _asyncpg_dsn({"dbname": "shop", "port": "5433"}) == "postgresql:///shop?port=5433"
    assert _asyncpg_dsn({"dbname": "shop", "user": "app", "host": "::1"}) == (
        "postgresql://app@[::1]/shop"
    )
