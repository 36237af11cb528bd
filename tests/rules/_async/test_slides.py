"""The idle timeout's touch inside the load, on stores with ``slides_on_load`` (sync twin
generated)."""

from __future__ import annotations

from typing import Any, cast

import pytest

from coatcheck import AsyncSessionManager
from coatcheck.stores import AsyncStore
from coatcheck.testing import FrozenClock

from ._support import IDLE, manager_for, raw_record, stored

# -- the idle timeout's touch inside the load (stores with slides_on_load) -----------------------


class Recording:
    """A store that also writes down the name of every operation called on it, in order."""

    def __init__(self, store: AsyncStore) -> None:
        self.store = store
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.store, name)
        if not callable(attr):
            return attr  # name, slides_on_load, unavailable_errors

        async def call(*args: Any) -> Any:
            self.calls.append(name)
            return await attr(*args)

        return call


async def request(manager: AsyncSessionManager, ticket: str, recording: Recording) -> list[str]:
    """Open and save one unmodified request; returns the store operations it cost."""
    recording.calls.clear()
    session = await manager.open(ticket)
    assert session["n"] == 1
    await manager.save(session)
    return list(recording.calls)


@pytest.mark.asyncio
@pytest.mark.parametrize("mode", ["merge", "lock"])
async def test_a_stale_read_slides_inside_the_load_where_the_store_can(
    async_store: AsyncStore, clock: FrozenClock, mode: str
) -> None:
    recording = Recording(async_store)
    manager = manager_for(cast(AsyncStore, recording), clock, concurrency=mode)
    ticket, _ = await stored(manager, n=1)
    slides = async_store.slides_on_load
    release = ["unlock"] if mode == "lock" else []
    clock.advance(30)  # within the access resolution: nothing to slide
    assert await request(manager, ticket, recording) == ["load", *release]
    clock.advance(31)  # past it: the load slides, so the save has no touch to do
    stale_read = await request(manager, ticket, recording)
    assert stale_read == (["load", *release] if slides else ["load", "touch"])
    record = await raw_record(async_store, ticket, clock())
    assert record is not None and record.version == 1  # a slide never rewrites the payload
    assert record.accessed_at == pytest.approx(clock())
    assert record.expires_at == pytest.approx(clock() + IDLE)
    clock.advance(30)
    assert await request(manager, ticket, recording) == ["load", *release]
    if mode == "lock":
        assert (await manager.open(ticket)).lock_token is not None  # every lock was released


@pytest.mark.asyncio
async def test_a_slide_past_the_absolute_deadline_is_corrected_by_a_touch(
    async_store: AsyncStore, clock: FrozenClock
) -> None:
    recording = Recording(async_store)
    manager = manager_for(
        cast(AsyncStore, recording), clock, idle_timeout=3000, absolute_timeout=3600
    )
    ticket, _ = await stored(manager, n=1)
    created = clock()
    clock.advance(2900)  # stale, alive, and 700 s before the absolute deadline
    # A sliding store moved the expiry to now + 3000 in the load; the save's touch puts it
    # back to the deadline (a store that does not slide touches anyway).
    assert await request(manager, ticket, recording) == ["load", "touch"]
    record = await raw_record(async_store, ticket, clock())
    assert record is not None
    assert record.accessed_at == pytest.approx(clock())
    assert record.expires_at == pytest.approx(created + 3600)
    clock.advance(701)
    assert (await manager.open(ticket)).is_new


@pytest.mark.asyncio
async def test_an_expired_session_is_never_slid_back_to_life(
    async_store: AsyncStore, clock: FrozenClock
) -> None:
    recording = Recording(async_store)
    manager = manager_for(cast(AsyncStore, recording), clock)
    ticket, _ = await stored(manager, n=1)
    clock.advance(IDLE)  # expires_at == now: dead
    recording.calls.clear()
    assert (await manager.open(ticket)).is_new
    assert recording.calls == ["load", "delete"]
    assert await raw_record(async_store, ticket, clock()) is None


@pytest.mark.asyncio
async def test_a_lowered_idle_timeout_is_not_undone_by_a_slide(
    async_store: AsyncStore, clock: FrozenClock
) -> None:
    # Stored under a 2 h idle timeout; the application restarts with 30 min. A session idle
    # for 40 min is dead by the new setting, although its stored expiry is still ahead.
    long = manager_for(async_store, clock, idle_timeout=7200)
    ticket, _ = await stored(long, n=1)
    clock.advance(40 * 60)
    recording = Recording(async_store)
    short = manager_for(cast(AsyncStore, recording), clock, idle_timeout=30 * 60)
    assert (await short.open(ticket)).is_new
    assert recording.calls == ["load", "delete"]
    assert await raw_record(async_store, ticket, clock()) is None


@pytest.mark.asyncio
async def test_a_request_refused_by_a_binding_does_not_slide_the_session(
    async_store: AsyncStore, clock: FrozenClock
) -> None:
    manager = manager_for(async_store, clock, bind_remote_addr=True)
    session = await manager.open(None, remote_addr="192.0.2.1")
    session["n"] = 1
    ticket = (await manager.save(session)).ticket
    assert ticket is not None
    clock.advance(manager.config.access_resolution + 1)
    refused = await manager.open(ticket, remote_addr="198.51.100.7")
    assert refused.is_new
    await manager.save(refused)
    record = await raw_record(async_store, ticket, clock())
    assert record is not None
    assert record.accessed_at < clock() - manager.config.access_resolution  # not extended
