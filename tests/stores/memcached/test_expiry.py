"""MemcachedStore's native TTLs: the 30-day rule, and what every write and lock sets."""

from __future__ import annotations

import pytest
from pymemcache.client.base import Client

from coatcheck.stores import Create, Load, LockRequest, Record, Touch, Update
from coatcheck.stores._sync.memcached import MemcachedStore

from .._support import DAY, NOW, key

pytestmark = pytest.mark.server("memcached")


# An absolute exptime is rounded up to the next second, and memcached reads the time left
# against its own clock, whole seconds that tick once a second from a start it backdates
# (memcached.c, clock_handler): the TTL it reports may exceed the one asked for by 3 s.
ABSOLUTE_SLACK = 3


def remaining_ttl(raw: Client, item: str) -> int | None:
    """Seconds the server will keep ``item``, via the meta protocol (``mg <key> t``)."""
    reply = raw.raw_command(f"mg {item} t".encode(), b"\r\n").decode()
    if reply.startswith("EN"):
        return None
    flags = {token[0]: token[1:] for token in reply.split()[1:]}
    return int(flags["t"])


def test_ttl_beyond_thirty_days_becomes_an_absolute_time(
    url: str, raw: Client, prefix: str
) -> None:
    store = MemcachedStore(url=url, prefix=prefix)
    assert store.create(Create(key(1), b"long", NOW, NOW + 31 * DAY, NOW))
    assert store.create(Create(key(2), b"short", NOW, NOW + 29 * DAY, NOW))
    record = store.load(Load(key(1), NOW))
    assert isinstance(record, Record)
    assert record.payload == b"long"
    # Sent as a relative 31 days, memcached would read it as a date in 1970: gone at once.
    ttl = remaining_ttl(raw, prefix + key(1))
    assert ttl is not None
    assert 31 * DAY - 5 <= ttl <= 31 * DAY + ABSOLUTE_SLACK
    ttl = remaining_ttl(raw, prefix + key(2))
    assert ttl is not None
    assert 29 * DAY - 5 <= ttl <= 29 * DAY
    store.close()


def test_touch_update_and_locks_set_native_ttls(url: str, raw: Client, prefix: str) -> None:
    store = MemcachedStore(url=url, prefix=prefix)
    assert store.create(Create(key(1), b"x", NOW, NOW + 100, NOW))
    assert 95 <= (remaining_ttl(raw, prefix + key(1)) or 0) <= 100
    assert store.touch(Touch(key(1), NOW + 1, NOW + 5000, NOW + 1))
    assert 4995 <= (remaining_ttl(raw, prefix + key(1)) or 0) <= 5000
    record = store.load(Load(key(1), NOW))
    assert isinstance(record, Record)
    assert (record.payload, record.version, record.accessed_at) == (b"x", 1, NOW + 1)
    assert store.update(Update(key(1), b"y", NOW, NOW + 40 * DAY, NOW, 1)) == 2
    assert 40 * DAY - 5 <= (remaining_ttl(raw, prefix + key(1)) or 0) <= 40 * DAY + ABSOLUTE_SLACK
    assert isinstance(store.load(Load(key(1), NOW, LockRequest("t", 30.0))), Record)
    assert 25 <= (remaining_ttl(raw, prefix + key(1) + ":lock") or 0) <= 30
    # A deadline already past gets the one-second floor, never 0 (which would mean "forever").
    assert store.touch(Touch(key(1), NOW, NOW - 5, NOW))
    assert 0 <= (remaining_ttl(raw, prefix + key(1)) or 0) <= 1
    store.close()
