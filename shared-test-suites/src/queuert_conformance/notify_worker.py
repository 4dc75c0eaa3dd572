"""Outage scenarios for a notify adapter on a server the test owns: the adapter alone, and a real worker.

The conformance suite (:mod:`queuert_conformance.notify`) runs against a live server and simulates a
lost connection with the harness's ``interrupt`` hook. The scenarios here go further: the test starts,
stops and crashes a server process of its own, and a real :class:`~queuert.Worker` keeps processing
chains meanwhile. They depend on ``queuert`` alone; the adapter-specific parts come in as arguments:

* a factory of the adapter (``open_notify(role)``, ``role`` being ``"worker"`` or ``"producer"``), or
  the adapter itself for the adapter-level scenarios;
* async callables that start, stop (the ordinary way) or crash the server, reusing its address;
* for the worker scenarios, ``open_state()``: a new state adapter (its own pool, as another process
  would have) over one migrated store; whoever provides it closes what it returned.

The adapter must count its failures the way :class:`CountingNotifyAdapter` describes. Each scenario is a
coroutine to await inside a test; it closes what it creates and asserts as it goes::

    async def test_a_worker_processes_2000_chains_through_a_restart(server, prefix, open_state):
        await server.start()
        await worker_through_a_server_restart(
            open_state=open_state,
            open_notify=lambda role: MyNotifyAdapter(server.url, prefix=prefix, name=role),
            stop_server=server.stop,
            start_server=server.start,  # the same address again
            server="MyServer",
        )

The worker polls every :data:`POLL_INTERVAL` seconds, so a pickup faster than :data:`FAST` after the
outage can only come from a notification: the adapter must find its way back by itself (the worker
is never restarted). The building blocks (job types, :class:`RunRecorder`, :func:`produce`,
:func:`probe`, :func:`check_every_chain_once`, ...) are public for scenarios of your own.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import pytest
from queuert import Attempt, Client, Continues, EntryJobType, JobType, StateAdapter, Worker
from queuert.errors import NotifyAdapterClosedError
from queuert.notify import NotifyAdapter
from queuert.observability import NoopObservability

from queuert_conformance.notify_suite._support import Recorder
from queuert_conformance.resilience import TcpProxy, silent_peer

__all__ = [
    "FAST",
    "POLL_INTERVAL",
    "PROBES",
    "CountingNotifyAdapter",
    "ListenerCalls",
    "Num",
    "RunRecorder",
    "ServerProcess",
    "WorkerFinish",
    "WorkerStart",
    "adapter_down_at_start_up",
    "check_every_chain_once",
    "close_while_down_leaves_no_task_behind",
    "eventually",
    "listeners_recover_after_a_crash",
    "probe",
    "produce",
    "silent_peer",
    "silent_server_is_given_up_on",
    "subscribers_wait_for_a_subscription_on_its_way",
    "wait_idle",
    "worker_started_while_the_server_is_down",
    "worker_through_a_server_restart",
]

POLL_INTERVAL = 2.0
"""The worker's poll interval in the worker scenarios (a realistic setting)."""

FAST = POLL_INTERVAL / 4
"""A pickup this fast did not wait for a poll (polling alone would give about POLL_INTERVAL / 2)."""

PROBES = 5
"""Chains started one at a time on an idle worker at the end of each worker scenario."""

OpenState = Callable[[], Awaitable[StateAdapter[Any]]]
Server = Callable[[], Awaitable[None]]


class CountingNotifyAdapter(NotifyAdapter, Protocol):
    """A notify adapter that counts what the failure contract lets it swallow.

    ``publish_errors``: failed ``notify_*`` and ``provide_wake_hint`` calls. ``wake_hint_errors``:
    ``consume_wake_hint`` calls that could not read the budget (and answered True). ``reconnects``: how
    many times the subscription came back (or up, late) after the server was unreachable.
    """

    @property
    def publish_errors(self) -> int: ...

    @property
    def wake_hint_errors(self) -> int: ...

    @property
    def reconnects(self) -> int: ...


# -- a server of the test's own ----------------------------------------------------------------------


