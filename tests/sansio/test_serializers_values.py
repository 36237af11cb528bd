"""Serializers: exact round trips of every value they take, and what dumps refuses."""

from __future__ import annotations

import collections
import datetime as dt
import enum
import json
import math
import uuid
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coatcheck._sansio.serializers import (
    JSONSerializer,
    Serializer,
)
from coatcheck.errors import SerializationError

from .serializer_values import (
    AWARE,
    SERIALIZERS,
    assert_same,
    cycle_list,
    deep,
    keys,
    values,
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


def _cycle_dict() -> dict[str, Any]:
    mapping: dict[str, Any] = {}
    mapping["self"] = (mapping,)
    return mapping


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
    cycle_list(),
    _cycle_dict(),
    deep(100_000),
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
