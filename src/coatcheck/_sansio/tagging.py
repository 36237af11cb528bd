"""The tagged tree: session values as JSON/msgpack-native data, and back.

Plain JSON cannot tell a tuple from a list or carry a ``datetime``, so values JSON lacks are
written as *tagged* objects: a dict with one key that starts with a space, such as
``{" dt": "2024-05-01T12:00:00+02:00"}``. :class:`~.serializers.JSONSerializer` writes the
tree as JSON, :class:`~.serializers.MsgpackSerializer` packs the same tree as msgpack.

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

:class:`Tagger` builds the tree; :func:`untag`, run by the JSON and msgpack decoders' object
hooks on every decoded dict, turns tags back into values with :data:`JSON_DECODERS` or
:data:`MSGPACK_DECODERS`.

Containers (dict, list, tuple, set, frozenset) nest at most :data:`MAX_DEPTH` deep, the
outermost counted as 1: :class:`Tagger` and :func:`is_plain_json` refuse deeper values, and
:func:`nested_deeper` finds them in a decoded tree, so that the serializers apply the one limit
at save and at load.
"""

from __future__ import annotations

import base64
import datetime as dt
import math
import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from ..errors import SerializationError

__all__ = [
    "DECODE_ERRORS",
    "JSON_DECODERS",
    "MAX_DEPTH",
    "MSGPACK_DECODERS",
    "TAG_LEAD",
    "Tagger",
    "is_plain_json",
    "nested_deeper",
    "untag",
]

#: How deep containers (dict, list, tuple, set, frozenset) may nest in what the tagged
#: serializers store, the outermost counted as 1 (``[]`` is 1 deep, ``{"a": [1]}`` 2). dumps()
#: refuses deeper values and loads() deeper payloads, at any call stack depth: before this
#: limit, how deep a value could go depended on the stack, so a value saved from a shallow
#: stack failed to load under a deeper one (more middleware, say) and the session was lost
#: as corrupt. Why 100: each level costs the tagger two Python frames and the C JSON encoder
#: and scanner up to two recursions (a tuple is a tag dict holding a list), and on Python
#: 3.10 and 3.11 those share the recursion limit (1000 by default) with the frames of the
#: app, its framework and its middleware; 100 levels need at most about 200 of them, far
#: below the limit even under a deep middleware stack, and far above real session data (a
#: user, a cart, a few settings: under ten levels). One constant rather than a setting:
#: every process that reads a store must accept what any of them writes.
MAX_DEPTH = 100

TAG_LEAD = " "  # every tag, and the key of every escaped user dict, starts with this
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
# Decimal NaN, raise when compared; Tagger._set falls back for those).
_SORTABLE = frozenset(
    {str, int, float, bool, bytes, dt.date, dt.datetime, dt.time, uuid.UUID, Decimal}
)


def _too_deep() -> SerializationError:
    return SerializationError(
        f"value is nested too deeply to store: containers more than {MAX_DEPTH} deep"
    )


class Tagger:
    """Turns a Python value into a tree of JSON/msgpack-native values plus tagged dicts.

    Containers whose contents need no change are returned as they are: plain data is not copied.
    One tagger walks one value (it keeps the path for the cycle check).

    :param binary: tag for msgpack, which has a bin type and 64-bit ints, rather than JSON.
    """

    __slots__ = ("_depth", "_path", "_plain")

    def __init__(self, *, binary: bool) -> None:
        self._plain = _MSGPACK_PLAIN if binary else _JSON_PLAIN
        self._path: set[int] = set()  # ids of the dicts and lists being walked: cycle check
        self._depth = 0  # containers being walked, this one included: MAX_DEPTH check

    def tag(self, obj: Any) -> Any:
        """The tree for *obj*; :class:`~coatcheck.errors.SerializationError` if not storable."""
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
                ordered = sorted(items)
            except (TypeError, ArithmeticError):
                pass
            else:
                return self._sequence(ordered)  # one level: the set's
        depth = self._depth = self._depth + 1
        if depth > MAX_DEPTH:
            raise _too_deep()
        tree = sorted((self.tag(item) for item in items), key=repr)
        self._depth = depth - 1
        return tree

    def _enter(self, container: object) -> int:
        ident = id(container)
        if ident in self._path:
            raise SerializationError("cannot store a circular structure")
        self._path.add(ident)
        return ident

    def _sequence(self, items: list[Any] | tuple[Any, ...]) -> list[Any] | tuple[Any, ...]:
        depth = self._depth = self._depth + 1
        if depth > MAX_DEPTH:
            raise _too_deep()
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
        self._depth = depth - 1
        return items if changed is None else changed

    def _dict(self, mapping: dict[Any, Any]) -> dict[str, Any]:
        depth = self._depth = self._depth + 1
        if depth > MAX_DEPTH:
            raise _too_deep()
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
        self._depth = depth - 1
        result = mapping if changed is None else changed
        if len(result) == 1 and key.startswith(TAG_LEAD):
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
    if len(pair) != 2 or type(pair[0]) is not str or not pair[0].startswith(TAG_LEAD):
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
JSON_DECODERS = {
    **_COMMON_DECODERS,
    " b": lambda payload: base64.b64decode(_text(payload), validate=True),
}
MSGPACK_DECODERS = {**_COMMON_DECODERS, " i": lambda payload: int(_text(payload))}

