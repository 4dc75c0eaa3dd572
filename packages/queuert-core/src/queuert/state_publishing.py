"""Optional for state adapters: create jobs and publish what they announce in one transaction.

Starting chains without a caller's transaction is one short transaction of the state adapter's own
(one statement where it can). When the notify adapter publishes inside the state adapter's
transactions (:class:`~queuert.notify.SupportsNotifyInTransaction`), a state adapter implementing
:class:`SupportsCreatePublishing` sends the wake-ups of those chains in that same transaction, so
that they cost no transaction of their own; one that recognises the publisher (both adapters of the
same backend) may even send them in the insert statement itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from queuert.notify import Notifications, NotifyInTransaction
from queuert.state import CreatedJob, NewJob

__all__ = ["SupportsCreatePublishing"]


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
