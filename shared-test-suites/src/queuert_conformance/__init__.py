"""queuert-conformance: the test suites every queuert adapter passes.

An adapter author writes one fixture that builds their adapter and imports the suites (the
distribution's README is the full guide)::

    # tests/conftest.py
    import pytest_asyncio
    from queuert_conformance import StateHarness

    @pytest_asyncio.fixture
    async def queuert_state_harness():
        adapter = MyStateAdapter(...)
        await adapter.migrate()
        yield StateHarness(adapter=adapter)
        await adapter.close()

    # tests/test_conformance.py
    from queuert_conformance.state import *  # noqa: F403

The suites consult ``adapter.capabilities`` (and the harness's optional hooks) to decide which cases
apply, so no adapter keeps a skip list: a case that needs what the adapter does not declare is skipped
as not applicable, with the reason (:mod:`queuert_conformance.applicability`), and the run ends with a
certification summary (:mod:`queuert_conformance.plugin`).
"""

from queuert_conformance.harness import NotifyHarness, StateHarness

__all__ = ["NotifyHarness", "StateHarness"]
