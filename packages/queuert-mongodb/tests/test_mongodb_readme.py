"""The package README's Python examples work as printed, against the test session's server.

Every ```python block of the README is marked ``<!-- doc-test: run -->`` on the line before it;
the blocks run in order in one namespace, as in an interactive session (``await`` at the top
level), with the names they take from the text around them (the job type, the order id) defined
here. Only the server's URL and the database name are replaced: the URL by the test server's, the
database ``app`` by one of this test's own, dropped afterwards. They are also type-checked with
mypy --strict.
"""

from __future__ import annotations

import ast
import inspect
import re
import subprocess
import sys
import textwrap
import types
import uuid
from pathlib import Path
from typing import Any

import mongo_server
from bson import ObjectId
from mongo_helpers import drop_database
from queuert import Client

README = Path(__file__).resolve().parents[1] / "README.md"
MARK = re.compile(r"^<!--\s*doc-test:\s*run\s*-->$")
URL = "mongodb://127.0.0.1:27017/?replicaSet=rs0"

PRELUDE = """
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from queuert import EntryJobType


@dataclass
class Order:
    order_id: str


@dataclass
class Sent:
    message_id: str


class SendReceipt(EntryJobType[Order, Sent], name="readme_send_receipt"):
    pass


order_id = "o-1"
"""


def _blocks() -> list[tuple[int, str]]:
    """``(line, code)`` of every ```python block; a block without the mark fails here."""
    lines = README.read_text().splitlines()
    blocks: list[tuple[int, str]] = []
    index = 0
    while index < len(lines):
        if lines[index].startswith("```python"):
            previous = next((lines[i] for i in range(index - 1, -1, -1) if lines[i].strip()), "")
            assert MARK.match(previous.strip()), (
                f"README.md line {index + 1}: mark the block with <!-- doc-test: run -->"
            )
            start = index + 1
            index = start
            while not lines[index].startswith("```"):
                index += 1
            blocks.append((start + 1, "\n".join(lines[start:index]) + "\n"))
        index += 1
    return blocks


def _for_test(code: str, url: str, database: str) -> str:
    return (
        code.replace(URL, url)
        .replace('database="app"', f'database="{database}"')
        .replace("client.app.", f"client.{database}.")
    )


async def _run(code: str, name: str, namespace: dict[str, Any]) -> None:
    compiled = compile(code, name, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    result = eval(compiled, namespace)
    if inspect.iscoroutine(result):
        await result


async def test_the_readme_examples_run_as_printed() -> None:
    blocks = _blocks()
    assert len(blocks) == 3, "the setup, the enqueue in your transaction, the notify adapter"
    assert URL in blocks[0][1] and 'database="app"' in blocks[0][1], "what the test replaces"
    url = mongo_server.server_url()
    database = f"readme_{uuid.uuid4().hex[:10]}"
    # a module of its own: dataclasses look their module up in sys.modules
    module = types.ModuleType("queuert_mongodb_readme")
    sys.modules[module.__name__] = module
    namespace: dict[str, Any] = module.__dict__
    exec(PRELUDE, namespace)
    order_type = namespace["Order"]
    job_type = namespace["SendReceipt"]
    try:
        setup, in_your_transaction, with_notify = blocks
        await _run(_for_test(setup[1], url, database), f"README.md:{setup[0]}", namespace)
        client = namespace["client"]
        state = namespace["state"]
        assert "queuert_jobs" in await client[database].list_collection_names()

        async def stored(order_id: str) -> None:
            """The order and its chain were committed together."""
            assert await client[database].orders.count_documents({"_id": order_id}) == 1
            async with Client(state, job_types=[job_type]) as reader:
                chains = (await reader.list_chains(type_names=[job_type], limit=100)).items
            assert order_type(order_id) in [c.root.input for c in chains]

        for line, code in (in_your_transaction, with_notify):
            order_id = str(ObjectId())
            namespace["order_id"] = order_id
            await _run(_for_test(code, url, database), f"README.md:{line}", namespace)
            await stored(order_id)
        # the notify adapter's messages were written in the transactions it joined
        assert await client[database].queuert_notify.count_documents({}) >= 1
    finally:
        if "client" in namespace:
            await namespace["client"].close()
        await drop_database(database, url)
        del sys.modules[module.__name__]


def test_the_readme_examples_type_check(tmp_path: Path) -> None:
    """The blocks in order, as the body of one ``async def`` after the prelude, pass mypy --strict."""
    body = "".join(code for _, code in _blocks())
    module = PRELUDE + "\n\nasync def readme() -> None:\n" + textwrap.indent(body, "    ")
    (tmp_path / "readme.py").write_text(module)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--no-incremental",
            "--python-version",
            "3.10",
            "readme.py",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
