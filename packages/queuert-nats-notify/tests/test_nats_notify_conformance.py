"""The notify conformance suite against NATS, with wake-hint budgets in a JetStream KV bucket."""

from queuert_conformance.notify import *  # noqa: F403
