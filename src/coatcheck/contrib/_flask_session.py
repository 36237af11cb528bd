"""The session object Flask and Quart applications see, and Flask's tagged JSON as a serializer.

Both are shared by :mod:`coatcheck.contrib.flask` and :mod:`coatcheck.contrib.quart` (Quart's
``SessionMixin`` is Flask's).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from flask.json.tag import TaggedJSONSerializer as _FlaskTagged
from flask.sessions import NullSession, SessionMixin

from .._sansio.session import Session
from ..errors import SerializationError, SessionLocked, StoreError

__all__ = ["FlaskSession", "RefusedSession", "TaggedJSONSerializer"]


class FlaskSession(Session, SessionMixin):
    """A :class:`coatcheck.Session` that is also a Flask ``SessionMixin``: ``flask.session``
    (and ``quart.session``) during a request.

    Everything of :class:`coatcheck.Session` is there (``regenerate()``, which is what to call
    on log in and log out, ``destroy()``, ``user``, namespaces, form tokens), plus Flask's
    attributes:

    - ``permanent``: True gives the session ``PERMANENT_SESSION_LIFETIME`` as its idle timeout
      and as the cookie's max age (``set_lifetime``), stored with the session and enforced by
      the server; False drops it again (``reset_lifetime()``: the configured timeouts and a
      browser-session cookie). The lifetime is the one configured when ``permanent`` is set.
    - ``new``: the request began without a stored session (``is_new``).
    - ``modified``: settable; True writes the whole session back (after changing a nested
      value in place), False forgets this request's changes.
    - ``accessed``: the request read or wrote the session (responses then vary on Cookie).
    """

    #: Set by the session interface when it opens the session: the ``set_lifetime`` keywords
    #: of a permanent session under the app's configuration as it is now.
    coatcheck_lifetime: Callable[[], dict[str, Any]]
    #: Set when the interface saved or abandoned the session (its lock, if any, is released).
    coatcheck_settled: bool
    #: The manager that opened the session, and must save it.
    coatcheck_manager: Any

    @property
    def new(self) -> bool:  # type: ignore[override]
        """True when the request began without a stored session."""
        return self.is_new

    @property
    def permanent(self) -> bool:
        """True when the session has its own lifetime with a cookie max age (see the class)."""
        return self.own_lifetime.get("cookie_max_age") is not None

    @permanent.setter
    def permanent(self, value: bool) -> None:
        own = self.own_lifetime
        if value:
            wanted = self.coatcheck_lifetime()
            if own != wanted:
                self.set_lifetime(**wanted)
        elif own:
            self.reset_lifetime()


class RefusedSession(NullSession):
    """What a request gets when the store failed as its session was opened: Flask treats it as
    a null session (nothing is saved) and the interface answers the request with a 503 before
    the view runs."""

    def __init__(self, error: StoreError | SessionLocked) -> None:
        super().__init__()
        self.error = error


class TaggedJSONSerializer:
    """Flask's tagged JSON (:class:`flask.json.tag.TaggedJSONSerializer`) as a coatcheck
    serializer, so the values Flask apps keep in their sessions come back as they went in:
    tuples, bytes, ``Markup``, ``UUID``, ``datetime``, and dicts whose one key looks like a tag.

    Unlike Flask's cookie session it never turns another type into a string (a ``Decimal``, a
    ``date``): such a value raises :class:`~coatcheck.errors.SerializationError` at save, as
    every coatcheck serializer does for a value it cannot store exactly.
    """

    format_name = "flask-tagged-json"

    def __init__(self) -> None:
        self._tagged = _FlaskTagged()
        self._encode = json.JSONEncoder(
            separators=(",", ":"), ensure_ascii=False, allow_nan=False
        ).encode

    def dumps(self, obj: Any) -> bytes:
        """Tag ``obj`` the way Flask does and encode it as compact UTF-8 JSON."""
        try:
            return self._encode(self._tagged.tag(obj)).encode("utf-8")
        except (TypeError, ValueError, RecursionError) as exc:
            raise SerializationError(f"Flask's tagged JSON cannot store it: {exc}") from exc

    def loads(self, data: bytes) -> Any:
        """Decode what :meth:`dumps` made; ``ValueError`` for any bad input."""
        try:
            return self._tagged.loads(bytes(data).decode("utf-8"))
        except (ValueError, TypeError, KeyError, IndexError, RecursionError) as exc:
            raise ValueError(f"not a Flask tagged JSON session payload: {exc}") from exc
