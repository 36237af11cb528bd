"""What the ``coatcheck`` command writes to a terminal: safe text, times, and a progress bar."""

from __future__ import annotations

import math
from datetime import datetime, timezone
from typing import IO

__all__ = ["Progress", "duration", "printable", "timestamp"]


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


class Progress:
    """A progress report on ``stream``: a redrawn bar on a terminal, plain lines otherwise.

    ``total`` may be ``None`` (unknown); the bar then shows a count only.
    """

    WIDTH = 30

    def __init__(self, stream: IO[str], total: int | None, label: str) -> None:
        self.stream = stream
        self.total = total
        self.label = label
        isatty = getattr(stream, "isatty", None)
        self.tty = bool(isatty and isatty())
        self._drawn = False

    def update(self, done: int) -> None:
        """Report that ``done`` items are finished so far."""
        total = self.total
        if self.tty:
            if total:
                filled = min(self.WIDTH, self.WIDTH * done // total)
                bar = "#" * filled + "." * (self.WIDTH - filled)
                text = f"\r{self.label} [{bar}] {done}/{total}"
            else:
                text = f"\r{self.label} {done}"
            self.stream.write(text)
            self._drawn = True
        else:
            of = f" of {total}" if total is not None else ""
            self.stream.write(f"{self.label}: {done}{of}\n")
        self.stream.flush()

    def finish(self) -> None:
        """End the bar's line on a terminal."""
        if self.tty and self._drawn:
            self.stream.write("\n")
            self.stream.flush()
