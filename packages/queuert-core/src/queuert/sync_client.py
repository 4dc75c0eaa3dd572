"""The synchronous client: start and manage chains from synchronous code, in the caller's transaction.

:class:`SyncClient` offers the client's calls that run inside a transaction (starting chains,
workerless completion, cancellation, deletion, triggering, reads) as plain functions over the
caller's own synchronous connection: ``sqlite3``, psycopg 3, a SQLAlchemy ``Session`` or
``Connection``. Workers stay asyncio.

It is not a second implementation. Each call is the async :class:`~queuert.Client`'s own call, on a
state adapter whose provider runs every statement directly on the caller's connection (a
:class:`~queuert.sync_backend.SyncBackend`): such a coroutine never waits for anything and is run to
its end on the calling thread (:mod:`queuert._inline`). So every rule of the job model (validation,
deduplication, blockers, continuation targets, status) is the one the async client applies.

Side effects follow the caller's commit, as with the async client:

* wake-ups go inside the transaction where the database carries them (PostgreSQL ``NOTIFY``:
  delivered on commit, dropped on rollback, by the server);
* otherwise, and for observability events, they wait in transaction hooks that flush after the
  commit and are dropped on rollback: hooks attached to the connection's commit events where it has
  them (SQLAlchemy), else the ``with sync_client.hooks(tx):`` block the caller opens around its
  transaction (like ``client.hooks``);
* wake-ups that cannot travel in the transaction are published after the commit on the event loop
  given as ``notify_loop`` (the loop of an in-process worker, with its notify adapter); without one,
  workers find the new jobs when they next poll.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar, overload

from queuert._declared import WithChainResult, WithOutput, WorkerlessCompletable
from queuert._inline import check_no_running_loop, run_inline
from queuert.client import Client, TypeNames, WorkerlessCompletion
from queuert.codec import Codec
from queuert.duration import Duration, to_timedelta
from queuert.errors import TransactionHooksRequiredError, UsageError, WaitChainTimeoutError
from queuert.hooks import TransactionHooks
from queuert.in_memory.notify import NoopNotifyAdapter
from queuert.job_types import AnyJobType, EntryJobType, JobType, JobTypeRegistry
from queuert.models import Chain, Job
from queuert.notify import Notifications, NotifyAdapter
from queuert.observability import NotifyAdapterError, ObservabilityAdapter
from queuert.payload import DEFAULT_MAX_PAYLOAD_BYTES
from queuert.state import ChainStatus, JobActivity, JobStatus, Order, Page, QueueStats
from queuert.sync_backend import SyncBackend, TracksTransactions

__all__ = ["SyncClient", "SyncTxContext", "SyncWorkerlessCompletion"]

TxT = TypeVar("TxT")
J = TypeVar("J", bound=EntryJobType[Any, Any])
JT = TypeVar("JT", bound=JobType[Any, Any])
I = TypeVar("I")  # noqa: E741
O = TypeVar("O")  # noqa: E741
C = TypeVar("C")
R = TypeVar("R")

_WAIT_POLL = timedelta(seconds=1)
_NOTIFY_CALL_TIMEOUT = 10.0
"""Seconds a wait gives ``notify_loop`` to subscribe it to (or unsubscribe it from) the chain-closed
notification before it goes on with its reads alone."""

_HOOKS_REQUIRED = (
    "this connection has no commit events: open `with sync_client.hooks(tx):` around your "
    "transaction (it flushes after your commit), so wake-ups and events follow the commit"
)


@dataclass
class SyncTxContext(Generic[TxT]):
    """The caller's transaction inside a callback, with shortcuts that use it (the synchronous
    counterpart of :class:`~queuert.TxContext`)."""

    client: SyncClient[TxT]
    tx: TxT
    hooks: TransactionHooks

    def start_chain(self, job: J) -> Chain[J]:
        (chain,) = self.start_chains([job])
        return chain

    def start_chains(self, jobs: Sequence[J]) -> list[Chain[J]]:
        return self.client._start_chains(jobs, self.tx, self.hooks)


@dataclass
class SyncWorkerlessCompletion(SyncTxContext[TxT], Generic[TxT, I]):
    """What a synchronous workerless completion callback sees: the current job, its decoded input
    and the caller's transaction."""

    job: Job = None  # type: ignore[assignment]
    input: I = None  # type: ignore[assignment]


