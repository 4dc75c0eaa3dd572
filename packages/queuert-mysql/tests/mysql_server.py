"""A private, throwaway MySQL or MariaDB server for tests that must restart the server.

Never restart the shared server other people test against: this initialises a data directory in a
temporary directory, starts the server on a spare loopback port (root without a password, a
database ``test``), and removes everything at the end. The server binary is
``QUEUERT_MYSQL_SERVER`` or, by default, the first of ``mariadbd`` and ``mysqld`` found on the
``PATH`` or in ``/usr/sbin``; MariaDB's data directory is made with ``mariadb-install-db``, MySQL's
with ``mysqld --initialize-insecure``. As root the server runs as the ``mysql`` user.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pymysql


def server_binary() -> Path:
    configured = os.environ.get("QUEUERT_MYSQL_SERVER")
    if configured:
        return Path(configured)
    for name in ("mariadbd", "mysqld"):
        found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/local/sbin")
        if found:
            return Path(found)
    raise RuntimeError("no mariadbd or mysqld found (set QUEUERT_MYSQL_SERVER)")


def _spare_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class PrivateServer:
    """A server in a temporary directory: :meth:`start`, :meth:`restart`, :meth:`stop`."""

    def __init__(self, binary: Path | None = None) -> None:
        self.binary = binary or server_binary()
        self.root = Path(tempfile.mkdtemp(prefix="queuert-mysql-", dir="/tmp"))
        self.data = self.root / "data"
        self.port = _spare_port()
        self.url = f"mysql://root@127.0.0.1:{self.port}/test"
        self._as_root = os.geteuid() == 0
        self._process: subprocess.Popen[bytes] | None = None
        version = subprocess.run(
            [str(self.binary), "--version"], check=True, capture_output=True, text=True
        ).stdout
        self.mariadb = "mariadb" in version.lower()

    def _user(self) -> list[str]:
        return ["--user=mysql"] if self._as_root else []

    def _initialise(self) -> None:
        if self._as_root:
            shutil.chown(self.root, "mysql", "mysql")
        if self.mariadb:
            install = shutil.which("mariadb-install-db", path=f"{self.binary.parent.parent}/bin")
            command = [
                install or "mariadb-install-db",
                "--no-defaults",
                *self._user(),
                f"--datadir={self.data}",
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
            ]
        else:
            command = [
                str(self.binary),
                "--no-defaults",
                "--initialize-insecure",
                *self._user(),
                f"--datadir={self.data}",
            ]
        subprocess.run(command, check=True, capture_output=True)

    def _launch(self) -> None:
        self._process = subprocess.Popen(
            [
                str(self.binary),
                "--no-defaults",
                *self._user(),
                f"--datadir={self.data}",
                f"--port={self.port}",
                "--bind-address=127.0.0.1",
                f"--socket={self.root / 'sock'}",
                f"--pid-file={self.root / 'pid'}",
                f"--log-error={self.root / 'error.log'}",
                "--innodb-buffer-pool-size=64M",
                "--max-connections=300",
                *([] if self.mariadb else ["--mysqlx=OFF"]),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )

    def _wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                pymysql.connect(host="127.0.0.1", port=self.port, user="root").close()
                return
            except pymysql.err.OperationalError:
                if self._process is not None and self._process.poll() is not None:
                    raise RuntimeError(f"the server exited: {self.error_log()}") from None
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def error_log(self) -> str:
        path = self.root / "error.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    def start(self) -> None:
        self._initialise()
        self._launch()
        self._wait_ready()
        conn = pymysql.connect(host="127.0.0.1", port=self.port, user="root")
        try:
            with conn.cursor() as cur:
                cur.execute("CREATE DATABASE IF NOT EXISTS test")
        finally:
            conn.close()

    def _shut_down(self) -> None:
        """A normal shutdown (SIGTERM): clients are disconnected, open transactions roll back."""
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)
            try:
                self._process.wait(60)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()

    async def restart(self) -> None:
        """Shut the server down and start it again on the same port and data."""
        await asyncio.to_thread(self._shut_down)
        self._launch()
        await asyncio.to_thread(self._wait_ready)

    def stop(self) -> None:
        try:
            if self._process is not None and self._process.poll() is None:
                self._process.kill()
                self._process.wait()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
