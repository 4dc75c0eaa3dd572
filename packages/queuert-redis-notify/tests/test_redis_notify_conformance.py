"""The notify conformance suite against Redis."""

from queuert_conformance.notify import *  # noqa: F403
