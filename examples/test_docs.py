"""The code blocks of README.md, docs/guide.md and docs/integrations.md work as printed.

Every ```python block is marked by an HTML comment on the line before it:

* ``<!-- doc-test: run -->``: a complete program. It runs in a fresh interpreter in an empty
  directory (so a SQLite file it makes lands there), must exit cleanly within the timeout, and is
  type-checked with mypy --strict.
* ``<!-- doc-test: fragment -->``: a piece that needs names from around it. It is compiled, and
  type-checked with mypy --strict after the names it uses from the surroundings, defined in
  ``PRELUDE`` below. A fragment that declares classes is checked at module level; any other runs its
  statements inside an ``async def`` (so that it may ``await`` at the top).

A block without a mark fails the test: every block is either run or checked.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = [ROOT / "README.md", ROOT / "docs" / "guide.md", ROOT / "docs" / "integrations.md"]
MARK = re.compile(r"^<!--\s*doc-test:\s*(run|fragment)\s*-->$")
RUN_TIMEOUT = 30.0
"""Generous: a README program that waited for a poll interval instead of a wake-up would still pass,
but one that hangs does not."""


@dataclass(frozen=True)
class Block:
    document: str
    line: int
    kind: str | None
    code: str

    @property
    def name(self) -> str:
        return f"{self.document}:{self.line}"


def _blocks(path: Path) -> list[Block]:
    blocks: list[Block] = []
    lines = path.read_text().splitlines()
    index = 0
    while index < len(lines):
        stripped = lines[index].strip()
        if stripped.startswith("```python"):
            indent = len(lines[index]) - len(lines[index].lstrip())
            previous = next(
                (lines[i].strip() for i in range(index - 1, -1, -1) if lines[i].strip()), ""
            )
            match = MARK.match(previous)
            body: list[str] = []
            index += 1
            while not lines[index].strip().startswith("```"):
                body.append(lines[index][indent:] if lines[index].strip() else "")
                index += 1
            blocks.append(
                Block(
                    path.relative_to(ROOT).as_posix(),
                    index - len(body),
                    match.group(1) if match else None,
                    "\n".join(body) + "\n",
                )
            )
        index += 1
    return blocks


BLOCKS = [block for path in DOCUMENTS for block in _blocks(path)]
RUN = [block for block in BLOCKS if block.kind == "run"]
FRAGMENTS = [block for block in BLOCKS if block.kind == "fragment"]

PRELUDE = """
from __future__ import annotations

import uuid
from datetime import timedelta
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from typing_extensions import Never

from queuert import (
    Attempt,
    Backoff,
    Blockers,
    Chain,
    ChainResult,
    Client,
    Continues,
    Deduplication,
    EntryJobType,
    InMemoryStateAdapter,
    IsolatedJob,
    JobType,
    Lease,
    Periodic,
    TxContext,
    Worker,
    WorkerlessCompletion,
)
from queuert_redis import RedisNotifyAdapter
from queuert_sqlite import from_url


@dataclass
class Image:
    name: str
    width: int


@dataclass
class Url:
    url: str


@dataclass
class Count:
    n: int


@dataclass
class Liftoff:
    ticks: int


@dataclass
class Symbol:
    ticker: str


@dataclass
class Price:
    cents: int


@dataclass
class Portfolio:
    owner: str
    tickers: list[str]


@dataclass
class Valuation:
    total_cents: int


class FetchPrice(EntryJobType[Symbol, Price]): ...


class SumPrices(JobType[Portfolio, Valuation], Blockers[tuple[Chain[FetchPrice], ...]]): ...


class PlanValuation(EntryJobType[Portfolio, Never], Continues[SumPrices], ChainResult[Valuation]): ...


@dataclass
class UserRef:
    user_id: int


@dataclass
class User:
    name: str


@dataclass
class Orders:
    count: int


@dataclass
class Text:
    text: str


@dataclass
class Report:
    line: str


class LoadUser(EntryJobType[UserRef, User]): ...


class LoadOrders(EntryJobType[UserRef, Orders]): ...


class BuildReport(EntryJobType[UserRef, Report], Blockers[tuple[Chain[LoadUser], Chain[LoadOrders]]]): ...


@dataclass
class Export:
    customer: str
    part: int


@dataclass
class Receipt:
    order_id: str


@dataclass
class Sent:
    message_id: str


class SendReceipt(EntryJobType[Receipt, Sent]): ...


