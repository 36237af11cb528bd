"""Every store write a save can issue, raced against the request that makes it wrong, on
every store (sync twin generated). Each write is a compare-and-set or compare-and-delete, so
none of them may bring back a destroyed session or drop a concurrent save:

- ``Update`` (a changed session) against a destroy, and against another update;
- ``Touch`` (an unchanged session sliding its idle timeout) against a destroy;
- ``Delete`` at a version then ``Create`` (a rotation, on demand or on every request) against
  a destroy, and against an update;
- ``Update`` and ``Touch`` of an id that a rotation retired;
- ``Unlock`` against the lock's next holder.

``Create`` of a new session under a taken id, the plain ``Delete`` of a destroy and of a
damaged record, and the ``Delete`` at the version seen of an expired record (which keeps a
record renewed meanwhile) are exact by the store contract (tests/contract, the compare-and-delete
tests) and pinned in order by tests/sansio; ``ClearExpired`` removes only records whose expiry
has passed, judged atomically by each store (tests/contract).
"""

from __future__ import annotations

import pytest

from coatcheck import AsyncSessionManager, SessionInterrupted, SessionLocked
from coatcheck.stores import AsyncStore
from coatcheck.testing import FrozenClock

from ...support._async.backends import BACKENDS
from ._support import manager_for, raw_record, stored

MODES = ["none", "merge", "lock"]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """Every store, not only the rule tests' two: these are the writes' own guarantees."""
    name: str = request.param
    return name


def _other(mode: str) -> str | None:
    # The concurrent request of a lock-mode test does not wait for the lock: it stands for a
    # request whose lock expired, the one way two lock-mode saves can overlap.
    return "merge" if mode == "lock" else None


async def _logged_out(manager: AsyncSessionManager, ticket: str, mode: str) -> None:
    logout = await manager.open(ticket, concurrency=_other(mode))
    logout.destroy()
    await manager.save(logout)


# -- a rotation ---------------------------------------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.parametrize("mode", MODES)
async def test_a_rotation_after_a_logout_brings_nothing_back(
    async_store: AsyncStore, clock: FrozenClock, mode: str
) -> None:
    manager = manager_for(async_store, clock, concurrency=mode, lock_wait=0)
    ticket, _ = await stored(manager, user="alice")
    login = await manager.open(ticket)
    await _logged_out(manager, ticket, mode)
    login.regenerate()
    with pytest.raises(SessionInterrupted):
        await manager.save(login)
    assert await raw_record(async_store, ticket, clock()) is None
    assert login.id == ticket  # no new id was handed out
    assert await async_store.count(clock()) in (0, None)


@pytest.mark.asyncio
@pytest.mark.parametrize("mode", MODES)
async def test_regenerate_every_request_never_resurrects_a_logout(
    async_store: AsyncStore, clock: FrozenClock, mode: str
) -> None:
    manager = manager_for(
        async_store, clock, concurrency=mode, lock_wait=0, regenerate_every_request=True
    )
    ticket, _ = await stored(manager, user="alice")
    slow_read = await manager.open(ticket)
    assert slow_read["user"] == "alice"
    await _logged_out(manager, ticket, mode)
    with pytest.raises(SessionInterrupted):
        await manager.save(slow_read)
    assert await async_store.count(clock()) in (0, None)


@pytest.mark.asyncio
@pytest.mark.parametrize("mode", ["merge", "lock"])
async def test_a_rotation_keeps_a_concurrent_update(
    async_store: AsyncStore, clock: FrozenClock, mode: str
) -> None:
    manager = manager_for(async_store, clock, concurrency=mode, lock_wait=0)
    ticket, _ = await stored(manager, cart=[], user="alice")
    login = await manager.open(ticket)
    other = await manager.open(ticket, concurrency=_other(mode))
    other["cart"] = ["book"]
    await manager.save(other)
    login["step"] = "logged-in"
    login.regenerate()
    new_ticket = (await manager.save(login)).ticket
    assert new_ticket is not None and new_ticket != ticket
    rotated = await manager.open(new_ticket)
    assert dict(rotated) == {"cart": ["book"], "user": "alice", "step": "logged-in"}
    assert await raw_record(async_store, ticket, clock()) is None


