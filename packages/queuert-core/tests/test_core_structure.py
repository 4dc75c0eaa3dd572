"""The core's structure: the public ``Client`` is what users call, and the core logs under ``queuert``."""

from __future__ import annotations

import ast
from pathlib import Path

import queuert
from queuert import Client, InMemoryStateAdapter

CORE_SRC = Path(queuert.__file__).parent

USER_CALLS = {
    # transactions and hooks
    "transaction",
    "hooks",
    "savepoint",
    # creating, finishing and managing chains
    "start_chain",
    "start_chains",
    "complete_chain",
    "cancel_chain",
    "delete_chains",
    "trigger_jobs",
    # reading and waiting
    "get_queue_stats",
    "get_chain",
    "get_job",
    "get_job_blockers",
    "list_chains",
    "list_jobs",
    "list_chain_jobs",
    "list_blocked_jobs",
    "get_job_activity",
    "wait_for_chain",
    "wait_published",
    # lifetime
    "close",
}
ATTRIBUTES = {"state", "notify", "observability", "codec", "registry"}


def test_the_client_exposes_only_what_users_call() -> None:
    client = Client(InMemoryStateAdapter(), job_types=[])
    public = {name for name in dir(client) if not name.startswith("_")}
    assert public == USER_CALLS | ATTRIBUTES


def _logger_names(path: Path) -> list[str]:
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "getLogger"
        ):
            assert node.args and isinstance(node.args[0], ast.Constant), (
                f"{path.name}: getLogger takes a literal name"
            )
            names.append(str(node.args[0].value))
    return names


def test_every_logger_of_the_core_is_under_queuert() -> None:
    names = [name for path in CORE_SRC.rglob("*.py") for name in _logger_names(path)]
    assert names, "the core has loggers"
    assert all(name == "queuert" or name.startswith("queuert.") for name in names), names