class ServerProcess:
    """A server process of the test's own on a spare local port, to start, stop, crash and pause.

    ``command(port)`` gives the program and its arguments; the process has started once a line of its
    output contains ``ready``. The port is kept across restarts, so clients find the server again at the
    same address. Subclasses usually add a ``url`` property.
    """

    def __init__(self, command: Callable[[int], Sequence[str]], ready: bytes, name: str) -> None:
        self._command = command
        self._ready = ready
        self.name = name
        self._process: asyncio.subprocess.Process | None = None
        self._drain: asyncio.Task[None] | None = None
        self.port = 0

    @property
    def running(self) -> bool:
        return self._process is not None

    def reserve_port(self) -> int:
        """Picks a free port (nothing listens there until :meth:`start`)."""
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = int(probe.getsockname()[1])
        return self.port

    async def start(self) -> None:
        """Starts the server (on the reserved port) and returns once it accepts clients."""
        if not self.port:
            self.reserve_port()
        program, *arguments = self._command(self.port)
        process = await asyncio.create_subprocess_exec(
            program, *arguments, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
        )
        assert process.stdout is not None
        output: list[bytes] = []
        while True:
            line = await asyncio.wait_for(process.stdout.readline(), 30)
            if not line:
                await process.wait()
                raise RuntimeError(f"{self.name} did not start: {b''.join(output).decode()}")
            output.append(line)
            if self._ready in line:
                break
        self._process = process
        self._drain = asyncio.get_running_loop().create_task(self._discard_output(process))

    @staticmethod
    async def _discard_output(process: asyncio.subprocess.Process) -> None:
        assert process.stdout is not None
        while await process.stdout.readline():
            pass

    async def stop(self) -> None:
        """Stops the server the ordinary way (SIGTERM: it closes its clients and exits)."""
        process, self._process = self._process, None
        if process is not None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 15)
            except asyncio.TimeoutError:
                process.kill()
                await process.wait()
        await self._drained()

    async def crash(self) -> None:
        """Kills the server (SIGKILL, like a crash) and returns once it is gone."""
        process, self._process = self._process, None
        if process is not None:
            process.kill()
            await process.wait()
        await self._drained()

    async def _drained(self) -> None:
        if self._drain is not None:
            await self._drain
            self._drain = None

    def pause(self) -> None:
        """SIGSTOP: the server keeps its sockets open but answers nothing (a silent network drop)."""
        assert self._process is not None
        self._process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self._process is not None
        self._process.send_signal(signal.SIGCONT)


# -- listener calls ----------------------------------------------------------------------------------


class ListenerCalls(Recorder):
    """A listener callback recording its calls (``calls``); tests wait on it instead of sleeping.

    Callable with a key (the job-scheduled signature); ``bind(key)`` gives the no-argument callback the
    chain-closed and ownership-lost listeners take.
    """

    async def wait_for(self, count: int, timeout: float = 15.0) -> None:
        """Until ``count`` calls arrived in all; AssertionError after ``timeout`` seconds."""
        await self.wait_for_calls(count, timeout, f"{count} listener call(s)")


# -- adapter-level scenarios -------------------------------------------------------------------------


async def listeners_recover_after_a_crash(
    adapter: CountingNotifyAdapter,
    *,
    crash_server: Server,
    start_server: Server,
    server: str = "the server",
) -> None:
    """The server crashes and comes back: nothing raises or hangs meanwhile, failures are counted, and
    every listener (one added during the outage too) is called once to re-check, then messages and
    wake-hint budgets work again. The server runs when this is called; ``adapter`` is left open."""
    scheduled, chain, ownership, late = (
        ListenerCalls(),
        ListenerCalls(),
        ListenerCalls(),
        ListenerCalls(),
    )
    await adapter.listen_job_scheduled(["mail", "sms"], scheduled)
    await adapter.listen_chain_closed("chain-1", chain.bind("chain-1"))
    await adapter.listen_job_ownership_lost("job-1", ownership.bind("job-1"))
    await adapter.notify_job_scheduled("mail")
    await scheduled.wait_for(1)
    await adapter.provide_wake_hint("mail", 1)
    assert await adapter.consume_wake_hint("mail") is True

    await crash_server()

    # While the server is gone nothing raises, nothing hangs, and failures are counted.
    errors_before = adapter.publish_errors
    await adapter.notify_job_scheduled("mail")
    await adapter.notify_chain_closed("chain-1")
    await adapter.provide_wake_hint("mail", 3)
    assert await adapter.consume_wake_hint("mail") is True
    assert adapter.publish_errors >= errors_before + 3, f"failed publishes while {server} was down"
    assert adapter.wake_hint_errors >= 1
    await asyncio.wait_for(adapter.listen_chain_closed("chain-2", late.bind("chain-2")), 5)

    await start_server()

    # Every listener, including the one added during the outage, is told to re-check.
    await scheduled.wait_for(3)
    assert sorted(scheduled.calls[1:]) == ["mail", "sms"]
    await chain.wait_for(1)
    await ownership.wait_for(1)
    await late.wait_for(1)
    assert adapter.reconnects >= 1

    # And messages flow again, through the adapter's own (reconnected) connections.
    errors_before = adapter.publish_errors
    await adapter.notify_chain_closed("chain-2")
    await late.wait_for(2)
    await adapter.notify_job_scheduled("sms")
    await scheduled.wait_for(4)
    assert scheduled.calls[3] == "sms"
    assert adapter.publish_errors == errors_before
    # A restart may lose the budgets' storage; budgets work again all the same.
    await adapter.provide_wake_hint("sms", 1)
    assert [await adapter.consume_wake_hint("sms") for _ in range(2)] == [True, False]