@dataclass
class Order:
    id: str


async def create_order(tx: Any, order: Order) -> None: ...


class Mailer:
    async def send(self, receipt: Receipt) -> str:
        return receipt.order_id


@dataclass
class PageName:
    name: str


@dataclass
class Rendered:
    image: bytes


class Render(EntryJobType[PageName, Rendered]): ...


def draw(name: str) -> bytes:
    return name.encode()


@dataclass
class Account:
    account_id: str


class SyncAccount(EntryJobType[Account, Account]): ...


async def sync_account(attempt: Attempt[SyncAccount]) -> Account:
    return attempt.input


@dataclass
class Expense:
    amount_cents: int


@dataclass
class Paid:
    transfer_id: str


@dataclass
class Rejected:
    reason: str


class PayOut(JobType[Expense, Paid]): ...


class AwaitApproval(EntryJobType[Expense, Rejected], Continues[PayOut], ChainResult[Paid | Rejected]): ...


@dataclass
class Welcome:
    user_id: int


class SendWelcome(EntryJobType[Welcome, Sent]): ...


async def send_welcome(attempt: Attempt[SendWelcome]) -> Sent:
    return Sent(str(attempt.input.user_id))


async def request_id(attempt: Attempt[Any], call_next: Callable[[], Awaitable[None]]) -> None:
    await call_next()


class Connection:
    def transaction(self) -> Any: ...


state = InMemoryStateAdapter()
client: Client[Any] = Client(state)
worker: Worker[Any] = Worker(client)
tx: Any = None
conn = Connection()
order = Order("o-1")
mailer = Mailer()
job = SendReceipt(Receipt("o-1"))
chain: Chain[SendWelcome]
chain_id = "0190e1c2-0000-7000-8000-000000000000"
portfolio = Portfolio("ann", ["ACME"])
attempt: Attempt[PlanValuation]
approved = True
"""


def _defined_names(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            names.add(node.name)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
    return names


def _prelude_without(names: set[str]) -> str:
    """The prelude minus the definitions a module-level fragment makes itself."""
    tree = ast.parse(PRELUDE)
    keep = [node for node in tree.body if not (_defined_names(ast.Module([node], [])) & names)]
    return ast.unparse(ast.Module(keep, []))


def _checked_source(block: Block) -> str:
    """The fragment with the names it needs, as a module mypy can check."""
    tree = ast.parse(block.code)
    if any(isinstance(node, ast.ClassDef) for node in tree.body):
        return _prelude_without(_defined_names(tree)) + "\n\n" + block.code
    body = textwrap.indent(block.code, "    ")
    return PRELUDE + "\n\nasync def _fragment() -> None:\n" + body


def test_every_python_block_is_marked() -> None:
    unmarked = [block.name for block in BLOCKS if block.kind is None]
    assert not unmarked, (
        "mark each block with <!-- doc-test: run --> (a complete program) or "
        f"<!-- doc-test: fragment --> on the line before it: {unmarked}"
    )
    assert RUN, "the README's first example is a complete program"


@pytest.mark.parametrize("block", RUN, ids=[block.name for block in RUN])
def test_complete_programs_run_as_printed(block: Block, tmp_path: Path) -> None:
    program = tmp_path / "program.py"
    program.write_text(block.code)
    done = subprocess.run(
        [sys.executable, str(program)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def test_every_block_compiles_and_type_checks(tmp_path: Path) -> None:
    files: dict[Path, Block] = {}
    for number, block in enumerate(BLOCKS):
        compile(block.code, block.name, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
        path = tmp_path / f"block_{number}.py"
        path.write_text(block.code if block.kind == "run" else _checked_source(block))
        files[path] = block
    # Django ships no type information (django-stubs is not a dependency)
    config = tmp_path / "mypy.ini"
    config.write_text("[mypy]\n\n[mypy-django.*]\nignore_missing_imports = True\n")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--config-file",
            str(config),
            "--strict",
            "--no-incremental",
            "--show-error-codes",
            "--python-version",
            "3.10",
            *(str(path) for path in files),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    problems = []
    for line in done.stdout.splitlines():
        match = re.match(r"(block_\d+\.py):(\d+): error: (.*)", line)
        if match:
            block = files[tmp_path / match.group(1)]
            problems.append(
                f"{block.name} ({match.group(1)} line {match.group(2)}): {match.group(3)}"
            )
    assert done.returncode == 0 and not problems, "\n".join(problems) or done.stdout
