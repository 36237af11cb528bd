"""The store contract (coatcheck.stores.base), checked against every store in BACKENDS."""

from __future__ import annotations

import hashlib
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from coatcheck.stores import LOCKED, AsyncStore, LockRequest, Record, Slide

from .backends import BACKENDS, NATIVE_TTL, async_store_for

# Times near the real clock, so stores with native TTLs see sensible lifetimes.
NOW = float(int(time.time()))
HOUR = 3600.0


def key(n: int | str) -> str:
    return hashlib.sha256(f"contract-{n}".encode()).hexdigest()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest_asyncio.fixture
async def async_store(backend: str, tmp_path: Path) -> AsyncIterator[AsyncStore]:
    async with async_store_for(backend, tmp_path) as store:
        yield store


async def put(store: AsyncStore, k: str, payload: bytes = b"data", ttl: float = HOUR) -> None:
    assert await store.create(k, payload, NOW, NOW + ttl, NOW) is True


@pytest.mark.asyncio
async def test_load_of_missing_key_is_none(async_store: AsyncStore) -> None:
    assert await async_store.load(key("missing"), NOW) is None


@pytest.mark.asyncio
async def test_create_then_load_returns_version_1(async_store: AsyncStore) -> None:
    await put(async_store, key(1), b"hello")
    record = await async_store.load(key(1), NOW)
    assert isinstance(record, Record)
    assert record.payload == b"hello"
    assert record.version == 1
    assert record.accessed_at == pytest.approx(NOW, abs=1e-3)
    assert record.expires_at == pytest.approx(NOW + HOUR, abs=1e-3)


@pytest.mark.asyncio
async def test_create_reports_collision_and_changes_nothing(async_store: AsyncStore) -> None:
    await put(async_store, key(1), b"first")
    assert await async_store.create(key(1), b"second", NOW + 1, NOW + 2 * HOUR, NOW + 1) is False
    record = await async_store.load(key(1), NOW + 1)
    assert isinstance(record, Record)
    assert (record.payload, record.version) == (b"first", 1)


@pytest.mark.asyncio
async def test_update_is_compare_and_set_on_version(async_store: AsyncStore) -> None:
    await put(async_store, key(1), b"v1")
    assert await async_store.update(key(1), b"v2", NOW + 5, NOW + HOUR + 5, NOW + 5, 1) == 2
    # A writer that loaded version 1 lost the race: nothing changes.
    assert await async_store.update(key(1), b"stale", NOW + 6, NOW + HOUR, NOW + 6, 1) is None
    record = await async_store.load(key(1), NOW + 6)
    assert isinstance(record, Record)
    assert (record.payload, record.version) == (b"v2", 2)
    assert record.accessed_at == pytest.approx(NOW + 5, abs=1e-3)
    assert record.expires_at == pytest.approx(NOW + HOUR + 5, abs=1e-3)
    # No expected version: last writer wins, but the version still moves.
    assert await async_store.update(key(1), b"v3", NOW + 7, NOW + HOUR, NOW + 7, None) == 3


@pytest.mark.asyncio
async def test_update_never_resurrects_a_deleted_record(async_store: AsyncStore) -> None:
    await put(async_store, key(1))
    await async_store.delete(key(1))
    assert await async_store.update(key(1), b"late", NOW, NOW + HOUR, NOW, 1) is None
    assert await async_store.update(key(1), b"late", NOW, NOW + HOUR, NOW, None) is None
    assert await async_store.load(key(1), NOW) is None
    assert await async_store.update(key("never"), b"x", NOW, NOW + HOUR, NOW, None) is None
    assert await async_store.load(key("never"), NOW) is None


@pytest.mark.asyncio
async def test_delete_is_idempotent_and_isolated(async_store: AsyncStore) -> None:
    await put(async_store, key(1), b"one")
    await put(async_store, key(2), b"two")
    await async_store.delete(key(1))
    await async_store.delete(key(1))
    await async_store.delete(key("never"))
    assert await async_store.load(key(1), NOW) is None
    other = await async_store.load(key(2), NOW)
    assert isinstance(other, Record)
    assert other.payload == b"two"


@pytest.mark.asyncio
async def test_touch_moves_times_only(async_store: AsyncStore) -> None:
    await put(async_store, key(1), b"keep")
    assert await async_store.touch(key(1), NOW + 60, NOW + 60 + HOUR, NOW + 60) is True
    record = await async_store.load(key(1), NOW + 60)
    assert isinstance(record, Record)
    assert (record.payload, record.version) == (b"keep", 1)
    assert record.accessed_at == pytest.approx(NOW + 60, abs=1e-3)
    assert record.expires_at == pytest.approx(NOW + 60 + HOUR, abs=1e-3)


