"""Changes that merge: increments, set additions and removals, list appends.

A plain assignment (``session["n"] = 6``) says what a key must hold; two requests that both
assign it conflict, and the merge policy picks one (see :mod:`coatcheck._sansio.merge`). An
*operation* says how the key changes: ``session.incr("n")`` records "add 1", and when another
request saved the session meanwhile, the merge replays "add 1" on the value that request left
instead of writing this request's stale result. Concurrent increments of one key then lose
nothing, in ``merge`` mode, with no lock.

A key keeps its operations only while the request does nothing else to it: a plain write
(assignment, deletion, ``mark_modified(key)``) after or before them makes it a plain change
again, whose value is written as it is. An operation that cannot apply to the value the other
request left (an increment of a string it stored, say) is a conflict like a plain write's.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from .changes import Changes

__all__ = ["MISSING", "Kind", "NotApplicable", "Op", "OperationMixin", "apply", "operate", "replay"]

Kind = Literal["incr", "add", "discard", "append"]
#: One recorded operation: its kind and its argument (a number, or a tuple of items).
Op = tuple[Kind, Any]

#: An absent key, to :func:`apply` and :func:`operate`.
MISSING: Any = object()
_NUMBERS = (int, float)


class NotApplicable(Exception):
    """An operation met a value of another type than it works on."""


def apply(kind: Kind, argument: Any, value: Any) -> Any:
    """The value after ``kind`` with ``argument`` on ``value`` (``MISSING``: an absent key).

    Never changes ``value`` itself: a set or a list is copied, so the version the request
    loaded stays as it was for the merge. Raises :class:`NotApplicable` for a value of
    another type (a bool is no number here: ``True + 1`` would store 2).
    """
    if kind == "incr":
        if value is MISSING:
            return argument
        if type(value) not in _NUMBERS:
            raise NotApplicable(kind)
        return value + argument
    if kind == "append":
        if value is MISSING:
            return list(argument)
        if type(value) is not list:
            raise NotApplicable(kind)
        return [*value, *argument]
    if value is MISSING:
        value = set()
    elif type(value) is not set:
        raise NotApplicable(kind)
    return value | set(argument) if kind == "add" else value - set(argument)


def replay(ops: Iterable[Op], value: Any) -> Any:
    """``value`` (or ``MISSING``) after every operation, in order; NotApplicable if one fails."""
    for kind, argument in ops:
        value = apply(kind, argument, value)
    return value


def _check_delta(delta: object) -> int | float:
    if type(delta) not in _NUMBERS or delta != delta or delta in (float("inf"), float("-inf")):
        raise TypeError(f"incr() takes a finite int or float, not {delta!r}")
    return delta  # type: ignore[return-value]


def _items(kind: Kind, items: tuple[Any, ...]) -> tuple[Any, ...]:
    if kind != "append":
        for item in items:
            hash(item)  # a TypeError here, at the call, rather than at save
    return items


class OperationMixin:
    """The operation methods, for a session's default namespace and every other namespace:
    each calls ``_operate(key, kind, argument)``, which the class provides."""

    __slots__ = ()

    def _operate(self, key: str, kind: Kind, argument: Any) -> Any:
        raise NotImplementedError

    def incr(self, key: str, delta: int | float = 1) -> Any:
        """Add ``delta`` to the number under ``key`` (0 when absent); returns the new value.

        Merges: concurrent increments of one key all count (``merge`` mode). TypeError when
        the key holds something other than an int or a float.
        """
        return self._operate(key, "incr", _check_delta(delta))

    def set_add(self, key: str, *items: Any) -> None:
        """Add ``items`` to the set under ``key`` (an empty set when absent). Merges."""
        self._operate(key, "add", _items("add", items))

    def set_discard(self, key: str, *items: Any) -> None:
        """Remove ``items`` from the set under ``key`` where present. Merges."""
        self._operate(key, "discard", _items("discard", items))

    def list_append(self, key: str, *items: Any) -> None:
        """Append ``items`` to the list under ``key`` (an empty list when absent). Merges:
        every request's items are kept, in the order the saves happened."""
        self._operate(key, "append", _items("append", items))


def operate(
    changes: Changes, values: dict[str, Any], ns: str, key: str, kind: Kind, argument: Any
) -> Any:
    """Apply the operation to ``values`` (namespace ``ns``'s storage, written with dict's own
    methods, past any tracking of plain writes) and record it in ``changes``; the new value.

    A key this request already changed plainly stays a plain change: the operation only
    computes its new value.
    """
    current = dict.get(values, key, MISSING)
    try:
        value = apply(kind, argument, current)
    except NotApplicable:
        raise TypeError(
            f"{kind}() cannot apply to the {type(current).__name__} stored under {key!r}"
        ) from None
    pair = (ns, key)
    keys = changes.keys
    if pair not in keys or pair in changes.ops:
        changes.ops.setdefault(pair, []).append((kind, argument))
    keys.add(pair)
    dict.__setitem__(values, key, value)
    return value
