"""Optional for state adapters: write jobs and publish what the writes announce in one transaction.

Starting chains without a caller's transaction is one short transaction of the state adapter's own
(one statement where it can). When the notify adapter publishes inside the state adapter's
transactions (:class:`~queuert.notify.SupportsNotifyInTransaction`), a state adapter implementing
:class:`SupportsCreatePublishing` sends the wake-ups of those chains in that same transaction, so
that they cost no transaction of their own; one that recognises the publisher (both adapters of the
same backend) may even send them in the insert statement itself.

The worker's group commits are the same for completions: a state adapter implementing
:class:`SupportsCompletePublishing` closes a batch without a caller's transaction and publishes what
the closes announce in the transaction that makes them; one that recognises the publisher may close
the jobs that release nothing and send their messages in one autocommit statement.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

from queuert.notify import Notifications, NotifyInTransaction
from queuert.state import CompleteResult, Completion, CreatedJob, NewJob

__all__ = ["Announce", "SupportsCompletePublishing", "SupportsCreatePublishing"]


@runtime_checkable
class SupportsCreatePublishing(Protocol):
    async def create_jobs_publishing(
        self,
        jobs: Sequence[NewJob],
        notifications: Notifications,
        publish: NotifyInTransaction,
    ) -> list[CreatedJob]:
        """``create_jobs(jobs)`` without a caller's transaction, in a transaction of the adapter's
        own that also publishes ``notifications`` (what the batch announces once every job of it is
        created) with ``publish(tx, notifications)`` before it commits. They are published only if
        every job of the batch is created: not when the batch fails (nothing written, the error
        raised as ``create_jobs`` raises it) nor when a job is deduplicated (the caller then
        announces what was created itself, after the commit). An error of ``publish`` rolls the
        batch back and propagates. An adapter may send the messages in the insert statement itself
        when it recognises ``publish`` as one its own backend's notify adapter made for it."""
        ...


Announce = Callable[[Sequence[CompleteResult | None]], Notifications]
"""``announce(results)``: what the closes of ``results`` announce (``None`` results, refused
completions, announce nothing). The core's rule, handed to the state adapter."""


@runtime_checkable
class SupportsCompletePublishing(Protocol):
    async def complete_jobs_publishing(
        self,
        completions: Sequence[Completion],
        closing: Sequence[Notifications],
        announce: Announce,
        publish: NotifyInTransaction,
        *,
        worker_id: str | None,
        owner: str | None = None,
    ) -> list[CompleteResult | None]:
        """``complete_jobs(completions, worker_id=worker_id, owner=owner)`` without a caller's
        transaction, publishing with ``publish(tx, notifications)`` what the closes announce in the
        transaction that makes them, before it commits: the messages of exactly the completions
        that took effect (a refused completion, such as one whose lease was lost, announces
        nothing). An error of ``publish`` rolls its transaction back and propagates.

        ``closing[i]`` is what ``completions[i]`` announces if it closes its job releasing no other
        job (known before the write); ``announce(results)`` is what any closes announce. The simple
        implementation closes the whole batch in one transaction and publishes
        ``announce(results)`` in it. Like ``complete_jobs`` without a transaction, each completion
        stands on its own: an adapter may commit the completions that close releasing nothing in
        one autocommit statement that also sends their ``closing`` messages (when it recognises
        ``publish`` as one its own backend's notify adapter made for it), and close the others in a
        transaction of its own that publishes ``announce`` of their results."""
        ...
