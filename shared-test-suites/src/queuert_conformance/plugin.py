"""pytest plugin of queuert-conformance, registered through the ``pytest11`` entry point.

It acts only on the suites' own cases, so a project that imports no suite sees nothing of it:

* it marks the suites' coroutine cases for pytest-asyncio, so they run in its strict mode as in auto
  mode (your own async fixtures need ``@pytest_asyncio.fixture`` in strict mode);
* it records, with each case's report, the adapter under test and what it declares;
* after a run that included conformance cases it prints the certification summary: the adapters and
  their declared capabilities and hooks, how many cases ran, passed and failed, and which were not
  applicable and why (see :mod:`queuert_conformance.applicability`).

Installing it also installs pytest-asyncio, whose plugin loads in every project of the environment
and warns when ``asyncio_default_fixture_loop_scope`` is unset. This plugin keeps that one warning
from being raised (the setting's meaning is unchanged), so that ``-W error`` or
``filterwarnings = error`` in a project that never asked for pytest-asyncio does not stop pytest.
Set the option in a project that runs the suites (``"function"``, see the README).

It also provides the default ``queuert_notify_factory`` fixture of the behaviour suites.
"""

from __future__ import annotations

import inspect
import warnings
from collections import Counter
from collections.abc import Generator, Iterable
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any

import pytest
import pytest_asyncio

from queuert_conformance.applicability import reason_of
from queuert_conformance.harness import NotifyHarness, StateHarness

MARKER = "queuert_conformance"
PROPERTY = "queuert_conformance_adapter"
"""Name of the report property holding the description of the adapter a case ran against."""
HARNESS_FIXTURES = ("queuert_state_harness", "queuert_notify_harness")
STATE_HOOKS = ("poison", "open_another", "open_sharing", "open_in_process", "write_raw")
NO_ADAPTER = "none (cases that check queuert's core alone, with no harness)"


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", f"{MARKER}: a case of the queuert conformance suites")
    # Runs before pytest-asyncio's pytest_configure, inside the warning filters pytest set up for the
    # configuration phase (they are restored when the session ends).
    warnings.filterwarnings(
        "ignore",
        message='The configuration option "asyncio_default_fixture_loop_scope" is unset',
        category=pytest.PytestDeprecationWarning,
    )


@pytest.hookimpl(tryfirst=True)
def pytest_pycollect_makeitem(collector: pytest.Collector, name: str, obj: object) -> None:
    """Mark the suites' cases before pytest-asyncio looks at them (strict mode too)."""
    module = getattr(obj, "__module__", "") or ""
    ours = module == "queuert_conformance" or module.startswith("queuert_conformance.")
    if not ours or not inspect.isfunction(obj):
        return
    if not name.startswith("test"):
        return
    marks = getattr(obj, "pytestmark", [])
    # a hypothesis test (@given) wraps the coroutine function in a plain one
    inner = getattr(getattr(obj, "hypothesis", None), "inner_test", obj)
    if inspect.iscoroutinefunction(inner) and not any(
        getattr(mark, "name", None) == "asyncio" for mark in marks
    ):
        pytest.mark.asyncio(obj)
    if not any(getattr(mark, "name", None) == MARKER for mark in marks):
        getattr(pytest.mark, MARKER)(obj)


def describe_harness(harness: object) -> str | None:
    """One line naming the adapter under test, its declared capabilities and the hooks it offers."""
    if isinstance(harness, StateHarness):
        adapter: Any = harness.adapter
        capabilities = getattr(adapter, "capabilities", None)
        if is_dataclass(capabilities):
            names = [f.name for f in fields(capabilities)]
            declared = [name for name in names if getattr(capabilities, name)]
            missing = [name for name in names if not getattr(capabilities, name)]
        else:  # TestAdapterLifecycle fails such an adapter; the summary still describes it
            declared, missing = [f"not a queuert.state.Capabilities: {capabilities!r}"], []
        hooks = [name for name in STATE_HOOKS if getattr(harness, name)]
        ids = getattr(getattr(adapter, "ids", None), "name", "?")
        return (
            f"state adapter {type(adapter).__module__}.{type(adapter).__qualname__} "
            f"(ids: {ids}); capabilities: {', '.join(declared) or 'none'}"
            f"; not declared: {', '.join(missing) or 'none'}"
            f"; hooks: {', '.join(hooks) or 'none'}"
        )
    if isinstance(harness, NotifyHarness):
        notify: Any = harness.adapter
        hooks = [name for name in ("open_another", "interrupt") if getattr(harness, name)]
        return (
            f"notify adapter {type(notify).__module__}.{type(notify).__qualname__}"
            f"; delivers: {harness.delivers}; wake-hint budgets: {harness.wake_hint_budgets}"
            f"; hooks: {', '.join(hooks) or 'none'}"
        )
    return None


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if item.get_closest_marker(MARKER) is None:
        return report
    funcargs: dict[str, Any] = getattr(item, "funcargs", {})
    used = [name for name in HARNESS_FIXTURES if name in getattr(item, "fixturenames", ())]
    descriptions = [describe_harness(funcargs.get(name)) or f"{name} not set up" for name in used]
    for description in descriptions or [NO_ADAPTER]:
        if (PROPERTY, description) not in report.user_properties:
            report.user_properties.append((PROPERTY, description))
    return report


