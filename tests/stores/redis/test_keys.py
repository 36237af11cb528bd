"""RedisStore's key layout: prefixes, hash tags, what count and stats see, what is refused."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import redis
import redis.asyncio
from redis.crc import key_slot

from coatcheck.errors import ConfigurationError
from coatcheck.stores import Create, Delete, Load, LockRequest, Record, Touch, Update
from coatcheck.stores._sync.redis import RedisStore

from .._support import HOUR, NOW, key

pytestmark = pytest.mark.server("redis")


def test_keys_carry_the_prefix_and_share_a_hash_tag_with_the_lock(
    url: str, raw: redis.Redis, new_prefix: Callable[[], str]
) -> None:
    prefix = new_prefix()
    store = RedisStore(url=url, prefix=prefix)
    assert store.create(Create(key(1), b"x", NOW, NOW + HOUR, NOW))
    assert isinstance(store.load(Load(key(1), NOW, LockRequest("t", 30.0))), Record)
    record_key, lock_key = f"{prefix}{{{key(1)}}}", f"{prefix}{{{key(1)}}}:lock"
    assert sorted(raw.scan_iter(match=prefix + "*")) == [record_key.encode(), lock_key.encode()]
    assert key_slot(record_key.encode()) == key_slot(lock_key.encode()) == key_slot(key(1).encode())
    store.close()


def test_two_prefixes_are_isolated(url: str, new_prefix: Callable[[], str]) -> None:
    app_a = RedisStore(url=url, prefix=new_prefix())
    app_b = RedisStore(url=url, prefix=new_prefix())
    assert app_a.create(Create(key(1), b"a", NOW, NOW + HOUR, NOW))
    assert app_b.load(Load(key(1), NOW)) is None
    assert app_b.update(Update(key(1), b"b", NOW, NOW + HOUR, NOW, None)) is None
    assert app_b.touch(Touch(key(1), NOW, NOW + HOUR, NOW)) is False
    assert app_b.create(Create(key(1), b"b", NOW, NOW + HOUR, NOW))
    app_b.delete(Delete(key(1)))
    record = app_a.load(Load(key(1), NOW))
    assert isinstance(record, Record)
    assert (record.payload, record.version) == (b"a", 1)
    assert (app_a.count(NOW), app_b.count(NOW)) == (1, 0)
    app_a.close()
    app_b.close()


def test_count_and_stats_scan_only_this_prefix_and_skip_locks(
    url: str, new_prefix: Callable[[], str]
) -> None:
    prefix = new_prefix()
    store = RedisStore(url=url, prefix=prefix)
    neighbour = RedisStore(url=url, prefix=prefix + "x")  # a prefix that extends ours
    for n in range(2500):  # more than one SCAN batch
        assert store.create(Create(key(n), b"12", NOW, NOW + (10 if n % 5 == 0 else HOUR), NOW))
    assert neighbour.create(Create(key("n"), b"zzz", NOW, NOW + HOUR, NOW))
    assert isinstance(store.load(Load(key(1), NOW, LockRequest("t", 30.0))), Record)
    assert store.count(NOW) == 2500
    stats = store.stats(NOW + 20)
    assert (stats.live, stats.expired, stats.payload_bytes) == (2000, 500, 5000)
    store.close()
    neighbour.close()


def test_bad_prefixes_and_keys_are_refused(url: str) -> None:
    for bad in ["", "a b", "a\tb", "a*", "a?", "a[b]", "{app}:", "a}", "\x00", "new\nline"]:
        with pytest.raises(ConfigurationError):
            RedisStore(url=url, prefix=bad)
    store = RedisStore(url=url, prefix="ok:")
    for bad_key in ["", "a{b", "a}b"]:
        with pytest.raises(ValueError, match="invalid store key"):
            store.load(Load(bad_key, NOW))
    store.close()
    with pytest.raises(ConfigurationError):
        RedisStore()
    with pytest.raises(ConfigurationError):
        RedisStore(redis.Redis(decode_responses=True))
