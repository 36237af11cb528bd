"""MemcachedStore on a frozen server (SIGSTOP, connections open): every command fails within the
store's ``timeout`` and the store recovers by itself when the server resumes."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from coatcheck.stores import Create, Load, Record, Update
from coatcheck.stores._async.memcached import AsyncMemcachedStore
from coatcheck.stores._sync.memcached import MemcachedStore

from .._frozen import FreezableServer, fails_in_time, freezable_server, frozen
from .._support import HOUR, NOW, key, unique

pytestmark = pytest.mark.server("memcached")

TIMEOUT = 0.5
MARGIN = 0.5  # a busy 2-core machine


@pytest.fixture(scope="module")
def private() -> Iterator[FreezableServer]:
    with freezable_server("memcached") as server:
        yield server


def _url(server: FreezableServer) -> str:
    return f"memcached://127.0.0.1:{server.port}?prefix={unique('freeze:')}&timeout={TIMEOUT}"


def test_a_frozen_server_fails_each_command_in_time(private: FreezableServer) -> None:
    store = MemcachedStore.from_url(_url(private))
    assert store.create(Create(key(1), b"x", NOW, NOW + HOUR, NOW))
    with frozen(private):
        with fails_in_time("memcached sync load", store, under=TIMEOUT + MARGIN):
            store.load(Load(key(1), NOW))
        with fails_in_time("memcached sync update", store, under=TIMEOUT + MARGIN):
            store.update(Update(key(1), b"y", NOW, NOW + HOUR, NOW, None))
        fresh = MemcachedStore.from_url(
            _url(private)
        )  # no connection yet: connecting is bounded too
        with fails_in_time("memcached sync connect", fresh, under=TIMEOUT + MARGIN):
            fresh.load(Load(key(1), NOW))
    assert isinstance(store.load(Load(key(1), NOW)), Record)  # resumed: the next one works
    store.close()
    fresh.close()


@pytest.mark.asyncio
async def test_a_frozen_server_fails_each_command_in_time_async(private: FreezableServer) -> None:
    store = AsyncMemcachedStore.from_url(_url(private))
    assert await store.create(Create(key(1), b"x", NOW, NOW + HOUR, NOW))
    with frozen(private):
        with fails_in_time("memcached async load", store, under=TIMEOUT + MARGIN):
            await store.load(Load(key(1), NOW))
        with fails_in_time("memcached async update", store, under=TIMEOUT + MARGIN):
            await store.update(Update(key(1), b"y", NOW, NOW + HOUR, NOW, None))
        fresh = AsyncMemcachedStore.from_url(_url(private))
        with fails_in_time("memcached async connect", fresh, under=TIMEOUT + MARGIN):
            await fresh.load(Load(key(1), NOW))
    assert isinstance(await store.load(Load(key(1), NOW)), Record)
    await store.aclose()
    await fresh.aclose()
