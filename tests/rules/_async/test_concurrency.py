"""The concurrency modes through the manager, in deterministic interleavings: merge, none and
lock (sync twin generated; real threads and processes are in tests/concurrency)."""

from __future__ import annotations

from typing import Any

import pytest

from coatcheck import (
    AsyncSessionManager,
    SerializationError,
    SessionConflict,
    SessionError,
    SessionInterrupted,
    SessionLocked,
)
from coatcheck._sansio.session import Session
from coatcheck.stores import AsyncStore
from coatcheck.testing import FrozenClock

from ._support import manager_for, raw_record, stored

# -- concurrency modes (deterministic interleavings) ----------------------------------------


async def two_requests(
    manager: AsyncSessionManager, ticket: str, **options: Any
) -> tuple[Session, Session]:
    return await manager.open(ticket, **options), await manager.open(ticket, **options)


@pytest.mark.asyncio
async def test_merge_keeps_both_writers_of_distinct_keys(
    manager: AsyncSessionManager, async_store: AsyncStore, clock: FrozenClock
) -> None:
    assert manager.config.concurrency == "merge"  # the default
    ticket, _ = await stored(manager, gone="x", kept=1)
    first, second = await two_requests(manager, ticket)
    first["a"] = 1
    del first["gone"]
    second["b"] = 2
    second.namespace("shop")["cart"] = ["pen"]
    await manager.save(first)
    await manager.save(second)
    final = await manager.open(ticket)
    assert dict(final) == {"kept": 1, "a": 1, "b": 2}
    assert final.namespace("shop")["cart"] == ["pen"]
    record = await raw_record(async_store, ticket, clock())
    assert record is not None and record.version == 3


@pytest.mark.asyncio
async def test_merge_same_key_last_writer_wins_or_raises(
    async_store: AsyncStore, clock: FrozenClock
) -> None:
    lenient = manager_for(async_store, clock)
    strict = manager_for(async_store, clock, merge_conflict="raise")
    ticket, _ = await stored(lenient, x=0)
    first, second = await two_requests(lenient, ticket)
    first["x"], second["x"] = 1, 2
    await lenient.save(first)
    await lenient.save(second)
    assert (await lenient.open(ticket))["x"] == 2
    first, second = await two_requests(strict, ticket)
    first["x"], second["x"] = 3, 4
    second["y"] = "also dropped"
    await strict.save(first)
    with pytest.raises(SessionConflict) as info:
        await strict.save(second)
    assert info.value.keys == ["x"]
    assert dict(await strict.open(ticket)) == {"x": 3}


@pytest.mark.asyncio
async def test_merge_replays_whole_session_after_mark_modified(
    manager: AsyncSessionManager,
) -> None:
    ticket, _ = await stored(manager, items=[1])
    first, second = await two_requests(manager, ticket)
    first["items"].append(2)
    first.mark_modified()
    second["other"] = True
    await manager.save(second)
    await manager.save(first)
    assert dict(await manager.open(ticket)) == {"items": [1, 2], "other": True}


@pytest.mark.asyncio
async def test_merge_keeps_form_tokens_and_flash_of_both_requests(
    manager: AsyncSessionManager,
) -> None:
    session = await manager.open(None)
    old_token = session.create_form_token()
    session.flash("old")
    ticket = (await manager.save(session)).ticket
    assert ticket is not None
    first, second = await two_requests(manager, ticket)
    new_token = first.create_form_token()
    first.flash("from first")
    assert second.consume_form_token(old_token)
    assert second.pop_flashed() == [("message", "old")]
    await manager.save(first)
    await manager.save(second)
    final = await manager.open(ticket)
    assert final.has_form_token(new_token) and not final.has_form_token(old_token)
    assert final.pop_flashed() == [("message", "from first")]


@pytest.mark.asyncio
async def test_none_mode_lets_the_last_writer_win(
    async_store: AsyncStore, clock: FrozenClock
) -> None:
    manager = manager_for(async_store, clock, concurrency="none")
    ticket, _ = await stored(manager, n=0)
    first, second = await two_requests(manager, ticket)
    first["a"], second["b"] = 1, 2
    await manager.save(first)
    await manager.save(second)
    assert dict(await manager.open(ticket)) == {"n": 0, "b": 2}  # "a" was lost, as documented


