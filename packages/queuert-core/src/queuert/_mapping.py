"""Row to object mapping: the public :class:`~queuert.models.Job` and :class:`~queuert.models.Chain`
built from the adapter's :class:`~queuert.state.StoredJob` rows, with inputs and outputs decoded by the
job type's declared types (plain JSON for a type the client does not know)."""

from __future__ import annotations

import dataclasses
from typing import Any

from queuert._fastinit import blank, set_field
from queuert.codec import Codec, CodecError
from queuert.errors import StoredValueError
from queuert.job_types import JobTypeRegistry
from queuert.json import UndecodableValue
from queuert.models import Chain, Job
from queuert.observability import JobInfo
from queuert.state import StoredChain, StoredJob

__all__ = ["DECODE", "Mapper", "job_info"]

DECODE: Any = object()
"""Sentinel for ``input=``: decode the stored input."""


def job_info(job: StoredJob) -> JobInfo:
    """What events say about a job."""
    return JobInfo(
        job.id,
        job.type_name,
        job.chain_id,
        job.chain_type_name,
        job.attempt,
        job.chain_trace_context,
        job.trace_context,
    )


class Mapper:
    """Builds the public views of stored rows (hot path: every read and every attempt)."""

    def __init__(self, registry: JobTypeRegistry, codec: Codec) -> None:
        self._registry = registry
        self._codec = codec

    def decode(self, type_name: str, data: Any, which: str, *, strict: bool = True) -> Any:
        """A stored ``input`` or ``output`` (``which``) decoded with the type's declared type.

        A value that cannot be read raises :class:`StoredValueError` when ``strict`` (processing),
        and is returned as an :class:`UndecodableValue` otherwise (reads never fail on one bad row).
        """
        if data is None:
            return None
        if isinstance(data, UndecodableValue):
            if strict:
                raise StoredValueError(which, type_name, data.reason)
            return data
        jt = self._registry.get(type_name)
        if jt is None:
            return data
        spec = jt.spec()
        tp = spec.input_type if which == "input" else spec.output_type
        try:
            return self._codec.decode(tp, data)
        except CodecError as exc:
            reason = f"it does not fit the declared type: {exc}"
            if strict:
                raise StoredValueError(which, type_name, reason) from exc
            return UndecodableValue(data, reason)

    def to_job(self, stored: StoredJob, *, input: Any = DECODE, strict: bool = False) -> Job:
        """The public view of a stored job (``input`` given: already decoded, used as is). With
        ``strict`` (a job about to be processed) a value that cannot be read raises
        :class:`StoredValueError`; otherwise it reads as an :class:`UndecodableValue`."""
        type_name = stored.type_name
        output = stored.output
        unreadable = stored.unreadable
        if unreadable is not None and strict:
            raise StoredValueError(unreadable[0], type_name, unreadable[1])
        # the fields as one dict (Job's declaration order): cheaper than 18 keyword arguments
        set_field(
            job := blank(Job),
            "__dict__",
            {
                "id": stored.id,
                "type_name": type_name,
                "chain_id": stored.chain_id,
                "chain_type_name": stored.chain_type_name,
                "status": stored.status,
                "input": self.decode(type_name, stored.input, "input", strict=strict)
                if input is DECODE
                else input,
                "output": None
                if output is None
                else self.decode(type_name, output, "output", strict=strict),
                "attempt": stored.attempt,
                "created_at": stored.created_at,
                "scheduled_at": stored.scheduled_at,
                "completed_at": stored.completed_at,
                "completed_by": stored.completed_by,
                "succeeded_by_job_id": stored.succeeded_by_job_id,
                "last_attempt_at": stored.last_attempt_at,
                "last_attempt_error": stored.last_attempt_error,
                "leased_by": stored.leased_by,
                "leased_until": stored.leased_until,
                "deduplication_key": stored.deduplication_key,
                "priority": stored.priority,
                "limit_key": stored.limit_key,
                "unreadable": None
                if unreadable is None
                else f"stored {unreadable[0]} cannot be read: {unreadable[1]}",
            },
        )
        return job

    def to_chain(
        self, stored: StoredChain, *, deduplicated: bool = False, input: Any = DECODE
    ) -> Chain[Any]:
        return self.chain(stored.root, stored.tail, deduplicated, input)

    def started(self, row: StoredJob, deduplicated: bool, input: Any) -> Chain[Any]:
        """The chain a start returns: ``row`` is its first job, new (it holds ``input``, the value
        the caller gave) or, when ``deduplicated``, the existing chain's (its input decoded).

        A new job is open, without output and readable: its view is built here in one step, without
        :meth:`chain`'s and :meth:`to_job`'s general cases (hot: once per started chain)."""
        if deduplicated or row.outcome is not None or row.output is not None or row.unreadable:
            return self.chain(row, row, deduplicated, DECODE if deduplicated else input)
        # copies of prepared field dicts with this row's values stored: cheaper than dict
        # displays of every field (a field a new job leaves empty is stored only if set)
        value: Any
        fields = _NEW_JOB_FIELDS.copy()
        fields["id"] = row_id = row.id
        fields["type_name"] = type_name = row.type_name
        fields["chain_id"] = row.chain_id
        fields["chain_type_name"] = row.chain_type_name
        fields["status"] = row.status
        fields["input"] = input
        fields["attempt"] = row.attempt
        fields["created_at"] = row.created_at
        fields["scheduled_at"] = row.scheduled_at
        if (value := row.completed_at) is not None:
            fields["completed_at"] = value
        if (value := row.completed_by) is not None:
            fields["completed_by"] = value
        if (value := row.succeeded_by_job_id) is not None:
            fields["succeeded_by_job_id"] = value
        if (value := row.last_attempt_at) is not None:
            fields["last_attempt_at"] = value
        if (value := row.last_attempt_error) is not None:
            fields["last_attempt_error"] = value
        if (value := row.leased_by) is not None:
            fields["leased_by"] = value
        if (value := row.leased_until) is not None:
            fields["leased_until"] = value
        if (value := row.deduplication_key) is not None:
            fields["deduplication_key"] = value
        fields["priority"] = row.priority
        if (value := row.limit_key) is not None:
            fields["limit_key"] = value
        set_field(job := blank(Job), "__dict__", fields)
        fields = _NEW_CHAIN_FIELDS.copy()
        fields["id"] = row_id
        fields["type_name"] = type_name
        fields["root"] = fields["tail"] = job
        set_field(chain := blank(Chain), "__dict__", fields)
        return chain

    def chain(
        self, root_row: StoredJob, tail_row: StoredJob, deduplicated: bool, input: Any
    ) -> Chain[Any]:
        """The chain whose first job is ``root_row`` and current job ``tail_row`` (may be the same)."""
        root = self.to_job(root_row, input=input)
        tail = root if tail_row.id == root_row.id else self.to_job(tail_row)
        closed = tail_row.closes_chain
        completed = closed and tail_row.outcome == "completed"
        set_field(
            chain := blank(Chain),
            "__dict__",
            {
                "id": root_row.id,
                "type_name": root_row.type_name,
                "status": "closed" if closed else "open",
                "outcome": tail_row.outcome if closed else None,
                "root": root,
                "tail": tail,
                "deduplicated": deduplicated,
                "_output": tail.output if completed else None,
            },
        )
        return chain


_NEW_JOB_FIELDS: dict[str, Any] = {f.name: None for f in dataclasses.fields(Job)}
"""A :class:`~queuert.models.Job`'s fields in declaration order, all ``None``: what
:meth:`Mapper.started` copies and fills in."""

_NEW_CHAIN_FIELDS: dict[str, Any] = {f.name: None for f in dataclasses.fields(Chain)}
_NEW_CHAIN_FIELDS.update(status="open", deduplicated=False)
"""An open chain's fields in declaration order (no outcome or output, not deduplicated): what
:meth:`Mapper.started` copies and fills in with its first job."""
