"""The promise to a third party, checked as one would meet it: with nothing but the built wheels.

The test builds the ``queuert-core`` and ``queuert-conformance`` wheels, installs them into a fresh
virtual environment outside the workspace (their dependencies come from the package index or uv's
cache), writes a small adapter project there, and runs the suites on two adapters: an honest one,
which must come out certified, and two with a planted bug each (lease renewal that extends nothing;
completion that ignores who holds the lease), which must not, with the failure naming what broke.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

CONFTEST = textwrap.dedent(
    """
    from collections.abc import AsyncIterator
    from datetime import timedelta
    from typing import Any

    import pytest_asyncio
    from queuert import InMemoryStateAdapter
    from queuert.state import LeaseRenewal
    from queuert_conformance import StateHarness


    class HonestAdapter(InMemoryStateAdapter):
        \"\"\"A third party's adapter: here the in-memory store under another name.\"\"\"


    class ForgetfulLeases(InMemoryStateAdapter):
        \"\"\"Renews nothing: every renewal sets the lease to expire now.\"\"\"

        async def renew_leases(
            self, leases: Any, *, worker_id: str, tx: Any = None
        ) -> LeaseRenewal:
            expired = {job_id: timedelta(0) for job_id in leases}
            return await super().renew_leases(expired, worker_id=worker_id, tx=tx)


    class IgnoresOwner(InMemoryStateAdapter):
        \"\"\"Completes a job whoever holds its lease: the owner check is dropped.\"\"\"

        async def complete_job(self, job_id: str, **options: Any) -> Any:
            options.pop("owner", None)
            return await super().complete_job(job_id, **options)

        async def complete_jobs(self, completions: Any, **options: Any) -> Any:
            options.pop("owner", None)
            return await super().complete_jobs(completions, **options)


    ADAPTERS = {
        "honest": HonestAdapter,
        "forgetful": ForgetfulLeases,
        "ignores-owner": IgnoresOwner,
    }


    @pytest_asyncio.fixture
    async def queuert_state_harness(request: Any) -> AsyncIterator[StateHarness]:
        adapter = ADAPTERS[request.config.getoption("adapter")]()
        await adapter.migrate()
        yield StateHarness(adapter=adapter, poison=adapter.poison)
        await adapter.close()


    def pytest_addoption(parser: Any) -> None:
        parser.addoption("--adapter", default="honest")
    """
)

TESTS = """\
from queuert_conformance.behaviour import *  # noqa: F403
from queuert_conformance.state import *  # noqa: F403
"""

PYTEST_INI = """\
[pytest]
asyncio_mode = strict
asyncio_default_fixture_loop_scope = function
filterwarnings = error
"""


def uv() -> list[str]:
    found = os.environ.get("UV") or shutil.which("uv")
    if found:
        return [found]
    return [sys.executable, "-m", "uv"]


def run(*command: str | Path, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "UV_PROJECT"))}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["QUEUERT_CONFORMANCE_MODEL_EXAMPLES"] = "15"  # the model case, briefly
    return subprocess.run(
        [str(part) for part in command],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def checked(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert result.returncode == 0, f"{result.args}\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture(scope="module")
def third_party(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(the project directory, its Python) with only the wheels installed."""
    base = tmp_path_factory.mktemp("third-party")
    dist = base / "dist"
    for package in ("queuert-core", "queuert-conformance"):
        checked(run(*uv(), "build", "--package", package, "--wheel", "--out-dir", dist, cwd=ROOT))
    wheels = sorted(dist.glob("*.whl"))
    assert [w.name.split("-")[0] for w in wheels] == ["queuert_conformance", "queuert_core"], wheels
    venv = base / "venv"
    checked(run(*uv(), "venv", "--python", sys.executable, venv, cwd=base))
    python = venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    checked(run(*uv(), "pip", "install", "--python", python, *wheels, cwd=base))
    project = base / "project"
    project.mkdir()
    (project / "conftest.py").write_text(CONFTEST)
    (project / "test_my_adapter.py").write_text(TESTS)
    (project / "pytest.ini").write_text(PYTEST_INI)
    return project, python


def pytest_in(project: Path, python: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run(python, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args, cwd=project)


def test_the_wheels_are_installed_outside_the_workspace(third_party: tuple[Path, Path]) -> None:
    project, python = third_party
    where = checked(
        run(
            python,
            "-c",
            "import queuert, queuert_conformance; print(queuert_conformance.__file__)",
            cwd=project,
        )
    ).stdout.strip()
    assert not Path(where).is_relative_to(ROOT), where


def test_an_honest_adapter_is_certified(third_party: tuple[Path, Path]) -> None:
    project, python = third_party
    result = pytest_in(project, python)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "= queuert conformance =" in output
    assert "certified for the capabilities and hooks declared above" in output
    assert "state adapter conftest.HonestAdapter" in output
    assert "not applicable (the adapter does not declare what they need):" in output
    assert "needs StateHarness.open_another" in output


@pytest.mark.parametrize(
    ("adapter", "cases", "named"),
    [
        (
            "forgetful",
            "TestRenewLeases or test_a_job_longer_than_its_lease",
            "lease was not renewed",
        ),
        ("ignores-owner", "TestCompleteJob", "DID NOT RAISE JobTakenByAnotherWorkerError"),
    ],
)
def test_a_planted_bug_is_caught_and_named(
    third_party: tuple[Path, Path], adapter: str, cases: str, named: str
) -> None:
    project, python = third_party
    result = pytest_in(project, python, "--adapter", adapter, "-k", cases)
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert named in output
    assert "NOT CERTIFIED" in output
