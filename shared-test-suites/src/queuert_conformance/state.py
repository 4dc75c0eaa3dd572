"""Every case of the state adapter conformance suite, for ``from queuert_conformance.state import *``.

The cases need one fixture, ``queuert_state_harness``, yielding a
:class:`~queuert_conformance.StateHarness` over a fresh, empty store (see :mod:`queuert_conformance`).
They consult ``harness.adapter.capabilities`` and the harness's optional hooks themselves.

Readings of the contract the suite relies on where ``queuert.state`` leaves room:

* A read without ``tx`` never waits for an open transaction (it reads committed state); a case that
  reads while its own transaction is open would otherwise deadlock.
* ``open_blocker_chain_ids`` of :meth:`~queuert.state.StateAdapter.add_blockers` is compared as a set
  when a chain fills several slots.
* ``blocker_trace_contexts`` of a closing completion are compared as a multiset.
* A triggered job that was already ready may keep its ``scheduled_at`` or move it to now; the suite
  only checks that it is ready.
"""

from __future__ import annotations

import pytest

pytest.register_assert_rewrite("queuert_conformance.state_suite")

from queuert_conformance.state_suite.activity import (  # noqa: E402
    TestJobActivity,
    TestListChainsByDeduplicationKey,
)
from queuert_conformance.state_suite.blockers import (  # noqa: E402
    TestAddBlockers,
    TestGetJobBlockers,
    TestUnblocking,
)
from queuert_conformance.state_suite.claim import TestClaimJobs  # noqa: E402
from queuert_conformance.state_suite.complete import TestCompleteJob, TestCompleteJobs  # noqa: E402
from queuert_conformance.state_suite.complete_publishing import (  # noqa: E402
    TestCompletePublishing,
)
from queuert_conformance.state_suite.concurrency import TestConcurrency  # noqa: E402
from queuert_conformance.state_suite.create import TestCreateJobs, TestDeduplication  # noqa: E402
from queuert_conformance.state_suite.create_publishing import TestCreatePublishing  # noqa: E402
from queuert_conformance.state_suite.delete import TestDeleteChains  # noqa: E402
from queuert_conformance.state_suite.ids import TestIdPolicy  # noqa: E402
from queuert_conformance.state_suite.isolation import TestReadIsolation  # noqa: E402
from queuert_conformance.state_suite.lease import TestRenewLeases  # noqa: E402
from queuert_conformance.state_suite.lifecycle import TestAdapterLifecycle  # noqa: E402
from queuert_conformance.state_suite.limits import (  # noqa: E402
    TestConcurrencyLimits,
    TestKeyedLimits,
    TestLimitKeys,
)
from queuert_conformance.state_suite.limits_processes import (  # noqa: E402
    TestLimitsAcrossProcesses,
)
from queuert_conformance.state_suite.limits_property import TestLimitsProperty  # noqa: E402
from queuert_conformance.state_suite.listing import (  # noqa: E402
    TestListBlockedJobs,
    TestListChainJobs,
    TestListChains,
    TestListJobs,
)
from queuert_conformance.state_suite.model import TestStateModel  # noqa: E402
from queuert_conformance.state_suite.next_due_property import TestNextDueProperty  # noqa: E402
from queuert_conformance.state_suite.priority import TestPriorities  # noqa: E402
from queuert_conformance.state_suite.processes import TestMultiProcess  # noqa: E402
from queuert_conformance.state_suite.read import TestGetChain, TestGetJob, TestNextDue  # noqa: E402
from queuert_conformance.state_suite.reap import TestReapExpiredLeases  # noqa: E402
from queuert_conformance.state_suite.reschedule import TestRescheduleJob  # noqa: E402
from queuert_conformance.state_suite.stats import TestQueueStats  # noqa: E402
from queuert_conformance.state_suite.status import TestStatusPrecedence  # noqa: E402
from queuert_conformance.state_suite.transactions import (  # noqa: E402
    TestSavepoints,
    TestTransactions,
)
from queuert_conformance.state_suite.trigger import TestTriggerJobs  # noqa: E402

__all__ = [
    "TestAdapterLifecycle",
    "TestAddBlockers",
    "TestClaimJobs",
    "TestCompleteJob",
    "TestCompleteJobs",
    "TestCompletePublishing",
    "TestConcurrency",
    "TestConcurrencyLimits",
    "TestCreateJobs",
    "TestCreatePublishing",
    "TestDeduplication",
    "TestDeleteChains",
    "TestGetChain",
    "TestGetJob",
    "TestGetJobBlockers",
    "TestIdPolicy",
    "TestJobActivity",
    "TestKeyedLimits",
    "TestLimitKeys",
    "TestLimitsAcrossProcesses",
    "TestLimitsProperty",
    "TestListBlockedJobs",
    "TestListChainJobs",
    "TestListChains",
    "TestListChainsByDeduplicationKey",
    "TestListJobs",
    "TestMultiProcess",
    "TestNextDue",
    "TestNextDueProperty",
    "TestPriorities",
    "TestQueueStats",
    "TestReadIsolation",
    "TestReapExpiredLeases",
    "TestRenewLeases",
    "TestRescheduleJob",
    "TestSavepoints",
    "TestStateModel",
    "TestStatusPrecedence",
    "TestTransactions",
    "TestTriggerJobs",
    "TestUnblocking",
]
