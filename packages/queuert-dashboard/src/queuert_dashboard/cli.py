"""``queuert dashboard``: serve the dashboard over a state store with uvicorn.

The core's ``queuert`` command finds this command through the ``queuert.commands`` entry point and
imports this module only when the command runs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import Any

__all__ = ["main", "serve"]

logger = logging.getLogger("queuert.dashboard")


async def serve(dsn: str, *, host: str, port: int, read_only: bool, root_path: str = "") -> None:
    """Open the state store at ``dsn`` and serve the dashboard until interrupted."""
    import uvicorn
    from queuert import Client
    from queuert.backends import open_state_adapter

    from queuert_dashboard.app import create_dashboard

    class Server(uvicorn.Server):
        async def startup(self, sockets: list[Any] | None = None) -> None:
            await super().startup(sockets)
            if self.started:
                bound = self.servers[0].sockets[0].getsockname()[1] if self.servers else port
                print(
                    f"queuert dashboard listening on http://{host}:{bound}{root_path}/", flush=True
                )
                logger.info(
                    "dashboard listening",
                    extra={"host": host, "port": bound, "read_only": read_only},
                )

    async with open_state_adapter(dsn) as state, Client(state) as client:
        app = create_dashboard(client, read_only=read_only)
        config = uvicorn.Config(
            app, host=host, port=port, root_path=root_path, log_level="warning", lifespan="off"
        )
        await Server(config).serve()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="queuert dashboard", description="serve the queuert dashboard over a state store"
    )
    parser.add_argument("--dsn", required=True, help="e.g. sqlite:///jobs.db or postgresql://...")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    parser.add_argument(
        "--port", type=int, default=8000, help="port to listen on (8000; 0: any free port)"
    )
    parser.add_argument("--read-only", action="store_true", help="show everything, allow no action")
    parser.add_argument(
        "--root-path", default="", help="path prefix when served behind a proxy under a path"
    )
    args = parser.parse_args(argv)
    try:
        import uvicorn  # noqa: F401
    except ImportError:
        parser.exit(2, "queuert dashboard needs uvicorn: pip install 'queuert-dashboard[server]'\n")
    with contextlib.suppress(KeyboardInterrupt):  # uvicorn re-raises the Ctrl-C it stopped on
        asyncio.run(
            serve(
                args.dsn,
                host=args.host,
                port=args.port,
                read_only=args.read_only,
                root_path=args.root_path,
            )
        )
    return 0
