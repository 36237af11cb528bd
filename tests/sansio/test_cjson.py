"""The CPython JSON adapter: the C path is taken on CPython, and it agrees with the fallback.

If ``test_cpython_takes_the_c_paths`` fails, a CPython release has changed ``_json`` (the
arguments of ``make_encoder`` or ``make_scanner``, or what they write): JSONSerializer still
works, through the public API, but slower. Read the new Lib/json/encoder.py and decoder.py and
update coatcheck/_sansio/cjson.py.
"""

from __future__ import annotations

import json
import json.encoder
import json.scanner
import math
import platform
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coatcheck._sansio import cjson, serializers
from coatcheck._sansio.serializers import JSONSerializer

# What json itself calls: None where the C accelerator is missing. (Not in typeshed's json stubs.)
C_MAKE_ENCODER: Any = vars(json.encoder).get("c_make_encoder")
C_MAKE_SCANNER: Any = vars(json.scanner).get("c_make_scanner")
needs_c = pytest.mark.skipif(
    C_MAKE_ENCODER is None or C_MAKE_SCANNER is None, reason="no C accelerator in json"
)


class Refused(Exception):
    pass


def refuse(value: object) -> Any:
    raise Refused(type(value).__name__)


def both_encoders() -> tuple[cjson.Encoder, cjson.Encoder]:
    return cjson.compact_encoder(refuse), cjson.compact_encoder(refuse, accelerate=False)


def both_decoders(**hooks: Any) -> tuple[cjson.Decoder, cjson.Decoder]:
    decoder = json.JSONDecoder(**hooks)
    return cjson.direct_decoder(decoder), cjson.direct_decoder(decoder, accelerate=False)


def text(encoder: cjson.Encoder, obj: Any) -> str:
    return "".join(encoder.encode(obj, 0))


# --- the fast path is really taken -----------------------------------------------------------


@pytest.mark.skipif(platform.python_implementation() != "CPython", reason="CPython's _json")
def test_cpython_takes_the_c_paths() -> None:
    fast, fallback = both_encoders()
    assert fast.accelerated, "CPython's json.encoder.c_make_encoder has changed: see cjson.py"
    assert not fallback.accelerated
    fast_decoder, fallback_decoder = both_decoders()
    assert fast_decoder.accelerated, "CPython's json.scanner.c_make_scanner has changed"
    assert not fallback_decoder.accelerated
    # And the serializer itself is on them.
    assert serializers._JSON_ENCODER.accelerated
    assert serializers._TAGGED_DECODER.accelerated
    assert serializers._PLAIN_DECODER.accelerated
    assert type(serializers._ENCODE) is C_MAKE_ENCODER
    assert type(serializers._SCAN) is C_MAKE_SCANNER


# --- the fast path and the fallback agree ------------------------------------------------------

CORPUS: list[Any] = [
    {"c": 1733550000000, "": {"visits": 12, "user": "alice", "cart": [1, 2, 3]}, "t": ["tok1"]},
    {"when": {" dt": "2024-05-01T12:00:00.123456+05:30"}, "pair": {" t": [1, 2]}},
    {" k": [" t", 0]},
    {"text": 'é ü 日本 \x00 \n \t " \\ / \u2028 \U0001f600 \x7f', "": ""},
    {"ints": [0, -1, 2**63 - 1, 2**64, -(2**63) - 1, 2**1000, -(2**1000)]},
    {"floats": [0.0, -0.0, 1e308, 5e-324, 0.1, -1.5, 1e16, 123456789.125]},
    {"flags": [True, False, None], "empty": [{}, [], "", {"": []}]},
    [[[[[[[[[[{"deep": [1]}]]]]]]]]]],
    {str(n): n for n in range(50)},
    [],
    {},
    "top-level string",
    "",
    None,
    True,
    0,
    -2.5,
]

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(), children),
    max_leaves=30,
)


def assert_encoders_agree(obj: Any) -> None:
    fast, fallback = both_encoders()
    written = text(fast, obj)
    assert written == text(fallback, obj)
    assert written == json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def assert_decoders_agree(document: str, **hooks: Any) -> None:
    fast, fallback = both_decoders(**hooks)
    got, expected = fast.scan(document, 0), fallback.scan(document, 0)
    assert repr(got) == repr(expected)  # same values, same types (tells -0.0 from 0.0)
    assert got[1] == len(document)


@pytest.mark.parametrize("obj", CORPUS)
def test_fast_and_fallback_write_the_same_text(obj: Any) -> None:
    assert_encoders_agree(obj)


@pytest.mark.parametrize("obj", CORPUS)
def test_fast_and_fallback_read_the_same_values(obj: Any) -> None:
    document = json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
    assert_decoders_agree(document)
    hooks: dict[str, Callable[[Any], Any]] = {
        "object_hook": lambda mapping: ("object", list(mapping.items())),
        "parse_float": lambda number: ("float", number),
        "parse_int": lambda number: ("int", number),
    }
    assert_decoders_agree(document, **hooks)


@given(json_values)
@settings(max_examples=300, deadline=None)
def test_fast_and_fallback_agree_on_any_json(obj: Any) -> None:
    assert_encoders_agree(obj)
    assert_decoders_agree(json.dumps(obj, ensure_ascii=False, separators=(",", ":")))


@pytest.mark.parametrize("obj", [math.nan, [math.inf], {"x": -math.inf}])
def test_both_refuse_nan_and_infinities(obj: Any) -> None:
    for encoder in both_encoders():
        with pytest.raises(ValueError, match="Out of range float"):
            text(encoder, obj)


@pytest.mark.parametrize("obj", [object(), {"a": [b"bytes"]}, {"s": {1}}])
def test_both_hand_what_json_lacks_to_default(obj: Any) -> None:
    for encoder in both_encoders():
        with pytest.raises(Refused):
            text(encoder, obj)


