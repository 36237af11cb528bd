"""Serializers: exact round trips, unambiguous tags, hostile payloads that raise only ValueError."""

from __future__ import annotations

import collections
import contextlib
import datetime as dt
import enum
import json
import math
import pickle
import sys
import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coatcheck._sansio.serializers import (
    JSONSerializer,
    MsgpackSerializer,
    PickleSerializer,
    Serializer,
)
from coatcheck.errors import ConfigurationError, SerializationError

KEY = "pickle-key-0123456789abcdef"
TAGS = [" t", " s", " fs", " b", " i", " dt", " da", " tm", " u", " dec", " k", " ", " x", "  t"]


@pytest.fixture(params=["json", "msgpack"])
def serializer(request: pytest.FixtureRequest) -> Serializer:
    return JSONSerializer() if request.param == "json" else MsgpackSerializer()


SERIALIZERS: list[Serializer] = [JSONSerializer(), MsgpackSerializer()]


def assert_same(original: Any, loaded: Any) -> None:
    """Equal, with the same types all the way down (1 == 1.0 == True and (1,) != [1] for us)."""
    assert type(loaded) is type(original), (original, loaded)
    if isinstance(original, dict):
        assert list(loaded) == list(original)  # same keys, same order
        for key in original:
            assert_same(original[key], loaded[key])
    elif isinstance(original, (list, tuple)):
        assert len(loaded) == len(original)
        for left, right in zip(original, loaded, strict=True):
            assert_same(left, right)
    elif isinstance(original, (set, frozenset)):
        assert loaded == original
        assert sorted(type(x).__name__ for x in loaded) == sorted(
            type(x).__name__ for x in original
        )
    elif isinstance(original, float):
        assert repr(loaded) == repr(original)  # tells -0.0 from 0.0
    elif isinstance(original, Decimal):
        assert loaded.as_tuple() == original.as_tuple()  # tells 1.10 from 1.1
    elif isinstance(original, (dt.datetime, dt.time)):
        assert loaded == original
        assert loaded.utcoffset() == original.utcoffset()
        assert (loaded.tzinfo is None) == (original.tzinfo is None)
    else:
        assert loaded == original


# --- strategies ----------------------------------------------------------------------------

offsets = st.builds(
    dt.timezone,
    st.integers(-(24 * 3600) + 1, 24 * 3600 - 1).map(lambda seconds: dt.timedelta(seconds=seconds)),
)  # fmt: skip
hashable_leaves = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(2**200), max_value=2**200)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
    | st.binary(max_size=20)
    | st.datetimes()
    | st.datetimes(timezones=offsets)
    | st.dates()
    | st.times()
    | st.times(timezones=offsets)
    | st.uuids()
    | st.decimals(allow_nan=False)
)
keys = st.text(max_size=8) | st.sampled_from(TAGS)
hashables = st.recursive(
    hashable_leaves,
    lambda inner: st.tuples(inner) | st.tuples(inner, inner) | st.frozensets(inner, max_size=3),
    max_leaves=5,
)
values = st.recursive(
    hashable_leaves,
    lambda children: (
        st.lists(children, max_size=4)
        | st.lists(children, max_size=4).map(tuple)
        | st.dictionaries(keys, children, max_size=3)
        | st.sets(hashables, max_size=3)
        | st.frozensets(hashables, max_size=3)
    ),
    max_leaves=25,
)


# --- round trips ---------------------------------------------------------------------------


@given(values)
@settings(max_examples=300, deadline=None)
def test_every_supported_value_round_trips_exactly(value: Any) -> None:
    for serializer in SERIALIZERS:
        data = serializer.dumps(value)
        assert isinstance(data, bytes)
        assert_same(value, serializer.loads(data))


@given(st.dictionaries(keys, values, max_size=4))
@settings(deadline=None)
def test_session_shaped_dicts_round_trip_and_reencode_to_the_same_bytes(value: Any) -> None:
    for serializer in SERIALIZERS:
        data = serializer.dumps(value)
        assert serializer.dumps(serializer.loads(data)) == data


