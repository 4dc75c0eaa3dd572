"""All behaviour suites: ``from queuert_conformance.behaviour import *`` in an adapter's test module.

Needs the ``queuert_state_harness`` fixture (see :mod:`queuert_conformance`) and, optionally, a
``queuert_notify_factory`` fixture (default: an in-process notify adapter).
"""

from queuert_conformance.behaviour_suite.support import queuert_env
from queuert_conformance.behaviour_suite.test_arguments import TestArguments
from queuert_conformance.behaviour_suite.test_blockers import TestFanOutFanIn
from queuert_conformance.behaviour_suite.test_chains import TestContinuations, TestPatterns
from queuert_conformance.behaviour_suite.test_deletion import TestDeletion, TestWaitForChain
from queuert_conformance.behaviour_suite.test_hostile_values import TestHostileValues
from queuert_conformance.behaviour_suite.test_isolation import TestIsolatedHandlers
from queuert_conformance.behaviour_suite.test_limits import TestWorkerLimits
from queuert_conformance.behaviour_suite.test_periodic import TestPeriodic
from queuert_conformance.behaviour_suite.test_periodic_processes import TestPeriodicProcesses
from queuert_conformance.behaviour_suite.test_poison_rows import TestPoisonRows, TestUnreadableTimes
from queuert_conformance.behaviour_suite.test_priorities import TestWorkerPriorities
from queuert_conformance.behaviour_suite.test_processing import (
    TestErrors,
    TestMaxAttempts,
    TestMisuse,
    TestModes,
)
from queuert_conformance.behaviour_suite.test_resilience import (
    TestNotifyResilience,
    TestStateResilience,
)
from queuert_conformance.behaviour_suite.test_retention import TestRetention
from queuert_conformance.behaviour_suite.test_scheduling import (
    TestScheduling,
    TestStartDeduplication,
)
from queuert_conformance.behaviour_suite.test_timeouts import TestAttemptTimeout
from queuert_conformance.behaviour_suite.test_transaction_handles import TestTransactionHandles
from queuert_conformance.behaviour_suite.test_transactions import (
    TestClientTransactions,
    TestStartsWithoutATransaction,
    TestValidation,
)
from queuert_conformance.behaviour_suite.test_workerless import TestCancel, TestWorkerlessCompletion
from queuert_conformance.behaviour_suite.test_workers import (
    TestLeases,
    TestPickup,
    TestShutdown,
    TestWorkerRecovery,
)

__all__ = [
    "TestArguments",
    "TestAttemptTimeout",
    "TestCancel",
    "TestClientTransactions",
    "TestContinuations",
    "TestDeletion",
    "TestErrors",
    "TestFanOutFanIn",
    "TestHostileValues",
    "TestIsolatedHandlers",
    "TestLeases",
    "TestMaxAttempts",
    "TestMisuse",
    "TestModes",
    "TestNotifyResilience",
    "TestPatterns",
    "TestPeriodic",
    "TestPeriodicProcesses",
    "TestPickup",
    "TestPoisonRows",
    "TestRetention",
    "TestScheduling",
    "TestShutdown",
    "TestStartDeduplication",
    "TestStartsWithoutATransaction",
    "TestStateResilience",
    "TestTransactionHandles",
    "TestUnreadableTimes",
    "TestValidation",
    "TestWaitForChain",
    "TestWorkerLimits",
    "TestWorkerPriorities",
    "TestWorkerRecovery",
    "TestWorkerlessCompletion",
    "queuert_env",
]
