"""queuert: durable background job chains that live in your own database.

Start chains inside your own transaction (if it rolls back, the job never existed), process them with
asyncio workers in any number of processes, continue them, fan them out and in with blockers, retry,
schedule, deduplicate, complete them from outside a worker, and wait for their results.
"""

from queuert.attempt import Attempt, CancellationSignal, CancelReason, Mode
from queuert.backoff import Backoff, Lease
from queuert.client import Client, TxContext, WorkerlessCompletion
from queuert.codec import Codec, CodecError, DefaultCodec
from queuert.errors import (
    AttemptTimeoutError,
    BlockerChainFailedError,
    BlockerReference,
    BlockerReferenceError,
    ChainCancelledError,
    ChainFailedError,
    ChainNotFoundError,
    ConfigurationError,
    CpuLimitError,
    DuplicateJobIdError,
    DuplicateJobTypeError,
    HandlerCrashedError,
    HardTimeoutError,
    InvalidIdentifierError,
    InvalidJobIdError,
    IsolatedHandlerError,
    IsolationError,
    JobAlreadyCompletedError,
    JobLostError,
    JobNotCompletedError,
    JobNotFoundError,
    JobNotTriggerableError,
    JobTakenByAnotherWorkerError,
    JobTypeMismatchError,
    JobTypeValidationError,
    MemoryLimitError,
    NotifyAdapterClosedError,
    NotJsonError,
    PayloadTooLargeError,
    QueuertError,
    RescheduleJob,
    StateAdapterClosedError,
    StoredValueError,
    SyncCallInEventLoopError,
    SyncCallSuspendedError,
    TransactionAbortedError,
    TransactionHooksRequiredError,
    UnknownJobTypeError,
    UsageError,
    WaitChainTimeoutError,
)
from queuert.hooks import TransactionHooks
from queuert.in_memory import (
    InMemoryStateAdapter,
    InProcessHub,
    InProcessNotifyAdapter,
    NoopNotifyAdapter,
)
from queuert.isolation import IsolatedJob
from queuert.job_types import Blockers, ChainResult, Continues, EntryJobType, JobType
from queuert.json import UndecodableValue
from queuert.models import Chain, Job
from queuert.notify import NotifyAdapter
from queuert.observability import LoggingObservability, ObservabilityAdapter, RecordingObservability
from queuert.periodic import Periodic
from queuert.retention import Retention
from queuert.schedule import Deduplication, Schedule
from queuert.state import Page, QueueStats, StateAdapter
from queuert.sync_backend import SyncBackend
from queuert.sync_client import SyncClient, SyncTxContext, SyncWorkerlessCompletion
from queuert.worker import AttemptMiddleware, Worker

__all__ = [
    "Attempt",
    "AttemptMiddleware",
    "AttemptTimeoutError",
    "Backoff",
    "BlockerChainFailedError",
    "BlockerReference",
    "BlockerReferenceError",
    "Blockers",
    "CancelReason",
    "CancellationSignal",
    "Chain",
    "ChainCancelledError",
    "ChainFailedError",
    "ChainNotFoundError",
    "ChainResult",
    "Client",
    "Codec",
    "CodecError",
    "ConfigurationError",
    "Continues",
    "CpuLimitError",
    "Deduplication",
    "DefaultCodec",
    "DuplicateJobIdError",
    "DuplicateJobTypeError",
    "EntryJobType",
    "HandlerCrashedError",
    "HardTimeoutError",
    "InMemoryStateAdapter",
    "InProcessHub",
    "InProcessNotifyAdapter",
    "InvalidIdentifierError",
    "InvalidJobIdError",
    "IsolatedHandlerError",
    "IsolatedJob",
    "IsolationError",
    "Job",
    "JobAlreadyCompletedError",
    "JobLostError",
    "JobNotCompletedError",
    "JobNotFoundError",
    "JobNotTriggerableError",
    "JobTakenByAnotherWorkerError",
    "JobType",
    "JobTypeMismatchError",
    "JobTypeValidationError",
    "Lease",
    "LoggingObservability",
    "MemoryLimitError",
    "Mode",
    "NoopNotifyAdapter",
    "NotJsonError",
    "NotifyAdapter",
    "NotifyAdapterClosedError",
    "ObservabilityAdapter",
    "Page",
    "PayloadTooLargeError",
    "Periodic",
    "QueueStats",
    "QueuertError",
    "RecordingObservability",
    "RescheduleJob",
    "Retention",
    "Schedule",
    "StateAdapter",
    "StateAdapterClosedError",
    "StoredValueError",
    "SyncBackend",
    "SyncCallInEventLoopError",
    "SyncCallSuspendedError",
    "SyncClient",
    "SyncTxContext",
    "SyncWorkerlessCompletion",
    "TransactionAbortedError",
    "TransactionHooks",
    "TransactionHooksRequiredError",
    "TxContext",
    "UndecodableValue",
    "UnknownJobTypeError",
    "UsageError",
    "WaitChainTimeoutError",
    "Worker",
    "WorkerlessCompletion",
]

__version__ = "0.1.0"
