"""Static typing checks of queuert_django's synchronous calls, run by mypy --strict in
test_django_typing.py: they are typed as queuert.Client's are.

Lines marked ``# E: <code>`` must produce exactly that mypy error; no other line may produce one.
``reveal_type`` lines are compared with the ``# R: <type>`` that follows them.
"""

from __future__ import annotations

from dataclasses import dataclass

from queuert import Continues, EntryJobType, JobType, SyncWorkerlessCompletion
from queuert_django import db_connection, get_sync_client, start_chain, start_chains
from typing_extensions import reveal_type


@dataclass
class OrderRef:
    reference: str


@dataclass
class Receipt:
    reference: str


class Archive(JobType[Receipt, int]):
    pass


class SendReceipt(EntryJobType[OrderRef, Receipt], Continues[Archive]):
    pass


def in_a_view() -> None:
    chain = start_chain(SendReceipt(OrderRef("o-1")))
    reveal_type(chain)  # R: queuert.models.Chain[check_django.SendReceipt]
    reveal_type(chain.input)  # R: check_django.OrderRef
    batch = start_chains([SendReceipt(OrderRef("o-2"))])
    reveal_type(batch)  # R: list[queuert.models.Chain[check_django.SendReceipt]]
    start_chain(Archive(Receipt("o-1")))  # E: type-var
    start_chain(SendReceipt(Receipt("o-1")))  # E: arg-type
    start_chain("send_receipt")  # E: type-var

    queuert = get_sync_client()
    found = queuert.get_chain(chain.id, SendReceipt, tx=db_connection())
    reveal_type(found)  # R: queuert.models.Chain[check_django.SendReceipt] | None

    def decide(completion: SyncWorkerlessCompletion[object, OrderRef]) -> Receipt | Archive:
        return Archive(Receipt(completion.input.reference))

    queuert.complete_chain(chain, SendReceipt, decide, tx=db_connection())
    queuert.complete_chain(chain, SendReceipt, Receipt("o-1"), tx=db_connection())
    queuert.complete_chain(chain, SendReceipt, OrderRef("o-1"), tx=db_connection())  # E: arg-type
    queuert.list_chains(type_names=[SendReceipt, OrderRef], tx=db_connection())  # E: list-item
