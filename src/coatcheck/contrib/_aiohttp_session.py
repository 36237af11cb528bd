"""The session object of the aiohttp integration: a coatcheck session that is also an
``aiohttp_session.Session``.

``aiohttp_session.get_session`` accepts only instances of its own ``Session``, and its
middleware asks ``session._changed`` whether to save. :class:`AiohttpSession` inherits from
both: coatcheck's :class:`~coatcheck.Session` comes first, so every mapping operation is the
tracked dict's (change tracking for ``merge`` mode keeps working, ``json.dumps(session)``
too), and aiohttp-session's names (``new``, ``identity``, ``created``, ``max_age``,
``changed()``, ``invalidate()``, ``empty``) are mapped onto coatcheck's session here.
"""

from __future__ import annotations

from typing import Any

import aiohttp_session

from .._sansio.cookies import MAX_COOKIE_AGE
from .._sansio.session import Session
from ..errors import SessionError

__all__ = ["BROWSER_SESSION_IDLE_TIMEOUT", "AiohttpSession", "lifetime_for"]

#: The server-side idle timeout of a session whose ``max_age`` is None: aiohttp-session then
#: sets a browser-session cookie and stores the record without expiry; a server-side session
#: must end some time.
BROWSER_SESSION_IDLE_TIMEOUT = 14 * 24 * 3600


def lifetime_for(max_age: int | None) -> tuple[int | None, float]:
    """aiohttp-session's ``max_age`` as (the cookie's Max-Age, the server-side idle timeout).

    ``None``: a browser-session cookie, :data:`BROWSER_SESSION_IDLE_TIMEOUT` on the server.
    ``0`` or less: expired at once. Above 400 days, the cookie keeps the 400 browsers allow.
    """
    if max_age is None:
        return None, BROWSER_SESSION_IDLE_TIMEOUT
    if isinstance(max_age, bool) or not isinstance(max_age, int):
        raise SessionError(f"max_age must be an int number of seconds or None, not {max_age!r}")
    if max_age <= 0:
        return 0, 0
    return min(max_age, MAX_COOKIE_AGE), max_age


class AiohttpSession(Session, aiohttp_session.Session):
    """A coatcheck :class:`~coatcheck.Session` that aiohttp-session accepts as its own.

    The mapping is coatcheck's (a real dict that records what the request read and changed).
    aiohttp-session's API maps onto it:

    - ``new``: no stored session was found for the request (:attr:`is_new`);
    - ``identity``: the session id, None until a new session is first saved;
    - ``created``: when the session was created, in whole seconds since the epoch;
    - ``max_age``: this session's lifetime (cookie ``Max-Age`` and server-side idle timeout);
      setting it gives the session a lifetime of its own (:meth:`set_lifetime`), stored with
      it, so later requests keep it;
    - ``changed()``: write the whole session back (:meth:`mark_modified`);
    - ``invalidate()``: destroy the stored session and delete the cookie (:meth:`destroy`);
      the session cannot be written afterwards in this request (``new_session()`` starts
      another).
    """

    # No __slots__: aiohttp_session.Session gives instances a __dict__ anyway, and class
    # defaults keep a detached AiohttpSession(data) (for unit tests) complete.

    #: The storage's ``max_age``, what :attr:`max_age` reads without a lifetime of its own.
    _default_max_age: int | None = None
    #: The manager's ``access_resolution``: how old a stored access time gets before a read
    #: must be saved to slide the idle timeout.
    _resolution: float = 60.0
    #: Made by ``new_session()``: its save destroys the request's previous session.
    replaces: bool = False
    #: True once saved or abandoned (its lock, if any, released).
    settled: bool = False

    def bind(self, default_max_age: int | None, resolution: float, replaces: bool) -> None:
        """Set what the storage knows (done by the storage right after opening)."""
        self._default_max_age = default_max_age
        self._resolution = resolution
        self.replaces = replaces
        self.settled = False

    # -- aiohttp-session's names -----------------------------------------------------------

    @property
    def new(self) -> bool:
        """True when the request began without a stored session."""
        return self.is_new

    @property
    def identity(self) -> str | None:
        """The session id (None for a new session until its first save)."""
        return self.id

    @property
    def created(self) -> int:
        """When the session was created, in whole seconds since the epoch."""
        return int(self.created_at)

    @property
    def empty(self) -> bool:
        """True when the session holds no key."""
        return not len(self)

    @property
    def max_age(self) -> int | None:
        """This session's cookie ``Max-Age`` (None: a browser-session cookie)."""
        own = self.own_lifetime
        if "cookie_max_age" in own:
            value = own["cookie_max_age"]
            return None if value is None else int(value)
        return self._default_max_age

    @max_age.setter
    def max_age(self, value: int | None) -> None:
        cookie, idle = lifetime_for(value)
        self.set_lifetime(idle_timeout=idle, cookie_max_age=cookie)

    @property
    def _mapping(self) -> dict[str, Any]:
        """aiohttp-session's inner dict, which code sometimes reads (``json_response(
        session._mapping)``): here the session itself, so writes through it are tracked."""
        return self

    @_mapping.setter
    def _mapping(self, value: dict[str, Any]) -> None:
        # aiohttp-session replaces its inner dict to empty it; here the content is replaced.
        self.clear()
        self.update(value)

    def changed(self) -> None:
        """Write the whole session back at the end of the request."""
        self.mark_modified()

    def invalidate(self) -> None:
        """Destroy the stored session and delete the client's cookie at the end of the
        request; writing to it afterwards raises :class:`~coatcheck.errors.SessionDestroyed`."""
        self.destroy()

    def set_new_identity(self, identity: Any | None) -> None:
        """Refused: coatcheck chooses session ids (a chosen id is what fixation needs)."""
        raise SessionError("coatcheck chooses session ids; a new session gets one at save")

    @property
    def _changed(self) -> bool:
        """Whether aiohttp-session's middleware must call the storage's save: the content
        changed (or was destroyed, rotated, given a lifetime), the data was read (the response
        then varies on Cookie), an id was handed out, a lock is held, the ticket must be
        re-issued, or the idle timeout is due for a slide."""
        if self.read_only:
            return False
        if self.replaces or self.accessed or self.modified or self.destroyed:
            return True
        if self.lock_token is not None or self.stale_ticket or self.slid:
            return True
        stored = self.stored
        if stored is None:
            return self.id is not None  # ensure_id(): stored even when empty
        return self.accessed_at - stored.accessed_at >= self._resolution

    @_changed.setter
    def _changed(self, value: bool) -> None:
        # aiohttp-session's own Session sets the flag; here it is derived, and setting it to
        # True asks for the whole session to be written back, as changed() does.
        if value:
            self.mark_modified()