async def adapter_down_at_start_up(adapter: CountingNotifyAdapter, *, start_server: Server) -> None:
    """Nothing listens at the adapter's address yet: ``listen_*`` returns promptly, publishes fail
    quietly (counted), ``consume_wake_hint`` answers True; once the server starts, each listener gets
    its catch-up call and messages and budgets work. ``adapter`` is unused before and left open."""
    scheduled = ListenerCalls()
    # Returns promptly (a listen timeout may be much longer): the server cannot be reached.
    await asyncio.wait_for(adapter.listen_job_scheduled(["mail"], scheduled), 5)
    await adapter.notify_job_scheduled("mail")
    await adapter.provide_wake_hint("mail", 1)
    assert await adapter.consume_wake_hint("mail") is True
    assert adapter.publish_errors == 2
    assert adapter.wake_hint_errors == 1
    assert scheduled.calls == []

    await start_server()

    await scheduled.wait_for(1)  # the catch-up call: "you may have missed something"
    assert scheduled.calls == ["mail"]
    await adapter.notify_job_scheduled("mail")
    await scheduled.wait_for(2)
    await adapter.provide_wake_hint("mail", 1)
    assert [await adapter.consume_wake_hint("mail") for _ in range(2)] == [True, False]


async def close_while_down_leaves_no_task_behind(open_adapter: Callable[[], NotifyAdapter]) -> None:
    """An adapter (made by ``open_adapter``, for a server that is down) with listeners closes promptly,
    leaves no task running, and refuses calls afterwards."""
    before = asyncio.all_tasks()
    adapter = open_adapter()
    await adapter.listen_job_scheduled(["mail"], ListenerCalls())
    await adapter.listen_chain_closed("chain", lambda: None)

    await asyncio.wait_for(adapter.close(), 5)

    assert asyncio.all_tasks() <= before
    with pytest.raises(NotifyAdapterClosedError):
        await adapter.notify_job_scheduled("mail")


async def silent_server_is_given_up_on(
    adapter: CountingNotifyAdapter, accepted: asyncio.Event, *, bound: float
) -> None:
    """``adapter`` points at :func:`silent_peer`: no call waits for an answer that never comes.
    ``listen_*`` returns, publishes and the wake-hint calls fail quietly (counted), each within
    ``bound`` seconds (the adapter's timeouts plus a margin), and ``close()`` returns promptly."""
    loop = asyncio.get_running_loop()

    async def within(what: str, call: Awaitable[Any]) -> Any:
        started = loop.time()
        try:
            return await asyncio.wait_for(call, bound * 3)
        except asyncio.TimeoutError:
            raise AssertionError(f"{what} hung on a server that never answers") from None
        finally:
            took = loop.time() - started
            assert took < bound, f"{what} gave up after {took:.1f}s (bound {bound:g}s)"

    await within("listen_job_scheduled", adapter.listen_job_scheduled(["mail"], ListenerCalls()))
    assert accepted.is_set(), "the adapter reached the silent peer"
    await within("notify_job_scheduled", adapter.notify_job_scheduled("mail"))
    await within("provide_wake_hint", adapter.provide_wake_hint("mail", 1))
    assert await within("consume_wake_hint", adapter.consume_wake_hint("mail")) is True
    assert adapter.publish_errors >= 2, "the failed publishes were counted"
    await within("close", adapter.close())


