"""When a case does not apply to the adapter under test: skipped with the capability or hook it needs.

A case that needs something the adapter does not declare (a capability left False, a harness hook
left None) must not pass without checking anything: it calls :func:`not_applicable` (or one of the
``require_*`` helpers), which skips it with a reason that starts with :data:`NOT_APPLICABLE` and names
what is missing. The plugin's certification summary groups these reasons, so a run tells what it did
not check. Every reason is one of :data:`REASONS`, worded once here.
"""

from __future__ import annotations

from typing import NoReturn

import pytest
from queuert.state import Capabilities

NOT_APPLICABLE = "not applicable: "
"""The prefix of every skip reason of a case that does not apply to the adapter under test."""

REASONS: dict[str, str] = {
    "savepoints": "needs capabilities.savepoints (a savepoint that rolls back on its own)",
    "row_locks": "needs capabilities.row_locks (a locked read waits for the lock holder)",
    "concurrent_transactions": (
        "needs capabilities.concurrent_transactions (transactions open at once; serialised "
        "transactions would pass the race trivially)"
    ),
    "multi_process": "needs capabilities.multi_process (several processes share one store)",
    "concurrency_limits": (
        "needs capabilities.concurrency_limits (claims enforce the job types' concurrency limits)"
    ),
    "poison": (
        "needs capabilities.poison_transaction and StateHarness.poison (a statement failing "
        "inside a transaction)"
    ),
    "open_another": (
        "needs StateHarness.open_another (a second adapter over the same store, as another "
        "process would open it)"
    ),
    "open_in_process": (
        "needs StateHarness.open_in_process (an adapter opened in another OS process; "
        "capabilities.multi_process is declared but not checked without it)"
    ),
    "open_sharing": "needs StateHarness.open_sharing (an adapter over the adapter's own connections)",
    "write_raw": "needs StateHarness.write_raw (a way to store a value bypassing the adapter)",
    "raw_text": (
        "the store cannot hold a stored value that is not JSON (its JSON column refuses it), so "
        "such a row cannot occur"
    ),
    "raw_time": (
        "the store keeps times typed (a timestamp column, a date), so a stored time that is not a "
        "time cannot occur"
    ),
    "raw_time_never_due": (
        "the store compares values of different types by type, so a job whose stored time is not a "
        "time is never due and no claim takes it (the adapter's own tests cover how it is read)"
    ),
    "create_publishing": (
        "the adapter does not implement queuert.state_publishing.SupportsCreatePublishing "
        "(optional: chain starts publish their wake-ups after their commit)"
    ),
    "complete_publishing": (
        "the adapter does not implement queuert.state_publishing.SupportsCompletePublishing "
        "(optional: a worker's group commits publish in a transaction the core opens)"
    ),
    "notify_open_another": "needs NotifyHarness.open_another (a second connection to the server)",
    "notify_interrupt": "needs NotifyHarness.interrupt (a way to drop the adapter's connections)",
}
"""What a case may need, keyed by a short name, and the reason its skip gives when it is missing."""


def not_applicable(need: str) -> NoReturn:
    """Skip the running case: the adapter under test lacks ``need`` (a key of :data:`REASONS`)."""
    pytest.skip(NOT_APPLICABLE + REASONS[need])


def require_capability(capabilities: Capabilities, name: str) -> None:
    """Skip the running case unless ``capabilities.<name>`` is declared True."""
    if not getattr(capabilities, name):
        not_applicable(name)


def reason_of(message: str) -> str | None:
    """The reason of a skip message if it says a case is not applicable, else None."""
    _, found, reason = message.partition(NOT_APPLICABLE)
    return reason if found else None
