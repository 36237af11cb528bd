"""How session data becomes bytes and back: the :class:`Serializer` protocol and three serializers.

:class:`JSONSerializer` is the default. It writes the *tagged tree* of :mod:`.tagging` (plain
data as it is, the values JSON lacks as one-key dicts such as ``{" dt": "2024-05-01T12:00:00"}``;
the tag table is there) as compact UTF-8 JSON; :class:`MsgpackSerializer` packs the same tree
as msgpack. :class:`PickleSerializer` signs pickles, for the applications that need them.

Every ``loads`` raises only ``ValueError`` (or a subclass) for bad input, whatever it is, so
the caller can treat any failure as a corrupt payload. Every ``dumps`` raises
:class:`~coatcheck.errors.SerializationError` for a value it cannot store exactly.
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
    MSGPACK_DECODERS,
    TAG_LEAD,
    Tagger,
    is_plain_json,
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


class JSONSerializer:
    """Tagged JSON, UTF-8, compact: the default serializer.

    Stores str, int, float, bool, None, list and dict (str keys) as plain JSON, and datetime
    (naive, or aware with its UTC offset), date, time, UUID, Decimal, bytes, set, frozenset and
    tuple as tagged values, nested anywhere. NaN and infinities are refused both ways, as are
    subclasses of these types, non-str dict keys and circular structures. Duplicate keys in a
    payload keep the last value, as ``json`` does; integers over 4300 digits are refused by
    Python's own limit.
    """

    format_name = "json"

    def dumps(self, obj: Any) -> bytes:
        """Encode *obj*; raise :class:`~coatcheck.errors.SerializationError` if not storable."""
        try:
            # Plain data (the usual case) goes straight to the C encoder, untagged.
            try:
                plain = type(obj) is dict and is_plain_json(obj)
            except RecursionError:  # a cycle, or absurd depth: the tagger says which
                plain = False
            tree = obj if plain else Tagger(binary=False).tag(obj)
            return "".join(_ENCODE(tree, 0)).encode("utf-8")
        except RecursionError as exc:
            raise SerializationError("value is nested too deeply to store") from exc
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


def _msgpack_ext(code: int, data: bytes) -> Any:
    raise ValueError(f"unexpected msgpack extension type {code}")


class MsgpackSerializer:
    """The tagged tree of :class:`JSONSerializer`, packed as msgpack (extra ``coatcheck[msgpack]``).

    Same types, same refusals and the same guarantees; bytes use msgpack's bin type and ints
    outside 64 bits a tag. Raises :class:`~coatcheck.errors.ConfigurationError` if msgpack is
    not installed.
    """

    format_name = "msgpack"

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
        except RecursionError as exc:
            raise SerializationError("value is nested too deeply to store") from exc
        except UnicodeEncodeError as exc:
            raise SerializationError("strings must be valid Unicode (no lone surrogates)") from exc
        except ValueError as exc:  # msgpack's own depth limit, or an int over the digit limit
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
