"""The change-stream notify adapter on a SecantusDB of the test's own: a crash and a restart, a
server down at start-up, a close while down, and a stream interrupted mid-run that resumes from its
resume token without losing the message written while it was down."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from mongo_helpers import DATABASE, unique_prefix
from mongo_server import SecantusServer
from queuert_conformance.notify_worker import (
    ListenerCalls,
    adapter_down_at_start_up,
    close_while_down_leaves_no_task_behind,
    eventually,
    listeners_recover_after_a_crash,
)
from queuert_mongodb import MongoNotifyAdapter


@pytest.fixture
async def server() -> AsyncIterator[SecantusServer]:
    own = SecantusServer()
    try:
        yield own
    finally:
        await asyncio.to_thread(own.remove)


def adapter_for(server: SecantusServer, prefix: str, **options: Any) -> MongoNotifyAdapter:
    settings: dict[str, Any] = {
        "reconnect_delay": 0.05,
        "max_reconnect_delay": 0.5,
        "publish_timeout": 0.5,
        "max_await": 0.2,
    }
    settings.update(options)
    return MongoNotifyAdapter.connect(
        server.url, database=DATABASE, collection_prefix=prefix, **settings
    )


async def test_listeners_recover_after_the_server_goes_away_and_restarts(
    server: SecantusServer,
) -> None:
    await asyncio.to_thread(server.start)
    adapter = adapter_for(server, unique_prefix())
    try:
        await listeners_recover_after_a_crash(
            adapter,
            # Stopped, not killed: a killed SecantusDB may lose its last oplog entries, and then
            # numbers them again, so a stream resumed after them would skip new messages (a real
            # mongod journals them first).
            crash_server=lambda: asyncio.to_thread(server.stop),
            start_server=lambda: asyncio.to_thread(server.start),
            server="SecantusDB",
        )
    finally:
        await adapter.close()


async def test_server_down_at_start_up(server: SecantusServer) -> None:
    adapter = adapter_for(server, unique_prefix())
    try:
        await adapter_down_at_start_up(
            adapter, start_server=lambda: asyncio.to_thread(server.start)
        )
    finally:
        await adapter.close()


async def test_close_while_the_server_is_down(server: SecantusServer) -> None:
    prefix = unique_prefix()
    await close_while_down_leaves_no_task_behind(lambda: adapter_for(server, prefix))


async def test_a_stream_interrupted_mid_run_resumes_without_losing_a_message(
    server: SecantusServer,
) -> None:
    """The server restarts while a chain-closed message is written: the listener, still backing off
    when it is written, gets it from its resumed stream (not only its catch-up call)."""
    await asyncio.to_thread(server.start)
    prefix = unique_prefix()
    # backs off at least 5 s after the drop: the message below is written before it resumes
    listener = adapter_for(server, prefix, reconnect_delay=10.0, max_reconnect_delay=10.0)
    publisher = adapter_for(server, prefix, publish_timeout=5.0)
    try:
        calls = ListenerCalls()
        await listener.listen_chain_closed("chain-1", calls.bind("chain-1"))
        scheduled = ListenerCalls()
        await listener.listen_job_scheduled(["mail"], scheduled)
        await publisher.notify_chain_closed("chain-1")
        await calls.wait_for(1)

        await asyncio.to_thread(server.stop)
        await eventually(
            lambda: listener.listening_cursor_id is None, timeout=15, what="the drop to be seen"
        )
        await asyncio.to_thread(server.start)
        await publisher.notify_job_scheduled("mail")
        assert listener.reconnects == 0, "the listener resumed before the message was written"

        # the catch-up call ("mail" once) and the message itself ("mail" again)
        await scheduled.wait_for(2, timeout=30)
        assert scheduled.calls == ["mail", "mail"]
        await calls.wait_for(2)  # the chain listener's catch-up call
        assert listener.reconnects == 1
    finally:
        await publisher.close()
        await listener.close()
