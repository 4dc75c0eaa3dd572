"""Storage maintenance: the runs that keep a state adapter's own storage layout ready, by the workers
themselves, with or without :class:`~queuert.retention.Retention`.

A state adapter with a layout of its own (:class:`~queuert.state.SupportsStorageMaintenance`, such as
PostgreSQL's partitioned layout, which creates the partitions of coming time ranges ahead) says how
often it needs a run (``storage_maintenance_every``; None: never). Every worker on such an adapter
then starts the runs as a periodic chain of the job type ``queuert_storage_maintenance`` (see
:mod:`queuert.periodic`): one chain per tick across all workers, claimed and leased by one worker
like any job, so one run at a time across all processes. A run calls ``maintain_storage()`` without
a cutoff: it prepares what is needed ahead and finishes what a stopped run left half done, and
removes nothing that has not expired (expiry is the business of retention runs).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from queuert.job_types import EntryJobType
from queuert.periodic import Periodic
from queuert.state import SupportsStorageMaintenance

if TYPE_CHECKING:
    from queuert.attempt import Attempt
    from queuert.client import Client

__all__ = [
    "RunStorageMaintenance",
    "StorageMaintenanceResult",
    "StorageMaintenanceRun",
    "storage_maintenance_periodic",
]


@dataclass
class StorageMaintenanceRun:
    """The input of a storage maintenance run (nothing to configure)."""


@dataclass
class StorageMaintenanceResult:
    """The output of a storage maintenance run: partitions created ahead, and partitions that a
    stopped run had detached and this one dropped (with the chains and jobs they held)."""

    partitions_created: int
    partitions_dropped: int = 0
    chains: int = 0
    jobs: int = 0


class RunStorageMaintenance(
    EntryJobType[StorageMaintenanceRun, StorageMaintenanceResult],
    name="queuert_storage_maintenance",
):
    """One storage maintenance run (started by the workers of a layout that needs them)."""


def storage_maintenance_periodic(state: object) -> Periodic[StorageMaintenanceRun] | None:
    """The periodic chain that starts the runs, or None if ``state`` needs none."""
    if not isinstance(state, SupportsStorageMaintenance):
        return None
    every = state.storage_maintenance_every
    if every is None:
        return None
    return Periodic(
        RunStorageMaintenance,
        every=every,
        input=lambda tick: StorageMaintenanceRun(),
        name="queuert-storage-maintenance",
    )


async def run_storage_maintenance(
    client: Client[Any], attempt: Attempt[RunStorageMaintenance]
) -> StorageMaintenanceResult:
    """The handler of a storage maintenance run."""
    state = client._core.state
    assert isinstance(state, SupportsStorageMaintenance)
    done = await state.maintain_storage()
    return StorageMaintenanceResult(
        done.partitions_created, done.partitions_dropped, done.chains, done.jobs
    )
