"""Serializers: one nesting limit, MAX_DEPTH, the same at dumps and at loads, at any stack depth.

A value one accepts the other loads back, and a payload nested deeper than a dumps would write
is refused: however deep the call stack is on either side.
"""

from __future__ import annotations

from typing import Any

import pytest

from coatcheck._sansio.serializers import JSONSerializer, MsgpackSerializer, PickleSerializer
from coatcheck.errors import SerializationError

from .nesting import (
    KINDS,
    MAX_DEPTH,
    NOISE,
    encoded,
    nested,
    recursion_limit_above,
    tree,
    within_frames,
)
from .serializer_values import KEY, assert_same

SERIALIZERS = {"json": JSONSerializer(), "msgpack": MsgpackSerializer()}
TOO_DEEP = f"more than {MAX_DEPTH} deep"


@pytest.fixture(params=sorted(SERIALIZERS))
def name(request: pytest.FixtureRequest) -> str:
    """The name of each serializer with the nesting limit, in turn."""
    value: str = request.param
    return value


def test_the_limit_is_one_documented_constant() -> None:
    assert MAX_DEPTH == 100
    assert JSONSerializer.max_depth == MsgpackSerializer.max_depth == MAX_DEPTH


# -- at dumps ----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_a_value_at_the_limit_saves_and_loads_back(name: str, kind: str) -> None:
    serializer = SERIALIZERS[name]
    value = nested(kind, MAX_DEPTH)
    payload = serializer.dumps(value)
    assert payload == encoded(name, tree(kind, MAX_DEPTH))
    assert_same(value, serializer.loads(payload))


@pytest.mark.parametrize("kind", KINDS)
def test_one_level_past_the_limit_is_refused_at_save(name: str, kind: str) -> None:
    with pytest.raises(SerializationError, match=f"nested too deeply to store.*{TOO_DEEP}"):
        SERIALIZERS[name].dumps(nested(kind, MAX_DEPTH + 1))


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 500, 950, 5000])
def test_far_past_the_limit_is_refused_by_the_limit(name: str, depth: int) -> None:
    # Not by a RecursionError: ~950 levels used to save from a shallow stack.
    with pytest.raises(SerializationError, match=TOO_DEEP):
        SERIALIZERS[name].dumps({"k": nested("list", depth)})


def test_a_circular_structure_is_still_named_as_one(name: str) -> None:
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(SerializationError, match="circular"):
        SERIALIZERS[name].dumps({"k": loop})


# -- at loads ----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_a_payload_one_level_past_the_limit_is_refused_at_load(name: str, kind: str) -> None:
    payload = encoded(name, tree(kind, MAX_DEPTH + 1))
    with pytest.raises(ValueError, match=TOO_DEEP):
        SERIALIZERS[name].loads(payload)


def test_brackets_in_strings_neither_hide_nor_fake_depth() -> None:
    serializer = SERIALIZERS["json"]
    # Many closing brackets in strings would hide a level from a naive scan, opening ones
    # would fake one: neither changes what is refused.
    shallow = {"a": [NOISE] * 50, "b": {"c": [NOISE, {"d": NOISE}]}}
    assert serializer.loads(serializer.dumps(shallow)) == shallow
    hidden = encoded("json", [tree("noisy", MAX_DEPTH), "]" * 500])
    with pytest.raises(ValueError, match=TOO_DEEP):
        serializer.loads(hidden)


def test_many_containers_that_do_not_nest_deep_load(name: str) -> None:
    serializer = SERIALIZERS[name]
    wide = {"cart": [{"sku": f"A-{n}", "tags": ["x"], "at": (n, n)} for n in range(300)]}
    assert_same(wide, serializer.loads(serializer.dumps(wide)))


def test_tuples_nest_twice_as_deep_in_the_tree_and_count_once(name: str) -> None:
    # A tuple is a tag holding a list: 2 * MAX_DEPTH levels of JSON brackets, MAX_DEPTH
    # containers.
    serializer = SERIALIZERS[name]
    value = {"k": nested("tuple", MAX_DEPTH - 1)}
    assert serializer.loads(serializer.dumps(value)) == value
    with pytest.raises(ValueError, match=TOO_DEEP):
        serializer.loads(encoded(name, {"k": tree("tuple", MAX_DEPTH)}))


# -- whatever the stack depth ------------------------------------------------------------------


@pytest.mark.parametrize("frames", [0, 500])
@pytest.mark.parametrize("kind", ["list", "tuple", "escaped"])
def test_save_and_load_agree_deep_in_a_call_stack(name: str, kind: str, frames: int) -> None:
    serializer = SERIALIZERS[name]
    value = nested(kind, MAX_DEPTH)
    saved_shallow = serializer.dumps(value)
    saved_deep = within_frames(frames, lambda: serializer.dumps(value))
    assert saved_deep == saved_shallow
    assert_same(value, within_frames(frames, lambda: serializer.loads(saved_shallow)))
    with pytest.raises(SerializationError, match=TOO_DEEP):
        within_frames(frames, lambda: serializer.dumps(nested(kind, MAX_DEPTH + 1)))
    too_deep = encoded(name, tree(kind, MAX_DEPTH + 1))
    with pytest.raises(ValueError, match=TOO_DEEP):
        within_frames(frames, lambda: serializer.loads(too_deep))


@pytest.mark.parametrize("kind", ["list", "tuple", "noisy"])
def test_save_and_load_agree_under_a_lowered_recursion_limit(name: str, kind: str) -> None:
    # The limit's promise: a value at the limit needs some 200 frames of headroom.
    serializer = SERIALIZERS[name]
    value = nested(kind, MAX_DEPTH)
    with recursion_limit_above(300):
        payload = serializer.dumps(value)
        loaded = serializer.loads(payload)
        with pytest.raises(SerializationError, match=TOO_DEEP):
            serializer.dumps(nested(kind, MAX_DEPTH + 1))
        with pytest.raises(ValueError, match=TOO_DEEP):
            serializer.loads(encoded(name, tree(kind, MAX_DEPTH + 1)))
    assert_same(value, loaded)


def test_a_stack_too_full_to_encode_is_a_serialization_error(name: str) -> None:
    serializer = SERIALIZERS[name]
    with recursion_limit_above(60), pytest.raises(SerializationError, match="call stack"):
        serializer.dumps(nested("list", MAX_DEPTH))


# -- pickle: no limit, and none needed -----------------------------------------------------------


@pytest.mark.parametrize("depth", [MAX_DEPTH, MAX_DEPTH + 1, 300])
def test_pickle_loads_what_it_saved_at_any_stack_depth(depth: int) -> None:
    # Pickle has no nesting limit: its objects are opaque to a depth count, and its loads does
    # not recurse, so whatever dumps wrote loads back, from however deep a stack.
    serializer = PickleSerializer([KEY])
    value = {"k": nested("mixed", depth)}
    payload = serializer.dumps(value)
    from_deep = within_frames(500, lambda: serializer.loads(payload))
    with recursion_limit_above(40):
        under_a_low_limit = serializer.loads(payload)
    assert from_deep == under_a_low_limit == value
