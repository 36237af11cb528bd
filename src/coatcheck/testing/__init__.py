"""Helpers for testing code that uses coatcheck: a clock you move by hand."""

from __future__ import annotations

import time

__all__ = ["FrozenClock"]


class FrozenClock:
    """A clock that stands still until told to move; pass it as ``clock=`` to a manager.

    It starts at the real current time by default, so stores with native TTLs (Redis,
    memcached) still see sensible lifetimes.
    """

    def __init__(self, start: float | None = None) -> None:
        self.now = float(int(time.time())) if start is None else float(start)

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move the clock forward (or back, with a negative number)."""
        self.now += seconds
