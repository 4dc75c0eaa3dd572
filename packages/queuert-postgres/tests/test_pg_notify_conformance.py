"""The shared notify adapter suite over LISTEN/NOTIFY (unique channel prefix per test)."""

from queuert_conformance.notify import *  # noqa: F403
