"""The plugin as a third party meets it: strict and auto mode, the certification summary, cases that
do not apply, and a project that does not use the suites at all (pytester, one pytest process each)."""

from __future__ import annotations

import textwrap

import pytest

pytest_plugins = ["pytester"]

HARNESS = textwrap.dedent(
    """
    from collections.abc import AsyncIterator

    import pytest
    import pytest_asyncio
    from queuert import InMemoryStateAdapter
    from queuert_conformance import StateHarness


    @{decorator}
    async def queuert_state_harness() -> AsyncIterator[StateHarness]:
        adapter = InMemoryStateAdapter()
        await adapter.migrate()
        yield StateHarness(adapter=adapter, poison=adapter.poison)
        await adapter.close()
    """
)

SUITES = """
from queuert_conformance.behaviour import *  # noqa: F403
from queuert_conformance.state import *  # noqa: F403
"""

INI = "[pytest]\nasyncio_mode = {mode}\nasyncio_default_fixture_loop_scope = function\n"


def third_party(pytester: pytest.Pytester, *, mode: str, decorator: str) -> None:
    pytester.makeconftest(HARNESS.format(decorator=decorator))
    pytester.makepyfile(test_my_adapter=SUITES)
    pytester.makefile(".ini", pytest=INI.format(mode=mode))


@pytest.mark.parametrize(
    ("mode", "decorator"),
    [
        ("strict", "pytest_asyncio.fixture"),
        ("auto", "pytest_asyncio.fixture"),
        ("auto", "pytest.fixture"),
    ],
)
def test_the_suites_run_in_strict_and_auto_mode(
    pytester: pytest.Pytester, mode: str, decorator: str
) -> None:
    third_party(pytester, mode=mode, decorator=decorator)
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-k", "TestPatterns or TestCreateJobs", "-W", "error"
    )
    result.assert_outcomes(passed=23)
    result.stdout.fnmatch_lines(["*= queuert conformance =*", "cases: 23; passed: 23; failed: 0;*"])


def collected(pytester: pytest.Pytester, *args: str) -> list[str]:
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--collect-only", "-q", *args)
    assert result.ret == 0, result.stdout.str()
    return [line for line in result.outlines if "::" in line]


def test_both_suites_in_one_module_collect_every_case(pytester: pytest.Pytester) -> None:
    third_party(pytester, mode="strict", decorator="pytest_asyncio.fixture")
    pytester.makepyfile(
        test_state_only="from queuert_conformance.state import *  # noqa: F403\n",
        test_behaviour_only="from queuert_conformance.behaviour import *  # noqa: F403\n",
    )
    together = collected(pytester, "test_my_adapter.py")
    apart = collected(pytester, "test_state_only.py") + collected(
        pytester, "test_behaviour_only.py"
    )
    assert len(together) == len(set(together)) == len(apart)
    classes = {line.split("::")[1] for line in together}
    assert {"TestCreateJobs", "TestStateModel", "TestStartDeduplication", "TestPatterns"} <= classes


def test_cases_that_need_an_undeclared_hook_are_not_applicable(pytester: pytest.Pytester) -> None:
    third_party(pytester, mode="strict", decorator="pytest_asyncio.fixture")
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-k", "TestConcurrency and not Limits", "-rs"
    )
    result.assert_outcomes(passed=1, skipped=11)
    result.stdout.fnmatch_lines(
        [
            "*= queuert conformance =*",
            "adapter under test: state adapter queuert.in_memory.state.InMemoryStateAdapter *"
            "not declared: concurrent_transactions, multi_process; hooks: poison",
            "cases: 12; passed: 1; failed: 0; not applicable: 11; *",
            "not applicable (the adapter does not declare what they need):",
            "*10  needs StateHarness.open_another*",
            "*1  needs capabilities.concurrent_transactions*",
            "partial run: * deselected; -k *",
            "NOT CERTIFIED: a partial run*",
            "SKIPPED [[]10[]] *not applicable: needs StateHarness.open_another*",
        ]
    )


def test_a_failing_case_is_not_certified(pytester: pytest.Pytester) -> None:
    third_party(pytester, mode="strict", decorator="pytest_asyncio.fixture")
    pytester.makeconftest(
        HARNESS.format(decorator="pytest_asyncio.fixture")
        .replace(
            "adapter = InMemoryStateAdapter()",
            "adapter = InMemoryStateAdapter()\n"
            "    # a hook it does not declare\n"
            "    adapter.capabilities = dataclasses.replace(\n"
            "        adapter.capabilities, poison_transaction=False\n"
            "    )",
        )
        .replace("import pytest\n", "import dataclasses\n\nimport pytest\n", 1)
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-k", "poison_hook_matches")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["cases: 1; passed: 0; failed: 1;*", "NOT CERTIFIED: 1 case(s) failed"]
    )


def test_an_unset_loop_scope_is_pointed_out_in_the_summary(pytester: pytest.Pytester) -> None:
    third_party(pytester, mode="strict", decorator="pytest_asyncio.fixture")
    pytester.makefile(".ini", pytest="[pytest]\nfilterwarnings = error\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-k", "TestCreateJobs")
    assert result.ret == 0, result.stdout.str()
    result.stdout.fnmatch_lines(['note: set asyncio_default_fixture_loop_scope = "function" *'])


def test_a_project_without_the_suites_sees_nothing(pytester: pytest.Pytester) -> None:
    """Installed next to an unrelated project (whose warnings are errors, with no pytest-asyncio
    settings), the plugin neither breaks nor prints anything."""
    pytester.makepyfile(test_other="def test_other():\n    assert True\n")
    pytester.makefile(".ini", pytest="[pytest]\nfilterwarnings = error\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    assert "= queuert conformance =" not in result.stdout.str()
    assert result.ret == 0