@pytest.mark.asyncio
async def test_touch_of_missing_record_creates_nothing(async_store: AsyncStore) -> None:
    assert await async_store.touch(key("never"), NOW, NOW + HOUR, NOW) is False
    assert await async_store.load(key("never"), NOW) is None


@pytest.mark.asyncio
async def test_payload_bytes_round_trip_exactly(async_store: AsyncStore) -> None:
    payloads = [b"", bytes(range(256)), b"\x00" * 10, "ünï\u2028".encode(), b"x" * 500_000]
    for n, payload in enumerate(payloads):
        await put(async_store, key(f"bytes-{n}"), payload)
    for n, payload in enumerate(payloads):
        record = await async_store.load(key(f"bytes-{n}"), NOW)
        assert isinstance(record, Record)
        assert record.payload == payload


@pytest.mark.asyncio
async def test_lock_excludes_other_tokens_until_released(async_store: AsyncStore) -> None:
    await put(async_store, key(1))
    a, b = LockRequest("token-a", 30.0), LockRequest("token-b", 30.0)
    assert isinstance(await async_store.load(key(1), NOW, a), Record)
    assert await async_store.load(key(1), NOW, b) is LOCKED
    # The holder may load again; a plain load is never blocked (locks are advisory).
    assert isinstance(await async_store.load(key(1), NOW, a), Record)
    assert isinstance(await async_store.load(key(1), NOW), Record)
    await async_store.unlock(key(1), "token-b")  # not the holder: no effect
    assert await async_store.load(key(1), NOW, b) is LOCKED
    await async_store.unlock(key(1), "token-a")
    assert isinstance(await async_store.load(key(1), NOW, b), Record)


@pytest.mark.asyncio
async def test_lock_expires_by_the_callers_clock(async_store: AsyncStore) -> None:
    await put(async_store, key(1))
    assert isinstance(await async_store.load(key(1), NOW, LockRequest("a", 10.0)), Record)
    assert await async_store.load(key(1), NOW + 5, LockRequest("b", 10.0)) is LOCKED
    assert isinstance(await async_store.load(key(1), NOW + 11, LockRequest("b", 10.0)), Record)
    assert await async_store.load(key(1), NOW + 12, LockRequest("a", 10.0)) is LOCKED


@pytest.mark.asyncio
async def test_successful_update_and_touch_release_the_lock(async_store: AsyncStore) -> None:
    await put(async_store, key(1))
    assert isinstance(await async_store.load(key(1), NOW, LockRequest("a", 30.0)), Record)
    assert await async_store.update(key(1), b"new", NOW, NOW + HOUR, NOW, 1, unlock="a") == 2
    assert isinstance(await async_store.load(key(1), NOW, LockRequest("b", 30.0)), Record)
    assert await async_store.touch(key(1), NOW + 1, NOW + HOUR, NOW + 1, unlock="b") is True
    assert isinstance(await async_store.load(key(1), NOW + 1, LockRequest("c", 30.0)), Record)


@pytest.mark.asyncio
async def test_failed_update_keeps_the_lock(async_store: AsyncStore) -> None:
    await put(async_store, key(1))
    assert isinstance(await async_store.load(key(1), NOW, LockRequest("a", 30.0)), Record)
    assert await async_store.update(key(1), b"x", NOW, NOW + HOUR, NOW, 7, unlock="a") is None
    assert await async_store.load(key(1), NOW, LockRequest("b", 30.0)) is LOCKED


@pytest.mark.asyncio
async def test_no_lock_without_a_record_and_delete_drops_the_lock(
    async_store: AsyncStore,
) -> None:
    assert await async_store.load(key(1), NOW, LockRequest("a", 30.0)) is None
    await put(async_store, key(1))
    assert isinstance(await async_store.load(key(1), NOW, LockRequest("b", 30.0)), Record)
    await async_store.delete(key(1))
    await put(async_store, key(1))
    assert isinstance(await async_store.load(key(1), NOW, LockRequest("c", 30.0)), Record)


@pytest.mark.asyncio
async def test_clear_expired_removes_only_the_dead(async_store: AsyncStore, backend: str) -> None:
    await put(async_store, key("short-1"), ttl=10)
    await put(async_store, key("short-2"), ttl=10)
    await put(async_store, key("long"), ttl=HOUR)
    later = NOW + 20
    removed = await async_store.clear_expired(later)
    if backend in NATIVE_TTL:
        assert removed == 0
    else:
        assert removed == 2
        assert await async_store.load(key("short-1"), later) is None
        assert await async_store.clear_expired(later) == 0
    assert isinstance(await async_store.load(key("long"), later), Record)
    count = await async_store.count(later)
    assert count is None or count == 1


