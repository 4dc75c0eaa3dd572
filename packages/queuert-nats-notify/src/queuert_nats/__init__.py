"""queuert-nats-notify: the queuert notify adapter for NATS (nats-py)."""

from queuert_nats.notify import NatsNotifyAdapter

__all__ = ["NatsNotifyAdapter"]
