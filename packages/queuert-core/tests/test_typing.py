"""The public API is typed so that mypy catches misuse: checks typing/check_api.py with mypy --strict."""

from __future__ import annotations

from pathlib import Path

from queuert_conformance.typing_check import assert_typing_expectations

CHECK_FILE = Path(__file__).parent / "typing" / "check_api.py"


def test_mypy_catches_misuse_and_infers_types() -> None:
    assert_typing_expectations(CHECK_FILE, root=Path(__file__).resolve().parents[3])
