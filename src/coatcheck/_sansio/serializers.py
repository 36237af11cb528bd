"""How session data becomes bytes and back: the :class:`Serializer` protocol and three serializers.

:class:`JSONSerializer` is the default. It writes the *tagged tree* of :mod:`.tagging` (plain
data as it is, the values JSON lacks as one-key dicts such as ``{" dt": "2024-05-01T12:00:00"}``;
the tag table is there) as compact UTF-8 JSON; :class:`MsgpackSerializer` packs the same tree
as msgpack. :class:`PickleSerializer` signs pickles, for the applications that need them.

Every ``loads`` raises only ``ValueError`` (or a subclass) for bad input, whatever it is, so
the caller can treat any failure as a corrupt payload. Every ``dumps`` raises
:class:`~coatcheck.errors.SerializationError` for a value it cannot store exactly.

The JSON and msgpack serializers refuse containers nested more than
:data:`~.tagging.MAX_DEPTH` (100) deep (their ``max_depth``), the same at ``dumps`` and at
``loads`` whatever the call stack depth, so what ``dumps`` accepts, ``loads`` reads back.
"""

from __future__ import annotations

import json
import math
import pickle
from collections.abc import Sequence
from typing import Any, NoReturn, Protocol, runtime_checkable

from ..errors import ConfigurationError, SerializationError
from . import cjson
from .signing import Signer
from .tagging import (
    DECODE_ERRORS,
    JSON_DECODERS,
    MAX_DEPTH,
    MSGPACK_DECODERS,
    TAG_LEAD,
    Tagger,
    is_plain_json,
    nested_deeper,
    untag,
)

__all__ = ["JSONSerializer", "MsgpackSerializer", "PickleSerializer", "Serializer"]


@runtime_checkable
class Serializer(Protocol):
    """Anything with ``dumps`` and ``loads`` can serialize sessions (Webware's encoder/decoder).

    ``dumps`` should raise :class:`~coatcheck.errors.SerializationError` for a value it cannot
    store; ``loads`` must raise ``ValueError`` (or a subclass) for *any* bad input, since stored
    payloads may be corrupt or truncated. A serializer may also have a ``format_name`` string
    attribute naming its wire format (``"json"``, ``"msgpack"``, ``"pickle"``).
    """

    def dumps(self, obj: Any) -> bytes:
        """Encode *obj* as bytes."""
        ...

    def loads(self, data: bytes) -> Any:
        """Decode bytes made by :meth:`dumps`."""
        ...


# --- JSON ------------------------------------------------------------------------------------


def _json_object(obj: dict[str, Any]) -> Any:
    return untag(obj, JSON_DECODERS)


def _json_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):  # "1e999" overflows to infinity, which dumps() would refuse
        raise ValueError("infinite floats are not accepted")
    return value


def _json_constant(name: str) -> float:
    raise ValueError(f"{name} is not accepted")


# Decoding skips the per-object hook when the text holds no tag, since every tag and escape
# starts with '{" ' and that sequence can occur nowhere else in compact JSON (a quote inside a
# string is escaped).
_TAG_MARK = b'{"' + TAG_LEAD.encode()


def _refuse(value: object) -> NoReturn:
    # Never reached: the tree handed to the encoder holds JSON-native values only.
    raise TypeError(f"cannot store a value of type {type(value).__qualname__}")


_TAGGED_JSON = json.JSONDecoder(
    object_hook=_json_object, parse_float=_json_float, parse_constant=_json_constant
)
_PLAIN_JSON = json.JSONDecoder(parse_float=_json_float, parse_constant=_json_constant)

# Built once, and called directly: CPython's C encoder and scanner where they are there (cjson).
_JSON_ENCODER = cjson.compact_encoder(default=_refuse)
_TAGGED_DECODER = cjson.direct_decoder(_TAGGED_JSON)
_PLAIN_DECODER = cjson.direct_decoder(_PLAIN_JSON)
_ENCODE = _JSON_ENCODER.encode
_SCAN = _TAGGED_DECODER.scan
_SCAN_PLAIN = _PLAIN_DECODER.scan

_TOO_DEEP = f"containers nested more than {MAX_DEPTH} deep are not accepted"
_NOT_MARKS = bytes(byte for byte in range(256) if byte not in b'[]{}"')
_SQUARE = bytes.maketrans(b"{}", b"[]")