@dataclass
class Tally:
    """What the reports of one run say about the conformance cases, one outcome per case."""

    outcomes: dict[str, str] = field(default_factory=dict)
    """Node id -> "passed", "failed", or the skip message (the worst report of the case wins)."""
    adapters: dict[str, str] = field(default_factory=dict)
    """Node id -> the description of the adapter(s) it ran against."""

    def add(self, report: pytest.TestReport) -> None:
        if MARKER not in report.keywords:
            return
        described = [str(value) for name, value in report.user_properties if name == PROPERTY]
        if described:
            self.adapters[report.nodeid] = " + ".join(described)
        if report.failed:
            self.outcomes[report.nodeid] = "failed"
        elif report.skipped:
            if self.outcomes.get(report.nodeid) != "failed":
                self.outcomes[report.nodeid] = _skip_message(report)
        elif report.when == "call":
            self.outcomes.setdefault(report.nodeid, "passed")

    def by_adapter(self) -> dict[str, list[str]]:
        """Each adapter's outcomes, adapters in name order."""
        grouped: dict[str, list[str]] = {}
        for nodeid, outcome in self.outcomes.items():
            grouped.setdefault(self.adapters.get(nodeid, NO_ADAPTER), []).append(outcome)
        return dict(sorted(grouped.items()))


def _adapter_lines(adapter: str, outcomes: list[str]) -> list[str]:
    not_applicable: Counter[str] = Counter()
    other: Counter[str] = Counter()
    for outcome in outcomes:
        if outcome not in ("passed", "failed"):
            reason = reason_of(outcome)
            if reason is None:
                other[outcome] += 1
            else:
                not_applicable[reason] += 1
    lines = [
        f"adapter under test: {adapter}",
        f"cases: {len(outcomes)}; passed: {outcomes.count('passed')}; "
        f"failed: {outcomes.count('failed')}; not applicable: {sum(not_applicable.values())}; "
        f"skipped for another reason: {sum(other.values())}",
    ]
    if not_applicable:
        lines.append("not applicable (the adapter does not declare what they need):")
        lines.extend(f"  {n:4d}  {reason}" for reason, n in sorted(not_applicable.items()))
    if other:
        lines.append("skipped for another reason:")
        lines.extend(f"  {n:4d}  {message}" for message, n in sorted(other.items()))
    return lines


def _skip_message(report: pytest.TestReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        message = str(longrepr[2])
    else:
        message = str(longrepr)
    return message.removeprefix("Skipped: ")


DESELECTED = pytest.StashKey[int]()


def pytest_deselected(items: list[pytest.Item]) -> None:
    conformance = [item for item in items if item.get_closest_marker(MARKER) is not None]
    if conformance:
        config = conformance[0].config
        config.stash[DESELECTED] = config.stash.get(DESELECTED, 0) + len(conformance)


def partial_run(config: pytest.Config) -> str | None:
    """Why the run covered only part of the collected suites, if it did."""
    why: list[str] = []
    deselected = config.stash.get(DESELECTED, 0)
    if deselected:
        why.append(f"{deselected} case(s) deselected")
    for option, flag in (("keyword", "-k"), ("markexpr", "-m")):
        value = config.getoption(option, default="")
        if value:
            why.append(f"{flag} {value!r}")
    chosen = [arg for arg in config.args if "::" in arg]
    if chosen:
        why.append(f"node ids chosen on the command line: {', '.join(chosen)}")
    return "; ".join(why) or None


def summary_lines(reports: Iterable[pytest.TestReport], partial: str | None = None) -> list[str]:
    """The certification summary of a run (no lines when it ran no conformance case)."""
    tally = Tally()
    for report in reports:
        tally.add(report)
    if not tally.outcomes:
        return []
    lines: list[str] = []
    for adapter, outcomes in tally.by_adapter().items():
        lines.extend(_adapter_lines(adapter, outcomes))
    outcomes = list(tally.outcomes.values())
    failed = outcomes.count("failed")
    skipped = sum(
        1 for outcome in outcomes if outcome not in ("passed", "failed") and not reason_of(outcome)
    )
    if partial:
        lines.append(f"partial run: {partial}")
    if failed:
        lines.append(f"NOT CERTIFIED: {failed} case(s) failed")
    elif skipped:
        lines.append("NOT CERTIFIED: cases were skipped for a reason other than a capability")
    elif partial:
        lines.append("NOT CERTIFIED: a partial run (every applicable case that ran passed)")
    else:
        lines.append(
            "certified for the capabilities and hooks declared above: every applicable case passed"
        )
    return lines


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    reports = [
        report
        for key in ("passed", "failed", "error", "skipped")
        for report in terminalreporter.stats.get(key, [])
        if isinstance(report, pytest.TestReport)
    ]
    lines = summary_lines(reports, partial_run(config))
    if not lines:
        return
    if not config.getini("asyncio_default_fixture_loop_scope"):
        lines.append(
            'note: set asyncio_default_fixture_loop_scope = "function" in your pytest configuration '
            "(pytest-asyncio's warning about it is not shown; see the queuert-conformance README)"
        )
    terminalreporter.write_sep("=", "queuert conformance")
    for line in lines:
        terminalreporter.write_line(line)


@pytest_asyncio.fixture
async def queuert_notify_factory() -> Any:
    """Default notify adapter of the behaviour suites: one in-process adapter shared by the test.

    Override this fixture to run the behaviour suites with another notify adapter: it must return an
    async function that returns a notify adapter (a new connection each call for cross-process
    adapters); the suites do not close what it returns, so close it in the fixture's teardown.
    """
    from queuert.in_memory.notify import InProcessNotifyAdapter

    adapter = InProcessNotifyAdapter()

    async def factory() -> InProcessNotifyAdapter:
        return adapter

    yield factory
    await adapter.close()
