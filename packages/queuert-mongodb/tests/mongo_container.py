"""The test session's servers from testcontainers, where Docker runs (GitHub, a contributor's laptop).

``QUEUERT_MONGODB_IMAGE=mongo:7.0`` (any MongoDB 6.0+ image) makes the session start that image
twice, once, before the tests import their helpers: a one-node replica set (``rs0``, test commands
enabled: the failpoint cases use it) and a standalone server (the cases that check that a
standalone server is refused). It points ``QUEUERT_MONGODB_URL``, ``QUEUERT_MONGODB_FAILPOINT_URL``
and ``QUEUERT_MONGODB_STANDALONE_URL`` at them; pytest-xdist's workers and the worker processes
the tests spawn inherit the URLs from the session that started them.
``QUEUERT_MONGODB_TOPOLOGY=replicaset`` leaves the standalone server out. Without the image
variable the tests use ``QUEUERT_MONGODB_URL``, else a SecantusDB they start themselves. Needs
``testcontainers`` (``uv run --with testcontainers pytest packages/queuert-mongodb``).

The replica set's member is named ``localhost:27017`` inside its container, so the URLs connect
with ``directConnection=true``: the driver talks to the mapped port and never to the member's own
address, and transactions and change streams work as on any primary.
"""

from __future__ import annotations

import os
import time
from typing import Any

_started: list[Any] = []


def _wait(url: str, ready: str, deadline: float) -> None:
    """Wait until the server at ``url`` answers ``hello`` with ``ready`` true (or just answers)."""
    from pymongo import MongoClient
    from pymongo.errors import PyMongoError

    while True:
        try:
            client: MongoClient[dict[str, Any]] = MongoClient(url, serverSelectionTimeoutMS=2000)
            with client:
                reply = client.admin.command("hello")
                if not ready or reply.get(ready):
                    return
        except PyMongoError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"the MongoDB container at {url} did not become ready")
        time.sleep(0.5)


def _start(image: str, *command: str) -> str:
    from testcontainers.core.container import DockerContainer

    container = DockerContainer(image).with_exposed_ports(27017)
    if command:
        container = container.with_command(list(command))
    container.start()
    _started.append(container)
    host = container.get_container_host_ip()
    port = container.get_exposed_port(27017)
    return f"mongodb://{host}:{port}/?directConnection=true"


def start_if_asked() -> None:
    """Start ``QUEUERT_MONGODB_IMAGE``'s servers and set the URLs, once per test session."""
    image = os.environ.get("QUEUERT_MONGODB_IMAGE")
    if not image or os.environ.get("QUEUERT_MONGODB_CONTAINERS"):
        return
    from pymongo import MongoClient

    topology = os.environ.get("QUEUERT_MONGODB_TOPOLOGY", "replicaset,standalone").split(",")
    deadline = time.monotonic() + 180
    try:
        rs = _start(
            image, "--replSet", "rs0", "--bind_ip_all", "--setParameter", "enableTestCommands=1"
        )
        _wait(rs, "", deadline)
        client: MongoClient[dict[str, Any]] = MongoClient(rs)
        with client:
            client.admin.command(
                "replSetInitiate",
                {"_id": "rs0", "members": [{"_id": 0, "host": "localhost:27017"}]},
            )
        _wait(rs, "isWritablePrimary", deadline)
        os.environ["QUEUERT_MONGODB_URL"] = rs
        os.environ["QUEUERT_MONGODB_FAILPOINT_URL"] = rs
        if "standalone" in topology:
            standalone = _start(image)
            _wait(standalone, "", deadline)
            os.environ["QUEUERT_MONGODB_STANDALONE_URL"] = standalone
    except BaseException:
        stop()
        raise
    os.environ["QUEUERT_MONGODB_CONTAINERS"] = ",".join(
        c.get_wrapped_container().id for c in _started
    )


def stop() -> None:
    """Stop the containers this session started, if any."""
    while _started:
        _started.pop().stop()
