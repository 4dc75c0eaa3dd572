"""A private, throwaway PostgreSQL cluster for tests that must restart or stop the server.

Never restart the shared server other people test against: these tests run ``initdb`` into a
temporary directory, start the server on a spare loopback port with trust authentication, and remove
everything at the end. The binaries come from ``QUEUERT_PG_BIN`` (the version matrix points it at the
version under test) or, by default, the Debian PostgreSQL 15 build. PostgreSQL refuses to run as
root, so as root every server command runs as the ``postgres`` user.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

DEFAULT_BIN = "/usr/lib/postgresql/15/bin"


def pg_bin() -> Path:
    return Path(os.environ.get("QUEUERT_PG_BIN", DEFAULT_BIN))


def _spare_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class PrivateCluster:
    """``initdb`` + ``pg_ctl`` in a temporary directory; :meth:`stop` removes it."""

    def __init__(self, bindir: Path | None = None) -> None:
        self.bindir = bindir or pg_bin()
        # as root, a directory the postgres user can reach whatever TMPDIR says
        where = "/tmp" if os.geteuid() == 0 else None
        self.root = Path(tempfile.mkdtemp(prefix="queuert-pg-", dir=where))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.port = _spare_port()
        self.dsn = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self._as_postgres = os.geteuid() == 0
        self.started = False

    def _command(self, *args: str) -> list[str]:
        if self._as_postgres:
            return ["runuser", "-u", "postgres", "--", *args]
        return list(args)

    def _pg_ctl(self, *args: str) -> list[str]:
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c full_page_writes=off -c max_connections=200"
        )
        return self._command(
            str(self.bindir / "pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.log),
            "-o",
            options,
            "-w",
            "-t",
            "60",
            *args,
        )

    def start(self) -> None:
        if not (self.bindir / "initdb").exists():
            raise RuntimeError(f"no PostgreSQL binaries in {self.bindir} (set QUEUERT_PG_BIN)")
        if self._as_postgres:
            shutil.chown(self.root, "postgres", "postgres")
        subprocess.run(
            self._command(
                str(self.bindir / "initdb"),
                "-D",
                str(self.data),
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
            ),
            check=True,
            capture_output=True,
        )
        subprocess.run(self._pg_ctl("start"), check=True, capture_output=True)
        self.started = True

    def restart_command(self) -> list[str]:
        """The command of :meth:`restart`, for a tool that restarts the server itself."""
        return self._pg_ctl("-m", "fast", "restart")

    async def restart(self) -> None:
        """``pg_ctl restart -m fast``: disconnects every client, aborts open transactions."""
        process = await asyncio.create_subprocess_exec(
            *self.restart_command(),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await process.communicate()
        if process.returncode != 0:
            raise RuntimeError(f"pg_ctl restart failed: {out.decode(errors='replace')}")

    def stop(self) -> None:
        try:
            if self.started:
                subprocess.run(
                    self._command(
                        str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop"
                    ),
                    check=False,
                    capture_output=True,
                )
                self.started = False
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
