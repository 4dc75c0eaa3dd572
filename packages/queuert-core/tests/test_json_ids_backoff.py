"""Unit tests of the small building blocks: JSON checks, ids, cursors, backoff and schedules."""

from __future__ import annotations

import enum
import json
import math
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from types import MappingProxyType

import pytest
from hypothesis import given
from hypothesis import strategies as st
from queuert import Backoff, Deduplication, Lease, NotJsonError, Schedule, UsageError, ids
from queuert.cursor import decode_jobs_cursor, encode_chain_jobs_cursor, encode_chains_cursor
from queuert.errors import InvalidJobIdError
from queuert.ids import UUID_IDS, IdPolicy, check_id, check_ids, is_uuid, uuid7, uuid7_many
from queuert.json import _walk, dumps, ensure_json, loads

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4)
    ),
    max_leaves=20,
)


@given(json_values)
def test_json_values_are_accepted_and_round_trip(value: object) -> None:
    checked = ensure_json(value)
    assert json.loads(json.dumps(checked)) == checked


@pytest.mark.parametrize(
    ("value", "path"),
    [
        ({"when": datetime.now(timezone.utc)}, "$.when"),
        ([1, {2, 3}], "$[1]"),
        ({"a": [float("nan")]}, "$.a[0]"),
        ({"a": math.inf}, "$.a"),
        (b"bytes", "$"),
        ({1: "int key"}, "$.<key>"),
        ({"deep": {"er": object()}}, "$.deep.er"),
    ],
)
def test_non_json_values_are_refused_with_their_path(value: object, path: str) -> None:
    with pytest.raises(NotJsonError) as info:
        ensure_json(value)
    assert info.value.path == path


class _IntKind(enum.IntEnum):
    ONE = 1


class _StrKind(str, enum.Enum):
    A = "a"


class _Dict(dict):  # type: ignore[type-arg]
    pass


# JSON values plus what only the general walk handles (subclasses of the JSON types, other mappings,
# tuples) and what it refuses (NaN, infinities, non-string keys, other objects).
awkward_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=5)
    | st.sampled_from([_IntKind.ONE, _StrKind.A, b"x", {1, 2}, object()]),
    lambda children: (
        st.lists(children, max_size=3)
        | st.lists(children, max_size=3).map(tuple)
        | st.dictionaries(st.text(max_size=3) | st.integers(0, 3), children, max_size=3)
        | st.dictionaries(st.text(max_size=3), children, max_size=3).map(_Dict)
        | st.dictionaries(st.text(max_size=3), children, max_size=3).map(
            lambda d: MappingProxyType(d)
        )
    ),
    max_leaves=12,
)


def _outcome(check: Callable[[], object]) -> tuple[str, object]:
    try:
        return "ok", check()
    except NotJsonError as exc:
        return "refused", exc.path


@given(awkward_values)
def test_ensure_json_agrees_with_the_general_walk(value: object) -> None:
    """ensure_json takes a shortcut for exact built-in types; whatever the value, it must accept,
    convert and refuse (naming the same path) exactly as the general walk does."""
    fast, general = _outcome(lambda: ensure_json(value)), _outcome(lambda: _walk(value, "$"))
    assert repr(fast) == repr(general)


@given(json_values)
def test_ensure_json_shares_no_container_with_its_argument(value: object) -> None:
    checked = ensure_json(value)

    def containers(v: object) -> list[int]:
        if isinstance(v, list):
            return [id(v), *(i for item in v for i in containers(item))]
        if isinstance(v, dict):
            return [id(v), *(i for item in v.values() for i in containers(item))]
        return []

    assert not set(containers(checked)) & set(containers(value))


def _one_by_one(count: int) -> list[str]:
    return [uuid7() for _ in range(count)]


def _in_batches(count: int) -> list[str]:
    """``count`` ids from :func:`uuid7_many` in batches of 1 to 700, single ids between them."""
    made: list[str] = []
    size = 1
    while len(made) < count:
        made += uuid7_many(min(size, count - len(made)))
        if len(made) < count:
            made.append(uuid7())
        size = size * 3 % 701
    return made


MAKERS = pytest.mark.parametrize("make", [_one_by_one, _in_batches], ids=["uuid7", "uuid7_many"])


