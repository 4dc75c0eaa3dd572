"""The ``queuert`` command: ``demo``, ``worker``, ``migrate``, and the commands of installed packages.

A distribution adds a command by registering ``name = "module:function"`` under the entry-point
group ``queuert.commands`` (``queuert-dashboard`` adds ``dashboard``). The command line lists them
from the installed metadata without importing them; ``function(argv)`` is imported and called with
the arguments after the command's name only when that command runs, and returns the exit status.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import inspect
import logging
import sys
from collections.abc import Sequence
from typing import Any


def _load(target: str) -> Any:
    module_name, _, attr = target.partition(":")
    if not module_name or not attr:
        raise SystemExit(f"expected module:attribute, got {target!r}")
    sys.path.insert(0, ".")
    module = importlib.import_module(module_name)
    value: Any = module
    for part in attr.split("."):
        value = getattr(value, part)
    return value


async def _run_worker(target: str) -> None:
    """Run the worker at ``target``: a Worker, a function (sync or async) returning one, or a
    function returning an async context manager that yields one (set up and tear down your
    adapters around it)."""
    from queuert.worker import Worker

    obj = _load(target)
    if callable(obj) and not isinstance(obj, Worker):
        obj = obj()
        if inspect.isawaitable(obj):
            obj = await obj
    if hasattr(obj, "__aenter__") and not isinstance(obj, Worker):
        async with obj as worker:
            await _run(worker, target)
        return
    await _run(obj, target)


async def _run(worker: object, target: str) -> None:
    from queuert.worker import Worker

    if not isinstance(worker, Worker):
        raise SystemExit(f"{target} is not a queuert Worker (or a function returning one)")
    try:
        await worker.run()
    finally:
        await worker.client.close()


async def _migrate(dsn: str) -> None:
    from queuert.backends import open_state_adapter

    async with open_state_adapter(dsn) as state:
        result = await state.migrate()
    for name in result.applied:
        print(f"applied  {name}")
    for name in result.skipped:
        print(f"skipped  {name} (already applied)")
    for name in result.unrecognized:
        print(f"unknown  {name} (recorded in the database, not known to this version)")
    if not result.applied:
        print("schema is up to date")


COMMANDS_GROUP = "queuert.commands"


def _plugin_commands() -> dict[str, Any]:
    """The entry points of ``queuert.commands`` by command name (metadata only, nothing imported)."""
    from importlib.metadata import entry_points

    return {ep.name: ep for ep in entry_points(group=COMMANDS_GROUP)}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="queuert", description="queuert command line")
    parser.add_argument(
        "--log-level", default="WARNING", help="stdlib logging level (default WARNING)"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="run a small workflow with a worker and show progress")
    demo.add_argument(
        "--dsn", help="state store URL (default: a SQLite file in the temp directory)"
    )
    demo.add_argument("--orders", type=int, default=3)
    worker = commands.add_parser("worker", help="run the worker defined at module:attribute")
    worker.add_argument(
        "target", help="module:attribute of a Worker, or of a function returning one"
    )
    migrate = commands.add_parser("migrate", help="create or upgrade the schema of a state store")
    migrate.add_argument("--dsn", required=True, help="e.g. sqlite:///jobs.db or postgresql://...")
    plugins = {
        name: ep
        for name, ep in _plugin_commands().items()
        if name not in ("demo", "worker", "migrate")
    }
    for name, ep in sorted(plugins.items()):
        dist = ep.dist.name if ep.dist is not None else ep.value
        # the command parses its own arguments (--help included) once it is imported
        commands.add_parser(
            name, help=f"provided by {dist} (see queuert {name} --help)", add_help=False
        )
    args, rest = parser.parse_known_args(argv)
    if args.command in plugins:
        logging.basicConfig(
            level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
        )
        command = plugins[args.command].load()
        return int(command(rest))
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    if args.command == "demo":
        from queuert.demo import main as demo_main

        return demo_main(dsn=args.dsn, orders=args.orders)
    if args.command == "worker":
        asyncio.run(_run_worker(args.target))
        return 0
    asyncio.run(_migrate(args.dsn))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
