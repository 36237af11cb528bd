"""Serializers: msgpack details, the Serializer protocol, and signed pickle."""

from __future__ import annotations

import pickle
import sys
from collections.abc import Iterator
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

from .serializer_values import (
    KEY,
    cycle_list,
    deep,
)

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
    value = {"p": Point(1, 2), "cycle": cycle_list(), "set": {1}}
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


@pytest.mark.parametrize("value", [lambda: None, (n for n in range(3)), deep(100_000)])
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
