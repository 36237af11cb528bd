"""MemcachedStore's clients and configuration: its pool, clients passed in, prefixes, URLs."""

from __future__ import annotations

import time
from collections.abc import Callable

import aiomcache
import pytest
from pymemcache.client.base import Client

from coatcheck.errors import ConfigurationError
from coatcheck.stores import Create, Delete, Load, Record, Update
from coatcheck.stores._async.memcached import AsyncMemcachedStore
from coatcheck.stores._sync.memcached import MemcachedStore
from tests.support.threads import run_threads

from .._support import HOUR, NOW, key
from ._probes import CountingRelay

pytestmark = pytest.mark.server("memcached")


def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> bool:
    """Poll ``condition`` (the relay's threads see a socket close a moment after it happens)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_the_pool_keeps_at_most_pool_size_idle_connections(
    relay: CountingRelay, prefix: str
) -> None:
    store = MemcachedStore(url=relay.url, prefix=prefix, pool_size=2)
    assert store.create(Create(key(1), b"x", NOW, NOW + HOUR, NOW))
    failures: list[object] = []

    def loads() -> None:
        for _ in range(40):
            record = store.load(Load(key(1), NOW))
            if not isinstance(record, Record):
                failures.append(record)

    run_threads(loads, [()] * 8)
    assert failures == []
    # Clients beyond pool_size that a burst opened were closed when they came back.
    assert wait_until(lambda: relay.open <= 2), relay.open
    assert store.load(Load(key(1), NOW)) is not None
    store.close()
    assert wait_until(lambda: relay.open == 0), relay.open


def test_a_client_passed_in_stays_open(server: tuple[str, int], prefix: str) -> None:
    client = Client(server)
    store = MemcachedStore(client, prefix=prefix)
    assert store.create(Create(key(1), b"x", NOW, NOW + HOUR, NOW))
    sock = client.sock
    store.close()
    assert client.sock is sock is not None
    assert client.get(prefix + key(1)) is not None
    client.close()


@pytest.mark.asyncio
async def test_async_client_passed_in_stays_open(server: tuple[str, int], prefix: str) -> None:
    client = aiomcache.Client(server[0], server[1])
    store = AsyncMemcachedStore(client, prefix=prefix)
    assert await store.create(Create(key(1), b"x", NOW, NOW + HOUR, NOW))
    await store.aclose()
    assert await client.get((prefix + key(1)).encode()) is not None
    await client.close()


def test_bad_prefixes_and_keys_are_refused(url: str) -> None:
    for bad in ["a b", "tab\t", "new\nline", "\x00", "ünï:", "x" * 182]:
        with pytest.raises(ConfigurationError):
            MemcachedStore(url=url, prefix=bad)
    MemcachedStore(url=url, prefix="x" * 181).close()  # 181 + 64 + ":lock" = 250 bytes
    store = MemcachedStore(url=url, prefix="ok:")
    for bad_key in ["", "a b", "é", "\x00", "k" * 246]:
        with pytest.raises(ValueError, match="invalid store key"):
            store.load(Load(bad_key, NOW))
    store.close()
    for bad_url in ["memcached://", "redis://localhost:11211", "memcached://h?pool_size=0"]:
        with pytest.raises(ConfigurationError):
            MemcachedStore.from_url(bad_url)
    with pytest.raises(ConfigurationError):
        MemcachedStore.from_url("memcached://h?timeout=soon")
    with pytest.raises(ConfigurationError):
        MemcachedStore.from_url("memcached://h?colour=blue")
    with pytest.raises(ConfigurationError):
        MemcachedStore()


def test_from_url_options_and_name(url: str, raw: Client, prefix: str) -> None:
    store = MemcachedStore.from_url(f"{url}?prefix={prefix}&timeout=2&pool_size=3")
    assert store.name == f"{url} prefix={prefix!r}"
    assert store.create(Create(key(1), b"x", NOW, NOW + HOUR, NOW))
    assert raw.get(prefix + key(1)) is not None
    store.close()


def test_two_prefixes_are_isolated(url: str, prefix: str, raw: Client) -> None:
    other = prefix + "b:"
    app_a = MemcachedStore(url=url, prefix=prefix)
    app_b = MemcachedStore(url=url, prefix=other)
    assert app_a.create(Create(key(1), b"a", NOW, NOW + HOUR, NOW))
    assert app_b.load(Load(key(1), NOW)) is None
    assert app_b.update(Update(key(1), b"b", NOW, NOW + HOUR, NOW, None)) is None
    assert app_b.create(Create(key(1), b"b", NOW, NOW + HOUR, NOW))
    app_b.delete(Delete(key(1)))
    record = app_a.load(Load(key(1), NOW))
    assert isinstance(record, Record)
    assert record.payload == b"a"
    app_a.close()
    app_b.close()
