"""Run the MySQL adapter's tests against MySQL and MariaDB versions the host does not have.

    uv run python tools/matrix/mysql.py install                  # build the chroots (idempotent, cached)
    uv run python tools/matrix/mysql.py run                      # MariaDB 11.8 and MySQL 9.7
    uv run python tools/matrix/mysql.py run --only "MariaDB 11.8" -- -k "not Model"

It is written for a Debian bookworm host and runs as root (it builds chroots with ``debootstrap``),
like ``tools/matrix/notify.py``, whose cache (``$QUEUERT_MATRIX_DIR``) and chroots it shares:

* MariaDB 11.8: ``mariadb-server`` of a Debian trixie chroot;
* MySQL 9.7: ``mysql-server`` of a Debian sid chroot (Oracle's MySQL, Debian build).

MySQL 8.0 and 8.4 are in no Debian suite: the CI workflow covers them (and MariaDB 10.6 and 11.4)
with the official Docker images. For each server the tool initialises a data directory inside the
chroot, starts the server on a spare port of 127.0.0.1 (root without password, database ``test``),
runs ``pytest packages/queuert-mysql`` with ``QUEUERT_MYSQL_URL`` pointing at it (extra arguments
after ``--`` go to pytest), stops it, and prints a Markdown table of the results (also written to
``$QUEUERT_MATRIX_DIR/results-mysql-*.md``).
"""

from __future__ import annotations

import argparse
import datetime
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from notify import CHROOTS, MATRIX_DIR, apt_get, apt_install, chroot_mounts, log, run, spare_port

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Target:
    name: str
    suite: str
    package: str
    server: str
    """The server binary inside the chroot."""
    flavour: str  # "mariadb" or "mysql"
    version: str = ""
    result: str = "not run"
    seconds: float = 0.0


TARGETS = [
    Target("MariaDB 11.8", "trixie", "mariadb-server", "/usr/sbin/mariadbd", "mariadb"),
    Target("MySQL 9.7", "sid", "mysql-server", "/usr/sbin/mysqld", "mysql"),
]


def chroot_with(target: Target) -> Path:
    """The Debian chroot of ``target.suite`` with ``target.package`` installed."""
    root = CHROOTS / target.suite
    done = root / f".queuert-matrix-{target.package}"
    if done.exists():
        return root
    if not (root / "usr/bin/apt-get").exists():
        if shutil.which("debootstrap") is None:
            apt_install("debootstrap")
        log(f"debootstrap {target.suite}")
        root.parent.mkdir(parents=True, exist_ok=True)
        run("debootstrap", "--variant=minbase", target.suite, root, "http://deb.debian.org/debian")
    policy = root / "usr/sbin/policy-rc.d"
    policy.write_text("#!/bin/sh\nexit 101\n")
    policy.chmod(0o755)
    with chroot_mounts([root]):
        apt_get("-o", "Acquire::Check-Valid-Until=false", "update", "-q", root=root)
        log(f"{target.suite}: apt-get install {target.package}")
        apt_install(target.package, root=root)
    done.write_text("ok\n")
    return root


