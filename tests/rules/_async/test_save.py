"""The session rules through the manager: what a save writes. Modification, regeneration,
destruction, limits and payloads that cannot be read (sync twin generated)."""

from __future__ import annotations

import pytest

from coatcheck import (
    AsyncSessionManager,
    PayloadTooLarge,
    SerializationError,
    SessionDestroyed,
    SessionInterrupted,
)
from coatcheck._sansio.ids import storage_key
from coatcheck.stores import AsyncStore, Update
from coatcheck.testing import FrozenClock

from ._support import ABSOLUTE, IDLE, manager_for, raw_record, security_events, stored

# -- modification, regeneration, destruction -----------------------------------------------


@pytest.mark.asyncio
async def test_save_only_when_modified(
    manager: AsyncSessionManager, async_store: AsyncStore, clock: FrozenClock
) -> None:
    ticket, _ = await stored(manager, items=[1])
    session = await manager.open(ticket)
    session["items"].append(2)  # invisible to the mapping...
    assert not session.modified
    await manager.save(session)
    assert (await manager.open(ticket))["items"] == [1]
    session = await manager.open(ticket)
    session["items"].append(2)
    session.mark_modified("items")  # ...until marked
    await manager.save(session)
    assert (await manager.open(ticket))["items"] == [1, 2]
    record = await raw_record(async_store, ticket, clock())
    assert record is not None and record.version == 2


@pytest.mark.asyncio
async def test_regenerate_keeps_data_and_kills_the_old_id(
    manager: AsyncSessionManager, async_store: AsyncStore, clock: FrozenClock
) -> None:
    old, _ = await stored(manager, cart=["x"])
    session = await manager.open(old)
    session.user = "alice"
    session.regenerate()
    outcome = await manager.save(session)
    assert outcome.ticket is not None and outcome.ticket != old
    assert await raw_record(async_store, old, clock()) is None
    assert (await manager.open(old)).is_new
    fresh = await manager.open(outcome.ticket)
    assert fresh["cart"] == ["x"] and fresh.user == "alice"


@pytest.mark.asyncio
async def test_regenerate_every_request(async_store: AsyncStore, clock: FrozenClock) -> None:
    manager = manager_for(async_store, clock, regenerate_every_request=True)
    ticket, _ = await stored(manager, n=1)
    session = await manager.open(ticket)
    outcome = await manager.save(session)
    assert outcome.ticket not in (None, ticket)
    assert (await manager.open(ticket)).is_new
    assert outcome.ticket is not None
    assert (await manager.open(outcome.ticket))["n"] == 1


@pytest.mark.asyncio
async def test_destroy_deletes_record_and_cookie(
    manager: AsyncSessionManager, async_store: AsyncStore, clock: FrozenClock
) -> None:
    ticket, _ = await stored(manager, n=1)
    session = await manager.open(ticket)
    session.destroy()
    with pytest.raises(SessionDestroyed):
        session["n"] = 2
    outcome = await manager.save(session)
    assert outcome.cleared
    cookie = dict(outcome.headers)["Set-Cookie"]
    assert cookie.startswith("session=;") and "Max-Age=0" in cookie and "Path=/" in cookie
    assert await raw_record(async_store, ticket, clock()) is None
    replay = await manager.open(ticket)
    assert replay.is_new


@pytest.mark.asyncio
async def test_destroy_without_cookie_sets_no_cookie(manager: AsyncSessionManager) -> None:
    session = await manager.open(None)
    session.destroy()
    outcome = await manager.save(session)
    assert outcome.headers == [("Vary", "Cookie")]


@pytest.mark.asyncio
async def test_emptied_session_is_saved_not_deleted(
    manager: AsyncSessionManager, async_store: AsyncStore, clock: FrozenClock
) -> None:
    # Only destroy() deletes: deleting a session because *this* request emptied it would
    # throw away what a concurrent request wrote meanwhile.
    ticket, _ = await stored(manager, n=1)
    session = await manager.open(ticket)
    del session["n"]
    outcome = await manager.save(session)
    assert not outcome.cleared
    record = await raw_record(async_store, ticket, clock())
    assert record is not None and record.version == 2
    assert dict(await manager.open(ticket)) == {}


