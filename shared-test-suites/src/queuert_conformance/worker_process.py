"""Worker *processes* for an adapter's multi-process resilience tests: the body of a worker script
and the :class:`Fleet` that starts, stops and kills such scripts.

An adapter's tests keep a small script that parses its own options (where the store is), adds
these with :func:`add_worker_arguments`, opens its state and notify adapters and hands them to
:func:`run_worker_process`. It processes the job types of :mod:`queuert_conformance.resilience`
until SIGTERM. Each attempt first writes a marker file ``<markers>/<job id>.<pid>.<attempt
number>`` with a JSON line (job, type, worker id, pid, attempt, mode, wall-clock time), so the test
sees which process ran which job and when.

* ``--job-seconds S``: every handler works S seconds (in staged mode, or atomic for even inputs
  with ``--mode mixed``) before it completes.
* ``--hang-after K``: after K attempts have started, every further attempt writes its marker and
  then a ``hanging.<pid>.<job id>`` marker and never returns: the test SIGKILLs the process
  mid-job.
* ``--ready FILE``: written once the worker has started.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from queuert import Attempt, Backoff, Client, Lease, Worker
from queuert.notify import NotifyAdapter
from queuert.state import StateAdapter

from queuert_conformance.resilience import (
    JOB_TYPES,
    N,
    RFinish,
    RJoin,
    RLeaf,
    RStart,
    Workload,
    start_workload,
    wait_until,
)

__all__ = [
    "Fleet",
    "KilledRun",
    "StoreChecks",
    "WorkerProcess",
    "add_worker_arguments",
    "kill_one_mid_job",
    "run_worker_process",
    "sigkill_mid_job",
]


def write_atomically(path: Path, text: str) -> None:
    """Readers see the whole file or none (written under a hidden name, then renamed)."""
    hidden = path.with_name(f".{path.name}.tmp")
    hidden.write_text(text)
    os.replace(hidden, path)


def add_worker_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The options every worker script takes (:class:`Fleet` passes the first four)."""
    parser.add_argument("--channel-prefix", required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--markers", required=True)
    parser.add_argument("--ready", required=True)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--lease", type=float, default=2.0)
    parser.add_argument("--renew-every", type=float, default=0.5)
    parser.add_argument("--reap-interval", type=float, default=0.25)
    parser.add_argument("--poll-interval", type=float, default=1.0)
    parser.add_argument("--job-seconds", type=float, default=0.02)
    parser.add_argument("--mode", choices=["staged", "mixed"], default="staged")
    parser.add_argument("--hang-after", type=int, default=0)
    return parser


async def run_worker_process(
    args: argparse.Namespace, state: StateAdapter[Any], notify: NotifyAdapter
) -> None:
    """Run a worker with the options of :func:`add_worker_arguments` until SIGTERM, then close it
    and ``state`` and ``notify``."""
    markers = Path(args.markers)
    client: Client[Any] = Client(state, job_types=JOB_TYPES, notify=notify)
    pid = os.getpid()
    started = 0
    never = asyncio.Event()

    async def begin(attempt: Attempt[Any]) -> None:
        """Mark the attempt, choose its mode, hang if asked, then do the work."""
        nonlocal started
        started += 1
        value = attempt.input.value
        atomic = args.mode == "mixed" and value % 2 == 0
        await attempt.prepare("atomic" if atomic else "staged")
        mark = {
            "job": attempt.job.id,
            "type": attempt.job.type_name,
            "worker": attempt.worker_id,
            "pid": pid,
            "attempt": attempt.number,
            "mode": "atomic" if atomic else "staged",
            "t": time.time(),
        }
        path = markers / f"{attempt.job.id}.{pid}.{attempt.number}"
        write_atomically(path, json.dumps(mark))
        if args.hang_after and started > args.hang_after:
            write_atomically(markers / f"hanging.{pid}.{attempt.job.id}", json.dumps(mark))
            await never.wait()
        await asyncio.sleep(args.job_seconds)

    async def start(attempt: Attempt[RStart]) -> None:
        await begin(attempt)
        await attempt.complete(RFinish(N(attempt.input.value)))

    async def finish(attempt: Attempt[RFinish]) -> None:
        await begin(attempt)
        await attempt.complete(N(2 * attempt.input.value + 1))

    async def leaf(attempt: Attempt[RLeaf]) -> None:
        await begin(attempt)
        await attempt.complete(N(attempt.input.value))

    async def join(attempt: Attempt[RJoin]) -> None:
        await begin(attempt)
        total = attempt.input.value + sum(chain.output.value for chain in attempt.blockers)
        await attempt.complete(N(total))

    worker: Worker[Any] = Worker(
        client,
        name=args.name,
        concurrency=args.concurrency,
        handlers={RStart: start, RFinish: finish, RLeaf: leaf, RJoin: join},
        poll_interval=args.poll_interval,
        lease=Lease(duration=args.lease, renew_every=args.renew_every),
        reap_interval=args.reap_interval,
        backoff=Backoff(initial=0.05, maximum=0.2),
        recovery_backoff=Backoff(initial=0.05, maximum=0.5),
        shutdown_timeout=5,
    )
    try:
        await worker.start()
        info = json.dumps({"worker": worker.id, "pid": pid})
        await asyncio.to_thread(write_atomically, Path(args.ready), info)
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()
    finally:
        await worker.close()
        await client.close()
        await notify.close()
        await state.close()


STOP_TIMEOUT = 45.0
"""Seconds a worker process may take to stop after SIGTERM. Its graceful shutdown is bounded at
about 21 s (the worker's loop, ``shutdown_timeout=5`` for running jobs, closing its adapters),
so this is about twice that, for a loaded machine: a stop that takes longer is a hang."""


class WorkerProcess:
    """One started worker script: its name, OS process, log file, worker id and pid."""

    def __init__(self, name: str, process: asyncio.subprocess.Process, log: Path) -> None:
        self.name = name
        self.process = process
        self.log = log
        self.worker_id = ""
        self.pid = 0


class Fleet:
    """Worker scripts started with ``command`` (the interpreter, the script and where the store
    is) in the directory ``root``; :meth:`close` kills every one still running."""

    def __init__(self, root: Path, command: list[str]) -> None:
        self.root = root
        self.command = command
        self.channel_prefix = f"qt{uuid.uuid4().hex[:12]}"
        self.processes: list[WorkerProcess] = []
        self.markers.mkdir(exist_ok=True)

    @property
    def markers(self) -> Path:
        return self.root / "markers"

    async def spawn(self, name: str, *options: str) -> WorkerProcess:
        """Start a worker named ``name`` (more options of :func:`add_worker_arguments` in
        ``options``) and return once it has started."""
        tag = f"{name}-{len(self.processes)}"
        ready = self.root / f"{tag}.ready"
        log = self.root / f"{tag}.log"
        with log.open("wb") as out:
            process = await asyncio.create_subprocess_exec(
                *self.command,
                "--channel-prefix",
                self.channel_prefix,
                "--name",
                name,
                "--markers",
                str(self.markers),
                "--ready",
                str(ready),
                *options,
                stdout=out,
                stderr=asyncio.subprocess.STDOUT,
            )
        handle = WorkerProcess(name, process, log)
        self.processes.append(handle)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        while not ready.exists():
            if process.returncode is not None or loop.time() > deadline:
                raise AssertionError(f"worker {tag} did not start:\n{log.read_text()}")
            await asyncio.sleep(0.02)
        info = json.loads(ready.read_text())
        handle.worker_id, handle.pid = info["worker"], info["pid"]
        return handle

    async def stop(self, handle: WorkerProcess) -> int:
        """SIGTERM (graceful shutdown) and the exit code, within :data:`STOP_TIMEOUT`."""
        handle.process.send_signal(signal.SIGTERM)
        try:
            return await asyncio.wait_for(handle.process.wait(), STOP_TIMEOUT)
        except asyncio.TimeoutError:
            handle.process.kill()
            await handle.process.wait()
            raise AssertionError(f"{handle.name} did not stop:\n{handle.log.read_text()}") from None

    def marks(self) -> list[dict[str, Any]]:
        return [
            json.loads(p.read_text())
            for p in self.markers.iterdir()
            if not p.name.startswith(("hanging.", "."))
        ]

    def hanging(self, pid: int) -> list[dict[str, Any]]:
        return [json.loads(p.read_text()) for p in self.markers.glob(f"hanging.{pid}.*")]

    def logs(self) -> str:
        """The output of every worker process (for failure messages)."""
        return "\n".join(
            f"--- {h.name} ({h.worker_id}):\n{h.log.read_text()}" for h in self.processes
        )

    async def close(self) -> None:
        for handle in self.processes:
            if handle.process.returncode is None:
                handle.process.kill()
                with contextlib.suppress(Exception):
                    await handle.process.wait()


@dataclass
class StoreChecks:
    """How :func:`sigkill_mid_job` reads an adapter's store (with the adapter's own queries)."""

    wait_all_closed: Callable[[int, float], Awaitable[float]]
    """``(expected, timeout)``: wait until that many chains are closed."""
    check_exactly_once: Callable[[Workload], Awaitable[None]]
    """Every chain of the workload closed exactly once (rows and audit of outcome writes)."""
    completed_by: Callable[[list[str]], Awaitable[dict[str, str]]]
    """The ``completed_by`` worker id of each of these jobs."""


@dataclass
class KilledRun:
    """What :func:`kill_one_mid_job` leaves for the checks of a test."""

    victim: WorkerProcess
    survivor: WorkerProcess
    replacement: WorkerProcess
    work: Workload
    hung: dict[str, dict[str, Any]]
    """The markers of the jobs the victim's handlers hung in when it was killed, by job id."""
    killed_at: float
    """Wall-clock time of the SIGKILL (the markers' ``t`` use the same clock)."""

    def reruns(self, marks: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
        """The runs of every job that ran more than once, by attempt; checks that no attempt
        number ran twice."""
        attempts = Counter((m["job"], m["attempt"]) for m in marks)
        assert all(n == 1 for n in attempts.values()), "an attempt ran twice"
        by_job: dict[str, list[dict[str, Any]]] = {}
        for m in sorted(marks, key=lambda m: m["attempt"]):
            by_job.setdefault(m["job"], []).append(m)
        rerun = {job: runs for job, runs in by_job.items() if len(runs) > 1}
        assert set(self.hung) <= set(rerun), "every hung job was run again"
        return rerun


async def kill_one_mid_job(
    fleet: Fleet,
    client: Client[Any],
    wait_all_closed: Callable[[int, float], Awaitable[float]],
    options: tuple[str, ...],
    *,
    two_step: int = 240,
    joins: int = 12,
    hang_timeout: float = 30,
    close_timeout: float = 60,
) -> KilledRun:
    """Two worker processes (``options``) process a workload; one of them is SIGKILLed while its
    four handlers hang inside jobs, and a new process starts under the same worker name. Waits
    until every chain closed, checks that the survivor still processes a chain started then, and
    stops both processes gracefully."""
    victim = await fleet.spawn("victim", *options, "--hang-after=60")
    survivor = await fleet.spawn("survivor", *options)
    work = await start_workload(client, two_step=two_step, joins=joins)
    assert work.chains == two_step + 5 * joins

    # The victim's handlers hang inside their jobs once it has started 60 attempts: wait until all
    # four of its slots are inside a job, then SIGKILL it.
    await wait_until(
        lambda: len(fleet.hanging(victim.pid)) == 4, timeout=hang_timeout, what="the victim to hang"
    )
    hung = {m["job"]: m for m in fleet.hanging(victim.pid)}
    killed_at = time.time()
    os.kill(victim.pid, signal.SIGKILL)
    assert await asyncio.wait_for(victim.process.wait(), 10) == -signal.SIGKILL
    # A new process under the same worker name (a new worker id) joins.
    replacement = await fleet.spawn("victim", *options)
    assert replacement.worker_id != victim.worker_id

    await wait_all_closed(work.chains, close_timeout)
    # The survivor kept going: a chain started now is still processed.
    extra = Workload()
    async with client.transaction() as tx:
        extra.leaves = await client.start_chains([RLeaf(N(900_000 + i)) for i in range(20)], tx=tx)
    work.extend(extra)
    await wait_all_closed(work.chains, 30)
    assert survivor.process.returncode is None, "the surviving worker process kept running"
    assert await fleet.stop(survivor) == 0
    assert await fleet.stop(replacement) == 0
    return KilledRun(victim, survivor, replacement, work, hung, killed_at)


async def sigkill_mid_job(
    fleet: Fleet,
    client: Client[Any],
    store: StoreChecks,
    *,
    lease: float,
    renew_every: float,
    reap_interval: float,
) -> str:
    """:func:`kill_one_mid_job` in staged mode. Checks that every chain completes exactly once,
    that only the killed worker's jobs ran again and within about one lease of the kill, and that
    the surviving process kept going. Returns a line that describes the run."""
    options = (
        "--concurrency=4",
        f"--lease={lease}",
        f"--renew-every={renew_every}",
        f"--reap-interval={reap_interval}",
        "--job-seconds=0.02",
    )
    run = await kill_one_mid_job(fleet, client, store.wait_all_closed, options)
    victim, survivor, replacement = run.victim, run.survivor, run.replacement
    await store.check_exactly_once(run.work)
    marks = fleet.marks()
    # A job runs again only after its lease was taken back. The jobs the victim held when it died -
    # the four hung ones, and any whose completion it had not written yet (a finished handler frees
    # its slot before its completion is written) - were run again by another process, within about
    # one lease of the kill. No other job ran twice.
    rerun = run.reruns(marks)
    delays = []
    for job_id, runs in rerun.items():
        first, again = runs[-2], runs[-1]
        assert first["pid"] == victim.pid, f"job {job_id} re-run although its worker lived: {runs}"
        assert again["pid"] in (survivor.pid, replacement.pid)
        delays.append(again["t"] - run.killed_at)
    bound = lease + reap_interval + 1.5
    assert max(delays) <= bound, f"reclaimed after {max(delays):.2f}s (bound {bound}s)"
    assert min(delays) >= lease - renew_every - 0.5, (
        f"reclaimed after {min(delays):.2f}s: before the lease could have expired"
    )
    # the survivor worked before and after the kill
    assert any(m["pid"] == survivor.pid and m["t"] > run.killed_at for m in marks)
    assert any(m["pid"] == survivor.pid and m["t"] < run.killed_at for m in marks)
    completed_by = await store.completed_by(list(run.hung))
    assert set(completed_by.values()) <= {survivor.worker_id, replacement.worker_id}
    return (
        f"killed worker's {len(rerun)} jobs ({len(run.hung)} hung) reclaimed "
        f"{min(delays):.2f}-{max(delays):.2f}s after SIGKILL (lease {lease}s, bound {bound}s); "
        f"the survivor ran {sum(1 for m in marks if m['pid'] == survivor.pid)} attempts, the "
        f"replacement {sum(1 for m in marks if m['pid'] == replacement.pid)}"
    )
