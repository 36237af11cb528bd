"""RedisStore's native TTLs: set by every write, refreshed by touch, moved by a slide."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import redis
import redis.asyncio

from coatcheck.stores import Create, Damaged, Load, LockRequest, Record, Slide, Touch, Update
from coatcheck.stores._sync.redis import RedisStore

from .._support import HOUR, NOW, key

pytestmark = pytest.mark.server("redis")


def test_ttl_is_native_refreshed_by_touch_and_floored_at_one_second(
    url: str, raw: redis.Redis, new_prefix: Callable[[], str]
) -> None:
    prefix = new_prefix()
    store = RedisStore(url=url, prefix=prefix)
    record_key = f"{prefix}{{{key(1)}}}"
    assert store.create(Create(key(1), b"x", NOW, NOW + 100, NOW))
    assert 99_000 < raw.pttl(record_key) <= 100_000
    assert store.touch(Touch(key(1), NOW, NOW + 5000, NOW))
    assert 4_999_000 < raw.pttl(record_key) <= 5_000_000
    assert store.update(Update(key(1), b"y", NOW, NOW + 200, NOW, None)) == 2
    assert 199_000 < raw.pttl(record_key) <= 200_000
    # A deadline already past still gets a (one-second) TTL rather than an error or no TTL.
    assert store.touch(Touch(key(1), NOW, NOW - 5, NOW))
    assert 0 < raw.pttl(record_key) <= 1000
    # The lock key expires by itself too, as a safety net for a holder that died.
    assert store.create(Create(key(2), b"x", NOW, NOW + HOUR, NOW))
    assert isinstance(store.load(Load(key(2), NOW, LockRequest("t", 30.0))), Record)
    assert 29_000 < raw.pttl(f"{prefix}{{{key(2)}}}:lock") <= 30_000
    store.close()


def test_a_slide_moves_the_native_ttl_only_when_it_slides(
    url: str, raw: redis.Redis, new_prefix: Callable[[], str]
) -> None:
    prefix = new_prefix()
    store = RedisStore(url=url, prefix=prefix)
    record_key, lock_key = f"{prefix}{{{key(1)}}}", f"{prefix}{{{key(1)}}}:lock"
    assert store.create(Create(key(1), b"x", NOW, NOW + 100, NOW))
    # Fresh (accessed after stale_before): neither the times nor the TTL move.
    fresh = store.load(Load(key(1), NOW + 30, None, Slide(NOW + 30, NOW + 5000, NOW - 30)))
    assert fresh == Record(b"x", 1, NOW, NOW + 100)
    assert 99_000 < raw.pttl(record_key) <= 100_000
    # Stale: the 16 time bytes and the TTL move together, in the load's one script.
    slid = store.load(Load(key(1), NOW + 60, None, Slide(NOW + 60, NOW + 5000, NOW + 30)))
    assert slid == Record(b"x", 1, NOW + 60, NOW + 5000)
    assert store.load(Load(key(1), NOW + 60)) == slid
    assert 4_939_000 < raw.pttl(record_key) <= 4_940_000  # expires_at - now
    # The locked load slides too, and its lock gets its own TTL.
    locked = store.load(
        Load(key(1), NOW + 120, LockRequest("t", 30.0), Slide(NOW + 120, NOW + 7000, NOW + 60))
    )
    assert locked == Record(b"x", 1, NOW + 120, NOW + 7000)
    assert 6_879_000 < raw.pttl(record_key) <= 6_880_000
    assert 29_000 < raw.pttl(lock_key) <= 30_000
    # A value some other program wrote is never slid (nor overwritten); load reports damage.
    raw.set(f"{prefix}{{{key(2)}}}", b"not a coatcheck record", px=100_000)
    slide = Slide(NOW + 60, NOW + 5000, NOW + 30)
    assert store.load(Load(key(2), NOW + 60, None, slide)) == Damaged("foreign-record")
    assert raw.get(f"{prefix}{{{key(2)}}}") == b"not a coatcheck record"
    assert 99_000 < raw.pttl(f"{prefix}{{{key(2)}}}") <= 100_000
    store.close()
