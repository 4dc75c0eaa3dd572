"""Awaiting with a time limit without ever losing a cancellation (for adapters' network calls).

``asyncio.wait_for`` before Python 3.12 can return the awaited result when its caller is cancelled
just as that result arrives: the cancellation is swallowed, and a worker that is shutting down goes
on as if nothing had happened. :func:`bounded` runs the awaitable as a task of its own and waits for
it with ``asyncio.wait``: a cancellation of the caller always reaches the task and always propagates.
When the time runs out, or the caller is cancelled, the task is cancelled, the caller's clean-up runs
(closing a connection whose state is now unknown, say), and the task is awaited for a short grace so
that it never outlives the call unseen.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

__all__ = ["Deadlines", "Watch", "bounded", "within"]

T = TypeVar("T")

Abandon = Callable[[], "Awaitable[Any] | None"]
"""Clean-up after the work was given up: a function, or a coroutine function (itself bounded)."""

_GRACE = 1.0
"""Seconds a given-up task and its clean-up get to end."""


async def bounded(
    work: Awaitable[T],
    seconds: float | None,
    *,
    what: str = "the operation",
    on_timeout: Abandon | None = None,
    on_cancel: Abandon | None = None,
    discard: Callable[[T], object] | None = None,
) -> T:
    """``await work``, given up after ``seconds`` (``None``: no limit) with ``asyncio.TimeoutError``
    (``"<what> got no answer within <seconds> s"``). ``on_timeout`` runs after a timeout and
    ``on_cancel`` after a cancellation of the caller, once the work's task is cancelled; both then
    re-raise. ``discard`` gets a result that arrives after the call gave up (the work finished as
    it was being cancelled): a connection taken from a pool must go back, or closing the pool
    would wait for it forever."""
    if seconds is None:
        return await work
    task = asyncio.ensure_future(work)
    task.add_done_callback(_retrieve)
    try:
        done, _ = await asyncio.wait({task}, timeout=seconds)
    except asyncio.CancelledError:
        await _abandon(task, on_cancel, discard)
        raise
    if not done:
        await _abandon(task, on_timeout, discard)
        raise asyncio.TimeoutError(f"{what} got no answer within {seconds:g} s")
    return task.result()


async def _abandon(
    task: asyncio.Future[T], cleanup: Abandon | None, discard: Callable[[T], object] | None
) -> None:
    if discard is not None:
        task.add_done_callback(functools.partial(_discard, discard))
    task.cancel()
    if cleanup is not None:
        try:
            result = cleanup()
            if inspect.isawaitable(result):
                ending = asyncio.ensure_future(result)
                ending.add_done_callback(_retrieve)
                done, _ = await asyncio.wait({ending}, timeout=_GRACE)
                if not done:
                    ending.cancel()
        except Exception:  # the clean-up of work already given up: nothing more to do
            pass
    await asyncio.wait({task}, timeout=_GRACE)


class Deadlines:
    """Awaits in flight, each with a deadline, watched with one timer for all of them (a timer per
    await is a push onto, and later a pop from, the loop's heap of timers, compared in Python, and
    :func:`bounded` adds a task). An await past its deadline is aborted: its ``abort`` is called
    (closing the connection it waits on, say) and it is marked late. Each await gets
    :meth:`allowance` seconds (``seconds``), the same for every await of one :class:`Deadlines`."""

    __slots__ = ("_ends", "_loop", "_timer", "seconds")

    def __init__(self, seconds: float | None = None) -> None:
        self.seconds = seconds
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ends: dict[int, tuple[float, Callable[[], object], list[bool]]] = {}
        self._timer: asyncio.TimerHandle | None = None

    def allowance(self) -> float:
        """Seconds each await gets."""
        assert self.seconds is not None
        return self.seconds

    def add(
        self,
        loop: asyncio.AbstractEventLoop,
        key: int,
        abort: Callable[[], object],
        late: list[bool],
    ) -> bool:
        """Watch an await (``late`` gets ``True`` if it is aborted); ``False`` if these deadlines
        are watched on another loop."""
        if self._loop is not loop:
            if self._ends:
                return False
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            self._loop = loop
        deadline = loop.time() + self.allowance()
        self._ends[key] = (deadline, abort, late)
        # Every await gets the same allowance, so a deadline added now is never earlier than one
        # added before, nor than the timer (armed for the earliest deadline of its time, or an
        # earlier one since removed: it then fires early and re-arms for the earliest left). A
        # running timer needs no check; only a missing one is armed.
        if self._timer is None:
            self._timer = loop.call_at(deadline, self._expire)
        return True

    def remove(self, key: int) -> None:
        self._ends.pop(key, None)

    def watch(self, abort: Callable[[], object], *, what: str = "a statement") -> Watch | None:
        """:func:`within` as a ``with`` block around the await, for hot paths (no coroutine of its
        own): ``with watch: await work``. ``None`` if these deadlines are watched on another loop
        (then use :func:`within`)."""
        watched = Watch(self, what)
        if not self.add(asyncio.get_running_loop(), id(watched), abort, watched.late):
            return None
        return watched

    def _expire(self) -> None:
        self._timer = None
        loop = self._loop
        assert loop is not None
        now = loop.time()
        for key, (deadline, abort, late) in list(self._ends.items()):
            if deadline <= now:
                del self._ends[key]
                late.append(True)
                with contextlib.suppress(Exception):  # a failed abort: nothing more to do
                    abort()
        if self._ends:
            self._timer = loop.call_at(
                min(deadline for deadline, _, _ in self._ends.values()), self._expire
            )


class Watch:
    """An await watched by :class:`Deadlines` (from :meth:`Deadlines.watch`): on leaving the block
    it stops being watched, and a failure of an await that was aborted as late becomes
    ``asyncio.TimeoutError`` (a cancellation passes through as it is)."""

    __slots__ = ("_deadlines", "_what", "late")

    def __init__(self, deadlines: Deadlines, what: str) -> None:
        self._deadlines = deadlines
        self._what = what
        self.late: list[bool] = []

    def __enter__(self) -> Watch:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: Any
    ) -> None:
        self._deadlines.remove(id(self))
        if exc is not None and self.late and not isinstance(exc, asyncio.CancelledError):
            raise asyncio.TimeoutError(
                f"{self._what} got no answer within {self._deadlines.allowance():g} s"
            ) from None


async def within(
    deadlines: Deadlines | None,
    work: Awaitable[T],
    abort: Callable[[], object],
    *,
    what: str = "a statement",
    abort_on_cancel: bool = False,
) -> T:
    """``await work`` in the caller's own task, watched by ``deadlines`` (``None``: no limit): past
    its allowance ``abort`` is called (it must make ``work`` fail, e.g. by closing its connection)
    and ``asyncio.TimeoutError`` raised instead of that failure. ``abort_on_cancel``: a
    cancellation of the caller calls ``abort`` too (the work's state is then unknown). Cheaper
    than :func:`bounded`, which runs the work as a task of its own, for work that fails once its
    connection is closed."""
    if deadlines is None:
        return await work
    loop = asyncio.get_running_loop()
    late: list[bool] = []
    key = id(late)
    if not deadlines.add(loop, key, abort, late):  # watched on another loop: a watch of its own
        deadlines = type(deadlines)(deadlines.seconds)
        deadlines.add(loop, key, abort, late)
    try:
        return await work
    except asyncio.CancelledError:
        if abort_on_cancel and not late:
            abort()
        raise
    except BaseException:
        if late:
            raise asyncio.TimeoutError(
                f"{what} got no answer within {deadlines.allowance():g} s"
            ) from None
        raise
    finally:
        deadlines.remove(key)


def _discard(discard: Callable[[T], object], task: asyncio.Future[T]) -> None:
    """Hand ``discard`` what the given-up work produced after all, if it produced anything."""
    if not task.cancelled() and task.exception() is None:
        with contextlib.suppress(Exception):  # nothing more can be done with it
            discard(task.result())


def _retrieve(task: asyncio.Future[Any]) -> None:
    """Mark the outcome of the work as seen (it may end after its caller gave up)."""
    if not task.cancelled():
        task.exception()
