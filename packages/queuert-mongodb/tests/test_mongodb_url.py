"""``from_url`` and the ``queuert.state_adapters`` entry points used by ``queuert migrate --dsn``
and ``queuert worker --dsn``."""

from __future__ import annotations

import shutil
import subprocess
from importlib.metadata import entry_points

import mongo_server
import pytest
from mongo_helpers import DATABASE, drop_prefix, unique_prefix
from queuert.backends import open_state_adapter
from queuert.errors import InvalidIdentifierError, UsageError
from queuert_mongodb import MIGRATIONS, MongoStateAdapter, from_url
from queuert_mongodb._url import parse_url

QUEUERT = shutil.which("queuert")


def database_url(prefix: str) -> str:
    """The session's server URL naming the test database and ``prefix``."""
    driver_url, _, _ = parse_url(mongo_server.server_url())
    base, _, query = driver_url.partition("?")
    return f"{base.rstrip('/')}/{DATABASE}?{query}&collection_prefix={prefix}"


def test_entry_points_are_registered() -> None:
    names = {ep.name: ep.value for ep in entry_points(group="queuert.state_adapters")}
    assert names.get("mongodb") == "queuert_mongodb:from_url"
    assert names.get("mongodb+srv") == "queuert_mongodb:from_url"


def test_the_url_names_the_database_and_keeps_the_driver_options() -> None:
    url, database, found = parse_url(
        "mongodb://u:p@h1:27017,h2:27018/app?replicaSet=rs0&collection_prefix=jobs_&w=majority"
    )
    assert database == "app" and found == {"collection_prefix": "jobs_"}
    assert url == "mongodb://u:p@h1:27017,h2:27018/?replicaSet=rs0&w=majority"
    assert parse_url("mongodb://h/")[1] == "queuert"


async def test_open_by_url_with_the_prefix_in_the_query() -> None:
    prefix = unique_prefix()
    adapter = await open_state_adapter(database_url(prefix))
    try:
        assert isinstance(adapter, MongoStateAdapter)
        assert adapter.names.prefix == prefix and adapter.names.database == DATABASE
        result = await adapter.migrate()
        assert result.applied == [m.name for m in MIGRATIONS]
    finally:
        await adapter.close()
        await drop_prefix(prefix)


async def test_bad_urls_and_identifiers_are_clear_errors() -> None:
    with pytest.raises(UsageError):
        await from_url("postgresql://localhost/db")
    with pytest.raises(InvalidIdentifierError):
        await from_url("mongodb://127.0.0.1/db?collection_prefix=bad-name")
    with pytest.raises(InvalidIdentifierError):
        await from_url("mongodb://127.0.0.1/bad.name")


def test_the_command_line_migrates_a_mongodb_database() -> None:
    assert QUEUERT is not None, "the queuert command is installed with queuert-core"
    prefix = unique_prefix()
    dsn = database_url(prefix)
    try:
        first = subprocess.run(
            [QUEUERT, "migrate", "--dsn", dsn],
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
        )
        assert "applied" in first.stdout and MIGRATIONS[0].name in first.stdout
        again = subprocess.run(
            [QUEUERT, "migrate", "--dsn", dsn],
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
        )
        assert "up to date" in again.stdout
    finally:
        import asyncio

        asyncio.run(drop_prefix(prefix))