async def subscribers_wait_for_a_subscription_on_its_way(
    listening: NotifyAdapter, publishing: NotifyAdapter, proxy: TcpProxy, *, timeout: float = 15.0
) -> None:
    """Two chain-closed listeners subscribe at once while the network is slow (``listening``
    reaches its server through ``proxy``; ``publishing`` does not): neither call returns before the
    subscription the first one sent has reached the server, so a message published as soon as
    either returns reaches it. (A second subscriber that only saw the first one's subscription
    started would return at once, and a chain closed right after could go unnoticed until a poll.)
    Both adapters are open and left open."""
    warm = ListenerCalls()
    await listening.listen_job_scheduled([f"warm-{id(warm)}"], warm)  # connected and subscribed
    first, second = ListenerCalls(), ListenerCalls()
    order: list[str] = []
    proxy.hold()
    subscribing = asyncio.ensure_future(listening.listen_chain_closed("c-1", first.bind("c-1")))
    try:
        await asyncio.wait_for(proxy.holding.wait(), timeout)  # the subscription is on its way
        joining = asyncio.ensure_future(listening.listen_chain_closed("c-2", second.bind("c-2")))
        joining.add_done_callback(lambda _: order.append("second returned"))
        # Enough turns of the loop for a call that does not wait on the server to return (one or
        # two would do); a call that waits cannot return before the release below.
        for _ in range(100):
            await asyncio.sleep(0)
        order.append("released")
    finally:
        proxy.release()
    await asyncio.wait_for(asyncio.gather(subscribing, joining), timeout)
    assert order == ["released", "second returned"], order
    await publishing.notify_chain_closed("c-2")
    await publishing.notify_chain_closed("c-1")
    await second.wait_for(1, timeout)
    await first.wait_for(1, timeout)
    assert (first.calls, second.calls) == (["c-1"], ["c-2"])


# -- worker-level building blocks --------------------------------------------------------------------


@dataclass
class Num:
    n: int


class WorkerStart(EntryJobType[Num, Num], Continues["WorkerFinish"], name="notify_worker_start"):
    """First job of every chain: always continues to WorkerFinish."""


class WorkerFinish(JobType[Num, Num], name="notify_worker_finish"):
    """Second and last job: closes the chain with ``n * 3``."""


Handler = Callable[[Attempt[Any]], Awaitable[object]]


class RunRecorder:
    """Counts handler runs per job id and notes when each chain (by its number) was committed, when
    its first job started and whether it finished."""

    def __init__(self) -> None:
        self.executions: Counter[str] = Counter()
        self.committed: dict[int, float] = {}
        self.picked: dict[int, float] = {}
        self.finished: set[int] = set()
        self._changed = asyncio.Event()

    def handlers(self) -> dict[type[JobType[Any, Any]], Handler]:
        """The worker's handlers of :class:`WorkerStart` and :class:`WorkerFinish`."""

        async def start(attempt: Attempt[WorkerStart]) -> WorkerFinish:
            self.executions[attempt.job.id] += 1
            self.picked.setdefault(attempt.input.n, asyncio.get_running_loop().time())
            return WorkerFinish(Num(attempt.input.n))

        async def finish(attempt: Attempt[WorkerFinish]) -> None:
            self.executions[attempt.job.id] += 1
            await attempt.complete(Num(attempt.input.n * 3))
            self.finished.add(attempt.input.n)
            self._changed.set()

        return {WorkerStart: start, WorkerFinish: finish}

    async def wait_finished(self, numbers: Iterable[int], timeout: float, what: str) -> None:
        """Until every chain of ``numbers`` finished; AssertionError naming ``what`` after ``timeout``."""
        wanted = set(numbers)

        async def reached() -> None:
            while not wanted <= self.finished:
                self._changed.clear()
                await self._changed.wait()

        try:
            await asyncio.wait_for(reached(), timeout)
        except asyncio.TimeoutError:
            missing = sorted(wanted - self.finished)
            raise AssertionError(
                f"{what}: {len(missing)} chains not processed within {timeout} s "
                f"(first: {missing[:5]})"
            ) from None