@pytest.mark.asyncio
async def test_late_save_never_resurrects_a_destroyed_session(
    manager: AsyncSessionManager,
    async_store: AsyncStore,
    clock: FrozenClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    ticket, _ = await stored(manager, n=1)
    slow = await manager.open(ticket)
    logout = await manager.open(ticket)
    logout.destroy()
    await manager.save(logout)
    slow["n"] = 2
    with security_events(caplog) as reasons, pytest.raises(SessionInterrupted):
        await manager.save(slow)
    assert reasons == ["session-interrupted"]
    assert await raw_record(async_store, ticket, clock()) is None


# -- limits and bad payloads ---------------------------------------------------------------


@pytest.mark.asyncio
async def test_payload_too_large_keeps_the_stored_data(
    async_store: AsyncStore, clock: FrozenClock
) -> None:
    manager = manager_for(async_store, clock, max_payload_bytes=2000)
    ticket, _ = await stored(manager, small="x")
    session = await manager.open(ticket)
    session["big"] = "y" * 2000
    with pytest.raises(PayloadTooLarge):
        await manager.save(session)
    again = await manager.open(ticket)
    assert dict(again) == {"small": "x"}


@pytest.mark.asyncio
async def test_unserializable_value_names_the_key_and_keeps_the_stored_data(
    manager: AsyncSessionManager,
) -> None:
    ticket, _ = await stored(manager, ok=1)
    session = await manager.open(ticket)
    session["handler"] = lambda: None
    with pytest.raises(SerializationError) as info:
        await manager.save(session)
    assert info.value.key == "handler" and "handler" in str(info.value)
    assert dict(await manager.open(ticket)) == {"ok": 1}


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"", "corrupt-payload"),
        (b"\x80\x04garbage", "corrupt-payload"),
        (b'cc2:json:{"d":', "corrupt-payload"),
        (b"cc2:json:[1,2]", "corrupt-payload"),
        # The creation time is whole milliseconds since version 2.
        (b'cc2:json:{"c":1.5}', "corrupt-payload"),
        (b'cc2:json:{"":{"n":1}}', "corrupt-payload"),  # no creation time
        (b'cc2:json:{"c":1,"":[1]}', "corrupt-payload"),  # a namespace that is no mapping
        (b'cc2:json:{"c":1,"n":{"app":1}}', "corrupt-payload"),
        (b'cc2:json:{"c":1,"n":[]}', "corrupt-payload"),
        (b'cc2:json:{"c":1,"n":{"":{"n":1}}}', "corrupt-payload"),  # the default, twice
        (b'cc3:json:{"d":{},"m":{"c":1}}', "foreign-format"),
        (b'cc1:json:{"d":{},"m":{"c":1.5}}', "foreign-format"),  # an older version's payload
        (b'cc2:msgpack:{"d":{},"m":{"c":1}}', "foreign-format"),
    ],
)
async def test_corrupt_payload_gives_fresh_session_and_is_deleted(
    manager: AsyncSessionManager,
    async_store: AsyncStore,
    clock: FrozenClock,
    caplog: pytest.LogCaptureFixture,
    payload: bytes,
    reason: str,
) -> None:
    ticket, _ = await stored(manager, n=1)
    key = storage_key(ticket)
    assert await async_store.update(Update(key, payload, clock(), clock() + IDLE, clock(), None))
    with security_events(caplog) as reasons:
        session = await manager.open(ticket)
    assert session.is_new and reasons == [reason]
    assert await raw_record(async_store, ticket, clock()) is None


@pytest.mark.asyncio
async def test_created_at_is_kept_in_whole_milliseconds_and_survives_a_reload(
    async_store: AsyncStore, clock: FrozenClock
) -> None:
    manager = manager_for(async_store, clock, idle_timeout=None)
    clock.advance(0.4351826)
    ticket, session = await stored(manager, n=1)
    assert session.created_at == int(clock() * 1000) / 1000 != clock()
    clock.advance(10)
    again = await manager.open(ticket)
    assert not again.is_new and again.created_at == session.created_at
    # The absolute timeout counts from that same (rounded) instant.
    clock.now = session.created_at + ABSOLUTE - 0.0005
    assert not (await manager.open(ticket)).is_new
    clock.now = session.created_at + ABSOLUTE
    assert (await manager.open(ticket)).is_new


@pytest.mark.asyncio
async def test_user_data_cannot_spoof_metadata(
    manager: AsyncSessionManager, clock: FrozenClock
) -> None:
    ticket, session = await stored(manager, c=0, m={"c": 0}, d={}, u="mallory")
    again = await manager.open(ticket)
    assert again.created_at == session.created_at == clock()
    assert again.user is None
    assert dict(again) == {"c": 0, "m": {"c": 0}, "d": {}, "u": "mallory"}
