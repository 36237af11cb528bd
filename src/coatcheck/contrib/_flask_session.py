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
    #: The request's ``Cookie`` header.
    coatcheck_cookie: str | None

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
        self._tags = frozenset(self._tagged.tags)
        self._encode = json.JSONEncoder(
            separators=(",", ":"), ensure_ascii=False, allow_nan=False
        ).encode

    def dumps(self, obj: Any) -> bytes:
        """Tag ``obj`` the way Flask does and encode it as compact UTF-8 JSON."""
        try:
            # Flask's tagger rebuilds every container in Python; a session of plain JSON
            # values (the usual one) tags to itself, so it goes to the C encoder as it is.
            tagged = obj if self._plain(obj, 0) else self._tagged.tag(obj)
            return self._encode(tagged).encode("utf-8")
        except (TypeError, ValueError, RecursionError) as exc:
            raise SerializationError(f"Flask's tagged JSON cannot store it: {exc}") from exc

    def loads(self, data: bytes) -> Any:
        """Decode what :meth:`dumps` made; ``ValueError`` for any bad input."""
        if type(data) is not bytes:
            data = bytes(data)
        try:
            if _TAG_MARK not in data:
                # Every tag is a one-key object whose key starts with a space, which compact
                # JSON can only spell '{" ' (a quote inside a string is escaped): without that
                # sequence there is nothing to untag.
                return _DECODE(data.decode("utf-8"))
            return self._tagged.loads(data.decode("utf-8"))
        except Exception as exc:
            # Flask's tag decoders raise whatever a bad value makes them raise (AttributeError
            # for a date that is a number); a serializer's loads raises ValueError only.
            raise ValueError(f"not a Flask tagged JSON session payload: {exc!r}") from exc

    def _plain(self, value: Any, depth: int) -> bool:
        """Whether Flask's tagger would leave ``value`` as it is: exact JSON types (a tuple, a
        ``Markup`` or an int subclass is not), and no one-key dict whose key is a tag."""
        kind = type(value)
        if kind is str or kind is int or kind is float or kind is bool or value is None:
            return True
        if depth > _PLAIN_DEPTH:
            return False  # the tagger decides (and refuses what is too deep)
        if kind is dict:
            if len(value) == 1 and next(iter(value)) in self._tags:
                return False
            for key, item in value.items():
                if type(key) is not str or not self._plain(item, depth + 1):
                    return False
            return True
        if kind is list:
            return all(self._plain(item, depth + 1) for item in value)
        return False


_TAG_MARK = b'{" '
_DECODE = json.JSONDecoder().decode
# Deeper than this, the check leaves the value to the tagger rather than recurse further.
_PLAIN_DEPTH = 64
