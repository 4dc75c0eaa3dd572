"""``sqlite:`` URLs, ``from_url`` and the ``queuert.state_adapters`` entry point."""

from __future__ import annotations

from importlib.metadata import entry_points
from pathlib import Path

import pytest
from queuert.backends import open_state_adapter
from queuert.errors import InvalidIdentifierError, UsageError
from queuert_sqlite import SqliteStateAdapter, from_url, parse_url


@pytest.mark.parametrize(
    ("url", "database"),
    [
        ("sqlite:///jobs.db", "jobs.db"),
        ("sqlite:///data/jobs.db", "data/jobs.db"),
        ("sqlite:////var/lib/app/jobs.db", "/var/lib/app/jobs.db"),
        ("sqlite://:memory:", ":memory:"),
        ("sqlite:///:memory:", ":memory:"),
        ("SQLITE:///jobs.db", "jobs.db"),
        ("sqlite:///my%20jobs.db", "my jobs.db"),
    ],
)
def test_parse_url_locations(url: str, database: str) -> None:
    assert parse_url(url) == (database, {})


def test_parse_url_options() -> None:
    database, options = parse_url(
        "sqlite:////tmp/q.db?table_prefix=app_&readers=4&busy_timeout=2.5&busy_retries=7"
        "&journal_mode=WAL&synchronous=FULL&cached_statements=64&inline_writes=false"
    )
    assert database == "/tmp/q.db"
    assert options == {
        "table_prefix": "app_",
        "readers": 4,
        "busy_timeout": 2.5,
        "busy_retries": 7,
        "journal_mode": "WAL",
        "synchronous": "FULL",
        "cached_statements": 64,
        "inline_writes": False,
    }
    assert parse_url("sqlite:///q.db?inline_writes=1")[1] == {"inline_writes": True}


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://localhost/db",
        "sqlite:/jobs.db",
        "sqlite://",
        "sqlite:///",
        "sqlite://host/jobs.db",
        "sqlite:///jobs.db?colour=blue",
        "sqlite:///jobs.db?readers=many",
        "sqlite:///jobs.db?inline_writes=maybe",
    ],
)
def test_parse_url_rejects(url: str) -> None:
    with pytest.raises(UsageError):
        parse_url(url)


async def test_from_url_opens_a_file_database(tmp_path: Path) -> None:
    path = tmp_path / "sub dir" / "jobs.db"
    path.parent.mkdir()
    adapter = await from_url(f"sqlite:///{path}?table_prefix=app_", readers=1)
    try:
        assert isinstance(adapter, SqliteStateAdapter)
        assert adapter.table_prefix == "app_"
        assert adapter.provider.database == str(path)
        assert len(adapter.provider._readers) == 1
        await adapter.migrate()
    finally:
        await adapter.close()
    assert path.exists()


async def test_from_url_keyword_options_override_the_query(tmp_path: Path) -> None:
    adapter = await from_url(f"sqlite:///{tmp_path / 'q.db'}?table_prefix=a_", table_prefix="b_")
    try:
        assert adapter.table_prefix == "b_"
    finally:
        await adapter.close()


async def test_from_url_validates_the_prefix(tmp_path: Path) -> None:
    with pytest.raises(InvalidIdentifierError):
        await from_url(f"sqlite:///{tmp_path / 'q.db'}?table_prefix=bad-prefix")


def test_entry_point_is_registered() -> None:
    (entry,) = [ep for ep in entry_points(group="queuert.state_adapters") if ep.name == "sqlite"]
    assert entry.load() is from_url


async def test_core_finds_the_adapter_by_scheme(tmp_path: Path) -> None:
    adapter = await open_state_adapter(f"sqlite:///{tmp_path / 'cli.db'}")
    try:
        assert isinstance(adapter, SqliteStateAdapter)
        result = await adapter.migrate()
        assert result.applied and not result.skipped
    finally:
        await adapter.close()
