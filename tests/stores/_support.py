"""What the store tests share: the instant they write at, valid keys, names no other test uses.

Store operations take their times as arguments, so these tests need no clock at all: every
record is written at :data:`NOW`, a whole second fixed for the run, and a test moves time by
passing a later instant.
"""

from __future__ import annotations

import hashlib
import time
import uuid

__all__ = ["DAY", "HOUR", "NOW", "key", "unique"]

NOW = float(int(time.time()))
HOUR = 3600.0
DAY = 86400.0


def key(n: int | str) -> str:
    """The store key of record ``n``: 64 lowercase hex digits, as the core's storage keys are."""
    return hashlib.sha256(f"store-{n}".encode()).hexdigest()


def unique(stem: str) -> str:
    """``stem`` and 12 random hex digits: a table name or key prefix no other test uses."""
    return f"{stem}{uuid.uuid4().hex[:12]}"
