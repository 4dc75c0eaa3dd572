"""Small builders shared by the SQLite tests."""

from __future__ import annotations

from datetime import timedelta

from queuert.ids import uuid7
from queuert.json import JsonValue
from queuert.state import NewJob

TYPE = "sqlite.test"
LEASE = {TYPE: timedelta(minutes=5)}


def new_job(input: JsonValue = None, *, type_name: str = TYPE, id: str | None = None) -> NewJob:
    return NewJob(id=id or uuid7(), type_name=type_name, chain_type_name=type_name, input=input)