def _brackets_nest_deeper(data: bytes) -> bool:
    # Whether the brackets of a valid JSON document nest more than MAX_DEPTH deep, found with
    # a few passes in C: drop escaped backslashes and quotes, keep only brackets and quotes
    # (braces as brackets), drop strings ('""' pairs first: removing two adjacent quotes
    # leaves every other mark inside or outside a string as it was), then peel off one level
    # of empty pairs at a time. Brackets nest at least as deep as the containers they make
    # (a tuple is two levels, its tag and its list): deeper brackets call for nested_deeper().
    if b"\\" in data:
        data = data.replace(b"\\\\", b"").replace(b'\\"', b"")
    marks = data.translate(_SQUARE, _NOT_MARKS).replace(b'""', b"")
    if b'"' in marks:
        marks = b"".join(marks.split(b'"')[::2])
    for _ in range(MAX_DEPTH):
        if not marks:
            return False
        marks = marks.replace(b"[]", b"")
    return bool(marks)


class JSONSerializer:
    """Tagged JSON, UTF-8, compact: the default serializer.

    Stores str, int, float, bool, None, list and dict (str keys) as plain JSON, and datetime
    (naive, or aware with its UTC offset), date, time, UUID, Decimal, bytes, set, frozenset and
    tuple as tagged values, nested anywhere. NaN and infinities are refused both ways, as are
    subclasses of these types, non-str dict keys, circular structures and containers nested
    more than :attr:`max_depth` deep. Duplicate keys in a payload keep the last value, as
    ``json`` does; integers over 4300 digits are refused by Python's own limit.
    """

    format_name = "json"
    #: How deep containers may nest, the outermost counted as 1, at dumps and at loads alike
    #: (:data:`~coatcheck._sansio.tagging.MAX_DEPTH`, the same for every process).
    max_depth = MAX_DEPTH

    def dumps(self, obj: Any) -> bytes:
        """Encode *obj*; raise :class:`~coatcheck.errors.SerializationError` if not storable."""
        try:
            # Plain data (the usual case) goes straight to the C encoder, untagged.
            # Not plain when too deep (a cycle is): the tagger says which.
            plain = type(obj) is dict and is_plain_json(obj)
            tree = obj if plain else Tagger(binary=False).tag(obj)
            return "".join(_ENCODE(tree, 0)).encode("utf-8")
        except RecursionError as exc:  # within MAX_DEPTH: the caller's stack is nearly full
            raise SerializationError("the call stack is too deep to encode this value") from exc
        except UnicodeEncodeError as exc:
            raise SerializationError("strings must be valid Unicode (no lone surrogates)") from exc
        except ValueError as exc:  # an int over the digit limit; a NaN the plain check let by
            raise SerializationError(str(exc)) from exc

    def loads(self, data: bytes) -> Any:
        """Decode a payload from :meth:`dumps`; raise ``ValueError`` for any bad input."""
        try:
            scan = _SCAN if _TAG_MARK in data else _SCAN_PLAIN
            text = str(data, "utf-8")
            # The scanner alone: JSONDecoder.decode() would also run a whitespace regex
            # on both ends, which compact JSON never has.
            try:
                value, end = scan(text, 0)
            except StopIteration:
                raise ValueError("not a JSON document") from None
            if end != len(text):
                raise ValueError("extra data after the JSON document")
            # No more containers than brackets (two bytes each), nor deeper than the brackets
            # nest: only a payload with many brackets is measured, a deeply bracketed one walked.
            if (
                len(data) > 2 * MAX_DEPTH
                and data.count(b"[") + data.count(b"{") > MAX_DEPTH
                and _brackets_nest_deeper(data)
                and nested_deeper(value)
            ):
                raise ValueError(_TOO_DEEP)
            return value
        except ValueError:
            raise
        except DECODE_ERRORS as exc:
            raise ValueError(f"corrupt JSON session payload: {type(exc).__name__}") from exc


# --- msgpack ---------------------------------------------------------------------------------


def _check_floats(values: Any) -> None:
    # map() and set() run in C; the Python loop only runs when a float is actually present.
    if float in set(map(type, values)):
        for value in values:
            if type(value) is float and not math.isfinite(value):
                raise ValueError("NaN and infinite floats are not accepted")


_STR_ONLY = frozenset({str})


def _msgpack_map(obj: dict[Any, Any]) -> Any:
    if not _STR_ONLY.issuperset(map(type, obj)):
        raise ValueError("map keys must be strings")
    _check_floats(obj.values())
    return untag(obj, MSGPACK_DECODERS)


def _msgpack_array(items: list[Any]) -> list[Any]:
    _check_floats(items)
    return items


# fixmap, fixarray, array 16/32, map 16/32: every msgpack map and array starts with one.
_MSGPACK_CONTAINER_HEADS = bytes(range(0x80, 0xA0)) + bytes(range(0xDC, 0xE0))


def _msgpack_ext(code: int, data: bytes) -> Any:
    raise ValueError(f"unexpected msgpack extension type {code}")


