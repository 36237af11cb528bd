"""MemcachedStore under contention: compare-and-set counters against concurrent touches."""

from __future__ import annotations

import asyncio
from functools import partial

import pytest

from coatcheck.stores import Create, Load, Record, Touch, Update
from coatcheck.stores._async.memcached import AsyncMemcachedStore
from coatcheck.stores._sync.memcached import MemcachedStore
from tests.support.threads import run_threads

from .._support import HOUR, NOW, key
from .._workers import increment

pytestmark = pytest.mark.server("memcached")


def run_touches(store: MemcachedStore, k: str, times: int) -> None:
    for n in range(times):
        # A touch changes the cas id but not the version: updates must retry, not give up.
        assert store.touch(Touch(k, NOW + n, NOW + HOUR, NOW))


def test_concurrent_cas_increments_from_threads_end_exact(url: str, prefix: str) -> None:
    counters, increments = 8, 40
    store = MemcachedStore(url=url, prefix=prefix, pool_size=counters + 1)
    k = key("counter")
    assert store.create(Create(k, b"0", NOW, NOW + HOUR, NOW))
    work = [partial(increment, store, k, increments, NOW)] * counters
    work.append(partial(run_touches, store, k, 100))
    run_threads(lambda job: job(), [(job,) for job in work])
    record = store.load(Load(k, NOW))
    assert isinstance(record, Record)
    assert int(record.payload) == counters * increments
    assert record.version == counters * increments + 1
    store.close()


@pytest.mark.asyncio
async def test_concurrent_async_increments_end_exact(url: str, prefix: str) -> None:
    store = AsyncMemcachedStore(url=url, prefix=prefix, pool_size=4)
    k = key("counter")
    assert await store.create(Create(k, b"0", NOW, NOW + HOUR, NOW))

    async def blind_increments(n: int) -> None:
        for _ in range(n):
            while True:
                record = await store.load(Load(k, NOW))
                assert isinstance(record, Record)
                payload = str(int(record.payload) + 1).encode()
                if await store.update(Update(k, payload, NOW, NOW + HOUR, NOW, record.version)):
                    break

    async def touches(n: int) -> None:
        for _ in range(n):
            assert await store.touch(Touch(k, NOW, NOW + HOUR, NOW))

    await asyncio.gather(*(blind_increments(25) for _ in range(6)), touches(50))
    record = await store.load(Load(k, NOW))
    assert isinstance(record, Record)
    assert (int(record.payload), record.version) == (150, 151)
    await store.aclose()
