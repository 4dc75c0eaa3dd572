"""Process isolation: a job type's handler running in a process of its own, with hard limits.

``worker.isolated(Resize, hard_timeout=30, memory_limit=512 * 2**20)`` runs a plain function of an
:class:`IsolatedJob` in one of a pool of processes that the worker owns. When the handler runs longer
than ``hard_timeout``, uses more address space than ``memory_limit`` or more CPU time than
``cpu_limit``, crashes (a segmentation fault, ``os._exit``), the process is killed or replaced and the
attempt fails with :class:`HardTimeoutError`, :class:`MemoryLimitError`, :class:`CpuLimitError` or
:class:`HandlerCrashedError`, and is retried with backoff like any failure. The worker, its other
jobs and its leases are unaffected.

The input crosses the process boundary in its JSON form (encoded and decoded by the client's codec),
and so does the output; a continuation crosses as its job type and encoded input. This module holds
the pool (the worker's side) and the frames both sides exchange; the child's loop is in
``queuert._isolation_child``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import pickle
import signal
import struct
import sys
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Generic, TypeVar

from queuert.codec import Codec
from queuert.errors import (
    CpuLimitError,
    HandlerCrashedError,
    HardTimeoutError,
    IsolatedHandlerError,
    IsolationError,
    MemoryLimitError,
    RescheduleJob,
    UsageError,
)
from queuert.job_types import JobType
from queuert.schedule import Schedule

__all__ = ["IsolatedJob", "ProcessPool"]

logger = logging.getLogger("queuert.isolation")

J = TypeVar("J", covariant=True)
I = TypeVar("I")  # noqa: E741

_HEADER = struct.Struct(">I")
_STOP_GRACE = 2.0
"""Seconds an idle process gets to exit after its pipe closes before it is killed."""


# -- what the handler gets --------------------------------------------------------------------------


class IsolatedJob(Generic[J]):
    """What an isolated handler receives: the job's decoded input and its identity."""

    __slots__ = ("_input", "chain_id", "id", "number", "type_name")

    def __init__(self, *, input: Any, id: str, chain_id: str, number: int, type_name: str) -> None:
        self._input = input
        self.id = id
        self.chain_id = chain_id
        self.number = number
        """1 for the first attempt, 2 for the first retry, ..."""
        self.type_name = type_name

    @property
    def input(self: IsolatedJob[JobType[I, Any]]) -> I:
        value: I = self._input
        return value

    def __repr__(self) -> str:
        return f"IsolatedJob({self.type_name!r}, id={self.id!r}, number={self.number})"


@dataclass(frozen=True)
class IsolationLimits:
    """The limits of one isolated job type (validated by the worker)."""

    hard_timeout: float
    memory_limit: int | None
    cpu_limit: float | None


# -- frames ---------------------------------------------------------------------------------------


def encode_frame(message: object) -> bytes:
    body = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return _HEADER.pack(len(body)) + body


def function_reference(fn: Callable[..., Any]) -> tuple[str, str, str | None, bool]:
    """How the child finds ``fn``: its module's import name, its qualified name, for a script run
    as ``__main__`` without an import name the script's path, and whether the module is the
    worker's ``__main__`` (then it stands in for ``__main__`` in the child, so that the classes
    defined there unpickle)."""
    qualname = getattr(fn, "__qualname__", "")
    module_name = getattr(fn, "__module__", None)
    if not qualname or "<locals>" in qualname or "<lambda>" in qualname or module_name is None:
        raise UsageError(
            f"an isolated handler must be a function defined at module level, not {fn!r}: "
            "its process imports it by name"
        )
    path: str | None = None
    is_main = module_name == "__main__"
    if is_main:
        main: ModuleType | None = sys.modules.get("__main__")
        spec = getattr(main, "__spec__", None)
        if spec is not None and spec.name:
            module_name = spec.name
        else:
            path = getattr(main, "__file__", None)
            if path is None:
                raise UsageError(
                    "an isolated handler defined in an interactive session cannot be imported by "
                    "its process; define it in a module"
                )
            path = os.path.abspath(path)
    return module_name, qualname, path, is_main


# -- the pool (worker side) -----------------------------------------------------------------------