@pytest.mark.parametrize("document", ["", " 1", "x", "{", '{"a":}', "[1,]", "NaN", '"\\x"'])
def test_both_raise_for_malformed_json(document: str) -> None:
    for decoder in both_decoders(parse_constant=refuse):
        with pytest.raises((StopIteration, ValueError, Refused)):
            decoder.scan(document, 0)


def test_both_stop_at_the_end_of_the_value() -> None:
    for decoder in both_decoders():
        assert decoder.scan('{"a":1} trailing', 0) == ({"a": 1}, 7)
        assert decoder.scan("[1][2]", 3) == ([2], 6)


# --- the fallback is taken when the internals are missing or changed -------------------------


def test_missing_internals_fall_back(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(json.encoder, "c_make_encoder", None)
    monkeypatch.setattr(json.scanner, "c_make_scanner", None)
    encoder = cjson.compact_encoder(refuse)
    decoder = cjson.direct_decoder(json.JSONDecoder())
    assert not encoder.accelerated
    assert not decoder.accelerated
    assert text(encoder, {"a": [1, "é"]}) == '{"a":[1,"é"]}'
    assert decoder.scan('{"a":[1,"é"]}', 0) == ({"a": [1, "é"]}, 13)


@needs_c
def test_a_changed_encoder_signature_falls_back(monkeypatch: pytest.MonkeyPatch) -> None:
    real = C_MAKE_ENCODER

    def positional_only(*args: Any) -> Any:  # say, keywords no longer accepted
        return real(*args)

    monkeypatch.setattr(json.encoder, "c_make_encoder", positional_only)
    encoder = cjson.compact_encoder(refuse)
    assert not encoder.accelerated
    assert text(encoder, {"a": 1}) == '{"a":1}'


@needs_c
def test_a_changed_encoder_output_falls_back(monkeypatch: pytest.MonkeyPatch) -> None:
    real = C_MAKE_ENCODER

    def swapped(*, key_separator: str, item_separator: str, **options: Any) -> Any:
        # Say the two separators traded places in a new release.
        return real(key_separator=item_separator, item_separator=key_separator, **options)

    monkeypatch.setattr(json.encoder, "c_make_encoder", swapped)
    assert not cjson.compact_encoder(refuse).accelerated


@needs_c
def test_an_encoder_that_accepts_nan_falls_back(monkeypatch: pytest.MonkeyPatch) -> None:
    real = C_MAKE_ENCODER

    def lax(*, allow_nan: bool, **options: Any) -> Any:
        return real(allow_nan=True, **options)

    monkeypatch.setattr(json.encoder, "c_make_encoder", lax)
    assert not cjson.compact_encoder(refuse).accelerated


@needs_c
def test_a_changed_scanner_falls_back(monkeypatch: pytest.MonkeyPatch) -> None:
    real = C_MAKE_SCANNER

    def off_by_one(context: json.JSONDecoder) -> Callable[[str, int], tuple[Any, int]]:
        scan = real(context)
        return lambda string, idx: (lambda found: (found[0], found[1] + 1))(scan(string, idx))

    monkeypatch.setattr(json.scanner, "c_make_scanner", off_by_one)
    assert not cjson.direct_decoder(json.JSONDecoder()).accelerated

    def broken(context: json.JSONDecoder) -> Any:
        raise TypeError("make_scanner() takes 2 arguments")

    monkeypatch.setattr(json.scanner, "c_make_scanner", broken)
    assert not cjson.direct_decoder(json.JSONDecoder()).accelerated


# --- JSONSerializer on the fallback ----------------------------------------------------------


@pytest.fixture
def on_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    """JSONSerializer as it runs where the C internals are missing or changed."""
    encoder = cjson.compact_encoder(serializers._refuse, accelerate=False)
    tagged = cjson.direct_decoder(serializers._TAGGED_JSON, accelerate=False)
    plain = cjson.direct_decoder(serializers._PLAIN_JSON, accelerate=False)
    monkeypatch.setattr(serializers, "_ENCODE", encoder.encode)
    monkeypatch.setattr(serializers, "_SCAN", tagged.scan)
    monkeypatch.setattr(serializers, "_SCAN_PLAIN", plain.scan)


SESSIONS: list[Any] = [
    *CORPUS,
    {"t": (1, [2, (3,)]), "s": {3, 1, 2}, "b": b"\x00\xff", " t": 0},
    {"dt": {"nested": ({" dt": "not a tag, a user dict"},)}},
]


@pytest.mark.parametrize("obj", SESSIONS)
def test_serializer_writes_the_same_bytes_on_the_fallback(
    obj: Any, request: pytest.FixtureRequest
) -> None:
    fast = JSONSerializer().dumps(obj)
    fast_loaded = JSONSerializer().loads(fast)
    request.getfixturevalue("on_fallback")
    assert JSONSerializer().dumps(obj) == fast
    assert repr(JSONSerializer().loads(fast)) == repr(fast_loaded)


@pytest.mark.usefixtures("on_fallback")
@pytest.mark.parametrize(
    "data",
    [b"", b" {}", b"{} ", b"{", b'{"a":1}x', b"NaN", b"[1e999]", b'{" nope":1}', b'{" t":1}'],
)
def test_serializer_refuses_bad_payloads_on_the_fallback(data: bytes) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - ValueError is the whole contract
        JSONSerializer().loads(data)


@pytest.mark.usefixtures("on_fallback")
def test_serializer_refuses_nan_on_the_fallback() -> None:
    from coatcheck.errors import SerializationError

    with pytest.raises(SerializationError):
        JSONSerializer().dumps({"x": [math.nan]})
