"""The session's mapping: a real ``dict`` that records what a request read and changed.

Frameworks and applications treat a session as a dict: ``JSONResponse(request.session)``,
``session |= data``, ``dict(session)``, ``popitem()``. So :class:`TrackedDict` *is* a dict (the
default namespace's values live in its own storage, where C code such as ``json.dumps`` or
``dict(session)`` finds them), and it overrides every dict method and operator to keep two
records a save needs:

- ``accessed``: the application read or wrote it (the response then varies on ``Cookie``);
- ``_changes.keys``: *which* keys it set or deleted, so a ``merge`` save can replay them on a
  concurrent request's version key by key.

Keys are ``str`` (a serializer stores nothing else faithfully: JSON would turn ``1`` into
``"1"``); setting another type raises :class:`~coatcheck.errors.InvalidKey`. Reading one just
misses, as on a dict. ``copy()``, ``|`` and ``copy.copy()`` give plain dicts: a snapshot of the
data, not a second session.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, overload

from ..errors import SessionDestroyed, SessionError
from .changes import Changes
from .document import DEFAULT
from .namespaces import check_key

if TYPE_CHECKING:
    from _collections_abc import dict_items, dict_keys, dict_values

__all__ = ["TrackedDict"]

_MISSING: Any = object()

# The dict's own methods, bound once: a subclass override calls them for the real work.
_get = dict.get
_getitem = dict.__getitem__
_setitem = dict.__setitem__
_delitem = dict.__delitem__
_contains = dict.__contains__
_len = dict.__len__
_iter = dict.__iter__


class TrackedDict(dict[str, Any]):
    """A dict whose reads set ``accessed`` and whose writes are recorded in ``_changes``.

    Subclasses provide ``_changes`` and the two flags; writes go through
    :meth:`_check_writable` first (a read-only or destroyed session refuses them).
    """

    __slots__ = ()

    accessed: bool
    read_only: bool
    _changes: Changes

    def _check_writable(self) -> None:
        if self._changes.destroyed:
            raise SessionDestroyed("the session was destroyed in this request")
        if self.read_only:
            raise SessionError("the session was opened read-only for this request")

    def _wrote(self, key: str) -> None:
        self._changes.wrote(DEFAULT, key)

    # -- reads -----------------------------------------------------------------------------

    def __getitem__(self, key: str) -> Any:
        self.accessed = True
        return _getitem(self, key)

    def get(self, key: str, default: Any = None) -> Any:
        self.accessed = True
        return _get(self, key, default)

    def __contains__(self, key: object) -> bool:
        self.accessed = True
        return _contains(self, key)

    def __iter__(self) -> Iterator[str]:
        self.accessed = True
        return _iter(self)

    def __reversed__(self) -> Iterator[str]:
        self.accessed = True
        return dict.__reversed__(self)

    def __len__(self) -> int:
        self.accessed = True
        return _len(self)

    def keys(self) -> dict_keys[str, Any]:
        self.accessed = True
        return dict.keys(self)

    def values(self) -> dict_values[str, Any]:
        self.accessed = True
        return dict.values(self)

    def items(self) -> dict_items[str, Any]:
        self.accessed = True
        return dict.items(self)

    def __eq__(self, other: object) -> bool:
        self.accessed = True
        return dict.__eq__(self, other)

    def __ne__(self, other: object) -> bool:
        self.accessed = True
        return dict.__ne__(self, other)

    __hash__ = None  # as dict: mutable, so unhashable

    def copy(self) -> dict[str, Any]:
        """A plain ``dict`` with the current data (a snapshot, not a session)."""
        self.accessed = True
        return dict(dict.items(self))

    def __copy__(self) -> dict[str, Any]:
        return self.copy()

    def __deepcopy__(self, memo: dict[int, Any]) -> dict[str, Any]:
        import copy

        return copy.deepcopy(self.copy(), memo)

    def __reduce_ex__(self, protocol: object) -> tuple[type[dict[str, Any]], tuple[Any, ...]]:
        # A session is tied to its store and request; what can be pickled is its data.
        return (dict, (self.copy(),))

    def __or__(self, other: object) -> Any:
        if not isinstance(other, Mapping):
            return NotImplemented
        return self.copy() | dict(other)

    def __ror__(self, other: object) -> Any:
        if not isinstance(other, Mapping):
            return NotImplemented
        return dict(other) | self.copy()

    # -- writes ----------------------------------------------------------------------------

    def __setitem__(self, key: str, value: Any) -> None:
        if self.read_only or self._changes.destroyed:
            self._check_writable()
        if type(key) is not str:
            check_key(key)
        _setitem(self, key, value)
        changes = self._changes
        changes.keys.add((DEFAULT, key))
        if changes.ops:  # a key incremented earlier in the request is now a plain write
            changes.ops.pop((DEFAULT, key), None)
        self.accessed = True

    def __delitem__(self, key: str) -> None:
        self._check_writable()
        self.accessed = True
        _delitem(self, key)
        self._wrote(key)

    def setdefault(self, key: str, default: Any = None) -> Any:
        self.accessed = True
        value = _get(self, key, _MISSING)
        if value is not _MISSING:
            return value
        self[key] = default
        return default

    @overload
    def pop(self, key: str, /) -> Any: ...
    @overload
    def pop(self, key: str, default: Any, /) -> Any: ...

    def pop(self, key: str, default: Any = _MISSING, /) -> Any:
        # Popping a key that is not there with a default changes nothing, and (as in
        # Starlette's session) does not count as a read either.
        if not _contains(self, key):
            if default is _MISSING:
                self.accessed = True
                raise KeyError(key)
            return default
        self._check_writable()
        self.accessed = True
        value = dict.pop(self, key)
        self._wrote(key)
        return value

    def popitem(self) -> tuple[str, Any]:
        """Remove and return the newest ``(key, value)`` pair (LIFO, as a dict does)."""
        self.accessed = True
        if not _len(self):
            raise KeyError("popitem(): dictionary is empty")
        self._check_writable()
        key, value = dict.popitem(self)
        self._wrote(key)
        return key, value

    def clear(self) -> None:
        """Remove every key (each recorded as deleted, so a merge replays the removals)."""
        self.accessed = True
        if not _len(self):
            return
        self._check_writable()
        for key in list(_iter(self)):
            self._wrote(key)
        dict.clear(self)

    def update(self, other: Any = (), /, **kwargs: Any) -> None:
        """As ``dict.update``: a mapping (or ``keys()`` object) or pairs, then keywords."""
        self.accessed = True
        for key, value in _pairs(other, kwargs):
            self[key] = value

    def __ior__(self, other: Any) -> TrackedDict:  # type: ignore[override,misc]
        if not isinstance(other, Mapping) and not hasattr(other, "__iter__"):
            return NotImplemented
        self.update(other)
        return self

    @classmethod
    def fromkeys(cls, iterable: Iterable[Any], value: Any = None) -> Any:
        """A detached session (as ``cls(data)``) holding ``iterable``'s keys, each ``value``."""
        return cls(dict.fromkeys(iterable, value))


def _pairs(other: Any, kwargs: dict[str, Any]) -> Iterator[tuple[Any, Any]]:
    """The ``(key, value)`` pairs ``dict.update(other, **kwargs)`` would apply, in order."""
    if hasattr(other, "keys"):
        # keys(), not iter(): dict.update's own protocol for "a mapping".
        for key in other.keys():  # noqa: SIM118
            yield key, other[key]
    else:
        for item in other:
            pair = tuple(item)
            if len(pair) != 2:
                raise ValueError(
                    f"dictionary update sequence element has length {len(pair)}; 2 is required"
                )
            yield pair[0], pair[1]
    yield from kwargs.items()