@pytest.mark.asyncio
@pytest.mark.parametrize("mode", ["none", "merge", "lock"])
async def test_destroy_stays_destroyed_in_every_mode(
    async_store: AsyncStore, clock: FrozenClock, mode: str
) -> None:
    manager = manager_for(async_store, clock, concurrency=mode, lock_wait=0)
    ticket, _ = await stored(manager, n=0)
    slow = await manager.open(ticket, concurrency="merge" if mode == "lock" else None)
    logout = await manager.open(ticket)
    logout.destroy()
    await manager.save(logout)
    slow["n"] = 1
    with pytest.raises(SessionInterrupted):
        await manager.save(slow)
    assert await raw_record(async_store, ticket, clock()) is None
    assert (await manager.open(ticket)).is_new


@pytest.mark.asyncio
async def test_regenerate_kills_the_old_id_for_concurrent_writers(
    manager: AsyncSessionManager,
) -> None:
    ticket, _ = await stored(manager, n=0)
    login, slow = await two_requests(manager, ticket)
    login.user = "alice"
    login.regenerate()
    new_ticket = (await manager.save(login)).ticket
    slow["n"] = 1
    with pytest.raises(SessionInterrupted):
        await manager.save(slow)
    assert new_ticket is not None
    assert (await manager.open(new_ticket)).user == "alice"
    assert (await manager.open(ticket)).is_new


@pytest.mark.asyncio
async def test_lock_mode_excludes_a_second_request_until_save(
    async_store: AsyncStore, clock: FrozenClock
) -> None:
    manager = manager_for(async_store, clock, concurrency="lock", lock_wait=0)
    ticket, _ = await stored(manager, n=0)
    holder = await manager.open(ticket)
    assert holder.lock_token is not None
    with pytest.raises(SessionLocked):
        await manager.open(ticket)
    # Reading never takes the lock, so it is never blocked by one.
    reader = await manager.open(ticket, read_only=True)
    assert reader["n"] == 0 and reader.lock_token is None
    holder["n"] = 1
    await manager.save(holder)
    nxt = await manager.open(ticket)
    assert nxt["n"] == 1
    await manager.save(nxt)  # unmodified: releases the lock without writing
    assert (await manager.open(ticket))["n"] == 1


@pytest.mark.asyncio
async def test_lock_is_released_on_abandon_and_on_failed_save(
    async_store: AsyncStore, clock: FrozenClock
) -> None:
    manager = manager_for(async_store, clock, concurrency="lock", lock_wait=0)
    ticket, _ = await stored(manager, n=0)
    holder = await manager.open(ticket)
    await manager.abandon(holder)
    holder = await manager.open(ticket)
    holder["bad"] = object()
    with pytest.raises(SerializationError):
        await manager.save(holder)
    assert (await manager.open(ticket))["n"] == 0


@pytest.mark.asyncio
async def test_lock_of_a_dead_holder_expires(async_store: AsyncStore, clock: FrozenClock) -> None:
    manager = manager_for(async_store, clock, concurrency="lock", lock_wait=0, lock_timeout=5)
    ticket, _ = await stored(manager, n=0)
    await manager.open(ticket)  # this request "dies" without saving
    with pytest.raises(SessionLocked):
        await manager.open(ticket)
    clock.advance(6)
    assert (await manager.open(ticket))["n"] == 0


@pytest.mark.asyncio
async def test_lock_waits_for_a_release(async_store: AsyncStore, clock: FrozenClock) -> None:
    manager = manager_for(async_store, clock, concurrency="lock", lock_wait=0.02)
    ticket, _ = await stored(manager, n=0)
    await manager.open(ticket)
    with pytest.raises(SessionLocked):
        await manager.open(ticket)  # waited (polling with back-off), then gave up


@pytest.mark.asyncio
async def test_read_only_request_never_writes(
    manager: AsyncSessionManager, async_store: AsyncStore, clock: FrozenClock
) -> None:
    ticket, _ = await stored(manager, n=0)
    clock.advance(manager.config.access_resolution + 1)
    session = await manager.open(ticket, read_only=True)
    with pytest.raises(SessionError):
        session["n"] = 1
    with pytest.raises(SessionError):
        session.destroy()
    await manager.save(session)
    record = await raw_record(async_store, ticket, clock())
    assert record is not None and record.accessed_at < clock()  # not even a touch