@MAKERS
def test_uuid7_ids_are_valid_time_ordered_and_unique(make: Callable[[int], list[str]]) -> None:
    before = time.time_ns() // 1_000_000
    made = make(5000)
    after = time.time_ns() // 1_000_000
    assert len(set(made)) == len(made)
    assert made == sorted(made), "ids made by one process increase"
    for i in made[:50] + made[-50:]:
        parsed = uuid.UUID(i)
        assert (parsed.version, parsed.variant, is_uuid(i)) == (7, uuid.RFC_4122, True)
        assert before <= parsed.int >> 80 <= after + 1, "the first 48 bits are Unix milliseconds"
    assert not is_uuid("not-a-uuid") and not is_uuid(str(uuid.uuid4()).upper())


@MAKERS
def test_uuid7_borrows_the_next_millisecond_when_its_counter_runs_out(
    monkeypatch: pytest.MonkeyPatch, make: Callable[[int], list[str]]
) -> None:
    """More than 4,096 ids within one millisecond (here: a clock that stands still) stay increasing:
    the counter restarts on the next millisecond."""
    frozen = (time.time_ns() // 1_000_000 + 10_000) * 1_000_000  # ahead of any id made so far
    for name in ("_last_ms", "_counter", "_prefix"):  # restored afterwards: later ids use the clock
        monkeypatch.setattr(ids, name, getattr(ids, name))
    monkeypatch.setattr(ids, "_time_ns", lambda: frozen)
    made = make(6000)
    assert made == sorted(made) and len(set(made)) == len(made)
    millis = [uuid.UUID(i).int >> 80 for i in made]
    assert millis[0] == frozen // 1_000_000
    assert millis[-1] in (millis[0] + 1, millis[0] + 2), "borrowed one millisecond per 4,096 ids"


@given(st.integers(min_value=0, max_value=2**62 - 1))
def test_uuid7_ends_with_the_variant_and_62_random_bits(rand: int) -> None:
    """The last 64 bits of an id are the variant (binary 10) and the random bits, leading zeros
    included, in canonical form."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ids, "_getrandbits", lambda bits: rand & ((1 << bits) - 1))
        made, (batched,) = uuid7(), uuid7_many(1)
    for one in (made, batched):
        parsed = uuid.UUID(one)
        assert is_uuid(one) and (parsed.version, parsed.variant) == (7, uuid.RFC_4122)
        assert parsed.int & (2**64 - 1) == 1 << 63 | rand


def _canonical_by_uuid_module(value: str) -> bool:
    try:
        return str(uuid.UUID(value)) == value
    except ValueError:
        return False


@given(
    st.uuids().map(str)
    | st.uuids().map(lambda u: str(u).upper())
    | st.uuids().map(lambda u: "{" + str(u) + "}")
    | st.uuids().map(lambda u: u.hex)
    | st.text(alphabet="0123456789abcdefABCDEF-{}\n ", min_size=30, max_size=40)
    | st.text(max_size=40)
)
def test_is_uuid_accepts_exactly_the_canonical_form(value: str) -> None:
    assert is_uuid(value) == _canonical_by_uuid_module(value)


def test_the_uuid_policy_generates_uuid7_and_accepts_canonical_uuids() -> None:
    made = [UUID_IDS.generate() for _ in range(100)]
    assert all(UUID_IDS.is_valid(i) and uuid.UUID(i).version == 7 for i in made)
    assert made == sorted(made) and len(set(made)) == len(made)
    assert UUID_IDS.is_valid(str(uuid.uuid4()))
    assert not UUID_IDS.is_valid(str(uuid.uuid4()).upper()) and not UUID_IDS.is_valid("")


@pytest.mark.parametrize(
    "value", ["", "nope", "01A2B3C4-0000-7000-8000-000000000000", 7, None, b"x"]
)
def test_check_id_refuses_what_the_policy_refuses_naming_the_argument(value: object) -> None:
    with pytest.raises(InvalidJobIdError) as info:
        check_id(UUID_IDS, value, argument="chain_id")
    assert isinstance(info.value, UsageError), "a bad id is the caller's mistake"
    assert info.value.job_id == value and info.value.argument == "chain_id"
    assert info.value.expected == UUID_IDS.describe and "chain_id" in str(info.value)


def test_check_ids_names_the_position_and_refuses_a_single_string() -> None:
    good = uuid7()
    assert check_ids(UUID_IDS, [good, good], argument="job_ids") == (good, good)
    assert check_ids(UUID_IDS, iter([]), argument="job_ids") == ()
    with pytest.raises(InvalidJobIdError) as info:
        check_ids(UUID_IDS, [good, "bad"], argument="job_ids")
    assert info.value.argument == "job_ids[1]"
    with pytest.raises(UsageError, match="sequence of ids"):
        check_ids(UUID_IDS, good, argument="job_ids")


def test_a_policy_of_other_ids() -> None:
    """A store with other ids (say 24 hex digits) declares its own policy; the checks follow it."""
    counter = iter(range(10**6))
    hex24 = IdPolicy(
        name="hex24",
        generate=lambda: f"{next(counter):024x}",
        is_valid=lambda v: len(v) == 24 and all(c in "0123456789abcdef" for c in v),
        describe="24 lower-case hex digits",
    )
    assert check_id(hex24, hex24.generate()) == f"{0:024x}"
    with pytest.raises(InvalidJobIdError, match="24 lower-case hex digits"):
        check_id(hex24, uuid7())


@pytest.mark.parametrize(
    "cursor",
    [
        "",
        "%%%",
        "eyJrIjoiaSJ9",
        encode_chain_jobs_cursor(3),
        encode_chains_cursor(datetime.now(timezone.utc), uuid7()),
    ],
)
def test_malformed_or_foreign_cursors_are_usage_errors(cursor: str) -> None:
    """Round trips of every list's cursors are in test_argument_checks.py."""
    with pytest.raises(UsageError):
        decode_jobs_cursor(cursor)


def test_backoff_grows_caps_and_spreads() -> None:
    exact = Backoff(initial=10, multiplier=2, maximum=300, jitter=0)
    assert [exact.delay(n).total_seconds() for n in range(1, 8)] == [10, 20, 40, 80, 160, 300, 300]
    assert exact.delay(10_000) == timedelta(seconds=300), "no overflow for huge attempt numbers"
    jittered = Backoff(initial=10, multiplier=2, maximum=300, jitter=0.1)
    delays = {jittered.delay_seconds(3) for _ in range(200)}
    assert all(36 <= d <= 44 for d in delays)
    assert len(delays) > 100, "retries of many jobs do not line up on the same instant"
    with pytest.raises(UsageError):
        Backoff(jitter=1.5)


def test_lease_must_renew_more_often_than_it_lasts() -> None:
    assert Lease(duration=60, renew_every=30).renew_every == timedelta(seconds=30)
    assert Lease(duration=timedelta(seconds=5), renew_every=1).duration == timedelta(seconds=5)
    with pytest.raises(UsageError):
        Lease(duration=10, renew_every=10)


def test_schedule_and_deduplication_validate_their_options() -> None:
    with pytest.raises(UsageError):
        Schedule(at=datetime.now(timezone.utc), after=timedelta(seconds=1))
    with pytest.raises(UsageError):
        Schedule(at=datetime(2030, 1, 1))  # naive datetimes are ambiguous
    assert Schedule(after=1.5).after == timedelta(seconds=1.5)
    assert Schedule(after=timedelta(minutes=1)).after == timedelta(minutes=1)
    with pytest.raises(UsageError):
        Deduplication("")
    with pytest.raises(UsageError):
        Deduplication("k", scope="closed")  # type: ignore[arg-type]
    with pytest.raises(UsageError):
        Deduplication("k", window=timedelta(0))


@pytest.mark.parametrize(
    "text",
    [
        '{"index":5}',
        ' {"a":1}',
        '{"a":1} ',
        "\n[]\n",
        '"x"',
        "-0",
        "1e400",
        "null",
        "NaN",
        "1 2",
        '{"a":1}x',
        "",
        " ",
        "{",
        '{"a":{"b":[1,{"c":null}]}}',
    ],
)
def test_loads_reads_as_the_json_module_does(text: str) -> None:
    def outcome(read: Callable[[str], object]) -> str:
        try:
            return repr(read(text))
        except ValueError as exc:
            return f"ValueError: {exc}"

    assert outcome(loads) == outcome(json.loads)


@pytest.mark.parametrize(
    "value",
    [
        {"index": 5},
        [1, 2.5, "\u00e9\u2028\x00", None, True, False],
        "x",
        10**30,
        -0.0,
        {"\u00e9": []},
    ],
)
def test_dumps_writes_compact_json_as_the_json_module_does(value: object) -> None:
    expected = json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    assert dumps(value) == expected  # type: ignore[arg-type]


def test_dumps_refuses_what_is_not_json() -> None:
    circular: dict[str, object] = {}
    circular["self"] = circular
    for value in (float("nan"), {"k": object()}, circular):
        with pytest.raises((ValueError, TypeError, RecursionError)):
            dumps(value)  # type: ignore[arg-type]
