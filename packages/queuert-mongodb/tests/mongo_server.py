"""The MongoDB server of a test session: ``QUEUERT_MONGODB_URL`` when set (CI's real MongoDB), else
a SecantusDB (a MongoDB wire-protocol server on WiredTiger, PyPI ``secantusdb``) started here on a
free port with its data in a temporary directory, owned by this process and stopped at the end."""

from __future__ import annotations

import atexit
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pymongo import MongoClient

__all__ = ["SecantusServer", "free_port", "owned", "server_url", "stop"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _binary() -> str:
    found = shutil.which("secantusd-py") or str(Path(sys.executable).with_name("secantusd-py"))
    if not Path(found).exists():
        raise RuntimeError(
            "no MongoDB for the tests: set QUEUERT_MONGODB_URL or install secantusdb "
            "(uv sync installs it on Python 3.10-3.13)"
        )
    return found


class SecantusServer:
    """A private SecantusDB: ``start()`` returns once it answers a ping; ``stop()`` terminates it
    (its data stays in ``data_dir`` for a restart with ``start()`` until ``remove()``)."""

    def __init__(self, *, standalone: bool = False, test_commands: bool = False) -> None:
        self.port = free_port()
        self.data_dir = tempfile.mkdtemp(prefix="queuert-secantus-")
        self.standalone = standalone
        self.test_commands = test_commands
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        if self.standalone:
            return f"mongodb://127.0.0.1:{self.port}/?directConnection=true"
        return f"mongodb://127.0.0.1:{self.port}/?replicaSet=secantus"

    def start(self) -> None:
        args = [
            _binary(),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--storage-path",
            os.path.join(self.data_dir, "db"),
            "--log-level",
            "WARNING",
        ]
        if self.standalone:
            args.append("--standalone")
        if self.test_commands:
            args.append("--enable-test-commands")
        log = open(os.path.join(self.data_dir, "server.log"), "ab")  # noqa: SIM115
        self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + 60
        client: MongoClient[dict[str, object]] = MongoClient(
            f"mongodb://127.0.0.1:{self.port}/?directConnection=true",
            serverSelectionTimeoutMS=500,
        )
        try:
            while True:
                if self.process.poll() is not None:
                    raise RuntimeError(f"SecantusDB exited with {self.process.returncode}")
                try:
                    client.admin.command("ping")
                    return
                except Exception:
                    if time.monotonic() > deadline:
                        raise
        finally:
            client.close()

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def kill(self) -> None:
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.data_dir, ignore_errors=True)


_session_server: SecantusServer | None = None


def server_url() -> str:
    """The URL of this session's server (started on first use)."""
    global _session_server
    url = os.environ.get("QUEUERT_MONGODB_URL")
    if url:
        return url
    if _session_server is None:
        _session_server = SecantusServer()
        atexit.register(stop)  # also when pytest_unconfigure does not run in this process
        _session_server.start()
        # child processes of the tests (spawned workers) use the same server
        os.environ["QUEUERT_MONGODB_URL"] = _session_server.url
    return _session_server.url


def owned(url: str) -> bool:
    """True if ``url`` is the server this process started (no other process's tests use it)."""
    return _session_server is not None and _session_server.url == url


def stop() -> None:
    global _session_server
    if _session_server is not None:
        _session_server.remove()
        _session_server = None
        os.environ.pop("QUEUERT_MONGODB_URL", None)
