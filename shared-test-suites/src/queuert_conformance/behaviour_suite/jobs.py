"""Job types used by the behaviour suites."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from queuert import Blockers, Chain, ChainResult, Continues, EntryJobType, JobType
from typing_extensions import Never


@dataclass
class Num:
    value: int


@dataclass
class Text:
    text: str


class Echo(EntryJobType[Num, Num], name="b_echo"):
    """Completes with its input (handlers vary per test)."""


class Other(EntryJobType[Num, Num], name="b_other"):
    pass


class Double(JobType[Num, Num], name="b_double"):
    pass


class Describe(JobType[Num, Text], name="b_describe"):
    pass


class Step(
    EntryJobType[Num, Num],
    Continues["Step | Double | Describe"],
    ChainResult["Num | Text"],
    name="b_step",
):
    """Loops to itself, or goes to Double / Describe."""


class Start(
    EntryJobType[Num, Never],
    Continues["Double | Describe"],
    ChainResult["Num | Text"],
    name="b_start",
):
    """Always continues (branches at run time)."""


class Leaf(EntryJobType[Num, Num], name="b_leaf"):
    pass


class Join(EntryJobType[Text, Num], Blockers[tuple[Chain[Leaf], ...]], name="b_join"):
    """Waits for any number of Leaf chains and sums their outputs."""


class Pair(EntryJobType[Text, Text], Blockers[tuple[Chain[Leaf], Chain[Echo]]], name="b_pair"):
    """Two fixed blocker slots of different types."""


class Tolerant(
    EntryJobType[Text, Text],
    Blockers[tuple[Chain[Leaf], ...]],
    name="b_tolerant",
    on_blocker_failure="proceed",
):
    """Runs even when a blocker chain failed."""


class Ping(EntryJobType[Num, None], name="b_ping"):
    """Its output is None: a handler that returns nothing completes it."""


class Limited(EntryJobType[Num, Num], name="b_limited", max_attempts=2):
    """Closes as failed after two failed attempts."""


class Raw(EntryJobType[Any, Any], name="b_raw", max_attempts=1):
    """Any JSON in and out; one attempt (hostile values)."""


class Gather(EntryJobType[Num, Never], Continues["Collect"], name="b_gather"):
    """Continues to Collect, which waits for blockers started while continuing."""


class Collect(JobType[Num, Num], Blockers[tuple[Chain[Leaf], ...]], name="b_collect"):
    pass


class Capped(EntryJobType[Num, Num], name="b_capped", limit=2):
    """At most two run at once, across every worker."""


def _customer(value: Num) -> str:
    return f"customer-{value.value % 3}"


class PerCustomer(EntryJobType[Num, Num], name="b_per_customer", key_limit=1, limit_key=_customer):
    """One at a time per customer (``value % 3``); customers run side by side."""


ALL = [
    Capped,
    PerCustomer,
    Raw,
    Echo,
    Other,
    Double,
    Describe,
    Step,
    Start,
    Leaf,
    Join,
    Pair,
    Tolerant,
    Ping,
    Limited,
    Gather,
    Collect,
]
