"""Every test in this directory runs on uvloop's event loop (fixtures included) instead of asyncio's."""

from queuert_conformance.uvloop_loop import collect_ignore_glob, pytest_asyncio_loop_factories

__all__ = ["collect_ignore_glob", "pytest_asyncio_loop_factories"]
