"""A session's own lifetime: timeouts that override the manager's for one session.

"Remember me", Flask's ``session.permanent``, Django's ``set_expiry`` and aiohttp's ``max_age``
all give one session a lifetime of its own. :class:`OwnLifetime` is the part of
:class:`~coatcheck.Session` that sets it; the overrides live in the document's ``LIFETIME``
field, so they are stored with the session and every later request (and every worker) sees
them; :meth:`~coatcheck._sansio.timing.Lifetime.own` is how the core applies them.
"""

from __future__ import annotations

import math
from typing import Any

from ..errors import ConfigurationError
from .changes import Changes
from .cookies import MAX_COOKIE_AGE
from .document import LIFETIME, LIFETIME_FIELDS, Document
from .timing import Lifetime

__all__ = ["OwnLifetime"]

_KEEP: Any = object()


class OwnLifetime:
    """Session methods for a lifetime of its own (mixed into :class:`~coatcheck.Session`)."""

    __slots__ = ()

    document: Document
    _defaults: Lifetime
    _changes: Changes

    def _check_writable(self) -> None:
        raise NotImplementedError

    # -- lifetime --------------------------------------------------------------------------

    def set_lifetime(
        self,
        *,
        idle_timeout: float | None = _KEEP,
        absolute_timeout: float | None = _KEEP,
        cookie_max_age: int | None = _KEEP,
    ) -> None:
        """Give this session timeouts of its own ("remember me", Flask's ``permanent``).

        Each keyword given overrides the manager's setting for this session, from this save
        on: seconds, or None for off (for ``cookie_max_age``, None is a browser-session cookie
        with no ``Max-Age``). Keywords not given stay as they are. The core enforces them on
        every store as it does the manager's, and re-sends the cookie when they change.
        """
        self._check_writable()
        own = dict(self.document.meta.get(LIFETIME) or {})
        for name, value in (
            ("idle_timeout", idle_timeout),
            ("absolute_timeout", absolute_timeout),
            ("cookie_max_age", cookie_max_age),
        ):
            if value is _KEEP:
                continue
            _check_lifetime(name, value)
            own[LIFETIME_FIELDS[name]] = value
        if own:
            effective = self._defaults.own(own)
            if effective.idle == effective.absolute == math.inf:
                raise ConfigurationError("idle_timeout and absolute_timeout cannot both be off")
        self.document.meta[LIFETIME] = own
        self._changes.meta.add(LIFETIME)

    def reset_lifetime(self) -> None:
        """Drop the timeouts :meth:`set_lifetime` gave: the manager's apply again."""
        self._check_writable()
        if self.document.meta.pop(LIFETIME, None) is not None:
            self._changes.meta.add(LIFETIME)

    @property
    def own_lifetime(self) -> dict[str, float | None]:
        """The timeouts this session has of its own, by :meth:`set_lifetime`'s names."""
        own = self.document.meta.get(LIFETIME) or {}
        return {name: own[code] for name, code in LIFETIME_FIELDS.items() if code in own}


def _check_lifetime(name: str, value: object) -> None:
    if value is None:
        return
    if name == "cookie_max_age":
        if type(value) is not int or not 0 <= value <= MAX_COOKIE_AGE:
            raise ConfigurationError(
                f"cookie_max_age must be None or an int from 0 to {MAX_COOKIE_AGE}, not {value!r}"
            )
    elif (
        isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < math.inf
    ):
        raise ConfigurationError(f"{name} must be None or a finite number of seconds >= 0")