AWARE = dt.datetime(
    2024, 5, 1, 12, 0, 0, 123456, tzinfo=dt.timezone(dt.timedelta(hours=5, minutes=30))
)
EXAMPLES = [
    {"a": (1, [2, (3,)])},
    {"dt": AWARE, "naive": AWARE.replace(tzinfo=None), "utc": AWARE.astimezone(dt.timezone.utc)},
    {"odd offset": dt.datetime(2000, 1, 1, tzinfo=dt.timezone(dt.timedelta(seconds=-3723)))},
    {"date": dt.date(1, 1, 1), "max": dt.date.max, "time": dt.time(23, 59, 59, 999999)},
    {"aware time": dt.time(1, 2, tzinfo=dt.timezone(dt.timedelta(hours=-2)))},
    {"uuid": uuid.UUID("12345678-1234-5678-1234-567812345678")},
    {"decimals": [Decimal("1.10"), Decimal("-0"), Decimal("1E+999999"), Decimal("Infinity")]},
    {"bytes": b"", "more": b"\x00\xff" * 10},
    {"sets": {1, 2, 3}, "strs": {"b", "a"}, "mixed": {1, "a", None, (1, 2)}, "empty": set()},
    {"frozen": frozenset({frozenset({1}), frozenset()})},
    {"ints": [0, -1, 2**63 - 1, 2**63, 2**64, -(2**63), -(2**63) - 1, 2**1000, -(2**1000)]},
    {"floats": [0.0, -0.0, 1e308, 5e-324, 0.1, -1.5]},
    {"text": "é ü 日本 \x00 \n \u2028 \U0001f600", "": ""},
    [],
    {},
    (),
    "top-level string",
    None,
    3.5,
]


@pytest.mark.parametrize("value", EXAMPLES)
def test_examples_round_trip(serializer: Serializer, value: Any) -> None:
    assert_same(value, serializer.loads(serializer.dumps(value)))


@pytest.mark.parametrize(
    "value",
    [
        {" t": [1, 2]},
        {" dt": "2024-01-01T00:00:00"},
        {" k": [" t", 1]},
        {" k": {" k": {" k": 1}}},
        {" unknown": 1},
        {" ": None},
        {" b": "AAAA"},
        {" i": "12"},
        {" t": (1,)},
        [{" s": [1]}, {" t": 1, "other": 2}],
        {"outer": {" fs": []}},
        {" t": 1, " s": 2},
    ],
)
def test_user_dicts_shaped_like_tags_round_trip(serializer: Serializer, value: Any) -> None:
    assert_same(value, serializer.loads(serializer.dumps(value)))


def test_json_output_is_plain_compact_json_for_plain_data() -> None:
    data = {"counter": 1, "roles": ["admin"], "name": "é", "ok": True, "none": None, "f": 1.5}
    encoded = JSONSerializer().dumps(data)
    assert encoded == json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()
    assert json.loads(encoded) == data


def test_json_tags_are_readable() -> None:
    encoded = JSONSerializer().dumps({"when": AWARE, "pair": (1, 2), " t": 0})
    assert encoded == (
        b'{"when":{" dt":"2024-05-01T12:00:00.123456+05:30"},"pair":{" t":[1,2]}," t":0}'
    )
    assert JSONSerializer().dumps({" t": 0}) == b'{" k":[" t",0]}'


def test_shared_references_are_not_cycles(serializer: Serializer) -> None:
    shared = [1, 2]
    value = {"a": shared, "b": shared, "c": [shared, shared]}
    assert serializer.loads(serializer.dumps(value)) == value


def test_dumps_does_not_modify_its_input(serializer: Serializer) -> None:
    value = {"a": (1, {2}), " t": [b"x"], "n": [{"x": dt.date(2020, 1, 1)}]}
    before = repr(value)
    serializer.dumps(value)
    assert repr(value) == before


