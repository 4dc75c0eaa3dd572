"""Validation with pydantic: ``Client(..., codec=PydanticCodec())``.

    uv run python -m examples.pydantic_validation     (needs ``pip install "queuert-core[pydantic]"``)

With ``PydanticCodec`` the declared input and output types (pydantic models, dataclasses,
``TypedDict``) are validated with pydantic when a job is created or completed, and stored JSON is
validated again when it is read back. Values pydantic can serialise (datetimes, decimals, UUIDs) are
stored as JSON and come back as the declared types. The default codec stores plain JSON only and
refuses anything else with ``NotJsonError``, naming the path.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Annotated, Any

from pydantic import BaseModel, Field
from queuert import (
    Attempt,
    Client,
    EntryJobType,
    InMemoryStateAdapter,
    JobTypeValidationError,
    NotJsonError,
    Worker,
)
from queuert.pydantic import PydanticCodec
from typing_extensions import TypedDict


class BookingRequest(TypedDict):
    """A request body passed on as it came in (pydantic needs typing_extensions.TypedDict < 3.12)."""

    guest: Annotated[str, Field(min_length=1)]
    nights: Annotated[int, Field(gt=0, le=30)]
    arrives: datetime


class Confirmation(BaseModel):
    code: str
    departs: datetime


class Book(EntryJobType[BookingRequest, Confirmation]):
    pass


@dataclass
class Reminder:
    when: datetime


class Remind(EntryJobType[Reminder, Reminder]):
    pass


async def main() -> dict[str, Any]:
    results: dict[str, Any] = {}
    arrives = datetime(2030, 5, 1, 15, 0, tzinfo=timezone.utc)
    async with InMemoryStateAdapter() as state, Client(state, codec=PydanticCodec()) as client:
        worker = Worker(client)

        @worker.handler(Book)
        async def book(attempt: Attempt[Book]) -> Confirmation:
            request = attempt.input  # validated again on read: "arrives" is a datetime
            departs = request["arrives"] + timedelta(days=request["nights"])
            return Confirmation(code=request["guest"][:3].upper(), departs=departs)

        # Invalid input is refused before anything is written.
        try:
            async with client.transaction() as tx:
                bad = BookingRequest(guest="ada", nights=0, arrives=arrives)
                await client.start_chain(Book(bad), tx=tx)
        except JobTypeValidationError as invalid:
            results["invalid"] = invalid.code
            field, problem = invalid.details.splitlines()[1:3]
            print(f"refused ({invalid.code}): {field}: {problem.strip().split(' [')[0]}")

        async with client.transaction() as tx:
            good = BookingRequest(guest="ada", nights=3, arrives=arrives)
            chain = await client.start_chain(Book(good), tx=tx)
        stored = await client.state.get_job(chain.id)  # the adapter's raw view: JSON
        assert stored is not None
        print(f"stored input (JSON): {stored.input}")
        async with worker:
            confirmation = await client.wait_for_chain(chain, timeout=10)
        print(f"output: {confirmation!r}")
        results["confirmation"] = confirmation

        # The default codec refuses values that are not JSON, naming where they are.
        async with Client(state, job_types=[Remind]) as plain:
            try:
                async with plain.transaction() as tx:
                    await plain.start_chain(Remind(Reminder(when=arrives)), tx=tx)
            except NotJsonError as not_json:
                results["not_json"] = not_json.path
                print(f"default codec: {not_json}")
        results["chains"] = len((await client.list_chains()).items)
    return results


if __name__ == "__main__":
    asyncio.run(main())
