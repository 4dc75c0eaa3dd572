"""The shared state adapter suite."""

from queuert_conformance.state import *  # noqa: F403