@pytest.mark.asyncio
async def test_none_mode_rotation_over_an_update_keeps_one_live_id(
    async_store: AsyncStore, clock: FrozenClock
) -> None:
    manager = manager_for(async_store, clock, concurrency="none")
    ticket, _ = await stored(manager, n=0)
    login, other = await manager.open(ticket), await manager.open(ticket)
    other["n"] = 1
    await manager.save(other)
    login.regenerate()
    new_ticket = (await manager.save(login)).ticket
    assert new_ticket is not None
    assert dict(await manager.open(new_ticket)) == {"n": 0}  # the last writer won, as documented
    assert await raw_record(async_store, ticket, clock()) is None


@pytest.mark.asyncio
@pytest.mark.parametrize("mode", MODES)
async def test_writes_to_a_rotated_id_are_refused(
    async_store: AsyncStore, clock: FrozenClock, mode: str
) -> None:
    manager = manager_for(async_store, clock, concurrency=mode, lock_wait=0)
    ticket, _ = await stored(manager, n=0)
    writer = await manager.open(ticket, concurrency=_other(mode))
    toucher = await manager.open(ticket, concurrency=_other(mode))
    login = await manager.open(ticket)
    login.regenerate()
    assert (await manager.save(login)).ticket is not None
    writer["n"] = 1
    with pytest.raises(SessionInterrupted):
        await manager.save(writer)
    clock.advance(120)  # old enough for a touch
    await manager.save(toucher)  # a touch that finds no record writes nothing
    assert await raw_record(async_store, ticket, clock()) is None


# -- an update and a touch ------------------------------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.parametrize("mode", MODES)
async def test_an_update_after_a_logout_brings_nothing_back(
    async_store: AsyncStore, clock: FrozenClock, mode: str
) -> None:
    manager = manager_for(async_store, clock, concurrency=mode, lock_wait=0)
    ticket, _ = await stored(manager, n=0)
    slow = await manager.open(ticket, concurrency=_other(mode))
    await _logged_out(manager, ticket, mode)
    slow["n"] = 1
    with pytest.raises(SessionInterrupted):
        await manager.save(slow)
    assert await raw_record(async_store, ticket, clock()) is None


@pytest.mark.asyncio
@pytest.mark.parametrize("mode", MODES)
async def test_a_touch_after_a_logout_brings_nothing_back(
    async_store: AsyncStore, clock: FrozenClock, mode: str
) -> None:
    manager = manager_for(async_store, clock, concurrency=mode, lock_wait=0)
    ticket, _ = await stored(manager, n=0)
    clock.advance(120)
    reader = await manager.open(ticket, concurrency=_other(mode))
    await _logged_out(manager, ticket, mode)
    await manager.save(reader)
    assert await raw_record(async_store, ticket, clock()) is None


@pytest.mark.asyncio
async def test_merge_keeps_both_updates(async_store: AsyncStore, clock: FrozenClock) -> None:
    manager = manager_for(async_store, clock)
    ticket, _ = await stored(manager, n=0)
    first, second = await manager.open(ticket), await manager.open(ticket)
    first["a"] = 1
    second["b"] = 2
    await manager.save(first)
    await manager.save(second)
    assert dict(await manager.open(ticket)) == {"n": 0, "a": 1, "b": 2}


@pytest.mark.asyncio
async def test_an_unlock_never_frees_the_next_holders_lock(
    async_store: AsyncStore, clock: FrozenClock
) -> None:
    manager = manager_for(async_store, clock, concurrency="lock", lock_wait=0, lock_timeout=5)
    ticket, _ = await stored(manager, n=0)
    first = await manager.open(ticket)
    clock.advance(10)  # the first holder's lock expired: the next request takes it over
    second = await manager.open(ticket)
    await manager.abandon(first)  # releases nothing it no longer holds
    with pytest.raises(SessionLocked):
        await manager.open(ticket)
    await manager.abandon(second)