# What a decoding failure may raise besides ValueError: TypeError (an unhashable set item),
# ArithmeticError (overflowing dates), RecursionError (absurd nesting).
DECODE_ERRORS = (ValueError, TypeError, ArithmeticError, RecursionError)


def untag(obj: dict[str, Any], decoders: dict[str, Callable[[Any], Any]]) -> Any:
    """The value a decoded dict stands for: *obj* itself, or its tag decoded with *decoders*.

    Raises ``ValueError`` (an unknown tag, a malformed payload) or one of :data:`DECODE_ERRORS`.
    """
    if len(obj) != 1:
        return obj
    key = next(iter(obj))
    if not key.startswith(TAG_LEAD):
        return obj
    decode = decoders.get(key)
    if decode is None:
        raise ValueError(f"unknown tag {key!r}")
    return decode(obj[key])


# Almost every session holds only JSON-native data, and then tagging changes nothing: the
# JSON serializer checks that (no copy, no cycle bookkeeping) and hands the object straight
# to the encoder.
_JSON_LEAVES = frozenset({str, int, bool, float, type(None)})


def is_plain_json(mapping: dict[Any, Any], depth: int = 1) -> bool:
    """Whether *mapping* is its own tagged tree for JSON, so that tagging can be skipped.

    True when every key is a str, every value JSON-native (nested anywhere in dicts and lists,
    at most :data:`MAX_DEPTH` deep, *mapping* itself at *depth*) and no dict needs escaping.
    Floats are not looked at: the encoder refuses NaN and infinities itself. A cycle is too
    deep, so False.
    """
    if depth > MAX_DEPTH:
        return False
    key: Any = None
    for key, value in mapping.items():
        if type(key) is not str:
            return False
        kind = type(value)
        if kind in _JSON_LEAVES:
            continue
        if kind is dict:
            if not is_plain_json(value, depth + 1):
                return False
        elif kind is list:
            if not _plain_list(value, depth + 1):
                return False
        else:
            return False
    # A one-key dict whose key starts like a tag must be escaped.
    return not (len(mapping) == 1 and key.startswith(TAG_LEAD))


def _plain_list(items: list[Any], depth: int) -> bool:
    if depth > MAX_DEPTH:
        return False
    for value in items:
        kind = type(value)
        if kind in _JSON_LEAVES:
            continue
        if kind is dict:
            if not is_plain_json(value, depth + 1):
                return False
        elif kind is list:
            if not _plain_list(value, depth + 1):
                return False
        else:
            return False
    return True


_CONTAINERS = frozenset({dict, list, tuple, set, frozenset})


def nested_deeper(tree: Any, limit: int = MAX_DEPTH) -> bool:
    """Whether containers nest more than *limit* deep in *tree*, a decoded value (no cycles).

    A level at a time, with no recursion, so it works at any depth of either; a container with
    no container in it costs one pass in C.
    """
    containers = _CONTAINERS
    level: list[Any] = [tree] if type(tree) in containers else []
    depth = 0
    while level:
        depth += 1
        if depth > limit:
            return True
        below: list[Any] = []
        for container in level:
            items = container.values() if type(container) is dict else container
            if not containers.isdisjoint(map(type, items)):
                below += [item for item in items if type(item) in containers]
        level = below
    return False