class MsgpackSerializer:
    """The tagged tree of :class:`JSONSerializer`, packed as msgpack (extra ``coatcheck[msgpack]``).

    Same types, same refusals (containers nested more than :attr:`max_depth` deep too) and the
    same guarantees; bytes use msgpack's bin type and ints outside 64 bits a tag. Raises
    :class:`~coatcheck.errors.ConfigurationError` if msgpack is not installed.
    """

    format_name = "msgpack"
    #: As :attr:`JSONSerializer.max_depth`.
    max_depth = MAX_DEPTH

    def __init__(self) -> None:
        try:
            import msgpack
        except ImportError as exc:
            raise ConfigurationError(
                "MsgpackSerializer needs the msgpack package: pip install 'coatcheck[msgpack]'"
            ) from exc
        self._msgpack = msgpack
        self._decode_errors = (*DECODE_ERRORS, msgpack.UnpackException)

    def dumps(self, obj: Any) -> bytes:
        """Encode *obj*; raise :class:`~coatcheck.errors.SerializationError` if not storable."""
        try:
            packed: bytes = self._msgpack.packb(Tagger(binary=True).tag(obj), use_bin_type=True)
        except RecursionError as exc:  # within MAX_DEPTH: the caller's stack is nearly full
            raise SerializationError("the call stack is too deep to encode this value") from exc
        except UnicodeEncodeError as exc:
            raise SerializationError("strings must be valid Unicode (no lone surrogates)") from exc
        except ValueError as exc:  # an int over the digit limit
            raise SerializationError(str(exc)) from exc
        return packed

    def loads(self, data: bytes) -> Any:
        """Decode a payload from :meth:`dumps`; raise ``ValueError`` for any bad input."""
        try:
            obj = self._msgpack.unpackb(
                data,
                raw=False,
                strict_map_key=True,
                object_hook=_msgpack_map,
                list_hook=_msgpack_array,
                ext_hook=_msgpack_ext,
                timestamp=3,  # the one built-in extension, never written by dumps(): a datetime
            )
        except ValueError:
            raise
        except self._decode_errors as exc:
            raise ValueError(f"corrupt msgpack session payload: {type(exc).__name__}") from exc
        if type(obj) is float and not math.isfinite(obj):
            raise ValueError("NaN and infinite floats are not accepted")
        # No more containers than bytes that can start one: only a payload with many is walked.
        if (
            len(data) > MAX_DEPTH
            and len(data) - len(data.translate(None, _MSGPACK_CONTAINER_HEADS)) > MAX_DEPTH
            and nested_deeper(obj)
        ):
            raise ValueError(_TOO_DEEP)
        return obj


# --- pickle ----------------------------------------------------------------------------------


class PickleSerializer:
    """Signed pickle, for applications that must store arbitrary objects. Avoid it if you can.

    Unpickling runs code chosen by whoever wrote the bytes (an object's ``__reduce__`` can call
    any function), so a pickle read from a shared cache, a leaked database or a confused store
    is remote code execution (Beaker CVE-2013-7489, Werkzeug #30; Django removed its
    PickleSerializer in 5.0). This serializer therefore needs secret keys: ``dumps`` prefixes an
    HMAC-SHA256 of the pickle, and ``loads`` checks it with :meth:`Signer.verify_bytes` *before*
    unpickling, refusing anything it did not sign. Anyone who holds a key can still run code on
    every server that reads the store; rotate keys like any other secret.

    No nesting limit: objects are opaque to it, and the unpickler does not recurse, so what
    ``dumps`` wrote loads at any call stack depth (``dumps`` raises
    :class:`~coatcheck.errors.SerializationError` when the stack cannot hold the value).

    :param keys: secrets, newest first, each at least 16 bytes; keep them apart from the
        cookie-signing keys.
    """

    format_name = "pickle"

    def __init__(self, keys: Sequence[str | bytes]) -> None:
        self._signer = Signer(keys, purpose="serializer:pickle")

    def dumps(self, obj: Any) -> bytes:
        """Pickle and sign *obj*; :class:`~coatcheck.errors.SerializationError` if it cannot."""
        try:
            data = pickle.dumps(obj, protocol=5)
        except (pickle.PicklingError, TypeError, AttributeError, ValueError, RecursionError) as exc:
            raise SerializationError(f"cannot pickle value: {exc}") from exc
        return self._signer.sign_bytes(data)

    def loads(self, data: bytes) -> Any:
        """Verify the signature, then unpickle; raise ``ValueError`` if either fails."""
        payload = self._signer.verify_bytes(data)
        if payload is None:
            raise ValueError("pickle payload is not signed by any configured key; not unpickled")
        try:
            # S301 (pickle.loads): safe here only because the HMAC above proves that this
            # process's own dumps() wrote these exact bytes under a secret key.
            return pickle.loads(payload)  # noqa: S301
        except Exception as exc:  # authentic but unloadable (a class was renamed, say)
            raise ValueError(
                f"signed pickle payload cannot be loaded: {type(exc).__name__}"
            ) from exc