def wait_for_port(port: int, process: subprocess.Popen[bytes], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the server exited with {process.returncode}")
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise SystemExit(f"the server did not listen on {port} within {timeout:g} s")


def start(target: Target, root: Path, port: int) -> subprocess.Popen[bytes]:
    """Initialise a fresh data directory in the chroot and start the server on ``port``."""
    data = f"/var/lib/queuert-matrix-{port}"
    shutil.rmtree(root / data.lstrip("/"), ignore_errors=True)
    (root / data.lstrip("/")).mkdir(parents=True)
    run("chroot", root, "chown", "mysql:mysql", data)
    run("chroot", root, "mkdir", "-p", "/run/mysqld")
    run("chroot", root, "chown", "mysql:mysql", "/run/mysqld")
    if target.flavour == "mariadb":
        run(
            "chroot",
            root,
            "mariadb-install-db",
            "--user=mysql",
            f"--datadir={data}",
            "--auth-root-authentication-method=normal",
            "--skip-test-db",
            "--force",  # no resolvable host name inside the chroot
            capture_output=True,
        )
    else:
        run(
            "chroot",
            root,
            target.server,
            "--no-defaults",
            "--initialize-insecure",
            "--user=mysql",
            f"--datadir={data}",
            capture_output=True,
        )
    version = subprocess.run(
        ["chroot", str(root), target.server, "--version"], capture_output=True, text=True
    ).stdout
    match = re.search(r"Ver (\S+)", version)
    target.version = match.group(1) if match else version.strip()
    log_file = MATRIX_DIR / f"{target.flavour}-{port}.log"
    process = subprocess.Popen(
        [
            "chroot",
            str(root),
            target.server,
            "--no-defaults",
            "--user=mysql",
            f"--datadir={data}",
            f"--port={port}",
            "--bind-address=127.0.0.1",
            f"--socket=/tmp/queuert-{port}.sock",
            f"--pid-file=/tmp/queuert-{port}.pid",
        ],
        stdout=log_file.open("wb"),
        stderr=subprocess.STDOUT,
    )
    wait_for_port(port, process)
    import pymysql

    deadline = time.monotonic() + 60
    while True:
        try:
            conn = pymysql.connect(host="127.0.0.1", port=port, user="root")
            break
        except pymysql.err.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    with conn.cursor() as cur:
        cur.execute("CREATE DATABASE IF NOT EXISTS test")
    conn.close()
    return process


def run_target(target: Target, pytest_args: list[str]) -> None:
    root = chroot_with(target)
    port = spare_port()
    began = time.monotonic()
    with chroot_mounts([root]):
        process = start(target, root, port)
        try:
            env = {**os.environ, "QUEUERT_MYSQL_URL": f"mysql://root@127.0.0.1:{port}/test"}
            result = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "pytest",
                    "-q",
                    "-p",
                    "no:randomly",
                    "packages/queuert-mysql",
                    *pytest_args,
                ],
                cwd=ROOT,
                env=env,
                capture_output=True,
                text=True,
                check=False,
            )
            lines = [line for line in result.stdout.splitlines() if line.strip()]
            summary = lines[-1] if lines else result.stderr.strip().splitlines()[-1]
            target.result = summary.strip("= ")
            report = MATRIX_DIR / f"pytest-{target.flavour}-{target.version}.txt"
            report.write_text(result.stdout + result.stderr)
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    target.seconds = time.monotonic() - began


def table(targets: list[Target]) -> str:
    rows = [
        "| server | version | source | queuert-mysql tests | time |",
        "|---|---|---|---|---|",
    ]
    for t in targets:
        rows.append(
            f"| {t.name} | {t.version or '-'} | Debian {t.suite} `{t.package}` | {t.result} | "
            f"{t.seconds:.0f} s |"
        )
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("command", choices=["install", "run"])
    parser.add_argument("--only", action="append", default=[], help="a target name, repeatable")
    parser.add_argument("pytest_args", nargs="*", help="after --: arguments for pytest")
    args = parser.parse_args()
    selected = [t for t in TARGETS if not args.only or t.name in args.only]
    MATRIX_DIR.mkdir(parents=True, exist_ok=True)
    if args.command == "install":
        for target in selected:
            chroot_with(target)
        return
    for target in selected:
        log(f"{target.name}: running the tests")
        run_target(target, args.pytest_args)
        log(f"{target.name} {target.version}: {target.result}")
    text = table(selected)
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    (MATRIX_DIR / f"results-mysql-{stamp}.md").write_text(text + "\n")
    print(text)
    sys.exit(0 if all(" failed" not in t.result and "passed" in t.result for t in selected) else 1)


if __name__ == "__main__":
    main()
