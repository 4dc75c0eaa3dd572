"""The shared state adapter suite, for every provider and namespace configuration."""

from queuert_conformance.state import *  # noqa: F403
