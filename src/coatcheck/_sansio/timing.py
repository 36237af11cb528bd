"""Session time: the clock sessions are judged by, and when a session expires.

Both rules live here once: :class:`Clock` is the configured clock corrected by
``adjust_time()``, and :class:`Lifetime` turns the idle and absolute timeouts into a deadline.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from ..errors import ConfigurationError
from .document import LIFETIME_FIELDS

__all__ = ["Clock", "Lifetime"]

_IDLE = LIFETIME_FIELDS["idle_timeout"]
_ABSOLUTE = LIFETIME_FIELDS["absolute_timeout"]


class Clock:
    """The current time as sessions see it: ``clock()`` minus what :meth:`adjust` recorded.

    :attr:`now` is the callable to ask: the configured clock itself until the first
    :meth:`adjust`, then one that subtracts the offset, so an unadjusted clock (the usual case)
    costs the session rules no call of their own on every request.
    """

    __slots__ = ("_clock", "_offset", "now")

    def __init__(self, clock: Callable[[], float] | None = None) -> None:
        self._clock = clock or time.time
        self._offset = 0.0
        #: Seconds since the epoch, corrected for wall-clock jumps.
        self.now: Callable[[], float] = self._clock

    def _adjusted(self) -> float:
        return self._clock() - self._offset

    def adjust(self, delta: float) -> None:
        """The wall clock was moved by ``delta`` seconds; keep session ages as they were.

        Aquarium's ``adjustTime``: after the system clock jumps forward a day, sessions must not
        all expire at once. Each process that serves sessions must call this.
        """
        if not math.isfinite(delta):
            raise ConfigurationError("adjust_time needs a finite number of seconds")
        self._offset += delta
        self.now = self._adjusted if self._offset else self._clock


class Lifetime:
    """When a session expires: ``idle`` after its last use, ``absolute`` after its creation.

    A timeout that is off (None) never comes: it is kept as infinity, so the rule has no branch.
    """

    __slots__ = ("absolute", "idle")

    def __init__(self, idle: float | None, absolute: float | None) -> None:
        self.idle = math.inf if idle is None else idle
        self.absolute = math.inf if absolute is None else absolute

    def own(self, overrides: dict[str, float | None] | None) -> Lifetime:
        """This lifetime with a session's own timeouts (its document's ``LIFETIME`` field,
        already checked) put over it; ``self`` when it has none."""
        if not overrides:
            return self
        lifetime = object.__new__(Lifetime)
        idle = overrides.get(_IDLE, self.idle)
        absolute = overrides.get(_ABSOLUTE, self.absolute)
        lifetime.idle = math.inf if idle is None else idle
        lifetime.absolute = math.inf if absolute is None else absolute
        return lifetime

    def deadline(self, created_at: float, accessed_at: float) -> float:
        """When a session created and last used at these times expires."""
        idle = accessed_at + self.idle
        hard = created_at + self.absolute
        return idle if idle < hard else hard
