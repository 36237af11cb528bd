"""Waiting on contention: how long a request keeps trying, and how long each pause is.

Two requests meet on one session when one holds its lock (``lock`` mode) or when saves keep
losing to each other (``merge`` mode). Both wait the same way: quick pauses first, since
locks are usually held briefly, doubling up to a ceiling, for at most ``lock_wait`` seconds.
"""

from __future__ import annotations

import random
from collections.abc import Callable

__all__ = ["Patience"]

FIRST_PAUSE = 0.002
LAST_PAUSE = 0.05


class Patience:
    """One request's wait: started when it is made, over after ``limit`` seconds."""

    __slots__ = ("_give_up", "_monotonic", "_pause")

    def __init__(self, monotonic: Callable[[], float], limit: float) -> None:
        self._monotonic = monotonic
        self._give_up = monotonic() + limit
        self._pause = FIRST_PAUSE

    def exhausted(self) -> bool:
        """True once the wait has lasted ``limit`` seconds."""
        return self._monotonic() >= self._give_up

    def pause(self) -> float:
        """The next pause: the previous one doubled, from FIRST_PAUSE up to LAST_PAUSE."""
        pause = self._pause
        self._pause = min(pause * 2, LAST_PAUSE)
        return pause

    def jittered_pause(self) -> float:
        """A random share of the next pause (full jitter), so writers in lock-step drift apart."""
        return random.uniform(0, self.pause())  # noqa: S311 - timing, nothing secret
