"""How session data becomes bytes and back: the :class:`Serializer` protocol and three serializers.

:class:`JSONSerializer` is the default. Plain JSON cannot tell a tuple from a list or carry a
``datetime``, so values JSON lacks are written as *tagged* objects: a dict with one key that
starts with a space, such as ``{" dt": "2024-05-01T12:00:00+02:00"}``. The same tagged tree,
packed as msgpack instead of JSON, is what :class:`MsgpackSerializer` writes.

Tags are unambiguous. A one-key dict whose key starts with a space is always a tag when
decoded, and an unknown one is an error; so a user dict of that shape (``{" dt": "x"}``) is
escaped on the way out as ``{" k": [" dt", "x"]}`` and can neither decode as a tagged value
nor be forged into one by the data it holds (Flask's ``TaggedJSONSerializer`` does the same
by renaming the key). Dicts with any other shape, whatever their keys, are stored as they are.

==================  =====================================================
tag                 value
==================  =====================================================
``" t"``            tuple, as a list of its items
``" s"``, ``" fs"`` set, frozenset, as a list (sorted when the items allow)
``" b"``            bytes, as standard base64 (JSON only; msgpack has bin)
``" i"``            int outside msgpack's 64-bit range, as decimal (msgpack only)
``" dt"``           datetime, ``isoformat()`` (an aware one keeps its UTC offset)
``" da"``, ``" tm"``  date, time, ``isoformat()``
``" u"``            UUID, canonical string
``" dec"``          Decimal, ``str()``
``" k"``            a user dict with one space-led key, as ``[key, value]``
==================  =====================================================

Every ``loads`` raises only ``ValueError`` (or a subclass) for bad input, whatever it is, so
the caller can treat any failure as a corrupt payload. Every ``dumps`` raises
:class:`~coatcheck.errors.SerializationError` for a value it cannot store exactly.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import math
import pickle
import uuid
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any, NoReturn, Protocol, runtime_checkable

from ..errors import ConfigurationError, SerializationError
from . import cjson
from .signing import Signer

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


# --- the tagged tree -------------------------------------------------------------------------

_TAG_LEAD = " "
_MSGPACK_INT_MIN = -(2**63)
_MSGPACK_INT_MAX = 2**64 - 1
# Values stored as they are, with no tagging and no further look. Subclasses (IntEnum, a str
# subclass, OrderedDict...) are not in here on purpose: they could not come back as themselves.
_JSON_PLAIN = frozenset({str, int, bool, type(None)})
_MSGPACK_PLAIN = frozenset({str, bool, type(None), bytes})


def _plain_time(value: dt.time | dt.datetime, tag: str) -> dict[str, str]:
    if value.tzinfo is not None:
        offset = value.utcoffset()
        # A tzinfo with no offset here (a zoneinfo time, a lax custom tzinfo) would come back
        # naive, and fromisoformat() mangles sub-second offsets on some Pythons: refuse both
        # rather than store something else.
        if offset is None or offset.microseconds:
            raise SerializationError(
                f"cannot store a {type(value).__name__} whose tzinfo has no fixed, "
                "whole-second UTC offset"
            )
    return {tag: value.isoformat()}


_SCALAR_TAGS: dict[type, Callable[[Any], dict[str, str]]] = {
    dt.datetime: lambda value: _plain_time(value, " dt"),
    dt.date: lambda value: {" da": value.isoformat()},
    dt.time: lambda value: _plain_time(value, " tm"),
    uuid.UUID: lambda value: {" u": str(value)},
    Decimal: lambda value: {" dec": str(value)},
}


# Types whose values sort in a total order among themselves (naive and aware datetimes, and
# Decimal NaN, raise when compared; _Tagger._set falls back for those).
_SORTABLE = frozenset(
    {str, int, float, bool, bytes, dt.date, dt.datetime, dt.time, uuid.UUID, Decimal}
)


class _Tagger:
    """Turns a Python value into a tree of JSON/msgpack-native values plus tagged dicts.

    Containers whose contents need no change are returned as they are: plain data is not copied.
    """

    __slots__ = ("_path", "_plain")

    def __init__(self, *, binary: bool) -> None:
        self._plain = _MSGPACK_PLAIN if binary else _JSON_PLAIN
        self._path: set[int] = set()  # ids of the dicts and lists being walked: cycle check

    def tag(self, obj: Any) -> Any:
        kind = type(obj)
        if kind in self._plain:
            return obj
        if kind is dict:
            return self._dict(obj)
        if kind is list:
            return self._sequence(obj)
        if kind is float:
            if not math.isfinite(obj):
                raise SerializationError("NaN and infinite floats cannot be stored")
            return obj
        if kind is int:  # only msgpack gets here
            return obj if _MSGPACK_INT_MIN <= obj <= _MSGPACK_INT_MAX else {" i": str(obj)}
        if kind is tuple:
            return {" t": self._sequence(obj)}
        if kind is set:
            return {" s": self._set(obj)}
        if kind is frozenset:
            return {" fs": self._set(obj)}
        if kind is bytes:  # only JSON gets here
            return {" b": base64.b64encode(obj).decode("ascii")}
        scalar = _SCALAR_TAGS.get(kind)
        if scalar is None:
            raise SerializationError(f"cannot store a value of type {kind.__qualname__}")
        return scalar(obj)

    def _set(self, items: set[Any] | frozenset[Any]) -> list[Any] | tuple[Any, ...]:
        # A set is written in a canonical order, so that an unchanged session re-encodes to the
        # same bytes in any process: natural order when there is one, else the order of the
        # encoded items' reprs (deterministic, since nested sets are canonical too).
        kinds = set(map(type, items))
        if len(kinds) <= 1 and kinds <= _SORTABLE:
            try:
                return self._sequence(sorted(items))
            except (TypeError, ArithmeticError):
                pass
        return sorted((self.tag(item) for item in items), key=repr)

    def _enter(self, container: object) -> int:
        ident = id(container)
        if ident in self._path:
            raise SerializationError("cannot store a circular structure")
        self._path.add(ident)
        return ident

    def _sequence(self, items: list[Any] | tuple[Any, ...]) -> list[Any] | tuple[Any, ...]:
        # Only lists and dicts can close a cycle (tuples and sets hold no reference to themselves).
        ident = self._enter(items) if type(items) is list else None
        plain = self._plain
        changed: list[Any] | None = None
        for index, item in enumerate(items):
            new = item if type(item) in plain else self.tag(item)
            if changed is None and new is not item:
                changed = list(items[:index])
            if changed is not None:
                changed.append(new)
        if ident is not None:
            self._path.discard(ident)
        return items if changed is None else changed

    def _dict(self, mapping: dict[Any, Any]) -> dict[str, Any]:
        ident = self._enter(mapping)
        plain = self._plain
        changed: dict[str, Any] | None = None
        key: Any = None
        for key, value in mapping.items():
            if type(key) is not str:
                raise SerializationError(f"dict keys must be str, not {type(key).__qualname__}")
            if type(value) in plain:
                continue
            new = self.tag(value)
            if new is not value:
                if changed is None:
                    changed = dict(mapping)
                changed[key] = new
        self._path.discard(ident)
        result = mapping if changed is None else changed
        if len(result) == 1 and key.startswith(_TAG_LEAD):
            return {" k": [key, result[key]]}
        return result


def _text(payload: object) -> str:
    if type(payload) is not str:
        raise ValueError("malformed tagged value")
    return payload


def _items(payload: object) -> list[Any]:
    if type(payload) is not list:
        raise ValueError("malformed tagged value")
    return payload


def _escaped_dict(payload: object) -> dict[str, Any]:
    pair = _items(payload)
    if len(pair) != 2 or type(pair[0]) is not str or not pair[0].startswith(_TAG_LEAD):
        raise ValueError("malformed escaped dict")
    return {pair[0]: pair[1]}


def _decimal(payload: object) -> Decimal:
    try:
        return Decimal(_text(payload))
    except ArithmeticError as exc:  # decimal.InvalidOperation is not a ValueError
        raise ValueError("malformed Decimal") from exc


# Payloads arrive decoded already: JSON and msgpack hooks run bottom-up, inner values first.
_COMMON_DECODERS: dict[str, Callable[[Any], Any]] = {
    " t": lambda payload: tuple(_items(payload)),
    " s": lambda payload: set(_items(payload)),
    " fs": lambda payload: frozenset(_items(payload)),
    " dt": lambda payload: dt.datetime.fromisoformat(_text(payload)),
    " da": lambda payload: dt.date.fromisoformat(_text(payload)),
    " tm": lambda payload: dt.time.fromisoformat(_text(payload)),
    " u": lambda payload: uuid.UUID(_text(payload)),
    " dec": _decimal,
    " k": _escaped_dict,
}
_JSON_DECODERS = {
    **_COMMON_DECODERS,
    " b": lambda payload: base64.b64decode(_text(payload), validate=True),
}
_MSGPACK_DECODERS = {**_COMMON_DECODERS, " i": lambda payload: int(_text(payload))}

# What a decoding failure may raise besides ValueError: TypeError (an unhashable set item),
# ArithmeticError (overflowing dates), RecursionError (absurd nesting).
_DECODE_ERRORS = (ValueError, TypeError, ArithmeticError, RecursionError)


def _untag(obj: dict[str, Any], decoders: dict[str, Callable[[Any], Any]]) -> Any:
    if len(obj) != 1:
        return obj
    key = next(iter(obj))
    if not key.startswith(_TAG_LEAD):
        return obj
    decode = decoders.get(key)
    if decode is None:
        raise ValueError(f"unknown tag {key!r}")
    return decode(obj[key])


# --- JSON ------------------------------------------------------------------------------------


def _json_object(obj: dict[str, Any]) -> Any:
    return _untag(obj, _JSON_DECODERS)


def _json_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):  # "1e999" overflows to infinity, which dumps() would refuse
        raise ValueError("infinite floats are not accepted")
    return value


def _json_constant(name: str) -> float:
    raise ValueError(f"{name} is not accepted")


# The fast paths. Almost every session holds only JSON-native data, and then tagging changes
# nothing: encoding checks that (no copy, no cycle bookkeeping) and hands the object straight
# to the C encoder; decoding skips the per-object hook when the text holds no tag, since every
# tag and escape starts with '{" ' and that sequence can occur nowhere else in compact JSON (a
# quote inside a string is escaped).
_JSON_LEAVES = frozenset({str, int, bool, float, type(None)})
_TAG_MARK = b'{"' + _TAG_LEAD.encode()


def _plain_dict(mapping: dict[Any, Any]) -> bool:
    key: Any = None
    for key, value in mapping.items():
        if type(key) is not str:
            return False
        kind = type(value)
        if kind in _JSON_LEAVES:
            continue
        if kind is dict:
            if not _plain_dict(value):
                return False
        elif kind is list:
            if not _plain_list(value):
                return False
        else:
            return False
    # A one-key dict whose key starts like a tag must be escaped.
    return not (len(mapping) == 1 and key.startswith(_TAG_LEAD))


def _plain_list(items: list[Any]) -> bool:
    for value in items:
        kind = type(value)
        if kind in _JSON_LEAVES:
            continue
        if kind is dict:
            if not _plain_dict(value):
                return False
        elif kind is list:
            if not _plain_list(value):
                return False
        else:
            return False
    return True


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
                plain = type(obj) is dict and _plain_dict(obj)
            except RecursionError:  # a cycle, or absurd depth: the tagger says which
                plain = False
            tree = obj if plain else _Tagger(binary=False).tag(obj)
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
        except _DECODE_ERRORS as exc:
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
    return _untag(obj, _MSGPACK_DECODERS)


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
        self._decode_errors = (*_DECODE_ERRORS, msgpack.UnpackException)

    def dumps(self, obj: Any) -> bytes:
        """Encode *obj*; raise :class:`~coatcheck.errors.SerializationError` if not storable."""
        try:
            packed: bytes = self._msgpack.packb(_Tagger(binary=True).tag(obj), use_bin_type=True)
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
