"""Quick start: start a chain inside a transaction, process it with a worker, wait for its result.

    uv run python -m examples.quick_start

Runs on the in-memory state adapter. With a database, only the adapter changes, e.g.
``async with queuert_sqlite.from_url("sqlite:///app.db") as state:`` then ``await state.migrate()``.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from queuert import Attempt, Client, EntryJobType, InMemoryStateAdapter, Worker


@dataclass
class Signup:
    user_id: int
    email: str


@dataclass
class WelcomeSent:
    message_id: str


class SendWelcome(EntryJobType[Signup, WelcomeSent]):
    """Takes a Signup, gives a WelcomeSent. Stored under the type name "send_welcome"."""


async def main() -> WelcomeSent:
    # `async with` closes what it opened: the worker, the client, then the adapter.
    async with InMemoryStateAdapter() as state, Client(state) as client:
        worker = Worker(client, name="mailer", concurrency=4)

        # The handler returns the job's output (typed: mypy checks it is a WelcomeSent).
        # Registering it also makes SendWelcome known to the client.
        @worker.handler(SendWelcome)
        async def send_welcome(attempt: Attempt[SendWelcome]) -> WelcomeSent:
            signup = attempt.input  # typed: Signup
            return WelcomeSent(message_id=f"msg-{signup.user_id}")

        # Your own business writes would go in this same transaction.
        async with client.transaction() as tx:
            chain = await client.start_chain(SendWelcome(Signup(42, "ada@example.com")), tx=tx)
        print(f"started chain {chain.type_name} {chain.id}, job status {chain.root.status}")

        # With no notify adapter given, the client wakes the worker and wait_for_chain in this
        # process at once.
        async with worker:  # start() ... close()
            sent = await client.wait_for_chain(chain, timeout=10)  # typed: WelcomeSent
        print(f"chain closed with {sent}")

        done = await client.get_chain(chain.id, SendWelcome)
        assert done is not None
        print(f"status {done.status}, outcome {done.outcome}, attempts {done.tail.attempt}")
        return sent


if __name__ == "__main__":
    asyncio.run(main())
