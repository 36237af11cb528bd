"""The contract for the order of lock waiters (``orders_waiters``, :mod:`coatcheck._sansio.line`).

A store whose ``orders_waiters`` is true serves the longest waiter first; one without it hands a
free lock to whoever asks, and these tests check that too, so each store is held to what it
says of itself.
"""

from __future__ import annotations

import time

import pytest

from ..._sansio.line import STALE_AFTER
from ...stores.base import LOCKED, AsyncStore, Load, LockRequest, Record, Sleep, Unlock, Update
from ._helpers import HOUR, NOW, key, put

__all__ = ["AsyncLineContract"]


def _ask(token: str, since: float) -> LockRequest:
    return LockRequest(token, 30.0, since)


class AsyncLineContract:
    """Waiters' order: part of the contract suite (``AsyncStoreContract``)."""

    @pytest.mark.asyncio
    async def test_the_longest_waiter_takes_a_released_lock_first(self, store: AsyncStore) -> None:
        await put(store, key(1))
        assert isinstance(await store.load(Load(key(1), NOW, _ask("a", NOW))), Record)
        # c began waiting after b, but asks first.
        assert await store.load(Load(key(1), NOW + 0.2, _ask("c", NOW + 0.2))) is LOCKED
        assert await store.load(Load(key(1), NOW + 0.3, _ask("b", NOW + 0.1))) is LOCKED
        await store.unlock(Unlock(key(1), "a"))
        late = await store.load(Load(key(1), NOW + 0.4, _ask("c", NOW + 0.2)))
        if not getattr(store, "orders_waiters", False):
            assert isinstance(late, Record)  # no order kept: whoever asks takes it
            return
        assert late is LOCKED  # b is next
        assert isinstance(await store.load(Load(key(1), NOW + 0.5, _ask("b", NOW + 0.1))), Record)
        # b took it: c is next now, and a newcomer that asks first waits behind it.
        assert await store.load(Load(key(1), NOW + 0.6, _ask("c", NOW + 0.2))) is LOCKED
        assert await store.load(Load(key(1), NOW + 0.6, _ask("d", NOW + 0.6))) is LOCKED
        assert await store.update(Update(key(1), b"b", NOW, NOW + HOUR, NOW + 0.7, 1, "b")) == 2
        assert await store.load(Load(key(1), NOW + 0.8, _ask("d", NOW + 0.6))) is LOCKED
        assert isinstance(await store.load(Load(key(1), NOW + 0.8, _ask("c", NOW + 0.2))), Record)

    @pytest.mark.asyncio
    async def test_the_holder_may_load_again_while_others_wait(self, store: AsyncStore) -> None:
        await put(store, key(1))
        assert isinstance(await store.load(Load(key(1), NOW + 1, _ask("a", NOW + 1))), Record)
        assert await store.load(Load(key(1), NOW + 1, _ask("b", NOW))) is LOCKED
        assert isinstance(await store.load(Load(key(1), NOW + 1, _ask("a", NOW + 1))), Record)

    @pytest.mark.asyncio
    async def test_a_waiter_that_stops_asking_is_passed_over(self, store: AsyncStore) -> None:
        await put(store, key(1))
        assert isinstance(await store.load(Load(key(1), NOW, _ask("a", NOW))), Record)
        assert await store.load(Load(key(1), NOW, _ask("b", NOW))) is LOCKED
        await store.unlock(Unlock(key(1), "a"))
        later = NOW + STALE_AFTER
        assert isinstance(await store.load(Load(key(1), later, _ask("c", later))), Record)

    @pytest.mark.asyncio
    async def test_a_waiter_that_gives_up_leaves_its_place(self, store: AsyncStore) -> None:
        await put(store, key(1))
        assert isinstance(await store.load(Load(key(1), NOW, _ask("a", NOW))), Record)
        assert await store.load(Load(key(1), NOW, _ask("b", NOW))) is LOCKED
        await store.unlock(Unlock(key(1), "b"))  # b's place goes; a still holds the lock
        assert await store.load(Load(key(1), NOW, _ask("c", NOW))) is LOCKED
        await store.unlock(Unlock(key(1), "a"))
        assert isinstance(await store.load(Load(key(1), NOW, _ask("c", NOW))), Record)

    @pytest.mark.asyncio
    async def test_an_expired_lock_goes_to_the_longest_waiter(self, store: AsyncStore) -> None:
        await put(store, key(1))
        short = LockRequest("a", 1.0, NOW)
        assert isinstance(await store.load(Load(key(1), NOW, short)), Record)
        assert await store.load(Load(key(1), NOW + 0.5, _ask("b", NOW + 0.5))) is LOCKED
        late = await store.load(Load(key(1), NOW + 1.2, _ask("c", NOW + 1.2)))
        if getattr(store, "orders_waiters", False):
            assert late is LOCKED
            assert isinstance(await store.load(Load(key(1), NOW + 1.3, _ask("b", NOW))), Record)
        else:
            assert isinstance(late, Record)

    @pytest.mark.asyncio
    async def test_wait_released_returns_within_its_time(self, store: AsyncStore) -> None:
        wait = getattr(store, "wait_released", None)
        if wait is None:
            return  # optional: the caller sleeps instead
        await put(store, key(1))
        assert isinstance(await store.load(Load(key(1), NOW, _ask("a", NOW))), Record)
        assert await store.load(Load(key(1), NOW, _ask("b", NOW))) is LOCKED
        started = time.monotonic()
        await wait(Sleep(0.2, key(1), "b"))  # nobody releases: the whole pause
        assert 0.15 <= time.monotonic() - started < 2.0
        # Free already: no wait at all.
        await store.unlock(Unlock(key(1), "a"))
        started = time.monotonic()
        await wait(Sleep(5.0, key(1), "b"))
        assert time.monotonic() - started < 1.0
        assert isinstance(await store.load(Load(key(1), NOW, _ask("b", NOW))), Record)
