"""The shared state adapter suite, for every table prefix configuration."""

from queuert_conformance.state import *  # noqa: F403
