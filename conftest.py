"""Settings every test of the workspace shares.

Hypothesis's per-example deadline times each example against the wall clock; on a machine busy
with other work (parallel test workers, servers on the same cores) an ordinary example can take
longer than it, which fails a test that checks behaviour, not speed. Speed is measured by
``tools/bench``, so no test here has a deadline.

A hypothesis test that drives an adapter from a synchronous test function runs every example on
the module's ``loop``: the adapter's connection pool lives on it, so it cannot be a new loop per
example.
"""

import asyncio
from collections.abc import Iterator

import pytest
from hypothesis import settings

settings.register_profile("queuert", deadline=None)
settings.load_profile("queuert")


@pytest.fixture(scope="module")
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    """One event loop for a module's hypothesis examples (see above)."""
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()
