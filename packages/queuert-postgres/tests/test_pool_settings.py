"""The session settings of a pool that ``AsyncpgProvider.connect`` creates: generic plans by default
(with an opt-out, and the caller's own ``server_settings`` winning), and no session reset unless asked."""

from __future__ import annotations

from typing import Any

import pytest
from pg_helpers import DSN
from queuert_postgres import AsyncpgProvider


async def _setting(provider: AsyncpgProvider, name: str) -> Any:
    async with provider.transaction() as tx:
        return await tx.fetchval("SELECT current_setting($1)", name)


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({}, "force_generic_plan"),
        ({"generic_plans": False}, "auto"),
        ({"server_settings": {"plan_cache_mode": "force_custom_plan"}}, "force_custom_plan"),
        ({"server_settings": {"application_name": "mine"}}, "force_generic_plan"),
    ],
    ids=["default", "opt-out", "caller-wins", "caller-settings-kept"],
)
async def test_plan_cache_mode(options: dict[str, Any], expected: str) -> None:
    provider = await AsyncpgProvider.connect(DSN, min_size=1, max_size=1, **options)
    try:
        assert await _setting(provider, "plan_cache_mode") == expected
        if "server_settings" in options and "application_name" in options["server_settings"]:
            assert await _setting(provider, "application_name") == "mine"
    finally:
        await provider.close()


@pytest.mark.parametrize("reset_sessions", [False, True])
async def test_session_reset_only_when_asked(reset_sessions: bool) -> None:
    """Without ``reset_sessions`` a connection goes back to the pool as it is (no extra round trip);
    with it, asyncpg's reset clears what the session set. The generic-plans setting survives both."""
    provider = await AsyncpgProvider.connect(
        DSN, min_size=1, max_size=1, reset_sessions=reset_sessions
    )
    try:
        async with provider.pool.acquire() as conn:
            await conn.execute("SET application_name = 'changed'")
        expected = "" if reset_sessions else "changed"
        assert await _setting(provider, "application_name") == expected
        assert await _setting(provider, "plan_cache_mode") == "force_generic_plan"
    finally:
        await provider.close()