# --- what dumps refuses ----------------------------------------------------------------------


class Colour(enum.IntEnum):
    RED = 1


class Text(str):
    pass


def _cycle_list() -> list[Any]:
    items: list[Any] = [1]
    items.append({"back": items})
    return items


def _cycle_dict() -> dict[str, Any]:
    mapping: dict[str, Any] = {}
    mapping["self"] = (mapping,)
    return mapping


def _deep(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth):
        value = [value]
    return value


UNSUPPORTED = [
    object(),
    lambda: None,
    {"key": object()},
    [1, (2, {3: 4})],
    {1: "int key"},
    {None: 1},
    {(1, 2): "tuple key"},
    {b"k": 1},
    {Text("k"): 1},
    float("nan"),
    {"x": [float("inf")]},
    (-math.inf,),
    {"s": {float("nan")}},
    Colour.RED,
    Text("subclass"),
    collections.OrderedDict(a=1),
    collections.defaultdict(list),
    bytearray(b"x"),
    range(3),
    "\udc80",
    {"\udc80": 1},
    _cycle_list(),
    _cycle_dict(),
    _deep(100_000),
]


@pytest.mark.parametrize("value", UNSUPPORTED)
def test_unsupported_values_raise_serialization_error(serializer: Serializer, value: Any) -> None:
    with pytest.raises(SerializationError):
        serializer.dumps(value)


def test_time_with_a_tzinfo_that_has_no_offset_is_refused(serializer: Serializer) -> None:
    class NoOffset(dt.tzinfo):
        def utcoffset(self, moment: dt.datetime | None) -> None:
            return None

        def dst(self, moment: dt.datetime | None) -> None:
            return None

        def tzname(self, moment: dt.datetime | None) -> None:
            return None

    with pytest.raises(SerializationError, match="offset"):
        serializer.dumps(dt.time(1, tzinfo=NoOffset()))
    with pytest.raises(SerializationError, match="offset"):
        serializer.dumps(dt.datetime(2020, 1, 1, tzinfo=NoOffset()))
    sub_second = dt.timezone(dt.timedelta(microseconds=1))
    with pytest.raises(SerializationError, match="whole-second"):
        serializer.dumps(dt.datetime(2020, 1, 1, tzinfo=sub_second))


def test_json_refuses_ints_over_the_digit_limit() -> None:
    with pytest.raises(SerializationError):
        JSONSerializer().dumps({"big": 10**5000})


def test_the_error_names_the_type() -> None:
    with pytest.raises(SerializationError, match="Colour"):
        JSONSerializer().dumps({"c": Colour.RED})


# --- what loads refuses ----------------------------------------------------------------------

BAD_JSON = [
    b"",
    b"\xff\xfe",
    b'{"a": "\xc3\x28"}',  # invalid UTF-8
    b'\xef\xbb\xbf{"a":1}',  # a BOM
    "{}".encode("utf-16"),
    b"{",
    b'{"a":1}x',
    b"{'a': 1}",
    b'{" nope":1}',
    b'{" ":1}',
    b"NaN",
    b'{"a":NaN}',
    b"[Infinity]",
    b"[-Infinity]",
    b"[1e999]",
    b"[-1e999]",
    b"[" + b"9" * 1_000_000 + b"]",
    b"[" * 100_000 + b"]" * 100_000,
    b'{"a":' * 100_000 + b"1" + b"}" * 100_000,
    b'{" t":1}',
    b'{" t":{" t":[1]}}',
    b'{" s":[[1]]}',
    b'{" s":[{"a":1}]}',
    b'{" fs":[[]]}',
    b'{" s":"abc"}',
    b'{" dt":5}',
    b'{" dt":"yesterday"}',
    b'{" dt":"2024-02-30T00:00:00"}',
    b'{" da":"2024-13-01"}',
    b'{" tm":"25:00"}',
    b'{" u":"not-a-uuid"}',
    b'{" u":5}',
    b'{" dec":"one"}',
    b'{" dec":1.5}',
    b'{" b":"!!!!"}',
    b'{" b":"AAA"}',
    b'{" b":"\xc3\xa9"}',
    b'{" k":[1,2]}',
    b'{" k":["t",2]}',
    b'{" k":[" t"]}',
    b'{" k":{" t":1}}',
    b'{" i":"5"}',  # msgpack-only tag
    b"\x80\x03}q\x00.",  # a pickle
    msgpack.packb({"a": 1}),
]


