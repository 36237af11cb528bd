"""What the contract suite's tests share: fixed times, keys, and a few steps they all take."""

from __future__ import annotations

import hashlib
import time

from ...stores.base import AsyncStore, Create, Load, Record

__all__ = ["HOUR", "NOW", "close", "key", "put", "stored_times", "times"]

# Times near the real clock, so stores with native TTLs see sensible lifetimes.
NOW = float(int(time.time()))
HOUR = 3600.0


def key(n: int | str) -> str:
    """A store key (64 hex digits, like the core's) for the test record ``n``."""
    return hashlib.sha256(f"contract-{n}".encode()).hexdigest()


async def put(store: AsyncStore, k: str, payload: bytes = b"data", ttl: float = HOUR) -> None:
    """Create the record ``k`` at NOW, alive for ``ttl`` seconds."""
    assert await store.create(Create(k, payload, NOW, NOW + ttl, NOW)) is True


async def stored_times(store: AsyncStore, k: str, now: float) -> tuple[float, float]:
    """``(accessed_at, expires_at)`` of the stored record ``k``."""
    record = await store.load(Load(k, now))
    assert isinstance(record, Record)
    return record.accessed_at, record.expires_at


def times(record: object) -> tuple[float, float]:
    """``(accessed_at, expires_at)`` of a loaded record."""
    assert isinstance(record, Record)
    return record.accessed_at, record.expires_at


def close(expected: tuple[float, float]) -> tuple[float, float]:
    """``expected``, compared within a millisecond: stores may keep times as floats or text."""
    return _Close(expected[0]), _Close(expected[1])


class _Close(float):
    """A float equal to any number within a millisecond of it (``pytest.approx`` for tuples)."""

    __slots__ = ()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, (int, float)) and abs(float(self) - other) <= 1e-3

    def __ne__(self, other: object) -> bool:
        return not self == other

    __hash__ = float.__hash__
