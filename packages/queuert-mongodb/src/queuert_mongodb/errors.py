"""The errors only the MongoDB backend raises (all subclasses of :class:`queuert.errors.QueuertError`)."""

from __future__ import annotations

from queuert.errors import QueuertError, UsageError

__all__ = ["StandaloneServerError", "TransactionRetriesExhaustedError"]


class TransactionRetriesExhaustedError(QueuertError):
    """A unit of work of queuert's own kept failing with a transient transaction error (a write
    conflict, an election) or its commit kept ending with an unknown result, ``attempts`` times.

    Only operations the adapter runs in a transaction of its own are retried; a transaction the caller
    passed as ``tx`` is never run again behind the caller's back: its error surfaces unchanged.
    """

    def __init__(self, operation: str, attempts: int, last_error: BaseException) -> None:
        self.operation = operation
        self.attempts = attempts
        self.last_error = last_error
        super().__init__(
            f"{operation} failed {attempts} times in a row with a transient MongoDB error; "
            f"last: {last_error}"
        )


class StandaloneServerError(UsageError):
    """The server is a standalone ``mongod``: it has no multi-document transactions, which queuert
    needs. Run it as a replica set (one node is enough): start ``mongod --replSet rs0`` and run
    ``rs.initiate()`` once."""

    def __init__(self, address: str) -> None:
        super().__init__(
            f"MongoDB at {address} is a standalone server, which has no multi-document "
            "transactions: start it as a replica set (one node is enough: mongod --replSet rs0, "
            "then rs.initiate() once in mongosh) and connect with ?replicaSet=rs0"
        )
