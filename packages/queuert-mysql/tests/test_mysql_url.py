"""``from_url`` and the ``queuert.state_adapters`` entry points used by ``queuert migrate --dsn``
and ``queuert worker --dsn``."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from importlib.metadata import entry_points

import pytest
from mysql_helpers import URL, drop_prefix, unique_prefix
from queuert.backends import open_state_adapter
from queuert.errors import InvalidIdentifierError, UsageError
from queuert_mysql import MIGRATIONS, MysqlStateAdapter, from_url

QUEUERT = shutil.which("queuert")


def test_entry_points_are_registered() -> None:
    names = {ep.name: ep.value for ep in entry_points(group="queuert.state_adapters")}
    assert names.get("mysql") == "queuert_mysql:from_url"
    assert names.get("mariadb") == "queuert_mysql:from_url"


@pytest.mark.parametrize("scheme", ["mysql", "mariadb"])
async def test_open_by_url_with_the_prefix_in_the_query(scheme: str) -> None:
    prefix = unique_prefix()
    url = URL.replace("mysql://", f"{scheme}://") + f"?table_prefix={prefix}&pool_max_size=2"
    adapter = await open_state_adapter(url)
    try:
        assert isinstance(adapter, MysqlStateAdapter)
        assert adapter.names.prefix == prefix
        result = await adapter.migrate()
        assert result.applied == [m.name for m in MIGRATIONS]
    finally:
        await adapter.close()
        await drop_prefix(prefix)


async def test_bad_urls_and_identifiers_are_clear_errors() -> None:
    with pytest.raises(UsageError):
        await from_url("postgresql://localhost/db")
    with pytest.raises(InvalidIdentifierError):
        await from_url(URL + "?table_prefix=bad-name")
    with pytest.raises(UsageError):
        await from_url(URL + "?no_such_option=1")
    with pytest.raises(UsageError):
        await from_url(URL + "?pool_max_size=many")


def test_the_command_line_migrates_a_mysql_database() -> None:
    assert QUEUERT is not None, "the queuert command is installed with queuert-core"
    prefix = unique_prefix()
    dsn = f"{URL}?table_prefix={prefix}"
    try:
        first = subprocess.run(
            [QUEUERT, "migrate", "--dsn", dsn],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
        assert "applied" in first.stdout and MIGRATIONS[0].name in first.stdout
        again = subprocess.run(
            [QUEUERT, "migrate", "--dsn", dsn],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
        assert "up to date" in again.stdout
    finally:
        asyncio.run(drop_prefix(prefix))
