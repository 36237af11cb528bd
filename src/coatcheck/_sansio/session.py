"""The session object an application reads and writes during one request.

A :class:`Session` is a plain in-memory mapping (the same in sync and async code); loading and
saving happen around the request, in :mod:`coatcheck._sansio.core`. It records *which* keys a
request changed, not just that something changed, so a save can be merged key by key with a
concurrent request's save instead of overwriting it.

What the session rules need from a session is named, not reached for: its
:attr:`~Session.document`, its :attr:`~Session.changes` (a read-only :class:`ChangeView`), the
:attr:`~Session.stored` record it was loaded as, and the two updates a save makes
(:meth:`~Session.adopt`, :meth:`~Session.rebase`).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Set
from typing import Any

from ..errors import SessionError
from . import forms
from .changes import Changes, ChangeView
from .config import ConcurrencyMode
from .document import DEFAULT, REMOTE_ADDR, USER, Document
from .ids import new_session_id
from .lifetime import OwnLifetime
from .mapping import TrackedDict
from .namespaces import Namespace, Reservation, check_key
from .operations import Kind, OperationMixin, operate
from .ops import Record
from .timing import Lifetime

__all__ = ["Session"]

_DEFAULT_LIFETIME = Lifetime(30 * 60, 12 * 60 * 60)


class Session(TrackedDict, OwnLifetime, OperationMixin):
    """One client's server-side state: a ``dict[str, Any]`` plus session metadata.

    The mapping itself is the default namespace, and it is a real dict: every dict method and
    operator works, ``json.dumps(session)`` too, while the session records what the request
    read and changed (see :mod:`coatcheck._sansio.mapping`). :meth:`namespace` gives each
    application its own. Values must be encodable by the manager's serializer (checked at
    save). A manager's ``open`` makes the sessions of requests; ``Session(data)`` makes a
    *detached* one, tied to no store (for unit tests of code that takes a session).
    """

    __slots__ = (
        "_changes",
        "_defaults",
        "_id",
        "_id_bytes",
        "_reservations",
        "accessed",
        "accessed_at",
        "changes",
        "concurrency",
        "created_at",
        "document",
        "gate_turn",
        "had_ticket",
        "is_new",
        "key",
        "lock_token",
        "read_only",
        "slid",
        "stale_ticket",
        "stored",
        "ticket",
    )

    _id: str | None
    #: The session's content as it will be stored (read by the save; not for applications).
    #: Its default namespace is this session itself.
    document: Document
    _reservations: Mapping[str, Reservation]
    _defaults: Lifetime
    _id_bytes: int
    _changes: Changes
    #: What this request changed, as the save reads it (the same record, read-only).
    changes: ChangeView
    #: When the session was created: seconds since the epoch, to the millisecond (as stored).
    created_at: float
    #: When this request started using the session.
    accessed_at: float
    #: True when this request began without a stored session (lemon's ``created()``);
    #: it stays True after the save that first stores it.
    is_new: bool
    #: True once the application read or wrote the data (responses then vary on Cookie).
    #: Settable, as frameworks do.
    accessed: bool
    #: The store key (digest of the id) the session is stored under; None for a new one.
    key: str | None
    #: The record as this request last saw it in the store (None for a new session): the
    #: version a save compares against, the stored access time, the base of a merge.
    stored: Record | None
    #: The lock token held in ``lock`` mode, and its turn in the manager's line for the lock.
    lock_token: str | None
    gate_turn: object | None
    #: True when the client presented a ticket (cookie), valid or not.
    had_ticket: bool
    #: True when the ticket was signed with an older key and should be re-issued.
    stale_ticket: bool
    #: The ticket the client presented for this session, when valid and signed with the newest
    #: key; None otherwise (and after the session gets a new id).
    ticket: str | None
    #: True when the load already slid the idle timeout (the save then needs no touch).
    slid: bool
    #: The concurrency mode this request runs in (see SessionConfig.concurrency).
    concurrency: ConcurrencyMode
    #: True when the request promised not to write (no lock, no save, no touch).
    read_only: bool

    @classmethod
    def build(
        cls,
        *,
        document: Document,
        accessed_at: float,
        reservations: Mapping[str, Reservation],
        concurrency: ConcurrencyMode,
        read_only: bool = False,
        had_ticket: bool = False,
        session_id: str | None = None,
        key: str | None = None,
        stored: Record | None = None,
        lock_token: str | None = None,
        stale_ticket: bool = False,
        ticket: str | None = None,
        slid: bool = False,
        defaults: Lifetime = _DEFAULT_LIFETIME,
        id_bytes: int = 32,
    ) -> Session:
        """A session for one request; the manager's ``open`` makes them, applications never do.

        A keyword-only classmethod rather than ``__init__``: calling a class with keyword
        arguments packs them into a dict on their way to ``__init__``, which cost a request
        more than setting every field; a method takes them as they are. ``document``'s
        default namespace moves into the session (which is that namespace from then on).
        """
        self = dict.__new__(cls)
        data = document.data
        default = data[DEFAULT]
        if default:
            dict.update(self, default)
        data[DEFAULT] = self
        self._id = session_id
        self.document = document
        self._reservations = reservations
        self._defaults = defaults
        self._id_bytes = id_bytes
        self._changes = Changes()
        self.changes = self._changes
        self.created_at = document.created_at
        self.accessed_at = accessed_at
        self.is_new = key is None
        self.accessed = False
        self.key = key
        self.stored = stored
        self.lock_token = lock_token
        self.had_ticket = had_ticket
        self.stale_ticket = stale_ticket
        self.ticket = ticket
        self.slid = slid
        self.concurrency = concurrency
        self.read_only = read_only
        self.gate_turn = None
        return self

    def __new__(cls, data: Any = (), /, **kwargs: Any) -> Session:
        """A detached session holding ``dict(data, **kwargs)``: new, tied to no store, with
        nothing changed yet. For tests of code that takes a session; a manager's ``open``
        makes the sessions of requests."""
        now = time.time()
        session = cls.build(
            document=Document.new(int(now * 1000)),
            accessed_at=now,
            reservations={},
            concurrency="merge",
        )
        dict.update(session, dict(data, **kwargs))
        return session

    def __init__(self, data: Any = (), /, **kwargs: Any) -> None:
        # __new__ did the work; dict.__init__ would add the data a second time.
        pass

    # -- identity and metadata -------------------------------------------------------------

    @property
    def id(self) -> str | None:
        """The session id; None for a new session until it is first saved (or
        :meth:`ensure_id` gives it one)."""
        return self._id

    def ensure_id(self) -> str:
        """The session's id, giving a new session one now, before the response.

        For frameworks that need the id during the request (Django's ``session_key``,
        aiohttp's ``identity``). The first save then stores the session under this id, even
        when it holds nothing, since someone was handed the id. For a stored session this is
        its current id (after :meth:`regenerate`, the save gives it another).
        """
        if self._id is None:
            self._id = new_session_id(self._id_bytes)
        return self._id

    @property
    def version(self) -> int | None:
        """The stored record's version as this request last saw it; None for a new session."""
        stored = self.stored
        return None if stored is None else stored.version

    @property
    def remote_addr(self) -> str | None:
        """The client address that created the session (Quixote's ``_remote_address``)."""
        value: str | None = self.document.meta.get(REMOTE_ADDR)
        return value

    @property
    def user(self) -> Any:
        """Who is on the other end (Quixote's ``user``): any serializable value, or None."""
        return self.document.meta.get(USER)

    @user.setter
    def user(self, value: Any) -> None:
        self._check_writable()
        self.document.meta[USER] = value
        self._changes.meta.add(USER)

    @property
    def modified(self) -> bool:
        """True when this request changed the content or asked for a new id.

        Settable, as frameworks do: True writes the whole session back (as
        :meth:`mark_modified`), False forgets what this request changed, so the save stores
        none of it (the data in memory stays as it is). :meth:`destroy` is apart (see
        :attr:`destroyed`).
        """
        changes = self._changes
        return changes.content or changes.rotate

    @modified.setter
    def modified(self, value: bool) -> None:
        if value:
            self.mark_modified()
            return
        self._changes.forget()

    @property
    def destroyed(self) -> bool:
        """True after :meth:`destroy`."""
        return self._changes.destroyed

    @property
    def regenerate_requested(self) -> bool:
        """True after :meth:`regenerate`, until the save gives the session its new id."""
        return self._changes.rotate

    def has_info(self) -> bool:
        """True when the session holds anything worth storing (Quixote's ``has_info``)."""
        return self.document.has_info()

    def mark_modified(self, key: str | None = None) -> None:
        """Record a change the mapping could not see, such as a mutated nested list.

        With ``key``, only that key of the default namespace is marked; without, the whole
        session is written back as it is now.
        """
        self._check_writable()
        if key is None:
            self._changes.whole = True
        else:
            self._changes.wrote(DEFAULT, check_key(key))

    def regenerate(self) -> None:
        """Give the session a new id at save, keeping its data; the old id stops working.

        Call it when privileges change (log in, log out) to defeat session fixation.
        """
        self._check_writable()
        self._changes.rotate = True

    def destroy(self) -> None:
        """Delete the session at the end of the request and tell the client to drop its cookie."""
        if self.read_only:
            raise SessionError("the session was opened read-only for this request")
        self._changes.destroyed = True
        self.accessed = True
        for namespace in self.document.data.values():
            dict.clear(namespace)
        self.document.meta.clear()

    def __repr__(self) -> str:
        # Never the values: a session ends up in logs and tracebacks.
        state = "new" if self.is_new else "stored"
        return f"<Session {state} keys={dict.__len__(self)}>"

    # -- namespaces ------------------------------------------------------------------------

    def namespace(self, name: str, reservation: Reservation | None = None) -> Namespace:
        """This session's view for one application (lemon's per-application names).

        A namespace reserved with ``manager.reserve(name)`` is read-only unless the returned
        :class:`Reservation` is passed here.
        """
        name = check_key(name)
        owner = self._reservations.get(name)
        if owner is None or reservation is owner:
            return Namespace(self, name, self._set, self._delete)
        return Namespace(self, name, None, None)

    # -- form tokens (Quixote) and flash messages (coatcheck._sansio.forms) ----------------

    def create_form_token(self) -> str:
        """A new single-use token to put in a form; at most 16 stay outstanding."""
        self._check_writable()
        self.accessed = True
        return forms.add_form_token(self.document.meta, self._changes.meta)

    def has_form_token(self, token: object) -> bool:
        """True when ``token`` is outstanding (constant-time comparison)."""
        self.accessed = True
        return forms.has_form_token(self.document.meta, token)

    def consume_form_token(self, token: object) -> bool:
        """Check ``token`` and remove it so it cannot be replayed; False when it was not valid.

        A write: a read-only request cannot consume a token (it would stay valid, unsaved).
        """
        self._check_writable()
        if not isinstance(token, str) or not self.has_form_token(token):
            return False
        forms.remove_form_token(self.document.meta, self._changes.meta, token)
        return True

    def flash(self, message: Any, category: str = "message") -> None:
        """Queue a message for the next page this client sees."""
        self._check_writable()
        self.accessed = True
        forms.add_flash(self.document.meta, self._changes.meta, message, category)

    def pop_flashed(self, category: str | None = None) -> list[tuple[str, Any]]:
        """Return and remove the queued ``(category, message)`` pairs (one category, or all)."""
        self.accessed = True
        return forms.take_flashed(self.document.meta, self._changes.meta, category)

    # -- what the session rules read and update --------------------------------------------

    def adopt(self, session_id: str, key: str, stored: Record) -> None:
        """The save stored the session under a new id (its first save, or a rotation)."""
        self._id = session_id
        self.key = key
        self.stored = stored
        self.ticket = None
        self._changes.rotate = False

    def rebase(self, document: Document, stored: Record, keys: Set[tuple[str, str]]) -> None:
        """A merge put this request's changes (``keys``) on top of the newer ``stored`` record;
        ``document`` is what this request now saves."""
        default = document.data[DEFAULT]
        dict.clear(self)
        dict.update(self, default)
        document.data[DEFAULT] = self
        self.document = document
        self.stored = stored
        self._changes.keys = set(keys)
        self._changes.whole = False

    # -- used by the namespaces ------------------------------------------------------------

    def _set(self, ns: str, key: str, value: Any) -> None:
        if ns == DEFAULT:
            self[key] = value
            return
        self._check_writable()
        self.document.data.setdefault(ns, {})[check_key(key)] = value
        self._changes.wrote(ns, key)
        self.accessed = True

    def _operate(self, key: str, kind: Kind, argument: Any, ns: str = DEFAULT) -> Any:
        self._check_writable()
        values = self if ns == DEFAULT else self.document.data.setdefault(ns, {})
        value = operate(self._changes, values, ns, check_key(key), kind, argument)
        self.accessed = True
        return value

    def _delete(self, ns: str, key: str) -> None:
        if ns == DEFAULT:
            del self[key]
            return
        self._check_writable()
        values = self.document.data.get(ns)
        if values is None:
            raise KeyError(key)
        del values[check_key(key)]
        self._changes.wrote(ns, key)
        self.accessed = True
