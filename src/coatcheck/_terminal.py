"""What the ``coatcheck`` command writes to a terminal: safe text and times."""

from __future__ import annotations

import math
from datetime import datetime, timezone

__all__ = ["duration", "printable", "timestamp"]


def printable(text: str) -> str:
    """``text`` with control characters escaped, so stored data cannot drive the terminal."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode() for ch in text)


def timestamp(seconds: float, now: float) -> str:
    """``seconds`` as an ISO time in UTC, with how long ago or from now it is."""
    if not math.isfinite(seconds):
        return "never"
    when = datetime.fromtimestamp(seconds, tz=timezone.utc).isoformat(timespec="seconds")
    delta = seconds - now
    span = duration(abs(delta))
    return f"{when.replace('+00:00', 'Z')} ({'in ' + span if delta > 0 else span + ' ago'})"


def duration(seconds: float) -> str:
    """A short rounded span: 90s, 5m, 3h, 2d."""
    seconds = int(seconds)
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    if seconds < 172800:
        return f"{seconds // 3600}h"
    return f"{seconds // 86400}d"
