"""Attribute names and fixed values: the messaging semantic conventions where they apply,
``queuert.*`` for the rest."""

from __future__ import annotations

from typing import Final

SYSTEM: Final = "queuert"

# messaging semantic conventions
MESSAGING_SYSTEM: Final = "messaging.system"
DESTINATION: Final = "messaging.destination.name"
OPERATION_NAME: Final = "messaging.operation.name"
OPERATION_TYPE: Final = "messaging.operation.type"
MESSAGE_ID: Final = "messaging.message.id"
ERROR_TYPE: Final = "error.type"

# queuert
JOB_TYPE: Final = "queuert.job.type"
JOB_ID: Final = "queuert.job.id"
JOB_ATTEMPT: Final = "queuert.job.attempt"
CHAIN_TYPE: Final = "queuert.chain.type"
CHAIN_ID: Final = "queuert.chain.id"
CHAIN_OUTCOME: Final = "queuert.chain.outcome"
CHAIN_DEDUPLICATED: Final = "queuert.chain.deduplicated"
CONTINUED: Final = "queuert.job.continued"
CONTINUED_WITH: Final = "queuert.job.continued_with"
WORKERLESS: Final = "queuert.job.workerless"
WORKER_ID: Final = "queuert.worker.id"
RETRY_AT: Final = "queuert.job.retry_at"
RETRIED: Final = "queuert.job.retried"
BLOCKED: Final = "queuert.job.blocked"
SCHEDULED_AT: Final = "queuert.job.scheduled_at"
BLOCKER_CHAIN_ID: Final = "queuert.blocker.chain.id"
BLOCKER_INDEX: Final = "queuert.blocker.index"
LEASE_LOST_REASON: Final = "queuert.lease.lost_reason"
ADAPTER: Final = "queuert.adapter"
ADAPTER_OPERATION: Final = "queuert.adapter.operation"
MODE: Final = "queuert.processing.mode"
