"""Per-application namespaces in a session, and the reservations that guard some of them.

lemon's per-application names: ``session.namespace("cart")`` is one application's mapping
inside the session, stored apart from the others. A namespace reserved with
``manager.reserve(name)`` can be read by anyone and written only by code that holds the
returned :class:`Reservation` (an auth layer, say, that other code must not overwrite).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, MutableMapping
from typing import TYPE_CHECKING, Any

from ..errors import InvalidKey, ReservedNamespace
from .operations import Kind, OperationMixin

if TYPE_CHECKING:
    from .session import Session

__all__ = ["Namespace", "Reservation", "check_key"]


class Reservation:
    """The capability to write a reserved namespace, returned by ``manager.reserve(name)``.

    Anyone may read a reserved namespace; only code holding this object may write it (lemon's
    reserved application names, for modules such as an auth layer that other code must not
    overwrite).
    """

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"<Reservation {self.name!r}>"


def check_key(key: object) -> str:
    """``key`` when it may name a session value (a str); InvalidKey otherwise."""
    if not isinstance(key, str):
        raise InvalidKey(f"session keys must be str, not {type(key).__name__}")
    return key


class Namespace(MutableMapping[str, Any], OperationMixin):
    """One application's keys inside a session; see :meth:`Session.namespace`.

    It reads the session's document and writes through the two functions the session hands
    it (None for a namespace reserved by someone else), so every write goes through the
    session's own checks and change record.
    """

    __slots__ = ("_delete", "_name", "_session", "_set")

    def __init__(
        self,
        session: Session,
        name: str,
        set_value: Callable[[str, str, Any], None] | None,
        delete_value: Callable[[str, str], None] | None,
    ) -> None:
        self._session = session
        self._name = name
        self._set = set_value
        self._delete = delete_value

    @property
    def name(self) -> str:
        """The namespace's name."""
        return self._name

    def _read(self) -> dict[str, Any]:
        self._session.accessed = True
        return self._session.document.data.get(self._name) or {}

    def __getitem__(self, key: str) -> Any:
        return self._read()[check_key(key)]

    def __setitem__(self, key: str, value: Any) -> None:
        if self._set is None:
            raise ReservedNamespace(self._name)
        self._set(self._name, key, value)

    def __delitem__(self, key: str) -> None:
        if self._delete is None:
            raise ReservedNamespace(self._name)
        self._delete(self._name, key)

    def _operate(self, key: str, kind: Kind, argument: Any) -> Any:
        # incr(), set_add(), ...: writes, refused on a namespace reserved by someone else.
        if self._set is None:
            raise ReservedNamespace(self._name)
        return self._session._operate(key, kind, argument, self._name)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key in self._read()

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._read()))

    def __len__(self) -> int:
        return len(self._read())

    def __repr__(self) -> str:
        return f"<Namespace {self._name!r} keys={len(self._read())}>"