@pytest.mark.asyncio
async def test_count_and_stats(async_store: AsyncStore, backend: str) -> None:
    await put(async_store, key(1), b"12345", ttl=10)
    await put(async_store, key(2), b"123", ttl=HOUR)
    count = await async_store.count(NOW)
    stats = await async_store.stats(NOW + 20)
    if count is not None:
        assert count == 2
        # Live by the caller's clock (the contract), even where the server still holds the key.
        assert await async_store.count(NOW + 20) == 1
    if stats.live is not None and backend not in NATIVE_TTL:
        assert (stats.live, stats.expired) == (1, 1)
    if stats.payload_bytes is not None:
        assert stats.payload_bytes == 8


@pytest.mark.asyncio
async def test_writes_with_a_past_deadline_do_not_fail(async_store: AsyncStore) -> None:
    # The core never asks for this, but a store must not turn it into a backend error.
    assert await async_store.create(key(1), b"x", NOW, NOW - 5, NOW) is True
    await async_store.update(key(1), b"y", NOW, NOW - 5, NOW, None)
    await async_store.touch(key(1), NOW, NOW - 5, NOW)


@pytest.mark.asyncio
async def test_hostile_keys_never_match_another_record(async_store: AsyncStore) -> None:
    # The core validates ids before any store call; with that bypassed, a store must either
    # refuse the key (ValueError) or treat it as just another key.
    await put(async_store, key(1), b"victim")
    hostile = ["' OR '1'='1", "%", "_", "*", "?", "[a-f]*", "../" + key(1), "a b", "", "\x00"]
    for bad in hostile:
        try:
            result = await async_store.load(bad, NOW)
        except ValueError:
            continue
        assert result is None, bad
    record = await async_store.load(key(1), NOW)
    assert isinstance(record, Record)
    assert record.payload == b"victim"


@pytest.mark.asyncio
async def test_versions_are_per_record(async_store: AsyncStore) -> None:
    await put(async_store, key(1))
    await put(async_store, key(2))
    assert await async_store.update(key(1), b"a", NOW, NOW + HOUR, NOW, 1) == 2
    assert await async_store.update(key(1), b"b", NOW, NOW + HOUR, NOW, 2) == 3
    assert await async_store.update(key(2), b"c", NOW, NOW + HOUR, NOW, 1) == 2


# -- load with a slide (the idle timeout's touch inside the load) ----------------------------

# The stored accessed_at is NOW; a slide made at NOW + 120 with the default 60 s resolution.
STALE = Slide(NOW + 120, NOW + 120 + HOUR, NOW + 60)


async def stored_times(store: AsyncStore, k: str, now: float) -> tuple[float, float]:
    record = await store.load(k, now)
    assert isinstance(record, Record)
    return record.accessed_at, record.expires_at


@pytest.mark.asyncio
async def test_load_slides_a_stale_live_record_as_touch_would(async_store: AsyncStore) -> None:
    await put(async_store, key(1), b"keep")
    record = await async_store.load(key(1), NOW + 120, None, STALE)
    assert isinstance(record, Record)
    assert (record.payload, record.version) == (b"keep", 1)
    if async_store.slides_on_load:
        # Exactly the slide's times, returned and stored (as touch would store them).
        assert (record.accessed_at, record.expires_at) == (NOW + 120, NOW + 120 + HOUR)
        assert await stored_times(async_store, key(1), NOW + 120) == (NOW + 120, NOW + 120 + HOUR)
    else:
        # A store that cannot slide in one step ignores the slide: the core touches instead.
        assert (record.accessed_at, record.expires_at) == (
            pytest.approx(NOW, abs=1e-3),
            pytest.approx(NOW + HOUR, abs=1e-3),
        )
        assert await stored_times(async_store, key(1), NOW + 120) == (
            pytest.approx(NOW, abs=1e-3),
            pytest.approx(NOW + HOUR, abs=1e-3),
        )
    # Version and payload untouched: a writer that loaded version 1 still wins its update.
    assert await async_store.update(key(1), b"next", NOW + 121, NOW + HOUR, NOW + 121, 1) == 2


@pytest.mark.asyncio
async def test_load_slides_at_the_stale_boundary_only(async_store: AsyncStore) -> None:
    await put(async_store, key("fresh"))
    await put(async_store, key("edge"))
    fresh = await async_store.load(
        key("fresh"), NOW + 30, None, Slide(NOW + 30, NOW + HOUR, NOW - 30)
    )
    assert isinstance(fresh, Record)
    assert (fresh.accessed_at, fresh.expires_at) == (
        pytest.approx(NOW, abs=1e-3),
        pytest.approx(NOW + HOUR, abs=1e-3),
    )
    assert await stored_times(async_store, key("fresh"), NOW + 30) == (
        pytest.approx(NOW, abs=1e-3),
        pytest.approx(NOW + HOUR, abs=1e-3),
    )
    # accessed_at == stale_before is stale.
    edge = await async_store.load(key("edge"), NOW + 60, None, Slide(NOW + 60, NOW + 2 * HOUR, NOW))
    assert isinstance(edge, Record)
    if async_store.slides_on_load:
        assert (edge.accessed_at, edge.expires_at) == (NOW + 60, NOW + 2 * HOUR)
    else:
        assert edge.accessed_at == pytest.approx(NOW, abs=1e-3)


