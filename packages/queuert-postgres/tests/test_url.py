"""``from_url`` and the ``queuert.state_adapters`` entry points used by ``queuert migrate --dsn``."""

from __future__ import annotations

from importlib.metadata import entry_points

import pytest
from pg_helpers import DSN, Namespace, unique_schema
from queuert.backends import open_state_adapter
from queuert.errors import InvalidIdentifierError, UsageError
from queuert_postgres import MIGRATIONS, PgStateAdapter, from_url


def test_entry_points_are_registered() -> None:
    names = {ep.name: ep.value for ep in entry_points(group="queuert.state_adapters")}
    assert names.get("postgresql") == "queuert_postgres:from_url"
    assert names.get("postgres") == "queuert_postgres:from_url"


@pytest.mark.parametrize("scheme", ["postgresql", "postgres"])
async def test_open_by_url_with_schema_and_prefix_in_the_query(scheme: str) -> None:
    ns = Namespace(unique_schema(), "viaurl_")
    url = DSN.replace("postgresql://", f"{scheme}://") + (
        f"?schema={ns.schema}&table_prefix={ns.prefix}&prepared_statements=false&pool_max_size=2"
    )
    adapter = await open_state_adapter(url)
    try:
        assert isinstance(adapter, PgStateAdapter)
        assert (adapter.names.schema, adapter.names.prefix) == (ns.schema, ns.prefix)
        result = await adapter.migrate()
        assert result.applied == [m.name for m in MIGRATIONS]
    finally:
        await adapter.close()
        from pg_helpers import drop_namespace

        await drop_namespace(ns)


async def test_bad_urls_and_identifiers_are_clear_errors() -> None:
    with pytest.raises(UsageError):
        await from_url("mysql://localhost/db")
    with pytest.raises(InvalidIdentifierError):
        await from_url(DSN + "?schema=bad-name")
    with pytest.raises(UsageError):
        await from_url(DSN + "?prepared_statements=maybe")


@pytest.mark.parametrize(
    ("query", "expected"), [("", "force_generic_plan"), ("?generic_plans=false", "auto")]
)
async def test_generic_plans_by_url(query: str, expected: str) -> None:
    adapter = await from_url(DSN + query)
    try:
        async with adapter.transaction() as tx:
            assert await tx.fetchval("SELECT current_setting('plan_cache_mode')") == expected
    finally:
        await adapter.close()


def test_partitioned_layout_by_url_through_the_migrate_command(
    capsys: pytest.CaptureFixture[str],
) -> None:
    import asyncio

    from pg_helpers import drop_namespace
    from queuert.cli import main

    ns = Namespace(unique_schema(), "queuert_")
    url = DSN + f"?schema={ns.schema}&partitioned=true&partition_minutes=60&partitions_ahead=2"

    async def partitions() -> list[str]:
        adapter = await from_url(url)
        try:
            assert adapter.partitioning is not None
            assert adapter.partitioning.interval.total_seconds() == 3600
            return [b.name for b in await adapter.partitions()]
        finally:
            await adapter.close()

    try:
        assert main(["migrate", "--dsn", url]) == 0
        assert "applied  layout_partitioned" in capsys.readouterr().out
        names = asyncio.run(partitions())
        # history, the current hour and the two after it, default
        assert len(names) == 5
        assert names[0].endswith("job_phistory") and names[-1].endswith("job_pdefault")
    finally:
        asyncio.run(drop_namespace(ns))


async def test_partition_options_by_url_are_checked() -> None:
    with pytest.raises(UsageError, match="partitioned=true"):
        await from_url(DSN + "?partition_minutes=60")
    with pytest.raises(UsageError, match="integer"):
        await from_url(DSN + "?partitioned=true&partition_minutes=hour")
    with pytest.raises(UsageError, match="interval"):
        await from_url(DSN + "?partitioned=true&partition_minutes=0")
