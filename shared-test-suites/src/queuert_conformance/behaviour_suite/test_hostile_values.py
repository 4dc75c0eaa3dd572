"""Hostile values, on every adapter: a value no backend can store exactly is refused with a typed
error before anything is written, and every value that is accepted reads back equal.

Refused inputs and outputs: strings or keys with NUL or a lone surrogate, integers longer than
Python's integer-to-string limit, nesting too deep to encode, and values larger than the client's
``max_payload_bytes``. Deduplication keys with NUL, lone surrogates or over 255 characters are refused
when the ``Deduplication`` is built. Error messages a handler raises are stored with NUL and lone
surrogates escaped, so a failing job can always be recorded as failed.
"""

from __future__ import annotations

import contextlib
import sys
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from queuert import (
    Attempt,
    Client,
    Deduplication,
    NotJsonError,
    PayloadTooLargeError,
    Schedule,
    UsageError,
)
from queuert.schedule import LATEST_SCHEDULE, LONGEST_DELAY

from queuert_conformance.behaviour_suite.jobs import ALL, Echo, Num, Raw
from queuert_conformance.behaviour_suite.support import Env, MakeEnv

NESTED: Any = []
for _ in range(5_000):
    NESTED = [NESTED]

HOSTILE: dict[str, Any] = {
    "NUL in a string": {"text": "a\x00b"},
    "NUL in a key": {"a\x00b": 1},
    "lone surrogate in a string": ["ok", "\ud800"],
    "lone surrogate in a key": {"\udfff": True},
    "nesting too deep to encode": NESTED,
}
if hasattr(sys, "get_int_max_str_digits"):  # Python 3.11+: longer integers cannot be read back
    HOSTILE["an integer beyond the string-conversion limit"] = {"n": 10 ** (4300 + 10)}


async def _count(client: Client[Any]) -> int:
    page = await client.list_chains(type_names=[Raw], limit=1000)
    return len(page.items)


async def _refused_with_nothing_written(
    env: Env, value: Any, error: type[Exception], what: str
) -> Exception:
    """Start a ``Raw`` chain with ``value`` (described as ``what``: the value itself may be too
    deep to print) inside a transaction that commits anyway: the start must raise ``error`` and
    leave no chain behind."""
    before = await _count(env.client)
    raised: Exception | None = None
    async with env.client.transaction() as tx:
        try:
            await env.client.start_chain(Raw(value), tx=tx)
        except error as exc:
            raised = exc
    assert raised is not None, f"starting a chain with {what} did not raise {error.__name__}"
    assert await _count(env.client) == before, "a refused start wrote a chain"
    return raised