async def produce(
    client: Client[Any],
    recorder: RunRecorder,
    numbers: range,
    *,
    batch: int = 25,
    pause: float = 0.2,
) -> None:
    """Starts one chain per number, ``batch`` per transaction, ``pause`` seconds apart."""
    loop = asyncio.get_running_loop()
    for offset in range(numbers.start, numbers.stop, batch):
        chunk = range(offset, min(offset + batch, numbers.stop))
        async with client.transaction() as tx:
            await client.start_chains([WorkerStart(Num(n)) for n in chunk], tx=tx)
        committed = loop.time()
        for n in chunk:
            recorder.committed[n] = committed
        await asyncio.sleep(pause)


async def probe(client: Client[Any], recorder: RunRecorder, n: int) -> tuple[float, float]:
    """One chain started on an idle worker: (seconds until its handler started, until
    ``wait_for_chain`` saw it closed). ``wait_for_chain`` re-reads only every 60 s here, so it returns
    early only on a chain-closed notification."""
    loop = asyncio.get_running_loop()
    async with client.transaction() as tx:
        chain = await client.start_chain(WorkerStart(Num(n)), tx=tx)
    committed = recorder.committed[n] = loop.time()
    result = await client.wait_for_chain(chain, timeout=3 * POLL_INTERVAL, poll_interval=60.0)
    assert result == Num(n * 3)
    return max(recorder.picked[n] - committed, 0.0), loop.time() - committed


async def eventually(
    predicate: Callable[[], bool], *, timeout: float, what: str, every: float = 0.05
) -> None:
    """Until ``predicate()`` holds, checked every ``every`` seconds; AssertionError after ``timeout``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(every)


async def wait_idle(worker: Worker[Any]) -> None:
    """Until the worker runs nothing (it then sleeps until a notification or its next poll)."""
    await eventually(lambda: worker.in_flight == 0, timeout=10, what="an idle worker", every=0.01)
    await asyncio.sleep(0.05)  # let it reach its sleep; the probe then measures only the wake-up


async def check_every_chain_once(client: Client[Any], recorder: RunRecorder, count: int) -> None:
    """Every chain 0..count-1 closed as completed with ``n * 3``, has exactly its two jobs, and each
    job's handler ran exactly once."""
    start, finish = WorkerStart.type_name, WorkerFinish.type_name
    outputs: dict[int, Any] = {}
    cursor: str | None = None
    while True:
        page = await client.list_chains(type_names=[start], limit=1000, cursor=cursor)
        for chain in page.items:
            assert chain.outcome == "completed", (chain.id, chain.status, chain.outcome)
            n = chain.root.input.n
            assert n not in outputs, f"chain {n} exists twice"
            outputs[n] = chain.output
        cursor = page.next_cursor
        if cursor is None:
            break
    assert sorted(outputs) == list(range(count))
    assert all(outputs[n] == Num(n * 3) for n in outputs)

    jobs_per_chain: dict[str, list[str]] = {}
    cursor = None
    while True:
        jobs = await client.list_jobs(chain_type_names=[start], limit=1000, cursor=cursor)
        for job in jobs.items:
            jobs_per_chain.setdefault(job.chain_id, []).append(job.type_name)
        cursor = jobs.next_cursor
        if cursor is None:
            break
    assert len(jobs_per_chain) == count
    assert all(sorted(types) == sorted([start, finish]) for types in jobs_per_chain.values())

    assert len(recorder.executions) == 2 * count, "every job ran"
    assert set(recorder.executions.values()) == {1}, "no job ran twice"


# -- worker-level scenarios --------------------------------------------------------------------------


@dataclass
class _Processes:
    """A producer and a worker, each with its own state adapter and its own notify adapter (as two
    processes would have), and the recorder of the worker's handler runs."""

    recorder: RunRecorder
    worker: Worker[Any]
    producer: Client[Any]
    worker_notify: CountingNotifyAdapter
    producer_notify: CountingNotifyAdapter

    async def back_to_notifications(self, numbers: range, what: str) -> None:
        """Once the server is up: the worker's subscription comes back by itself, the chains of
        ``numbers`` are processed, then the probes are picked up and seen closed fast."""
        await eventually(
            lambda: self.worker_notify.reconnects >= 1,
            timeout=30,
            what="the worker's subscription to come back",
        )
        await produce(self.producer, self.recorder, numbers)
        await self.recorder.wait_finished(numbers, 30, what)
        await self.probes(numbers.stop)

    async def probes(self, first: int) -> None:
        """Chains started one at a time on the idle worker are picked up and seen closed fast."""
        for n in range(first, first + PROBES):
            await wait_idle(self.worker)
            picked, closed = await probe(self.producer, self.recorder, n)
            assert picked < FAST, f"probe {n} waited {picked:.3f} s: no job-scheduled notification"
            assert closed < FAST + 0.5, f"probe {n}: chain-closed noticed after {closed:.3f} s"


