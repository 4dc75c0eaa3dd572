"""The shared notify adapter suite over change streams (a collection prefix of its own per test)."""

from queuert_conformance.notify import *  # noqa: F403