@pytest.mark.parametrize("data", BAD_JSON, ids=lambda data: repr(data[:30]))
def test_json_loads_raises_value_error_for_bad_input(data: bytes) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - ValueError is the whole contract
        JSONSerializer().loads(data)


def test_loads_rejects_str_input(serializer: Serializer) -> None:
    with pytest.raises(ValueError):  # noqa: PT011
        serializer.loads("{}")  # type: ignore[arg-type]


def test_json_duplicate_keys_keep_the_last_value() -> None:
    assert JSONSerializer().loads(b'{"a":1,"a":2}') == {"a": 2}


def _pack(value: Any) -> bytes:
    packed: bytes = msgpack.packb(value, use_bin_type=True)
    return packed


BAD_MSGPACK = [
    b"",
    b"\xc1",  # never used
    b"\x81",  # a map with nothing in it
    _pack({"a": 1}) + b"\x00",
    _pack({"a": 1})[:-1],
    _pack(float("nan")),
    _pack([1, float("inf")]),
    _pack({"a": float("-inf")}),
    _pack({1: "int key"}),
    _pack({b"k": "bytes key"}),
    _pack({"a": {None: 1}}),
    _pack(msgpack.ExtType(5, b"x")),
    b"\x81\xa1a\xd4\xfb\x00",  # {"a": a reserved negative extension type}
    b"\xa2\xc3\x28",  # a str that is not UTF-8
    b"\x91" * 100_000 + b"\xc0",
    _pack({" nope": 1}),
    _pack({" t": 1}),
    _pack({" s": [[1]]}),
    _pack({" i": 5}),
    _pack({" i": "9" * 1_000_000}),
    _pack({" i": "12x"}),
    _pack({" dt": "nope"}),
    _pack({" dec": "nope"}),
    _pack({" k": [1, 2]}),
    _pack({" b": "AAAA"}),  # JSON-only tag
    b'{"a":1}',
    b"\x80\x03}q\x00.",
]


@pytest.mark.parametrize("data", BAD_MSGPACK, ids=lambda data: repr(data[:30]))
def test_msgpack_loads_raises_value_error_for_bad_input(data: bytes) -> None:
    with pytest.raises(ValueError):  # noqa: PT011
        MsgpackSerializer().loads(data)


def test_msgpack_timestamps_decode_as_datetimes() -> None:
    # msgpack's one built-in extension is never written by dumps(); it decodes as a datetime
    # (a supported type) rather than as a foreign Timestamp object.
    moment = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)
    assert MsgpackSerializer().loads(msgpack.packb({"t": moment}, datetime=True)) == {"t": moment}


@pytest.mark.parametrize("value", [{"a": 1, "b": [1, 2]}, {" t": (1, b"x")}, {"x": AWARE}])
def test_every_proper_prefix_raises_value_error(serializer: Serializer, value: Any) -> None:
    data = serializer.dumps(value)
    for end in range(len(data)):
        with pytest.raises(ValueError):  # noqa: PT011
            serializer.loads(data[:end])


def _loads_or_value_error(serializer: Serializer, data: bytes) -> None:
    with contextlib.suppress(ValueError):
        serializer.loads(data)


@given(st.binary(max_size=200))
@settings(max_examples=500, deadline=None)
def test_random_bytes_raise_nothing_but_value_error(data: bytes) -> None:
    for serializer in SERIALIZERS:
        _loads_or_value_error(serializer, data)


