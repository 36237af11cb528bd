"""Serializers: hostile and damaged payloads raise ValueError and nothing else."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coatcheck._sansio.serializers import (
    JSONSerializer,
    MsgpackSerializer,
    Serializer,
)

from .serializer_values import (
    AWARE,
    SERIALIZERS,
    TAGS,
    keys,
    values,
)

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
