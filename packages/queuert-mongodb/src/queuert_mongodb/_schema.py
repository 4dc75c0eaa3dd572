"""Migrations: the indexes of a queuert store, applied once each and recorded in ``{prefix}meta``.

Each migration is a name and the index changes it makes. :func:`migrate` takes a lock document in
``{prefix}meta`` (a unique ``_id``, so one process holds it at a time; a lock left by a process that
died expires), applies the migrations not recorded yet in order, records each one, and releases the
lock. Creating an index that exists with the same definition is a no-op on the server, so a migration
interrupted between its indexes and its record is simply applied again.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from pymongo import ASCENDING, DESCENDING, IndexModel
from pymongo.errors import DuplicateKeyError
from queuert.state import MigrationResult

from queuert_mongodb._names import Names

__all__ = ["MIGRATIONS", "Migration", "migrate"]

logger = logging.getLogger("queuert.mongodb")

LOCK_ID = "migration-lock"
CLOCK_ID = "clock"
"""A document of ``{prefix}meta`` that always exists: reading the server's clock aggregates over it."""

_LOCK_TTL = timedelta(seconds=60)
"""A migration lock older than this was left by a process that died: it may be taken over."""


@dataclass(frozen=True)
class Migration:
    name: str
    apply: Callable[[Any, Names], Awaitable[None]]
    """Makes the migration's changes in the database (``AsyncDatabase``)."""


async def _initial(db: Any, names: Names) -> None:
    jobs = db[names.jobs]
    await jobs.create_indexes(
        [
            # continuations: one job per chain position; the chain's tail is its highest index
            IndexModel([("chain_id", ASCENDING), ("chain_index", ASCENDING)], unique=True),
            # claims and next_due: open, unleased, unblocked jobs of a type by due time
            IndexModel(
                [
                    ("type_name", ASCENDING),
                    ("outcome", ASCENDING),
                    ("leased_until", ASCENDING),
                    ("blocked", ASCENDING),
                    ("scheduled_at", ASCENDING),
                    ("_id", ASCENDING),
                ],
                name="claim",
            ),
            # deduplication: the newest chain of a type with a key
            IndexModel(
                [
                    ("chain_type_name", ASCENDING),
                    ("deduplication_key", ASCENDING),
                    ("created_at", DESCENDING),
                    ("_id", DESCENDING),
                ],
                name="deduplication",
                partialFilterExpression={"deduplication_key": {"$type": "string"}},
            ),
            # listings by creation time
            IndexModel([("created_at", ASCENDING), ("_id", ASCENDING)], name="created"),
            # the jobs waiting for a chain
            IndexModel([("blockers.c", ASCENDING)], name="blockers"),
            # recent activity and retention
            IndexModel([("completed_at", ASCENDING)], name="completed"),
        ]
    )
    await db[names.meta].update_one({"_id": CLOCK_ID}, {"$set": {"_id": CLOCK_ID}}, upsert=True)


async def _priority(db: Any, names: Names) -> None:
    jobs = db[names.jobs]
    # jobs stored before priorities have none: they read as 0, and must sort as 0
    await jobs.update_many({"priority": {"$exists": False}}, {"$set": {"priority": 0}})
    await jobs.create_indexes(
        [
            # claims: open, unleased, unblocked jobs of a type by priority (highest first), then
            # due time; the "claim" index keeps serving next_due
            IndexModel(
                [
                    ("type_name", ASCENDING),
                    ("outcome", ASCENDING),
                    ("leased_until", ASCENDING),
                    ("blocked", ASCENDING),
                    ("priority", DESCENDING),
                    ("scheduled_at", ASCENDING),
                    ("_id", ASCENDING),
                ],
                name="claim_by_priority",
            ),
        ]
    )


MIGRATIONS: tuple[Migration, ...] = (
    Migration("0001_initial", _initial),
    Migration("0002_priority", _priority),
)
"""Every migration, oldest first."""


async def _ensure_collections(db: Any, names: Names) -> None:
    """Create the collections (transactions cannot create them on every server version)."""
    existing = set(await db.list_collection_names())
    for name in (names.jobs, names.locks, names.meta):
        if name not in existing:
            try:
                await db.create_collection(name)
            except Exception as exc:  # another process created it first
                if "already exists" not in str(exc) and getattr(exc, "code", None) != 48:
                    raise


async def migrate(db: Any, names: Names) -> MigrationResult:
    await _ensure_collections(db, names)
    meta = db[names.meta]
    token = uuid.uuid4().hex
    await _take_lock(meta, token)
    try:
        recorded = {doc["_id"] async for doc in meta.find({"kind": "migration"}, {"_id": 1})}
        known = {m.name for m in MIGRATIONS}
        applied: list[str] = []
        skipped: list[str] = []
        for migration in MIGRATIONS:
            if migration.name in recorded:
                skipped.append(migration.name)
                continue
            await migration.apply(db, names)
            await meta.insert_one(
                {
                    "_id": migration.name,
                    "kind": "migration",
                    "applied_at": datetime.now(timezone.utc),
                }
            )
            logger.info("applied migration", extra={"queuert_migration": migration.name})
            applied.append(migration.name)
        unrecognized = sorted(recorded - known)
        return MigrationResult(applied=applied, skipped=skipped, unrecognized=unrecognized)
    finally:
        await meta.delete_one({"_id": LOCK_ID, "token": token})


async def _take_lock(meta: Any, token: str) -> None:
    """Insert the lock document; while another process holds it, wait (it is released when that
    process finishes, or expires if it died)."""
    delay = 0.02
    while True:
        now = datetime.now(timezone.utc)
        try:
            await meta.insert_one({"_id": LOCK_ID, "token": token, "expires_at": now + _LOCK_TTL})
            return
        except DuplicateKeyError:
            pass
        # taken: take it over if it expired, else wait for its holder
        taken = await meta.find_one_and_update(
            {"_id": LOCK_ID, "expires_at": {"$lt": now}},
            {"$set": {"token": token, "expires_at": now + _LOCK_TTL}},
        )
        if taken is not None:
            return
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.5)
