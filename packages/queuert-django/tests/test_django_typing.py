"""queuert_django's synchronous calls are typed as queuert.Client's are: checks
typing/check_django.py with mypy --strict."""

from __future__ import annotations

from pathlib import Path

from queuert_conformance.typing_check import assert_typing_expectations

CHECK_FILE = Path(__file__).parent / "typing" / "check_django.py"


def test_mypy_checks_the_jobs_and_results_of_django_s_calls() -> None:
    assert_typing_expectations(CHECK_FILE, root=Path(__file__).resolve().parents[3])