class SyncClient(Generic[TxT]):
    """Starts and manages chains from synchronous code, in the caller's transaction.

    ``SyncClient(backend, job_types=[...], observability=..., codec=..., notify=...,
    notify_loop=...)``, with a backend of an adapter package (``queuert_sqlite.SqliteSyncBackend()``,
    ``queuert_postgres.PsycopgSyncBackend()``, ...). ``TxT`` is the caller's connection type, given
    as ``tx=`` to every call. Build one per process and share it between threads; each thread uses
    its own connection. Its calls block, so they refuse to run on a thread with a running event loop
    (:class:`~queuert.errors.SyncCallInEventLoopError`).

    ``notify`` with ``notify_loop``: a notify adapter and the event loop it runs on (a worker's
    loop in another thread of this process): wake-ups that the database cannot carry in the
    transaction are handed to that loop after the commit. See :mod:`queuert.sync_client`.
    """

    def __init__(
        self,
        backend: SyncBackend[TxT],
        *,
        job_types: Sequence[AnyJobType] = (),
        observability: ObservabilityAdapter | None = None,
        codec: Codec | None = None,
        max_payload_bytes: int | None = DEFAULT_MAX_PAYLOAD_BYTES,
        notify: NotifyAdapter | None = None,
        notify_loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        if (notify is None) != (notify_loop is None):
            raise UsageError(
                "notify= and notify_loop= go together: the notify adapter and the event loop it "
                "runs on"
            )
        self.backend = backend
        self._client: Client[Any] = Client(
            backend.state,
            notify=notify if notify is not None else NoopNotifyAdapter(),
            job_types=job_types,
            observability=observability,
            codec=codec,
            max_payload_bytes=max_payload_bytes,
        )
        self.registry: JobTypeRegistry = self._client.registry
        self._publishing = self._client._core.publishing
        self._in_tx = backend.notifier_in_transaction()
        self._loop = notify_loop
        self._scopes: dict[int, list[TransactionHooks]] = {}
        """Hooks by ``id(tx)`` of the caller's transaction, innermost last."""

    # -- transactions and hooks -----------------------------------------------------------------

    @contextmanager
    def hooks(self, tx: TxT) -> Iterator[TransactionHooks]:
        """Transaction hooks for your transaction on ``tx``: open the block *around* the
        transaction; it flushes when the block exits normally (after your commit) and drops what
        it holds when the block raises. Needed where the connection has no commit events
        (``sqlite3``, psycopg). A rollback must leave the block with an exception: the block
        cannot see a ``rollback()`` that it does not see raise (its wake-ups are then only
        superfluous hints, its events wrong); :meth:`transaction` commits and rolls back itself."""
        hooks = TransactionHooks()
        stack = self._scopes.setdefault(id(tx), [])
        if not stack and isinstance(self.backend, TracksTransactions):
            self.backend.transaction_begins(tx)  # the outermost block: a new transaction
        stack.append(hooks)
        try:
            yield hooks
        except BaseException:
            hooks.discard()
            raise
        finally:
            stack.remove(hooks)
            if not stack:
                del self._scopes[id(tx)]
        self._flush(hooks)

    @contextmanager
    def transaction(self, tx: TxT) -> Iterator[TxT]:
        """Your transaction on ``tx`` with queuert's hooks around it: ``tx.commit()`` when the
        block exits normally, then the side effects flush; ``tx.rollback()`` when it raises, and
        they are dropped. For ``sqlite3`` and psycopg connections (as ``with conn:`` would), where
        it replaces ``hooks()`` plus your own commit."""
        conn: Any = tx
        with self.hooks(tx):
            try:
                yield tx
            except BaseException:
                conn.rollback()
                raise
            conn.commit()

    @contextmanager
    def savepoint(self, tx: TxT) -> Iterator[TxT]:
        """A savepoint inside your transaction that also covers queuert's side effects: if the
        block raises, its writes are rolled back, its wake-ups and events dropped."""
        check_no_running_loop()
        adapter_tx = self.backend.transaction_of(tx, write=True)
        hooks, own = self._hooks_of(tx)
        if own:
            self._scopes.setdefault(id(tx), []).append(hooks)
        try:
            scope = self._client.savepoint(adapter_tx, hooks=hooks)
            run_inline(scope.__aenter__())
            try:
                yield tx
            except BaseException as error:
                if not run_inline(scope.__aexit__(type(error), error, error.__traceback__)):
                    raise
            else:
                run_inline(scope.__aexit__(None, None, None))
        finally:
            if own:
                stack = self._scopes[id(tx)]
                stack.remove(hooks)
                if not stack:
                    del self._scopes[id(tx)]

    def _hooks_of(self, tx: TxT) -> tuple[TransactionHooks, bool]:
        """The hooks for a call in ``tx``, and whether they are new (attached to its commit)."""
        stack = self._scopes.get(id(tx))
        if stack:
            return stack[-1], False
        hooks = TransactionHooks()
        if self.backend.attach_commit_hooks(tx, lambda: self._flush(hooks), hooks.discard):
            return hooks, True
        raise TransactionHooksRequiredError(_HOOKS_REQUIRED)

    def _flush(self, hooks: TransactionHooks) -> None:
        self._publishing.flush_sync(hooks, self._publish_after_commit if self._loop else None)

    def wait_published(self, timeout: float = 10.0) -> None:
        """Block until the wake-ups handed to ``notify_loop`` so far are published (at most
        ``timeout`` seconds, then :class:`TimeoutError`): call it before that loop stops, so
        none is lost with it. Without ``notify_loop`` there is nothing to wait for."""
        check_no_running_loop()
        loop = self._loop
        if loop is None:
            return
        publishing = self._publishing

        async def drained() -> None:
            await publishing.wait_published()

        # the hand-over (call_soon_threadsafe) is ahead of this in the loop's queue
        asyncio.run_coroutine_threadsafe(drained(), loop).result(timeout)

    def _publish_after_commit(self, notifications: Notifications) -> None:
        loop = self._loop
        assert loop is not None
        loop.call_soon_threadsafe(
            self._publishing.publish_later,
            dict(notifications.ready),
            set(notifications.scheduled),
            set(notifications.closed_chains),
            set(notifications.ownership_lost),
        )

    def _write(
        self,
        tx: TxT,
        call: Callable[[Any, TransactionHooks], Coroutine[Any, Any, R]],
        hooks: TransactionHooks | None = None,
    ) -> R:
        """Run a mutating call of the async client in ``tx`` with its hooks."""
        check_no_running_loop()
        adapter_tx = self.backend.transaction_of(tx, write=True)
        own = False
        if hooks is None:
            hooks, own = self._hooks_of(tx)
        try:
            result = run_inline(call(adapter_tx, hooks))
            if self._in_tx is not None:
                notifications = self._publishing.take_notifications(hooks)
                if notifications is not None:
                    run_inline(self._in_tx(adapter_tx, notifications))
        except BaseException:
            if own:
                hooks.discard()
            raise
        return result

    def _read(self, tx: TxT, call: Callable[[Any], Coroutine[Any, Any, R]]) -> R:
        check_no_running_loop()
        return run_inline(call(self.backend.transaction_of(tx, write=False)))

    # -- creating chains -------------------------------------------------------------------------

    def start_chain(self, job: J, *, tx: TxT) -> Chain[J]:
        """Start a chain with ``job`` inside your transaction ``tx`` (see
        :meth:`queuert.Client.start_chain`)."""
        (chain,) = self._start_chains([job], tx, None)
        return chain

    def start_chains(self, jobs: Sequence[J], *, tx: TxT) -> list[Chain[J]]:
        """Start several chains in one batch inside ``tx``; results in input order."""
        return self._start_chains(jobs, tx, None)

    def _start_chains(
        self, jobs: Sequence[J], tx: TxT, hooks: TransactionHooks | None
    ) -> list[Chain[J]]:
        client = self._client
        return self._write(tx, lambda atx, h: client.start_chains(jobs, tx=atx, hooks=h), hooks)

    # -- workerless completion, cancellation ---------------------------------------------------

    @overload
    def complete_chain(
        self,
        chain: Chain[Any] | str,
        job_type: type[WorkerlessCompletable[I, O, C]],
        result: Callable[[SyncWorkerlessCompletion[TxT, I]], O | C],
        *,
        tx: TxT,
    ) -> Chain[Any]: ...

    @overload
    def complete_chain(
        self,
        chain: Chain[Any] | str,
        job_type: type[WorkerlessCompletable[I, O, C]],
        result: O | C,
        *,
        tx: TxT,
    ) -> Chain[Any]: ...

    def complete_chain(
        self, chain: Chain[Any] | str, job_type: type[Any], result: Any, *, tx: TxT
    ) -> Chain[Any]:
        """Complete or continue the chain's current job from outside any worker (see
        :meth:`queuert.Client.complete_chain`); ``result`` is the output, a continuation job, or a
        function of a :class:`SyncWorkerlessCompletion` returning either."""
        client = self._client
        outcome = result
        if callable(result) and not isinstance(result, JobType):
            decide = result

            async def outcome(completion: WorkerlessCompletion[Any, Any]) -> Any:
                return decide(
                    SyncWorkerlessCompletion(
                        client=self,
                        tx=tx,
                        hooks=completion.hooks,
                        job=completion.job,
                        input=completion.input,
                    )
                )

        return self._write(
            tx, lambda atx, h: client.complete_chain(chain, job_type, outcome, tx=atx, hooks=h)
        )

    def cancel_chain(self, chain: Chain[Any] | str, *, tx: TxT) -> Chain[Any]:
        """Close an open chain as *cancelled* (see :meth:`queuert.Client.cancel_chain`)."""
        client = self._client
        return self._write(tx, lambda atx, h: client.cancel_chain(chain, tx=atx, hooks=h))

    def delete_chains(
        self, chains: Sequence[Chain[Any] | str], *, cascade: bool = False, tx: TxT
    ) -> list[Chain[Any]]:
        """Delete whole chains, all or nothing (see :meth:`queuert.Client.delete_chains`)."""
        client = self._client
        return self._write(
            tx, lambda atx, h: client.delete_chains(chains, cascade=cascade, tx=atx, hooks=h)
        )

    def trigger_jobs(self, job_ids: Sequence[str], *, tx: TxT) -> list[Job]:
        """Make scheduled jobs ready now (see :meth:`queuert.Client.trigger_jobs`)."""
        client = self._client
        return self._write(tx, lambda atx, h: client.trigger_jobs(job_ids, tx=atx, hooks=h))

    # -- reading -------------------------------------------------------------------------------

    @overload
    def get_chain(self, chain_id: str, job_type: type[JT], *, tx: TxT) -> Chain[JT] | None: ...

    @overload
    def get_chain(self, chain_id: str, job_type: None = None, *, tx: TxT) -> Chain[Any] | None: ...

    def get_chain(
        self, chain_id: str, job_type: type[JT] | None = None, *, tx: TxT
    ) -> Chain[Any] | None:
        """The chain, or ``None`` (read in ``tx``: your own uncommitted chains are visible)."""
        client = self._client
        return self._read(tx, lambda atx: client.get_chain(chain_id, job_type, tx=atx))

    @overload
    def wait_for_chain(
        self,
        chain: Chain[WithChainResult[R]],
        *,
        tx: TxT,
        timeout: Duration,
        poll_interval: Duration = _WAIT_POLL,
    ) -> R: ...

    @overload
    def wait_for_chain(
        self,
        chain: Chain[WithOutput[O]],
        *,
        tx: TxT,
        timeout: Duration,
        poll_interval: Duration = _WAIT_POLL,
    ) -> O: ...

    @overload
    def wait_for_chain(
        self,
        chain: str,
        job_type: type[WithChainResult[R]],
        *,
        tx: TxT,
        timeout: Duration,
        poll_interval: Duration = _WAIT_POLL,
    ) -> R: ...

    @overload
    def wait_for_chain(
        self,
        chain: str,
        job_type: type[WithOutput[O]],
        *,
        tx: TxT,
        timeout: Duration,
        poll_interval: Duration = _WAIT_POLL,
    ) -> O: ...

    def wait_for_chain(
        self,
        chain: Chain[Any] | str,
        job_type: type[Any] | None = None,
        *,
        tx: TxT,
        timeout: Duration,
        poll_interval: Duration = _WAIT_POLL,
    ) -> Any:
        """Block until the chain closes and return its output (see
        :meth:`queuert.Client.wait_for_chain`, which raises the same errors).

        Reads the chain in ``tx`` every ``poll_interval`` (default: one second), so ``tx`` must see
        other transactions' commits as they land: a connection outside a transaction (or in
        autocommit), or a transaction at read committed. Wait after the commit that started the
        chain, never inside it: no worker sees the chain before that commit. With ``notify`` and
        ``notify_loop``, the chain-closed notification ends the wait before the next read is due.
        """
        check_no_running_loop()
        client = self._client
        chain_id, expected = client._wait_target(chain, job_type)
        timeout_td = to_timedelta(timeout, name="timeout")
        poll = to_timedelta(poll_interval, name="poll_interval", positive=True).total_seconds()
        deadline = time.monotonic() + timeout_td.total_seconds()
        woken = threading.Event()
        unsubscribe = self._on_loop(
            "listen_chain_closed", lambda: client.notify.listen_chain_closed(chain_id, woken.set)
        )
        try:
            while True:
                stored = self._read(tx, lambda atx: client.state.get_chain(chain_id, tx=atx))
                closed, output = client._closed_output(stored, chain_id, expected)
                if closed:
                    return output
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise WaitChainTimeoutError(chain_id, timeout_td)
                woken.wait(min(poll, remaining))
                woken.clear()
        finally:
            if unsubscribe is not None:
                self._on_loop("unsubscribe", unsubscribe)

    def _on_loop(self, operation: str, call: Callable[[], Awaitable[R]]) -> R | None:
        """``call()`` run on ``notify_loop`` (the notify adapter's), its result; ``None`` without
        that loop, or when the adapter failed or did not answer in time (reported as a
        :class:`NotifyAdapterError` event for ``operation``)."""
        loop = self._loop
        if loop is None:
            return None

        async def run() -> R:
            return await call()

        future = asyncio.run_coroutine_threadsafe(run(), loop)
        try:
            return future.result(_NOTIFY_CALL_TIMEOUT)
        except Exception as exc:
            future.cancel()
            self._client._core.emit(NotifyAdapterError(operation=operation, error=repr(exc)))
            return None

    def get_job(self, job_id: str, job_type: AnyJobType | None = None, *, tx: TxT) -> Job | None:
        client = self._client
        return self._read(tx, lambda atx: client.get_job(job_id, job_type, tx=atx))

    def get_job_blockers(self, job_id: str, *, tx: TxT) -> list[Chain[Any]]:
        """The chains a job waits (or waited) for, in slot order."""
        client = self._client
        return self._read(tx, lambda atx: client.get_job_blockers(job_id, tx=atx))

    def list_chains(
        self,
        *,
        type_names: TypeNames | None = None,
        status: ChainStatus | None = None,
        chain_ids: Sequence[str] | None = None,
        job_ids: Sequence[str] | None = None,
        root_only: bool = False,
        created_from: datetime | None = None,
        created_to: datetime | None = None,
        deduplication_keys: Sequence[str] | None = None,
        order: Order = "desc",
        cursor: str | None = None,
        limit: int = 50,
        tx: TxT,
    ) -> Page[Chain[Any]]:
        client = self._client
        return self._read(
            tx,
            lambda atx: client.list_chains(
                type_names=type_names,
                status=status,
                chain_ids=chain_ids,
                job_ids=job_ids,
                root_only=root_only,
                created_from=created_from,
                created_to=created_to,
                deduplication_keys=deduplication_keys,
                order=order,
                cursor=cursor,
                limit=limit,
                tx=atx,
            ),
        )

    def list_jobs(
        self,
        *,
        type_names: TypeNames | None = None,
        statuses: Sequence[JobStatus] | None = None,
        job_ids: Sequence[str] | None = None,
        chain_ids: Sequence[str] | None = None,
        chain_type_names: TypeNames | None = None,
        created_from: datetime | None = None,
        created_to: datetime | None = None,
        order: Order = "desc",
        cursor: str | None = None,
        limit: int = 50,
        tx: TxT,
    ) -> Page[Job]:
        client = self._client
        return self._read(
            tx,
            lambda atx: client.list_jobs(
                type_names=type_names,
                statuses=statuses,
                job_ids=job_ids,
                chain_ids=chain_ids,
                chain_type_names=chain_type_names,
                created_from=created_from,
                created_to=created_to,
                order=order,
                cursor=cursor,
                limit=limit,
                tx=atx,
            ),
        )

    def list_chain_jobs(
        self,
        chain_id: str,
        *,
        order: Order = "asc",
        cursor: str | None = None,
        limit: int = 50,
        tx: TxT,
    ) -> Page[Job]:
        client = self._client
        return self._read(
            tx,
            lambda atx: client.list_chain_jobs(
                chain_id, order=order, cursor=cursor, limit=limit, tx=atx
            ),
        )

    def list_blocked_jobs(
        self,
        chain_id: str,
        *,
        order: Order = "desc",
        cursor: str | None = None,
        limit: int = 50,
        tx: TxT,
    ) -> Page[Job]:
        """Jobs that wait (or waited) for the chain ``chain_id``."""
        client = self._client
        return self._read(
            tx,
            lambda atx: client.list_blocked_jobs(
                chain_id, order=order, cursor=cursor, limit=limit, tx=atx
            ),
        )

    def get_queue_stats(self, type_names: TypeNames | None = None, *, tx: TxT) -> list[QueueStats]:
        """Queue health per job type (see :meth:`queuert.Client.get_queue_stats`)."""
        client = self._client
        return self._read(tx, lambda atx: client.get_queue_stats(type_names, tx=atx))

    def get_job_activity(
        self, *, window: Duration = timedelta(hours=1), buckets: int = 60, tx: TxT
    ) -> JobActivity:
        """Jobs by type and status over ``window`` (see :meth:`queuert.Client.get_job_activity`)."""
        client = self._client
        return self._read(
            tx, lambda atx: client.get_job_activity(window=window, buckets=buckets, tx=atx)
        )