@given(st.dictionaries(keys, values, min_size=1, max_size=3), st.data())
@settings(deadline=None)
def test_prefixes_and_corruptions_of_valid_payloads(value: Any, data: st.DataObject) -> None:
    for serializer in SERIALIZERS:
        payload = serializer.dumps(value)
        end = data.draw(st.integers(0, len(payload) - 1))
        with pytest.raises(ValueError):  # noqa: PT011
            serializer.loads(payload[:end])
        index = data.draw(st.integers(0, len(payload) - 1))
        corrupted = bytearray(payload)
        corrupted[index] = data.draw(st.integers(0, 255))
        _loads_or_value_error(serializer, bytes(corrupted))


json_like = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=10)
    | st.sampled_from(["2024-01-01", "12:00", "1.5", "AAAA", "x", "nope"]),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.sampled_from(TAGS) | st.text(max_size=3), children, max_size=2)
    ),
    max_leaves=15,
)


@given(json_like)
@settings(max_examples=500, deadline=None)
def test_hand_made_tagged_json_raises_nothing_but_value_error(value: Any) -> None:
    _loads_or_value_error(JSONSerializer(), json.dumps(value).encode())


msgpack_like = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats()
    | st.text(max_size=10)
    | st.binary(max_size=5)
    | st.sampled_from(["2024-01-01", "1.5", "99", "x"])
    | st.builds(msgpack.ExtType, st.integers(0, 127), st.binary(max_size=4)),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(
            st.sampled_from(TAGS)
            | st.text(max_size=3)
            | st.integers(0, 2**32)
            | st.binary(max_size=2),
            children,
            max_size=2,
        )
    ),
    max_leaves=15,
)


@given(msgpack_like)
@settings(max_examples=500, deadline=None)
def test_hand_made_msgpack_raises_nothing_but_value_error(value: Any) -> None:
    _loads_or_value_error(MsgpackSerializer(), _pack(value))


# --- msgpack details ---------------------------------------------------------------------------


def test_msgpack_uses_bin_for_bytes_and_tags_only_big_ints() -> None:
    serializer = MsgpackSerializer()
    assert msgpack.unpackb(serializer.dumps({"b": b"\x00", "i": 2**64 - 1})) == {
        "b": b"\x00",
        "i": 2**64 - 1,
    }
    assert msgpack.unpackb(serializer.dumps(2**64)) == {" i": str(2**64)}


def test_msgpack_missing_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "msgpack", None)  # makes `import msgpack` fail
    with pytest.raises(ConfigurationError, match=r"coatcheck\[msgpack\]"):
        MsgpackSerializer()


# --- the protocol ------------------------------------------------------------------------------


class Reversed:
    """A third-party serializer: nothing but the two methods."""

    def dumps(self, obj: Any) -> bytes:
        return str(obj).encode()[::-1]

    def loads(self, data: bytes) -> Any:
        return data[::-1].decode()


def test_any_object_with_dumps_and_loads_is_a_serializer() -> None:
    custom: Serializer = Reversed()
    assert isinstance(custom, Serializer)
    assert custom.loads(custom.dumps("abc")) == "abc"
    assert not isinstance(object(), Serializer)
    assert JSONSerializer.format_name == "json"
    assert MsgpackSerializer.format_name == "msgpack"
    assert PickleSerializer.format_name == "pickle"
    assert isinstance(JSONSerializer(), Serializer)
    assert isinstance(MsgpackSerializer(), Serializer)
    assert isinstance(PickleSerializer([KEY]), Serializer)


# --- signed pickle -----------------------------------------------------------------------------

EXPLOITED: list[str] = []


def _exploit() -> None:
    EXPLOITED.append("code ran")


class Exploit:
    def __reduce__(self) -> tuple[Any, tuple[()]]:
        return (_exploit, ())


@pytest.fixture
def exploit_payload() -> Iterator[bytes]:
    EXPLOITED.clear()
    payload = pickle.dumps({"user": Exploit()})
    pickle.loads(payload)  # noqa: S301 - proves the payload really runs code when unpickled
    assert EXPLOITED == ["code ran"]
    EXPLOITED.clear()
    yield payload
    EXPLOITED.clear()


