"""A session's own lifetime (Session.set_lifetime) through the manager, on every store,
including the two that slide the idle timeout inside the load (sync twin generated)."""

from __future__ import annotations

import pytest

from coatcheck import AsyncSessionManager, ConfigurationError
from coatcheck.stores import AsyncStore
from coatcheck.testing import FrozenClock

from ...support._async.backends import BACKENDS
from ._support import ABSOLUTE, IDLE, raw_record, stored

DAY = 24 * 3600.0
WEEK = 7 * DAY


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


def cookie(outcome_headers: list[tuple[str, str]]) -> str | None:
    values = [value for name, value in outcome_headers if name == "Set-Cookie"]
    assert len(values) <= 1
    return values[0] if values else None


async def remembered(manager: AsyncSessionManager) -> str:
    """A stored session with a week of idle timeout and a week-long cookie; its ticket."""
    ticket, _ = await stored(manager, n=1)
    again = await manager.open(ticket)
    again.set_lifetime(idle_timeout=WEEK, absolute_timeout=None, cookie_max_age=int(WEEK))
    outcome = await manager.save(again)
    header = cookie(outcome.headers)
    assert header is not None and f"Max-Age={int(WEEK)}" in header and "Expires=" in header
    return ticket


@pytest.mark.asyncio
async def test_a_longer_own_lifetime_outlives_the_managers_timeouts(
    manager: AsyncSessionManager, async_store: AsyncStore, clock: FrozenClock
) -> None:
    ticket = await remembered(manager)
    record = await raw_record(async_store, ticket, clock())
    assert record is not None and record.expires_at == pytest.approx(clock() + WEEK)
    # Past the manager's idle timeout, and later past its absolute one: still alive.
    for step in (IDLE + 60, ABSOLUTE, 3 * DAY):
        clock.advance(step)
        session = await manager.open(ticket)
        assert not session.is_new and session["n"] == 1
        assert session.own_lifetime == {
            "idle_timeout": WEEK,
            "absolute_timeout": None,
            "cookie_max_age": int(WEEK),
        }
        outcome = await manager.save(session)  # a touch, by the session's own timeout
        record = await raw_record(async_store, ticket, clock())
        assert record is not None and record.expires_at == pytest.approx(clock() + WEEK)
        header = cookie(outcome.headers)  # the cookie's expiry moves with the touch
        assert header is not None and f"Max-Age={int(WEEK)}" in header
    clock.advance(WEEK + 1)
    assert (await manager.open(ticket)).is_new
    assert await raw_record(async_store, ticket, clock()) is None


@pytest.mark.asyncio
async def test_a_shorter_own_idle_timeout_ends_the_session_sooner(
    manager: AsyncSessionManager, clock: FrozenClock
) -> None:
    ticket, _ = await stored(manager, n=1)
    session = await manager.open(ticket)
    session.set_lifetime(idle_timeout=60)
    await manager.save(session)
    clock.advance(59)
    session = await manager.open(ticket)
    assert session["n"] == 1
    await manager.save(session)  # within the access resolution: no touch
    clock.advance(2)  # 61 s after the last touch
    assert (await manager.open(ticket)).is_new


@pytest.mark.asyncio
async def test_an_own_absolute_timeout_caps_an_active_session(
    manager: AsyncSessionManager, clock: FrozenClock
) -> None:
    ticket, _ = await stored(manager, n=1)
    session = await manager.open(ticket)
    session.set_lifetime(absolute_timeout=600)
    await manager.save(session)
    for _ in range(9):
        clock.advance(60)
        session = await manager.open(ticket)
        assert session["n"] == 1
        await manager.save(session)
    clock.advance(61)
    assert (await manager.open(ticket)).is_new


@pytest.mark.asyncio
async def test_a_slid_load_is_put_right_by_the_save_or_by_an_abandon(
    manager: AsyncSessionManager, async_store: AsyncStore, clock: FrozenClock
) -> None:
    # Redis and memory slide by the manager's idle timeout inside the load; a session with a
    # lifetime of its own must end up with its own expiry whether its request saves or fails.
    ticket = await remembered(manager)
    for finish in ("save", "abandon"):
        clock.advance(120)  # past the access resolution, within the manager's idle timeout
        session = await manager.open(ticket)
        assert session["n"] == 1
        if finish == "save":
            await manager.save(session)
        else:
            await manager.abandon(session)
        record = await raw_record(async_store, ticket, clock())
        assert record is not None, finish
        assert record.expires_at == pytest.approx(clock() + WEEK), finish


@pytest.mark.asyncio
async def test_reset_lifetime_brings_back_the_managers_and_a_browser_session_cookie(
    manager: AsyncSessionManager, async_store: AsyncStore, clock: FrozenClock
) -> None:
    ticket = await remembered(manager)
    session = await manager.open(ticket)
    session.reset_lifetime()
    assert session.own_lifetime == {} and session.modified
    header = cookie((await manager.save(session)).headers)
    assert header is not None and "Max-Age" not in header and "Expires" not in header
    record = await raw_record(async_store, ticket, clock())
    assert record is not None and record.expires_at == pytest.approx(clock() + IDLE)
    clock.advance(IDLE + 1)
    assert (await manager.open(ticket)).is_new


@pytest.mark.asyncio
async def test_a_lifetime_and_a_concurrent_write_both_survive_a_merge(
    manager: AsyncSessionManager, clock: FrozenClock
) -> None:
    ticket, _ = await stored(manager, n=1)
    first = await manager.open(ticket)
    second = await manager.open(ticket)
    first.set_lifetime(idle_timeout=WEEK)
    second["m"] = 2
    await manager.save(second)
    await manager.save(first)  # merges onto second's version
    clock.advance(IDLE + 60)
    session = await manager.open(ticket)
    assert dict(session) == {"n": 1, "m": 2}
    assert session.own_lifetime == {"idle_timeout": WEEK}


@pytest.mark.asyncio
async def test_bad_lifetimes_are_refused_at_once(manager: AsyncSessionManager) -> None:
    session = await manager.open(None)
    for bad in (
        {"idle_timeout": -1},
        {"idle_timeout": float("nan")},
        {"absolute_timeout": float("inf")},
        {"idle_timeout": True},
        {"cookie_max_age": 1.5},
        {"cookie_max_age": 401 * 24 * 3600},
    ):
        with pytest.raises(ConfigurationError):
            session.set_lifetime(**bad)
    with pytest.raises(ConfigurationError, match="cannot both be off"):
        session.set_lifetime(idle_timeout=None, absolute_timeout=None)
    assert session.own_lifetime == {} and not session.modified
