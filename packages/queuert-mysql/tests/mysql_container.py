"""The test session's server from testcontainers, where Docker runs (GitHub, a contributor's laptop).

``QUEUERT_MYSQL_IMAGE=mysql:8.4`` (or ``mariadb:11.4``, any MySQL 8.0+ / MariaDB 10.6+ image) makes
the session start that image once, before the tests import their helpers, and point
``QUEUERT_MYSQL_URL`` at it; pytest-xdist's workers inherit the URL from the session that started
it. Without the variable the tests use ``QUEUERT_MYSQL_URL`` (default: the local server). Needs
``testcontainers`` (``uv run --with testcontainers pytest packages/queuert-mysql``).
"""

from __future__ import annotations

import os
import time
from typing import Any

_started: Any = None


def start_if_asked() -> None:
    """Start ``QUEUERT_MYSQL_IMAGE`` and set ``QUEUERT_MYSQL_URL``, once per test session."""
    global _started
    image = os.environ.get("QUEUERT_MYSQL_IMAGE")
    if not image or os.environ.get("QUEUERT_MYSQL_CONTAINER"):
        return
    import pymysql
    from testcontainers.core.container import DockerContainer

    container = (
        DockerContainer(image)
        .with_env("MYSQL_ALLOW_EMPTY_PASSWORD", "yes")
        .with_env("MYSQL_DATABASE", "test")
        .with_env("MARIADB_ALLOW_EMPTY_ROOT_PASSWORD", "1")
        .with_env("MARIADB_DATABASE", "test")
        .with_exposed_ports(3306)
    )
    container.start()
    host = container.get_container_host_ip()
    port = int(container.get_exposed_port(3306))
    deadline = time.monotonic() + 180
    while True:  # the image initialises its data directory, then restarts the server once
        try:
            pymysql.connect(host=host, port=port, user="root", database="test").close()
            break
        except pymysql.err.OperationalError:
            if time.monotonic() > deadline:
                container.stop()
                raise
            time.sleep(0.5)
    os.environ["QUEUERT_MYSQL_URL"] = f"mysql://root@{host}:{port}/test"
    os.environ["QUEUERT_MYSQL_CONTAINER"] = container.get_wrapped_container().id
    _started = container


def stop() -> None:
    """Stop the container this session started, if any."""
    global _started
    if _started is not None:
        _started.stop()
        _started = None
