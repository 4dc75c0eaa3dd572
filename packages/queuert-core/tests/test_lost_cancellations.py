"""A cancellation that a store's driver loses (before Python 3.12, ``asyncio.wait_for`` returns a
result that arrives together with the cancellation of its caller): the worker's close still ends."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, cast

from queuert import Attempt, Client, EntryJobType, InMemoryStateAdapter, Lease, Worker
from queuert.state import LeaseRenewal


@dataclass
class Nap:
    seconds: float


class Napping(EntryJobType[Nap, None], name="lost_cancellation_nap"):
    pass


class _RenewalLosesOneCancellation(InMemoryStateAdapter):
    """A store whose first lease renewal waits until cancelled and then answers anyway."""

    def __init__(self) -> None:
        super().__init__()
        self.renewing = asyncio.Event()
        self.lost = False

    async def renew_leases(
        self, leases: Mapping[str, timedelta], *, worker_id: str, tx: Any = None
    ) -> LeaseRenewal:
        if not self.lost:
            self.renewing.set()
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                self.lost = True
        return await super().renew_leases(leases, worker_id=worker_id, tx=tx)


async def test_closing_ends_a_lease_renewer_whose_cancellation_was_lost() -> None:
    state = _RenewalLosesOneCancellation()
    client: Client[Any] = Client(cast(Any, state))  # its __aenter__ is typed by the base class

    async def nap(attempt: Attempt[Napping]) -> None:
        # returns once the renewer is inside the store: it is there when the worker closes
        await state.renewing.wait()

    worker: Worker[Any] = Worker(
        client, handlers={Napping: nap}, lease=Lease(duration=60, renew_every=0.05)
    )
    async with client.transaction() as tx:
        chain = await client.start_chain(Napping(Nap(0)), tx=tx)
    await worker.start()
    await client.wait_for_chain(chain, timeout=10)
    # the renewer goes on renewing after its lost cancellation: closing must still end it
    await asyncio.wait_for(worker.close(), 10)
    assert state.lost, "the renewer's cancellation was let go by the store"
    await client.close()
