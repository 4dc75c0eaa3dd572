"""Pooled asyncpg connections kept by the provider between its uses of them.

Taking a connection from asyncpg's pool and handing it back costs more CPU than a short transaction's
own statements: the release runs in a task of its own and re-arms an inactivity timer, the acquire
builds a proxy and a future. The exactly-once path opens a transaction per job, so
:class:`AsyncpgProvider` keeps the connections of its finished transactions (and of its autocommit
lane) here, still acquired from the pool, and its next transaction or statement takes one of them.

What the pool would do on release is kept where it matters:

* the proxy handed out for a transaction is detached when the transaction ends, so a reference kept
  past it fails as it would after a release, and never runs in a later transaction;
* a connection with listeners, or in a transaction, goes back to the pool (whose reset cleans it up);
* one that served :data:`MAX_USES` transactions or statements goes back to the pool (which applies its
  ``max_queries`` and expiry there);
* a connection left here unused for :data:`IDLE_SECONDS` (one sweep, up to two) goes back to the
  pool.

When every connection the pool may open is out, a caller of the provider waits here rather than in
the pool: the next connection the provider is done with goes straight to it (no release, no
acquire). It goes to the pool instead when the pool has one to give again (a connection released
by the provider or by other code, or one it may open): the provider wakes it on its own releases,
each sweep on the others.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from typing import Any

__all__ = ["IDLE_SECONDS", "MAX_USES", "Parking"]

_RETRY: Any = None
"""What a waiter is woken with when it should ask the pool again."""

IDLE_SECONDS = 0.05
"""How often kept connections are swept: one kept unused through a whole sweep goes back."""

MAX_USES = 1000
"""Uses of a kept connection before it goes back to the pool anyway."""


def _fresh_proxy(conn: Any) -> Any:
    """A new pool proxy for the connection under ``conn``, whose own proxy is detached (a
    reference to it fails from now on, as after a release). ``None`` if this asyncpg's pool
    internals are not the ones known here."""
    try:
        holder = conn._holder
        con = conn._con
        if holder._proxy is not conn or con is None or con._proxy is not conn:
            return None
        # What a release does first (``_on_release``): invalidate the statements prepared through
        # the old proxy. Its other step, a check for listeners left behind, is not needed: only a
        # connection without any is kept (``_clean``).
        con._pool_release_ctr += 1
    except AttributeError:
        return None
    conn._detach()
    proxy = type(conn)(holder, con)  # asyncpg's PoolConnectionProxy
    holder._proxy = proxy
    return proxy


def _clean(conn: Any) -> bool:
    """``conn`` is open, outside any transaction and has no listeners (nothing a pool reset would
    have to undo)."""
    try:
        con = conn._con
        return bool(
            con is not None
            and not con.is_closed()
            and not con.is_in_transaction()
            and not con._listeners
            and not con._log_listeners
        )
    except AttributeError:
        return False


class Parking:
    """Connections acquired from ``pool`` and kept for the provider's next use (see the module)."""

    __slots__ = (
        "_closed",
        "_in_pool",
        "_kept",
        "_pool",
        "_releasing",
        "_sweeps",
        "_timer",
        "_uses",
        "_waiters",
    )

    def __init__(self, pool: Any) -> None:
        self._pool = pool
        self._kept: list[tuple[Any, int]] = []
        """(proxy, the sweep count when kept), the newest last."""
        self._uses: dict[int, int] = {}
        """Times each connection (by its pool holder) was kept since it last went back."""
        self._sweeps = 0
        self._timer: asyncio.TimerHandle | None = None
        self._releasing: set[asyncio.Task[None]] = set()
        self._closed = False
        self._waiters: deque[asyncio.Future[Any]] = deque()
        """Callers waiting for a connection while the pool has none to give, the first first."""
        self._in_pool = 0
        """Callers inside the pool's acquire: connections go back to the pool until they have one."""

    def take(self) -> Any:
        """The most recently kept connection, or ``None``."""
        kept = self._kept
        while kept:
            conn, _ = kept.pop()
            # clean when kept (keep checked), and no one holds it meanwhile: only the server or
            # the network can have closed it since
            con = getattr(conn, "_con", None)
            if con is not None and not con.is_closed():
                return conn
            self._release_later([conn])
        return None

    def _pool_can_give(self) -> bool:
        """The pool has a connection to give, or may open one (its queue of free holders is not
        empty; the public counts, which walk every holder, where that queue is not there)."""
        pool = self._pool
        queue = getattr(pool, "_queue", None)
        if queue is not None:
            return not queue.empty()
        return bool(pool.get_idle_size() > 0 or pool.get_size() < pool.get_max_size())

    async def acquire(self) -> Any:
        """A kept connection, else one from the pool, else the next one the provider is done with
        (or the pool's, once it has one to give)."""
        conn = self.take()
        if conn is not None:
            return conn
        while not self._closed and not self._pool_can_give():
            waiter: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            self._arm()
            try:
                conn = await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled() and waiter.result() is not _RETRY:
                    # handed a connection just as the caller was cancelled: pass it on
                    handed = waiter.result()
                    if not self.keep(handed, detach=False):
                        self._release_later([handed])
                raise
            finally:
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)
            if conn is not _RETRY:
                return conn
        self._in_pool += 1
        try:
            return await self._pool.acquire()
        finally:
            self._in_pool -= 1

    def released(self) -> None:
        """The provider released a connection to the pool: a waiter asks the pool again."""
        self._wake(retry_all=False)

    def _wake(self, *, retry_all: bool) -> None:
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(_RETRY)
                if not retry_all:
                    return

    def keep(self, conn: Any, *, detach: bool) -> bool:
        """Keep ``conn`` for the next use, or hand it to a waiting caller (``detach``: hand out a
        new proxy next time, the old one fails from now on). ``False`` if it must go back to the
        pool instead (the caller releases it, then calls :meth:`released`)."""
        if self._closed or self._in_pool or not _clean(conn):
            return False
        key = id(conn._holder)
        uses = self._uses.get(key, 0) + 1
        if uses > MAX_USES:
            del self._uses[key]
            return False
        if detach:
            conn = _fresh_proxy(conn)
            if conn is None:
                return False
        self._uses[key] = uses
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(conn)
                return True
        self._kept.append((conn, self._sweeps))
        if self._timer is None:
            self._arm()
        return True

    def _arm(self) -> None:
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(IDLE_SECONDS, self._sweep)

    async def give_back(self, conn: Any, *, detach: bool) -> None:
        """Keep ``conn`` (or hand it on), or release it to the pool."""
        if not self.keep(conn, detach=detach):
            await self.release(conn)

    async def release(self, conn: Any) -> None:
        """Release ``conn`` to the pool and wake a waiter to ask the pool for it."""
        try:
            await self._pool.release(conn)
        finally:
            self.released()

    def _sweep(self) -> None:
        self._timer = None
        self._sweeps += 1
        kept = self._kept
        stale = 0
        while stale < len(kept) and kept[stale][1] < self._sweeps - 1:
            stale += 1
        if stale:
            self._release_later([conn for conn, _ in kept[:stale]])
            del kept[:stale]
        if self._waiters and self._pool_can_give():
            self._wake(retry_all=True)  # released by others, or a connection the pool may open
        if kept or self._waiters:
            self._timer = asyncio.get_running_loop().call_later(IDLE_SECONDS, self._sweep)

    def _release_later(self, conns: list[Any]) -> None:
        task = asyncio.get_running_loop().create_task(self._release_all(conns))
        self._releasing.add(task)
        task.add_done_callback(self._releasing.discard)

    async def _release_all(self, conns: list[Any]) -> None:
        for conn in conns:
            self._uses.pop(id(conn._holder), None)
            with contextlib.suppress(Exception):
                await self._pool.release(conn)
            self.released()

    async def close(self) -> None:
        """Release every kept connection to the pool; keep none from now on."""
        self._closed = True
        self._wake(retry_all=True)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        kept, self._kept = self._kept, []
        await self._release_all([conn for conn, _ in kept])
        while self._releasing:
            await asyncio.gather(*self._releasing, return_exceptions=True)