class _Process:
    """One child process and its pipe; runs one job at a time."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        assert proc.stdin is not None and proc.stdout is not None
        self.writer = proc.stdin
        self.reader = proc.stdout

    async def call(self, message: object) -> Any:
        self.writer.write(encode_frame(message))
        await self.writer.drain()
        header = await self.reader.readexactly(_HEADER.size)
        (size,) = _HEADER.unpack(header)
        return pickle.loads(await self.reader.readexactly(size))

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.proc.kill()

    async def stop(self) -> None:
        """Close the pipe (the child exits at end of input), then kill it if it lingers."""
        with contextlib.suppress(Exception):
            self.writer.close()
        if self.proc.returncode is None:
            try:
                await asyncio.wait_for(self.proc.wait(), _STOP_GRACE)
            except asyncio.TimeoutError:
                self.kill()
                await self.proc.wait()
        # the pipe's transport is closed when this returns (before the loop may be closed)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.writer.wait_closed(), _STOP_GRACE)


class ProcessPool:
    """The processes that run one isolated job type's handler, at most ``size`` at once; started on
    first use and replaced when one dies or is killed. The worker owns it and closes it."""

    def __init__(
        self,
        *,
        type_name: str,
        function: Callable[..., Any],
        job_type: type[Any],
        codec: Codec,
        lookup: Callable[[str], type[Any]],
        limits: IsolationLimits,
        size: int,
    ) -> None:
        self.type_name = type_name
        self.limits = limits
        self._reference = function_reference(function)
        self._job_type = job_type
        self._codec = codec
        self._lookup = lookup
        self._idle: list[_Process] = []
        self._live: set[_Process] = set()
        self._slots = asyncio.Semaphore(size)
        self._closed = False
        self.job_sent = asyncio.Event()
        """Set once a process was given a job (for tests and diagnostics)."""
        try:
            pickle.dumps((job_type, codec))
        except Exception as exc:
            raise UsageError(
                f"the job type {type_name!r} and the client's codec must be picklable for an "
                f"isolated handler: {exc}"
            ) from exc

    async def _spawn(self) -> _Process:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "queuert._isolation_child",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        child = _Process(proc)
        self._live.add(child)
        try:
            child.writer.write(encode_frame(list(sys.path)))
            child.writer.write(encode_frame(self._reference))
            answer = await child.call(
                {
                    "job_type": self._job_type,
                    "codec": self._codec,
                    "memory_limit": self.limits.memory_limit,
                }
            )
        except (asyncio.IncompleteReadError, ConnectionError):
            returncode = await child.proc.wait()
            await child.stop()
            self._live.discard(child)
            raise IsolationError(
                self.type_name,
                f"the isolated handler's process of {self.type_name!r} exited with code "
                f"{returncode} before it was ready (its standard error tells why)",
            ) from None
        except BaseException:
            child.kill()
            await child.stop()
            self._live.discard(child)
            raise
        if answer[0] != "ready":
            child.kill()
            await child.stop()
            self._live.discard(child)
            raise UsageError(
                f"the isolated handler of {self.type_name!r} could not load: {answer[1]}"
            )
        return child

    async def run(self, *, input_json: Any, id: str, chain_id: str, number: int) -> Any:
        """Run the handler for one job; return its result (an output, or a job to continue with)."""
        if self._closed:
            raise UsageError("the isolated handler's pool is closed")
        async with self._slots:
            child = self._idle.pop() if self._idle else await self._spawn()
            keep = False
            try:
                message = {
                    "input": input_json,
                    "id": id,
                    "chain_id": chain_id,
                    "number": number,
                    "cpu_limit": self.limits.cpu_limit,
                }
                self.job_sent.set()
                try:
                    answer = await asyncio.wait_for(child.call(message), self.limits.hard_timeout)
                except asyncio.TimeoutError:
                    child.kill()
                    raise HardTimeoutError(self.type_name, self.limits.hard_timeout) from None
                except (asyncio.IncompleteReadError, ConnectionError, BrokenPipeError):
                    returncode = await child.proc.wait()
                    if self.limits.cpu_limit is not None and returncode in (
                        -signal.SIGXCPU,
                        -signal.SIGKILL,
                    ):
                        raise CpuLimitError(self.type_name, self.limits.cpu_limit) from None
                    raise HandlerCrashedError(self.type_name, returncode) from None
                kind = answer[0]
                if kind == "output":
                    keep = True
                    return self._codec.decode(self._job_type.spec().output_type, answer[1])
                if kind == "continue":
                    keep = True
                    type_name, encoded, job_id, schedule, priority = answer[1:]
                    next_type = self._lookup(type_name)
                    value = self._codec.decode(next_type.spec().input_type, encoded)
                    return next_type(value, id=job_id, schedule=schedule, priority=priority)
                if kind == "reschedule":
                    keep = True
                    at, after, reason = answer[1:]
                    raise RescheduleJob(at=at, after=after, reason=reason)
                if kind == "memory":
                    assert self.limits.memory_limit is not None
                    raise MemoryLimitError(self.type_name, self.limits.memory_limit)
                if kind == "error":
                    keep = True
                    raise IsolatedHandlerError(answer[1], answer[2], answer[3])
                raise UsageError(f"unexpected answer from an isolated handler: {kind!r}")
            finally:
                if keep and not self._closed and child.proc.returncode is None:
                    self._idle.append(child)
                else:
                    child.kill()
                    await child.stop()
                    self._live.discard(child)

    async def close(self) -> None:
        """Stop every process (idle ones exit when their pipe closes; busy ones are killed)."""
        self._closed = True
        idle, self._idle = self._idle, []
        for child in list(self._live):
            if child not in idle:
                child.kill()
        await asyncio.gather(*(child.stop() for child in self._live), return_exceptions=True)
        self._live.clear()


def next_job_message(result: Any, codec: Codec) -> tuple[Any, ...] | None:
    """The frame that carries a continuation back (``None`` when ``result`` is an output)."""
    if not isinstance(result, JobType):
        return None
    if result.blockers or result.deduplication is not None:
        raise UsageError(
            "a job continued from an isolated handler cannot have blockers or deduplication: "
            "they need the worker's transaction"
        )
    kind = type(result)
    schedule: Schedule | None = result.schedule
    return (
        "continue",
        kind.type_name,
        codec.encode(kind.spec().input_type, result.input),
        result.id,
        schedule,
        result.priority,
    )
