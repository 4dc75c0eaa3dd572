"""The loop of an isolated handler's process (``python -m queuert._isolation_child``).

It keeps the pipe it was started with (standard input and output) for frames and points its own
standard output at standard error, so that what a handler prints cannot corrupt a frame. The first
frame says what to import and the memory limit; each next frame is one job, answered by one frame.
End of input ends the process.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import os
import pickle
import resource
import runpy
import signal
import sys
import traceback
import types
from typing import Any, BinaryIO

from queuert.errors import RescheduleJob
from queuert.isolation import IsolatedJob, encode_frame, next_job_message


def _read(stream: BinaryIO) -> Any:
    header = stream.read(4)
    if len(header) < 4:
        return None
    size = int.from_bytes(header, "big")
    body = stream.read(size)
    if len(body) < size:
        return None
    return pickle.loads(body)


def _write(stream: BinaryIO, message: object) -> None:
    stream.write(encode_frame(message))
    stream.flush()


def _load(reference: tuple[str, str, str | None, bool]) -> Any:
    """The handler function. When its module is the worker's ``__main__`` (a script, or a module
    run with ``-m``), that module stands in for ``__main__`` here too, so that its classes unpickle;
    a script is run under another name, so that its ``if __name__ == "__main__"`` block does not."""
    module_name, qualname, path, is_main = reference
    target: Any
    if path is not None:
        namespace = runpy.run_path(path, run_name="__queuert_isolated__")
        target = types.ModuleType("__queuert_isolated__")
        target.__dict__.update(namespace)
        sys.modules["__queuert_isolated__"] = target
    else:
        target = importlib.import_module(module_name)
    if is_main:
        sys.modules["__main__"] = target
    for part in qualname.split("."):
        target = getattr(target, part)
    return target


def _cpu_limit(seconds: float | None) -> None:
    """Let this process use ``seconds`` more CPU time (SIGXCPU ends it beyond that)."""
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    if seconds is None:
        resource.setrlimit(resource.RLIMIT_CPU, (hard, hard))
        return
    usage = resource.getrusage(resource.RUSAGE_SELF)
    used = usage.ru_utime + usage.ru_stime
    soft = int(used + seconds) + 1
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))


def main() -> None:
    # The worker decides when this process ends: Ctrl-C in a terminal reaches the whole process
    # group, and must not fail the job running here while the worker shuts down gracefully.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    source = os.fdopen(os.dup(0), "rb")
    sink = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # the handler's prints go to standard error
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    sys.stdout = sys.stderr

    search_path = _read(source)
    reference = _read(source)
    if search_path is None or reference is None:
        return
    sys.path[:] = search_path
    try:
        function = _load(reference)  # before the next frame, whose classes may live in its module
        setup = _read(source)
        if setup is None:
            return
        job_type = setup["job_type"]
        codec = setup["codec"]
        spec = job_type.spec()
    except BaseException as exc:
        _write(sink, ("failed", f"{type(exc).__name__}: {exc}"))
        return
    memory_limit = setup["memory_limit"]
    if memory_limit is not None:
        resource.setrlimit(resource.RLIMIT_AS, (memory_limit, memory_limit))
    _write(sink, ("ready",))

    while True:
        job = _read(source)
        if job is None:
            return
        _cpu_limit(job["cpu_limit"])
        try:
            value = codec.decode(spec.input_type, job["input"])
            isolated: IsolatedJob[Any] = IsolatedJob(
                input=value,
                id=job["id"],
                chain_id=job["chain_id"],
                number=job["number"],
                type_name=spec.name,
            )
            result = function(isolated)
            if inspect.isawaitable(result):
                result = asyncio.run(_awaited(result))
            answer = next_job_message(result, codec) or (
                "output",
                codec.encode(spec.output_type, result),
            )
        except MemoryError:
            answer = ("memory",)
        except RescheduleJob as exc:
            answer = ("reschedule", exc.schedule.at, exc.schedule.after, exc.reason)
        except BaseException as exc:
            answer = ("error", type(exc).__name__, str(exc), traceback.format_exc())
        finally:
            _cpu_limit(None)
        try:
            _write(sink, answer)
        except MemoryError:
            _write(sink, ("memory",))
        if answer[0] == "memory":
            return  # the worker replaces a process that ran out of memory


async def _awaited(result: Any) -> Any:
    return await result


if __name__ == "__main__":
    main()
