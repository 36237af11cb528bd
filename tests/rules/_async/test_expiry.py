"""The session rules through the manager: idle and absolute timeouts, touches, clock steps and
cleanup (sync twin generated)."""

from __future__ import annotations

import pytest

from coatcheck import AsyncSessionManager
from coatcheck.stores import AsyncStore
from coatcheck.testing import FrozenClock

from ...support._async.backends import NATIVE_TTL
from ._support import IDLE, RULE_BACKENDS, manager_for, raw_record, stored

# -- timeouts, touch, clock ----------------------------------------------------------------


@pytest.mark.asyncio
async def test_idle_timeout_slides_and_expired_session_is_deleted_on_access(
    manager: AsyncSessionManager, async_store: AsyncStore, clock: FrozenClock
) -> None:
    ticket, _ = await stored(manager, n=1)
    clock.advance(IDLE - 1)
    alive = await manager.open(ticket)
    assert alive["n"] == 1
    await manager.save(alive)  # touches: older than the access resolution
    clock.advance(IDLE - 1)
    assert (await manager.open(ticket))["n"] == 1
    clock.advance(IDLE + 1)
    assert (await manager.open(ticket)).is_new
    assert await raw_record(async_store, ticket, clock()) is None


@pytest.mark.asyncio
async def test_absolute_timeout_ends_even_an_active_session(
    async_store: AsyncStore, clock: FrozenClock
) -> None:
    manager = manager_for(async_store, clock, idle_timeout=600, absolute_timeout=3600)
    ticket, _ = await stored(manager, n=1)
    for _ in range(59):
        clock.advance(60)
        session = await manager.open(ticket)
        assert session["n"] == 1
        session["n"] = 1  # a write every minute
        await manager.save(session)
    clock.advance(60)
    assert (await manager.open(ticket)).is_new


@pytest.mark.asyncio
async def test_read_only_request_touches_only_past_the_resolution(
    manager: AsyncSessionManager, async_store: AsyncStore, clock: FrozenClock
) -> None:
    ticket, _ = await stored(manager, n=1)
    created = clock()
    clock.advance(30)
    session = await manager.open(ticket)
    assert session["n"] == 1
    assert (await manager.save(session)).headers == [("Vary", "Cookie")]
    record = await raw_record(async_store, ticket, clock())
    assert record is not None
    assert (record.version, record.accessed_at) == (1, pytest.approx(created))
    clock.advance(31)
    await manager.save(await manager.open(ticket))
    record = await raw_record(async_store, ticket, clock())
    assert record is not None
    assert record.version == 1  # a touch never rewrites the payload
    assert record.accessed_at == pytest.approx(clock())
    assert record.expires_at == pytest.approx(clock() + IDLE)


@pytest.mark.asyncio
async def test_clock_stepping_back_breaks_nothing(
    manager: AsyncSessionManager, async_store: AsyncStore, clock: FrozenClock
) -> None:
    ticket, _ = await stored(manager, n=1)
    clock.advance(-3600)
    session = await manager.open(ticket)
    assert session["n"] == 1
    session["n"] = 2
    await manager.save(session)
    record = await raw_record(async_store, ticket, clock())
    assert record is not None and record.accessed_at <= clock()


@pytest.mark.asyncio
async def test_adjust_time_keeps_sessions_alive_across_a_clock_jump(
    manager: AsyncSessionManager, clock: FrozenClock
) -> None:
    ticket, _ = await stored(manager, n=1)
    clock.advance(86_400)
    manager.adjust_time(86_400)
    assert (await manager.open(ticket))["n"] == 1


@pytest.mark.asyncio
async def test_cleanup_removes_expired_sessions(
    manager: AsyncSessionManager, async_store: AsyncStore, clock: FrozenClock, backend: str
) -> None:
    await stored(manager, n=1)
    await stored(manager, n=2)
    clock.advance(IDLE / 2)
    live, _ = await stored(manager, n=3)
    clock.advance(IDLE / 2 + 1)
    removed = await manager.cleanup()
    if backend in NATIVE_TTL:
        assert removed == 0
    else:
        assert removed == 2
        assert await async_store.count(clock()) == 1
    assert (await manager.open(live))["n"] == 3


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "backend",
    [b for b in RULE_BACKENDS if b.values[0] not in NATIVE_TTL],
)
async def test_probabilistic_cleanup_runs_on_save(
    async_store: AsyncStore, clock: FrozenClock
) -> None:
    # Stores with native TTL expire records themselves, so they are left out here.
    never = manager_for(async_store, clock, cleanup_probability=0.0)
    always = manager_for(async_store, clock, cleanup_probability=1.0)
    await stored(never, n=1)
    ticket, _ = await stored(never, n=2)

    async def write_at(manager: AsyncSessionManager, seconds_later: float) -> tuple[int, int]:
        clock.advance(seconds_later)
        session = await manager.open(ticket)
        session["n"] += 1
        await manager.save(session)
        stats = await async_store.stats(clock())
        assert stats.live is not None and stats.expired is not None
        return stats.live, stats.expired

    # The second session is kept alive by writes; the first one expires at IDLE.
    assert await write_at(never, IDLE / 2) == (2, 0)
    assert await write_at(never, IDLE / 2 + 1) == (1, 1)  # expired, but nobody purged it
    assert await write_at(always, 1) == (1, 0)  # this save purged it