@pytest.mark.asyncio
async def test_load_never_slides_an_expired_record(async_store: AsyncStore) -> None:
    await put(async_store, key("dead"), ttl=10)
    for now in (NOW + 10, NOW + 20):  # expires_at == now is dead already
        slide = Slide(now, now + HOUR, now)  # stale: only its death stops the slide
        record = await async_store.load(key("dead"), now, None, slide)
        # The contract lets a store return a dead record or treat it as absent.
        assert record is None or (
            isinstance(record, Record)
            and record.accessed_at == pytest.approx(NOW, abs=1e-3)
            and record.expires_at == pytest.approx(NOW + 10, abs=1e-3)
        )
    record = await async_store.load(key("dead"), NOW)
    assert record is None or record == Record(
        b"data", 1, pytest.approx(NOW, abs=1e-3), pytest.approx(NOW + 10, abs=1e-3)
    )


@pytest.mark.asyncio
async def test_load_never_slides_a_record_idle_since_alive_after(async_store: AsyncStore) -> None:
    # Alive by its stored expiry (written under a longer idle timeout), but last accessed at
    # or before alive_after: idle-dead by the current timeout, so it must not come back.
    await put(async_store, key("idle"))
    for alive_after in (NOW, NOW + 1):
        slide = Slide(NOW + 120, NOW + 120 + HOUR, NOW + 60, alive_after)
        record = await async_store.load(key("idle"), NOW + 120, None, slide)
        assert isinstance(record, Record)
        assert record.accessed_at == pytest.approx(NOW, abs=1e-3)
        record = await async_store.load(key("idle"), NOW + 120, LockRequest("a", 30.0), slide)
        assert isinstance(record, Record)
        assert record.accessed_at == pytest.approx(NOW, abs=1e-3)
        await async_store.unlock(key("idle"), "a")
    assert await stored_times(async_store, key("idle"), NOW + 120) == (
        pytest.approx(NOW, abs=1e-3),
        pytest.approx(NOW + HOUR, abs=1e-3),
    )
    # Just after alive_after it is still alive, and slides.
    slide = Slide(NOW + 120, NOW + 120 + HOUR, NOW + 60, NOW - 1)
    record = await async_store.load(key("idle"), NOW + 120, None, slide)
    assert isinstance(record, Record)
    if async_store.slides_on_load:
        assert (record.accessed_at, record.expires_at) == (NOW + 120, NOW + 120 + HOUR)


@pytest.mark.asyncio
async def test_load_with_a_slide_creates_nothing(async_store: AsyncStore) -> None:
    assert await async_store.load(key("never"), NOW + 120, None, STALE) is None
    assert await async_store.load(key("never"), NOW + 120, LockRequest("a", 30.0), STALE) is None
    assert await async_store.load(key("never"), NOW + 120) is None


@pytest.mark.asyncio
async def test_locked_load_slides_only_when_it_takes_the_lock(async_store: AsyncStore) -> None:
    await put(async_store, key(1), b"keep")
    assert isinstance(await async_store.load(key(1), NOW + 120, LockRequest("a", 30.0)), Record)
    # Another token finds the lock held: LOCKED, and nothing changes, not even the times.
    assert await async_store.load(key(1), NOW + 120, LockRequest("b", 30.0), STALE) is LOCKED
    assert await stored_times(async_store, key(1), NOW + 120) == (
        pytest.approx(NOW, abs=1e-3),
        pytest.approx(NOW + HOUR, abs=1e-3),
    )
    # The holder (or anyone once it is released) loads, locks and slides in one step.
    record = await async_store.load(key(1), NOW + 120, LockRequest("a", 30.0), STALE)
    assert isinstance(record, Record)
    assert (record.payload, record.version) == (b"keep", 1)
    if async_store.slides_on_load:
        assert (record.accessed_at, record.expires_at) == (NOW + 120, NOW + 120 + HOUR)
        assert await stored_times(async_store, key(1), NOW + 120) == (NOW + 120, NOW + 120 + HOUR)
    assert await async_store.load(key(1), NOW + 120, LockRequest("b", 30.0), STALE) is LOCKED
    assert await async_store.touch(key(1), NOW + 121, NOW + HOUR, NOW + 121, unlock="a") is True
    assert isinstance(await async_store.load(key(1), NOW + 121, LockRequest("b", 30.0)), Record)
