"""Quick start: start a chain inside a transaction, process it with a worker, wait for its result.

    uv run python -m examples.quick_start

Runs on the in-memory state adapter. With a database, only the adapter changes, e.g.
``state = await queuert_sqlite.from_url("sqlite:///app.db")`` then ``await state.migrate()``.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from queuert import (
    Attempt,
    Client,
    EntryJobType,
    InMemoryStateAdapter,
    InProcessNotifyAdapter,
    Worker,
)


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
    state = InMemoryStateAdapter()
    notify = InProcessNotifyAdapter()  # wakes the worker and wait_for_chain at once
    client = Client(state, job_types=[SendWelcome], notify=notify)
    worker = Worker(client, name="mailer", concurrency=4)

    @worker.handler(SendWelcome)
    async def send_welcome(attempt: Attempt[SendWelcome]) -> None:
        signup = attempt.input  # typed: Signup
        await attempt.complete(WelcomeSent(message_id=f"msg-{signup.user_id}"))

    try:
        # Your own business writes would go in this same transaction.
        async with client.transaction() as tx:
            chain = await client.start_chain(SendWelcome(Signup(42, "ada@example.com")), tx=tx)
        print(f"started chain {chain.type_name} {chain.id}, job status {chain.root.status}")

        async with worker:  # start() ... close()
            sent = await client.wait_for_chain(chain, timeout=10)  # typed: WelcomeSent
        print(f"chain closed with {sent}")

        done = await client.get_chain(chain.id, SendWelcome)
        assert done is not None
        print(f"status {done.status}, outcome {done.outcome}, attempts {done.tail.attempt}")
        return sent
    finally:
        await client.close()
        await notify.close()
        await state.close()


if __name__ == "__main__":
    asyncio.run(main())
