"""What the store tests share: the instant they write at, valid keys, names no other test uses,
and the check that an outage fails fast.

Store operations take their times as arguments, so these tests need no clock at all: every
record is written at :data:`NOW`, a whole second fixed for the run, and a test moves time by
passing a later instant.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from coatcheck.stores import AsyncStore, Store

__all__ = ["DAY", "HOUR", "NOW", "key", "unavailable_within", "unique"]

NOW = float(int(time.time()))
HOUR = 3600.0
DAY = 86400.0


def key(n: int | str) -> str:
    """The store key of record ``n``: 64 lowercase hex digits, as the core's storage keys are."""
    return hashlib.sha256(f"store-{n}".encode()).hexdigest()


def unique(stem: str) -> str:
    """``stem`` and 12 random hex digits: a table name or key prefix no other test uses."""
    return f"{stem}{uuid.uuid4().hex[:12]}"


@contextmanager
def unavailable_within(
    store: Store | AsyncStore, seconds: float, *, after: float = 0.0
) -> Iterator[None]:
    """The block must fail with one of ``store``'s unavailable errors in under ``seconds``; with
    ``after``, in more than that too (a timeout that was waited out, not an instant refusal)."""
    started = time.monotonic()
    with pytest.raises(store.unavailable_errors):
        yield
    elapsed = time.monotonic() - started
    assert elapsed < seconds
    if after:
        assert elapsed > after
