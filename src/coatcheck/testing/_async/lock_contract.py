"""The contract for the per-session lock and for a load that slides the idle timeout."""

from __future__ import annotations

import pytest

from ...stores.base import (
    LOCKED,
    AsyncStore,
    Delete,
    Load,
    LockRequest,
    Record,
    Slide,
    Touch,
    Unlock,
    Update,
)
from ._helpers import HOUR, NOW, close, key, put, stored_times, times

__all__ = ["AsyncLockContract"]

# The stored accessed_at is NOW; a slide made at NOW + 120 with the default 60 s resolution.
STALE = Slide(NOW + 120, NOW + 120 + HOUR, NOW + 60)


class AsyncLockContract:
    """Locks and slides: part of the contract suite (``AsyncStoreContract``)."""

    @pytest.mark.asyncio
    async def test_lock_excludes_other_tokens_until_released(self, store: AsyncStore) -> None:
        await put(store, key(1))
        a, b = LockRequest("token-a", 30.0), LockRequest("token-b", 30.0)
        assert isinstance(await store.load(Load(key(1), NOW, a)), Record)
        assert await store.load(Load(key(1), NOW, b)) is LOCKED
        # The holder may load again; a plain load is never blocked (locks are advisory).
        assert isinstance(await store.load(Load(key(1), NOW, a)), Record)
        assert isinstance(await store.load(Load(key(1), NOW)), Record)
        await store.unlock(Unlock(key(1), "token-b"))  # not the holder: no effect
        assert await store.load(Load(key(1), NOW, b)) is LOCKED
        await store.unlock(Unlock(key(1), "token-a"))
        assert isinstance(await store.load(Load(key(1), NOW, b)), Record)

    @pytest.mark.asyncio
    async def test_lock_expires_by_the_callers_clock(self, store: AsyncStore) -> None:
        await put(store, key(1))
        assert isinstance(await store.load(Load(key(1), NOW, LockRequest("a", 10.0))), Record)
        assert await store.load(Load(key(1), NOW + 5, LockRequest("b", 10.0))) is LOCKED
        assert isinstance(await store.load(Load(key(1), NOW + 11, LockRequest("b", 10.0))), Record)
        assert await store.load(Load(key(1), NOW + 12, LockRequest("a", 10.0))) is LOCKED

    @pytest.mark.asyncio
    async def test_successful_update_and_touch_release_the_lock(self, store: AsyncStore) -> None:
        await put(store, key(1))
        assert isinstance(await store.load(Load(key(1), NOW, LockRequest("a", 30.0))), Record)
        assert await store.update(Update(key(1), b"new", NOW, NOW + HOUR, NOW, 1, unlock="a")) == 2
        assert isinstance(await store.load(Load(key(1), NOW, LockRequest("b", 30.0))), Record)
        assert await store.touch(Touch(key(1), NOW + 1, NOW + HOUR, NOW + 1, unlock="b")) is True
        assert isinstance(await store.load(Load(key(1), NOW + 1, LockRequest("c", 30.0))), Record)

    @pytest.mark.asyncio
    async def test_failed_update_keeps_the_lock(self, store: AsyncStore) -> None:
        await put(store, key(1))
        assert isinstance(await store.load(Load(key(1), NOW, LockRequest("a", 30.0))), Record)
        assert await store.update(Update(key(1), b"x", NOW, NOW + HOUR, NOW, 7, unlock="a")) is None
        assert await store.load(Load(key(1), NOW, LockRequest("b", 30.0))) is LOCKED

    @pytest.mark.asyncio
    async def test_no_lock_without_a_record_and_delete_drops_the_lock(
        self, store: AsyncStore
    ) -> None:
        assert await store.load(Load(key(1), NOW, LockRequest("a", 30.0))) is None
        await put(store, key(1))
        assert isinstance(await store.load(Load(key(1), NOW, LockRequest("b", 30.0))), Record)
        await store.delete(Delete(key(1)))
        await put(store, key(1))
        assert isinstance(await store.load(Load(key(1), NOW, LockRequest("c", 30.0))), Record)

    @pytest.mark.asyncio
    async def test_a_delete_at_the_held_version_drops_the_lock_too(self, store: AsyncStore) -> None:
        # A rotation in lock mode retires the record it holds locked; its new id starts free.
        await put(store, key(1))
        held = await store.load(Load(key(1), NOW, LockRequest("a", 30.0)))
        assert isinstance(held, Record)
        assert await store.delete(Delete(key(1), held.version, held.handle)) is True
        await put(store, key(1))
        assert isinstance(await store.load(Load(key(1), NOW, LockRequest("b", 30.0))), Record)

    @pytest.mark.asyncio
    async def test_load_slides_a_stale_live_record_as_touch_would(self, store: AsyncStore) -> None:
        await put(store, key(1), b"keep")
        record = await store.load(Load(key(1), NOW + 120, None, STALE))
        assert isinstance(record, Record)
        assert (record.payload, record.version) == (b"keep", 1)
        if store.slides_on_load:
            # Exactly the slide's times, returned and stored (as touch would store them).
            assert (record.accessed_at, record.expires_at) == (NOW + 120, NOW + 120 + HOUR)
            assert await stored_times(store, key(1), NOW + 120) == (NOW + 120, NOW + 120 + HOUR)
        else:
            # A store that cannot slide in one step ignores the slide: the core touches instead.
            assert (record.accessed_at, record.expires_at) == close((NOW, NOW + HOUR))
            assert await stored_times(store, key(1), NOW + 120) == close((NOW, NOW + HOUR))
        # Version and payload untouched: a writer that loaded version 1 still wins its update.
        assert await store.update(Update(key(1), b"next", NOW + 121, NOW + HOUR, NOW + 121, 1)) == 2

    @pytest.mark.asyncio
    async def test_load_slides_at_the_stale_boundary_only(self, store: AsyncStore) -> None:
        await put(store, key("fresh"))
        await put(store, key("edge"))
        fresh = await store.load(
            Load(key("fresh"), NOW + 30, None, Slide(NOW + 30, NOW + HOUR, NOW - 30))
        )
        assert isinstance(fresh, Record)
        assert (fresh.accessed_at, fresh.expires_at) == close((NOW, NOW + HOUR))
        assert await stored_times(store, key("fresh"), NOW + 30) == close((NOW, NOW + HOUR))
        # accessed_at == stale_before is stale.
        edge = await store.load(
            Load(key("edge"), NOW + 60, None, Slide(NOW + 60, NOW + 2 * HOUR, NOW))
        )
        assert isinstance(edge, Record)
        if store.slides_on_load:
            assert (edge.accessed_at, edge.expires_at) == (NOW + 60, NOW + 2 * HOUR)
        else:
            assert edge.accessed_at == pytest.approx(NOW, abs=1e-3)

    @pytest.mark.asyncio
    async def test_load_never_slides_an_expired_record(self, store: AsyncStore) -> None:
        await put(store, key("dead"), ttl=10)
        for now in (NOW + 10, NOW + 20):  # expires_at == now is dead already
            slide = Slide(now, now + HOUR, now)  # stale: only its death stops the slide
            record = await store.load(Load(key("dead"), now, None, slide))
            # The contract lets a store return a dead record or treat it as absent.
            assert record is None or (
                isinstance(record, Record)
                and record.accessed_at == pytest.approx(NOW, abs=1e-3)
                and record.expires_at == pytest.approx(NOW + 10, abs=1e-3)
            )
        record = await store.load(Load(key("dead"), NOW))
        assert record is None or (
            isinstance(record, Record)
            and (record.payload, record.version) == (b"data", 1)
            and times(record) == close((NOW, NOW + 10))
        )

    @pytest.mark.asyncio
    async def test_load_never_slides_a_record_idle_since_alive_after(
        self, store: AsyncStore
    ) -> None:
        # Alive by its stored expiry (written under a longer idle timeout), but last accessed at
        # or before alive_after: idle-dead by the current timeout, so it must not come back.
        await put(store, key("idle"))
        for alive_after in (NOW, NOW + 1):
            slide = Slide(NOW + 120, NOW + 120 + HOUR, NOW + 60, alive_after)
            record = await store.load(Load(key("idle"), NOW + 120, None, slide))
            assert isinstance(record, Record)
            assert record.accessed_at == pytest.approx(NOW, abs=1e-3)
            record = await store.load(Load(key("idle"), NOW + 120, LockRequest("a", 30.0), slide))
            assert isinstance(record, Record)
            assert record.accessed_at == pytest.approx(NOW, abs=1e-3)
            await store.unlock(Unlock(key("idle"), "a"))
        assert await stored_times(store, key("idle"), NOW + 120) == close((NOW, NOW + HOUR))
        # Just after alive_after it is still alive, and slides.
        slide = Slide(NOW + 120, NOW + 120 + HOUR, NOW + 60, NOW - 1)
        record = await store.load(Load(key("idle"), NOW + 120, None, slide))
        assert isinstance(record, Record)
        if store.slides_on_load:
            assert (record.accessed_at, record.expires_at) == (NOW + 120, NOW + 120 + HOUR)

    @pytest.mark.asyncio
    async def test_load_with_a_slide_creates_nothing(self, store: AsyncStore) -> None:
        assert await store.load(Load(key("never"), NOW + 120, None, STALE)) is None
        assert (
            await store.load(Load(key("never"), NOW + 120, LockRequest("a", 30.0), STALE)) is None
        )
        assert await store.load(Load(key("never"), NOW + 120)) is None

    @pytest.mark.asyncio
    async def test_locked_load_slides_only_when_it_takes_the_lock(self, store: AsyncStore) -> None:
        await put(store, key(1), b"keep")
        assert isinstance(await store.load(Load(key(1), NOW + 120, LockRequest("a", 30.0))), Record)
        # Another token finds the lock held: LOCKED, and nothing changes, not even the times.
        assert await store.load(Load(key(1), NOW + 120, LockRequest("b", 30.0), STALE)) is LOCKED
        assert await stored_times(store, key(1), NOW + 120) == close((NOW, NOW + HOUR))
        # The holder (or anyone once it is released) loads, locks and slides in one step.
        record = await store.load(Load(key(1), NOW + 120, LockRequest("a", 30.0), STALE))
        assert isinstance(record, Record)
        assert (record.payload, record.version) == (b"keep", 1)
        if store.slides_on_load:
            assert (record.accessed_at, record.expires_at) == (NOW + 120, NOW + 120 + HOUR)
            assert await stored_times(store, key(1), NOW + 120) == (NOW + 120, NOW + 120 + HOUR)
        assert await store.load(Load(key(1), NOW + 120, LockRequest("b", 30.0), STALE)) is LOCKED
        assert (
            await store.touch(Touch(key(1), NOW + 121, NOW + HOUR, NOW + 121, unlock="a")) is True
        )
        assert isinstance(await store.load(Load(key(1), NOW + 121, LockRequest("b", 30.0))), Record)