@contextlib.asynccontextmanager
async def _processes(
    open_state: OpenState, open_notify: Callable[[str], CountingNotifyAdapter]
) -> AsyncIterator[_Processes]:
    """Opens the two "processes"; closes their clients, then their notify adapters."""
    notifies: list[CountingNotifyAdapter] = []
    clients: list[Client[Any]] = []
    try:
        for role in ("worker", "producer"):
            notifies.append(open_notify(role))
            clients.append(
                Client(
                    await open_state(),
                    job_types=[WorkerStart],
                    notify=notifies[-1],
                    observability=NoopObservability(),
                )
            )
        recorder = RunRecorder()
        worker: Worker[Any] = Worker(
            clients[0],
            concurrency=10,
            poll_interval=POLL_INTERVAL,
            handlers=recorder.handlers(),
        )
        yield _Processes(recorder, worker, clients[1], notifies[0], notifies[1])
    finally:
        for client in reversed(clients):
            await client.close()
        for notify in notifies:
            await notify.close()


async def worker_through_a_server_restart(
    *,
    open_state: OpenState,
    open_notify: Callable[[str], CountingNotifyAdapter],
    stop_server: Server,
    start_server: Server,
    server: str = "the server",
) -> None:
    """A worker processes 2000 chains while the notify server stops and starts again (same address):
    800 before, 400 while it is down (by polling alone; the producer's publishes fail and are counted),
    795 once the worker's subscription came back by itself, then :data:`PROBES` chains one at a time
    that must be picked up and seen closed fast (by notification). Every chain completes exactly once.

    The server runs when this is called.
    """
    before, during, after = range(0, 800), range(800, 1200), range(1200, 1995)
    async with _processes(open_state, open_notify) as run:
        producer, recorder = run.producer, run.recorder
        async with run.worker:
            await produce(producer, recorder, before)
            await recorder.wait_finished(before, 30, f"before {server} restarted")

            await stop_server()
            # The server is down: chains keep coming, and the worker gets to them by polling alone.
            await produce(producer, recorder, during)
            await recorder.wait_finished(during, 4 * POLL_INTERVAL + 10, f"while {server} was down")
            assert run.producer_notify.publish_errors > 0, "the producer's publishes failed"
            assert run.worker_notify.reconnects == 0

            await start_server()
            # The worker's adapter finds the server again by itself.
            await run.back_to_notifications(after, f"after {server} restarted")

        await check_every_chain_once(producer, recorder, after.stop + PROBES)


async def worker_started_while_the_server_is_down(
    *,
    open_state: OpenState,
    open_notify: Callable[[str], CountingNotifyAdapter],
    start_server: Server,
    server: str = "the server",
) -> None:
    """A worker starts while nothing listens at the notify server's address (its start does not wait
    for the server): it processes 100 chains by polling; once the server starts, its subscription opens
    by itself, it processes 200 more, then :data:`PROBES` chains one at a time are picked up and seen
    closed fast. Every chain completes exactly once.

    The server's address is fixed (``open_notify`` can use it) but nothing listens there yet.
    """
    before, after = range(0, 100), range(100, 300)
    async with _processes(open_state, open_notify) as run:
        producer, recorder, worker = run.producer, run.recorder, run.worker
        await asyncio.wait_for(worker.start(), 5)  # does not wait for the server
        try:
            await produce(producer, recorder, before, pause=0.3)
            await recorder.wait_finished(before, 4 * POLL_INTERVAL + 10, f"without {server}")
            assert run.worker_notify.reconnects == 0
            assert run.producer_notify.publish_errors > 0

            await start_server()
            await run.back_to_notifications(after, f"with {server}")
        finally:
            await worker.close()

        await check_every_chain_once(producer, recorder, after.stop + PROBES)
