"""In-memory adapters: the reference state adapter and the in-process notify adapter."""

from queuert.in_memory.notify import InProcessHub, InProcessNotifyAdapter, NoopNotifyAdapter
from queuert.in_memory.state import InMemoryStateAdapter, InMemoryTransaction

__all__ = [
    "InMemoryStateAdapter",
    "InMemoryTransaction",
    "InProcessHub",
    "InProcessNotifyAdapter",
    "NoopNotifyAdapter",
]