class Point:
    def __init__(self, x: int, y: int) -> None:
        self.x, self.y = x, y

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Point) and (self.x, self.y) == (other.x, other.y)

    __hash__ = None  # type: ignore[assignment]


def test_pickle_round_trips_arbitrary_objects() -> None:
    serializer = PickleSerializer([KEY])
    value = {"p": Point(1, 2), "cycle": _cycle_list(), "set": {1}}
    loaded = serializer.loads(serializer.dumps(value))
    assert loaded["p"] == Point(1, 2)
    assert loaded["cycle"][1]["back"] is loaded["cycle"]


def test_unsigned_pickle_never_runs(exploit_payload: bytes) -> None:
    serializer = PickleSerializer([KEY])
    with pytest.raises(ValueError, match="not signed"):
        serializer.loads(exploit_payload)
    with pytest.raises(ValueError, match="not signed"):
        serializer.loads(b"\x00" * 32 + exploit_payload)
    assert EXPLOITED == []


def test_pickle_signed_with_another_key_never_runs(exploit_payload: bytes) -> None:
    forged = PickleSerializer(["attacker-key-0123456789"]).dumps({"user": Exploit()})
    EXPLOITED.clear()
    with pytest.raises(ValueError, match="not signed"):
        PickleSerializer([KEY]).loads(forged)
    assert EXPLOITED == []


def test_tampered_signed_pickle_never_runs(exploit_payload: bytes) -> None:
    serializer = PickleSerializer([KEY])
    genuine = serializer.dumps({"user": "alice"})
    # Keep the genuine MAC, swap in the malicious pickle.
    with pytest.raises(ValueError, match="not signed"):
        serializer.loads(genuine[:32] + exploit_payload)
    for index in range(len(genuine)):
        flipped = bytearray(genuine)
        flipped[index] ^= 0x01
        with pytest.raises(ValueError, match="not signed"):
            serializer.loads(bytes(flipped))
    assert EXPLOITED == []


def test_pickle_keys_rotate() -> None:
    old = PickleSerializer(["old-key-0123456789abcdef"])
    rotated = PickleSerializer(["new-key-0123456789abcdef", "old-key-0123456789abcdef"])
    assert rotated.loads(old.dumps({"a": 1})) == {"a": 1}


def test_pickle_mac_is_not_a_cookie_mac() -> None:
    from coatcheck._sansio.signing import Signer

    signer = Signer([KEY], purpose="cookie:sid")
    cookie_signed = signer.sign_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(ValueError, match="not signed"):
        PickleSerializer([KEY]).loads(cookie_signed)


@pytest.mark.parametrize("keys", [[], ["short"]])
def test_pickle_needs_real_keys(keys: list[str]) -> None:
    with pytest.raises(ConfigurationError):
        PickleSerializer(keys)


@pytest.mark.parametrize("value", [lambda: None, (n for n in range(3)), _deep(100_000)])
def test_unpicklable_values_raise_serialization_error(value: Any) -> None:
    with pytest.raises(SerializationError):
        PickleSerializer([KEY]).dumps(value)


class Vanishing:
    pass


def test_signed_but_unloadable_pickle_raises_value_error(monkeypatch: pytest.MonkeyPatch) -> None:
    serializer = PickleSerializer([KEY])
    data = serializer.dumps({"v": Vanishing()})
    monkeypatch.delitem(globals(), "Vanishing")  # the class was removed in a new release
    with pytest.raises(ValueError, match="cannot be loaded"):
        serializer.loads(data)


@given(st.binary(max_size=200))
@settings(deadline=None)
def test_pickle_loads_random_bytes_raises_only_value_error(data: bytes) -> None:
    with pytest.raises(ValueError):  # noqa: PT011
        PickleSerializer([KEY]).loads(data)
