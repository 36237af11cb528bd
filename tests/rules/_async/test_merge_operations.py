"""Operations that merge (incr, set_add, set_discard, list_append) through the manager, on
every store: requests that loaded the same version all count, with no lock (sync twin
generated)."""

from __future__ import annotations

import pytest

from coatcheck import SessionConflict
from coatcheck.stores import AsyncStore
from coatcheck.testing import FrozenClock

from ...support._async.backends import BACKENDS
from ._support import manager_for, stored

#: Requests that all load the session before any of them saves: every save but the first
#: finds a newer version and merges.
CONCURRENT = 8


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.mark.asyncio
async def test_concurrent_increments_of_one_key_all_count(
    async_store: AsyncStore, clock: FrozenClock
) -> None:
    manager = manager_for(async_store, clock)
    ticket, _ = await stored(manager, n=10)
    sessions = [await manager.open(ticket) for _ in range(CONCURRENT)]
    for step, session in enumerate(sessions, 1):
        assert session.incr("n", step) == 10 + step  # each saw the version it loaded
        assert session.incr("fresh") == 1  # an absent key starts at 0
    for session in sessions:
        await manager.save(session)
    after = await manager.open(ticket)
    assert after["n"] == 10 + sum(range(1, CONCURRENT + 1))
    assert after["fresh"] == CONCURRENT


@pytest.mark.asyncio
async def test_a_plain_assignment_of_the_key_still_conflicts(
    async_store: AsyncStore, clock: FrozenClock
) -> None:
    manager = manager_for(async_store, clock, merge_conflict="raise")
    ticket, _ = await stored(manager, n=1)
    counter, assigner = await manager.open(ticket), await manager.open(ticket)
    counter.incr("n")
    assigner["n"] = 100
    await manager.save(counter)
    with pytest.raises(SessionConflict):
        await manager.save(assigner)
    # The other way round: the increment replays onto the assigned value.
    ticket, _ = await stored(manager, n=1)
    counter, assigner = await manager.open(ticket), await manager.open(ticket)
    assigner["n"] = 100
    counter.incr("n", 5)
    await manager.save(assigner)
    await manager.save(counter)
    assert (await manager.open(ticket))["n"] == 105


@pytest.mark.asyncio
async def test_sets_and_lists_keep_every_requests_items(
    async_store: AsyncStore, clock: FrozenClock
) -> None:
    manager = manager_for(async_store, clock)
    ticket, _ = await stored(manager, seen={"a", "b"}, log=["start"])
    sessions = [await manager.open(ticket) for _ in range(4)]
    sessions[0].set_add("seen", "x")
    sessions[1].set_add("seen", "y", "z")
    sessions[2].set_discard("seen", "a")
    for index, session in enumerate(sessions):
        session.list_append("log", f"request {index}")
    for session in sessions:
        await manager.save(session)
    after = await manager.open(ticket)
    assert after["seen"] == {"b", "x", "y", "z"}
    assert after["log"] == ["start", "request 0", "request 1", "request 2", "request 3"]


@pytest.mark.asyncio
async def test_operations_in_a_namespace_merge_too(
    async_store: AsyncStore, clock: FrozenClock
) -> None:
    manager = manager_for(async_store, clock)
    ticket, _ = await stored(manager, n=0)
    sessions = [await manager.open(ticket) for _ in range(3)]
    for session in sessions:
        session.namespace("cart").incr("items", 2)
        session["n"] = 1  # a plain write of another key beside them
    for session in sessions:
        await manager.save(session)
    after = await manager.open(ticket)
    assert after.namespace("cart")["items"] == 6 and after["n"] == 1


@pytest.mark.asyncio
async def test_increments_survive_a_concurrent_rotation(
    async_store: AsyncStore, clock: FrozenClock
) -> None:
    manager = manager_for(async_store, clock)
    ticket, _ = await stored(manager, n=0)
    rotating, counting = await manager.open(ticket), await manager.open(ticket)
    counting.incr("n")
    await manager.save(counting)
    rotating.incr("n")
    rotating.regenerate()  # a rotation is a compare-and-set too: it merges what it missed
    outcome = await manager.save(rotating)
    assert outcome.ticket is not None and outcome.ticket != ticket
    assert (await manager.open(outcome.ticket))["n"] == 2
    assert (await manager.open(ticket)).is_new  # the old id is dead
