"""What the serializer tests share: the serializers, exact comparison, value strategies."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from hypothesis import strategies as st

from coatcheck._sansio.serializers import (
    JSONSerializer,
    MsgpackSerializer,
    Serializer,
)

KEY = "pickle-key-0123456789abcdef"
TAGS = [" t", " s", " fs", " b", " i", " dt", " da", " tm", " u", " dec", " k", " ", " x", "  t"]


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


AWARE = dt.datetime(
    2024, 5, 1, 12, 0, 0, 123456, tzinfo=dt.timezone(dt.timedelta(hours=5, minutes=30))
)


def cycle_list() -> list[Any]:
    items: list[Any] = [1]
    items.append({"back": items})
    return items


def deep(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth):
        value = [value]
    return value
