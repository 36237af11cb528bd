"""The session object an application reads and writes during one request.

A :class:`Session` is a plain in-memory mapping (the same in sync and async code); loading and
saving happen around the request, in :mod:`coatcheck.flow`. It records *which* keys a request
changed, not just that something changed, so a save can be merged key by key with a concurrent
request's save instead of overwriting it.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterator, Mapping, MutableMapping
from typing import Any

from ..errors import InvalidKey, ReservedNamespace, SessionDestroyed, SessionError
from .ids import new_token

__all__ = ["DEFAULT_NAMESPACE", "MAX_FORM_TOKENS", "Namespace", "Reservation", "Session"]

DEFAULT_NAMESPACE = ""
MAX_FORM_TOKENS = 16  # Quixote's limit: older outstanding tokens are dropped first

_MISSING: Any = object()


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


def _check_key(key: object) -> str:
    if not isinstance(key, str):
        raise InvalidKey(f"session keys must be str, not {type(key).__name__}")
    return key


class Session(MutableMapping[str, Any]):
    """One client's server-side state: a ``MutableMapping[str, Any]`` plus session metadata.

    The mapping itself is the default namespace; :meth:`namespace` gives each application its
    own. Values must be encodable by the manager's serializer (checked at save).
    """

    __slots__ = (
        "_base_payload",
        "_changed",
        "_data",
        "_default",
        "_destroyed",
        "_id",
        "_meta",
        "_meta_changed",
        "_regenerate",
        "_reservations",
        "_whole",
        "accessed",
        "accessed_at",
        "concurrency",
        "created_at",
        "had_ticket",
        "is_new",
        "key",
        "lock_token",
        "read_only",
        "stale_ticket",
        "stored_accessed_at",
        "version",
    )

    def __init__(
        self,
        session_id: str | None,
        data: dict[str, dict[str, Any]],
        meta: dict[str, Any],
        created_at: float,
        accessed_at: float,
        reservations: Mapping[str, Reservation],
        concurrency: str = "merge",
        read_only: bool = False,
        had_ticket: bool = False,
        key: str | None = None,
        version: int | None = None,
        stored_accessed_at: float | None = None,
        base_payload: bytes | None = None,
        lock_token: str | None = None,
        stale_ticket: bool = False,
    ) -> None:
        # Built by the flow once per request, with every field given here (positionally, on
        # the hot path): each attribute is set exactly once.
        self._id = session_id
        self._data = data
        self._default = data.setdefault(DEFAULT_NAMESPACE, {})
        self._meta = meta
        self._reservations = reservations
        self._changed: set[tuple[str, str]] = set()
        self._meta_changed: set[str] = set()
        self._whole = False
        self._destroyed = False
        self._regenerate = False
        #: When the session was created: seconds since the epoch, to the millisecond (as stored).
        self.created_at = created_at
        #: When this request started using the session.
        self.accessed_at = accessed_at
        #: The access time the store held when the session was loaded (None for a new one).
        self.stored_accessed_at = stored_accessed_at
        #: True until the session has been stored once (lemon's ``created()``).
        self.is_new = key is None
        #: True once the application read or wrote the data (responses then vary on Cookie).
        self.accessed = False
        #: The store key (digest of the id) the session was loaded from; None for a new one.
        self.key = key
        #: The record version the session was loaded at; None for a new one.
        self.version = version
        #: The lock token held for this session in ``lock`` mode.
        self.lock_token = lock_token
        #: True when the client presented a ticket (cookie), valid or not.
        self.had_ticket = had_ticket
        #: True when the ticket was signed with an older key and should be re-issued.
        self.stale_ticket = stale_ticket
        #: The concurrency mode this request runs in (see SessionConfig.concurrency).
        self.concurrency = concurrency
        #: True when the request promised not to write (no lock, no save, no touch).
        self.read_only = read_only
        # The payload as loaded: decoded only when a concurrent save forces a merge, to tell
        # which keys the other request changed.
        self._base_payload = base_payload

    # -- identity and metadata -------------------------------------------------------------

    @property
    def id(self) -> str | None:
        """The session id; None for a new session until it is first saved."""
        return self._id

    @property
    def remote_addr(self) -> str | None:
        """The client address that created the session (Quixote's ``_remote_address``)."""
        value: str | None = self._meta.get("r")
        return value

    @property
    def user(self) -> Any:
        """Who is on the other end (Quixote's ``user``): any serializable value, or None."""
        return self._meta.get("u")

    @user.setter
    def user(self, value: Any) -> None:
        self._check_writable()
        self._meta["u"] = value
        self._meta_changed.add("u")

    @property
    def modified(self) -> bool:
        """True when this request changed anything that must be saved."""
        return bool(self._changed or self._meta_changed or self._whole or self._regenerate)

    @property
    def destroyed(self) -> bool:
        """True after :meth:`destroy`."""
        return self._destroyed

    @property
    def regenerate_requested(self) -> bool:
        """True after :meth:`regenerate`, until the save gives the session its new id."""
        return self._regenerate

    def has_info(self) -> bool:
        """True when the session holds anything worth storing (Quixote's ``has_info``)."""
        if any(self._data.values()):
            return True
        meta = self._meta
        return bool(meta.get("u") is not None or meta.get("t") or meta.get("f"))

    def mark_modified(self, key: str | None = None) -> None:
        """Record a change the mapping could not see, such as a mutated nested list.

        With ``key``, only that key of the default namespace is marked; without, the whole
        session is written back as it is now.
        """
        self._check_writable()
        if key is None:
            self._whole = True
        else:
            self._changed.add((DEFAULT_NAMESPACE, _check_key(key)))

    def regenerate(self) -> None:
        """Give the session a new id at save, keeping its data; the old id stops working.

        Call it when privileges change (log in, log out) to defeat session fixation.
        """
        self._check_writable()
        self._regenerate = True

    def destroy(self) -> None:
        """Delete the session at the end of the request and tell the client to drop its cookie."""
        if self.read_only:
            raise SessionError("the session was opened read-only for this request")
        self._destroyed = True
        self.accessed = True
        for namespace in self._data.values():
            namespace.clear()
        self._meta = {}

    # -- the mapping (default namespace) ---------------------------------------------------

    def __getitem__(self, key: str) -> Any:
        self.accessed = True
        return self._default[_check_key(key)]

    def __setitem__(self, key: str, value: Any) -> None:
        # _set() for the default namespace, inlined: the most common write.
        if self._destroyed or self.read_only:
            self._check_writable()
        if type(key) is not str:
            _check_key(key)
        self._default[key] = value
        self._changed.add((DEFAULT_NAMESPACE, key))
        self.accessed = True

    def __delitem__(self, key: str) -> None:
        self._delete(DEFAULT_NAMESPACE, self._default, key)

    def __contains__(self, key: object) -> bool:
        self.accessed = True
        return isinstance(key, str) and key in self._default

    def __iter__(self) -> Iterator[str]:
        self.accessed = True
        return iter(list(self._default))

    def __len__(self) -> int:
        self.accessed = True
        return len(self._default)

    def get(self, key: str, default: Any = None) -> Any:
        self.accessed = True
        # _check_key() only for a non-str key, which it refuses: this is the most common read.
        return self._default.get(key if type(key) is str else _check_key(key), default)

    def __repr__(self) -> str:
        state = "new" if self.is_new else "stored"
        return f"<Session {state} keys={len(self._default)} user={self.user!r}>"

    # -- namespaces ------------------------------------------------------------------------

    def namespace(self, name: str, reservation: Reservation | None = None) -> Namespace:
        """This session's view for one application (lemon's per-application names).

        A namespace reserved with ``manager.reserve(name)`` is read-only unless the returned
        :class:`Reservation` is passed here.
        """
        name = _check_key(name)
        owner = self._reservations.get(name)
        writable = owner is None or reservation is owner
        return Namespace(self, name, writable)

    # -- form tokens (Quixote) -------------------------------------------------------------

    def create_form_token(self) -> str:
        """A new single-use token to put in a form; at most 16 stay outstanding."""
        self._check_writable()
        tokens: list[str] = list(self._meta.get("t") or ())
        token = new_token()
        tokens.append(token)
        del tokens[:-MAX_FORM_TOKENS]
        self._meta["t"] = tokens
        self._meta_changed.add("t")
        self.accessed = True
        return token

    def has_form_token(self, token: object) -> bool:
        """True when ``token`` is outstanding (constant-time comparison)."""
        self.accessed = True
        if not isinstance(token, str):
            return False
        encoded = token.encode("utf-8", "surrogatepass")
        found = False
        for candidate in self._meta.get("t") or ():
            found |= hmac.compare_digest(candidate.encode(), encoded)
        return found

    def consume_form_token(self, token: object) -> bool:
        """Check ``token`` and remove it so it cannot be replayed; False when it was not valid."""
        if not self.has_form_token(token):
            return False
        self._meta["t"] = [t for t in self._meta["t"] if t != token]
        self._meta_changed.add("t")
        return True

    # -- flash messages ----------------------------------------------------------------------

    def flash(self, message: Any, category: str = "message") -> None:
        """Queue a message for the next page this client sees."""
        self._check_writable()
        messages = list(self._meta.get("f") or ())
        messages.append([category, message])
        self._meta["f"] = messages
        self._meta_changed.add("f")
        self.accessed = True

    def pop_flashed(self, category: str | None = None) -> list[tuple[str, Any]]:
        """Return and remove the queued ``(category, message)`` pairs (one category, or all)."""
        self.accessed = True
        messages = self._meta.get("f") or []
        taken = [(c, m) for c, m in messages if category is None or c == category]
        if taken:
            self._meta["f"] = [
                [c, m] for c, m in messages if category is not None and c != category
            ]
            self._meta_changed.add("f")
        return taken

    # -- used by the flow and the namespaces -----------------------------------------------

    def _check_writable(self) -> None:
        if self._destroyed:
            raise SessionDestroyed("the session was destroyed in this request")
        if self.read_only:
            raise SessionError("the session was opened read-only for this request")

    def _set(self, ns: str, target: dict[str, Any], key: str, value: Any) -> None:
        self._check_writable()
        target[_check_key(key)] = value
        self._changed.add((ns, key))
        self.accessed = True

    def _delete(self, ns: str, target: dict[str, Any], key: str) -> None:
        self._check_writable()
        del target[_check_key(key)]
        self._changed.add((ns, key))
        self.accessed = True

    def _adopt(self, session_id: str, key: str) -> None:
        # The save gave the session its (new) id: it is now stored under that key.
        self._id = session_id
        self.key = key
        self.version = 1
        self._regenerate = False

    def _rebase(
        self,
        data: dict[str, dict[str, Any]],
        meta: dict[str, Any],
        base_payload: bytes,
        changed: set[tuple[str, str]],
    ) -> None:
        # After a merge: the merged document is what this request now saves, on top of the
        # newer stored version; the keys it replays stay marked as changed.
        data.setdefault(DEFAULT_NAMESPACE, {})
        self._data = data
        self._default = data[DEFAULT_NAMESPACE]
        self._meta = meta
        self._base_payload = base_payload
        self._changed = set(changed)
        self._whole = False

    def _namespace_dict(self, name: str, create: bool) -> dict[str, Any] | None:
        if create:
            return self._data.setdefault(name, {})
        return self._data.get(name)


class Namespace(MutableMapping[str, Any]):
    """One application's keys inside a session; see :meth:`Session.namespace`."""

    __slots__ = ("_name", "_session", "_writable")

    def __init__(self, session: Session, name: str, writable: bool) -> None:
        self._session = session
        self._name = name
        self._writable = writable

    @property
    def name(self) -> str:
        """The namespace's name."""
        return self._name

    def _read(self) -> dict[str, Any]:
        self._session.accessed = True
        return self._session._namespace_dict(self._name, False) or {}

    def _write(self) -> dict[str, Any]:
        if not self._writable:
            raise ReservedNamespace(self._name)
        target = self._session._namespace_dict(self._name, True)
        assert target is not None
        return target

    def __getitem__(self, key: str) -> Any:
        return self._read()[_check_key(key)]

    def __setitem__(self, key: str, value: Any) -> None:
        self._session._set(self._name, self._write(), key, value)

    def __delitem__(self, key: str) -> None:
        self._session._delete(self._name, self._write(), key)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key in self._read()

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._read()))

    def __len__(self) -> int:
        return len(self._read())

    def __repr__(self) -> str:
        return f"<Namespace {self._name!r} keys={len(self._read())}>"
