"""The core's internals one client owns, shared with the workers and attempts built on that client.

:class:`Core` holds the adapters and the parts the public :class:`~queuert.client.Client` is built
from: after-commit publishing, bound transactions, row to object mapping, chain creation and job
finishing. The client, the worker and attempts use these; users never see them.
"""

from __future__ import annotations

from typing import Generic, TypeVar

from queuert._bound_transaction import Transactions
from queuert._chain_creation import ChainCreation
from queuert._finishing import Finishing
from queuert._mapping import Mapper, job_info
from queuert._publishing import Publishing
from queuert.codec import Codec
from queuert.job_types import JobTypeRegistry
from queuert.notify import NotifyAdapter
from queuert.observability import ObservabilityAdapter
from queuert.payload import DEFAULT_MAX_PAYLOAD_BYTES, Payloads
from queuert.state import StateAdapter

__all__ = ["Core"]

TxT = TypeVar("TxT")


class Core(Generic[TxT]):
    """The internal parts of one client (see the module docstring)."""

    def __init__(
        self,
        state: StateAdapter[TxT],
        *,
        notify: NotifyAdapter,
        observability: ObservabilityAdapter,
        codec: Codec,
        registry: JobTypeRegistry,
        max_payload_bytes: int | None = DEFAULT_MAX_PAYLOAD_BYTES,
    ) -> None:
        self.state = state
        self.notify = notify
        self.registry = registry
        self.publishing = Publishing(notify, observability, state)
        self.transactions: Transactions[TxT] = Transactions(state, self.publishing)
        self.codec = codec
        self.mapper = Mapper(registry, codec)
        self.payloads = Payloads(codec, max_payload_bytes)
        self.creation: ChainCreation[TxT] = ChainCreation(
            state, registry, self.payloads, self.publishing
        )
        self.finishing: Finishing[TxT] = Finishing(
            state, registry, self.payloads, self.creation, self.publishing
        )
        # the calls on hot paths, bound once
        self.emit = self.publishing.emit
        self.after_commit = self.publishing.after_commit
        self.publish_later = self.publishing.publish_later
        self.to_job = self.mapper.to_job
        self.to_chain = self.mapper.to_chain
        self.job_info = job_info