class TestHostileValues:
    @pytest.mark.parametrize("case", sorted(HOSTILE))
    async def test_an_input_no_backend_stores_exactly_is_refused(
        self, queuert_env: MakeEnv, case: str
    ) -> None:
        env = await queuert_env(job_types=ALL)
        error = await _refused_with_nothing_written(env, HOSTILE[case], NotJsonError, case)
        assert isinstance(error, NotJsonError) and error.path.startswith("$")

    async def test_the_latest_schedules_accepted_are_stored_exactly(
        self, queuert_env: MakeEnv
    ) -> None:
        """``Schedule`` refuses times past what a backend can store (before anything is written);
        the latest it accepts — just before 9000-01-01, or a delay of about a thousand years — is
        stored and read back exactly on every backend, not overflowed or clamped."""
        env = await queuert_env(job_types=ALL)
        latest = LATEST_SCHEDULE - timedelta(microseconds=1)
        at, after = await env.start(
            Echo(Num(1), schedule=Schedule(at=latest)),
            Echo(Num(2), schedule=Schedule(after=LONGEST_DELAY)),
        )
        job = await env.client.get_job(at.id)
        assert job is not None
        # (a store may keep times to the millisecond, as MongoDB does)
        assert latest - timedelta(milliseconds=1) < job.scheduled_at <= latest, job.scheduled_at
        job = await env.client.get_job(after.id)
        assert job is not None
        due = job.created_at + LONGEST_DELAY
        assert abs(job.scheduled_at - due) < timedelta(seconds=1), (job.scheduled_at, due)
        assert job.status == "scheduled"

    async def test_an_input_over_the_size_limit_is_refused(self, queuert_env: MakeEnv) -> None:
        env = await queuert_env(job_types=ALL, max_payload_bytes=1_000)
        error = await _refused_with_nothing_written(
            env, {"blob": "x" * 1_000}, PayloadTooLargeError, "a 1,011-byte input"
        )
        assert isinstance(error, PayloadTooLargeError)
        assert (error.what, error.type_name, error.limit) == ("input", Raw.type_name, 1_000)
        assert error.size == len('{"blob":""}') + 1_000
        async with env.client.transaction() as tx:  # exactly at the limit: accepted
            chain = await env.client.start_chain(Raw({"blob": "x" * (1_000 - 11)}), tx=tx)
        stored = await env.client.get_chain(chain.id)
        assert stored is not None and stored.input == {"blob": "x" * 989}

    async def test_the_size_limit_counts_utf8_bytes(self, queuert_env: MakeEnv) -> None:
        env = await queuert_env(job_types=ALL, max_payload_bytes=100)
        error = await _refused_with_nothing_written(
            env, "é" * 60, PayloadTooLargeError, "a 122-byte input"
        )
        assert isinstance(error, PayloadTooLargeError) and error.size == 122

    @pytest.mark.parametrize(
        "output",
        [pytest.param({"text": "a\x00b"}, id="NUL"), pytest.param("x" * 2_000, id="too large")],
    )
    async def test_a_refused_output_fails_the_job_with_a_readable_error(
        self, queuert_env: MakeEnv, output: Any
    ) -> None:
        env = await queuert_env(job_types=ALL, max_payload_bytes=1_000)

        async def handle(attempt: Attempt[Raw]) -> Any:
            return output

        chain = await env.start_one(Raw(1))
        async with env.worker({Raw: handle}):
            closed = await env.wait_closed(chain)
        assert closed.outcome == "failed"
        (job,) = (await env.client.list_chain_jobs(chain.id)).items
        assert job.last_attempt_error is not None
        assert "NUL" in job.last_attempt_error or "over the limit" in job.last_attempt_error, (
            job.last_attempt_error
        )

    async def test_a_hostile_error_message_is_stored_escaped(self, queuert_env: MakeEnv) -> None:
        env = await queuert_env(job_types=ALL)

        async def handle(attempt: Attempt[Raw]) -> Any:
            raise RuntimeError("bad \x00 and \udc80 here")

        chain = await env.start_one(Raw(1))
        async with env.worker({Raw: handle}):
            closed = await env.wait_closed(chain)
        assert closed.outcome == "failed", "a job whose error could not be stored was never failed"
        (job,) = (await env.client.list_chain_jobs(chain.id)).items
        assert job.last_attempt_error is not None
        assert "RuntimeError: bad \\x00 and \\udc80 here" in job.last_attempt_error

    @pytest.mark.parametrize(
        "key",
        ["a\x00b", "acct\x00", "\ud800", "k" * 256],
        ids=["NUL", "NUL at end", "surrogate", "256"],
    )
    def test_a_deduplication_key_no_backend_stores_exactly_is_refused(self, key: str) -> None:
        with pytest.raises(UsageError, match="deduplication key"):
            Deduplication(key)

    async def test_deduplication_keys_are_compared_exactly(self, queuert_env: MakeEnv) -> None:
        env = await queuert_env(job_types=ALL)
        keys = ["acct", "Acct", "ACCT", "acct ", "accté", "acct\u0301", "k" * 255]
        chains = await env.start(*[Raw(k, deduplication=Deduplication(k)) for k in keys])
        assert len({c.id for c in chains}) == len(keys), "distinct keys deduplicated together"
        again = await env.start(*[Raw(k, deduplication=Deduplication(k)) for k in keys])
        assert [c.id for c in again] == [c.id for c in chains]

    @settings(
        max_examples=40,
        deadline=None,
        # one class instance per fixture parameter (the executor) runs the same property; the
        # property uses no instance state, and the fixture's store is new for every example's env
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,
            HealthCheck.too_slow,
            HealthCheck.differing_executors,
        ],
    )
    @given(value=st.data())
    async def test_a_value_is_refused_with_nothing_written_or_read_back_equal(
        self, queuert_env: MakeEnv, value: st.DataObject
    ) -> None:
        env = await queuert_env(job_types=ALL)
        drawn = value.draw(JSONISH)
        before = await _count(env.client)
        started = None
        async with env.client.transaction() as tx:
            with contextlib.suppress(NotJsonError, PayloadTooLargeError):
                started = await env.client.start_chain(Raw(drawn), tx=tx)
        if started is None:
            assert await _count(env.client) == before
        else:
            stored = await env.client.get_chain(started.id)
            assert stored is not None and stored.input == _as_stored(drawn)


_TEXT = st.text(
    alphabet=st.one_of(
        st.characters(codec="utf-8"),
        st.sampled_from(["\x00", "\ud800", "\udfff", "\u0301", "\U0001f600", "\\", '"']),
    ),
    max_size=12,
)
_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.sampled_from([2**63, -(2**63) - 1, 10**40])
    # beyond 1e15 PostgreSQL's jsonb writes an integral float without its exponent, so 1e23 reads
    # back as the int 10**23 (see the PostgreSQL adapter's README)
    | st.floats(min_value=-1e15, max_value=1e15)
    | _TEXT
)
JSONISH = st.recursive(
    _SCALARS,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(_TEXT, children, max_size=4),
    max_leaves=12,
)


def _as_stored(value: Any) -> Any:
    """What a JSON round trip gives back: tuples become lists (nothing else changes)."""
    if isinstance(value, (list, tuple)):
        return [_as_stored(v) for v in value]
    if isinstance(value, dict):
        return {k: _as_stored(v) for k, v in value.items()}
    return value
