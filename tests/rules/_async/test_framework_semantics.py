"""What frameworks need of the core, through the manager: emptied sessions, an id before the
response, cookie refresh, settable ``modified``, a session class of their own, and the dict
operators' changes surviving a merge (sync twin generated)."""

from __future__ import annotations

from typing import Any

import pytest

from coatcheck import AsyncSessionManager, ConfigurationError, Session, StoreError
from coatcheck.stores import AsyncStore
from coatcheck.testing import FrozenClock

from ._support import manager_for, raw_record, stored


def set_cookie(headers: list[tuple[str, str]]) -> str | None:
    values = [value for name, value in headers if name == "Set-Cookie"]
    return values[0] if values else None


# -- destroy_when_emptied -------------------------------------------------------------------


@pytest.mark.asyncio
async def test_clearing_a_stored_session_destroys_it_when_configured(
    async_store: AsyncStore, clock: FrozenClock
) -> None:
    manager = manager_for(async_store, clock, destroy_when_emptied=True)
    ticket, _ = await stored(manager, user_id=7)
    session = await manager.open(ticket)
    session.clear()
    outcome = await manager.save(session)
    header = set_cookie(outcome.headers)
    assert outcome.cleared and header is not None and "Max-Age=0" in header
    assert await raw_record(async_store, ticket, clock()) is None
    assert (await manager.open(ticket)).is_new


@pytest.mark.asyncio
async def test_an_emptied_session_written_meanwhile_is_not_thrown_away(
    async_store: AsyncStore, clock: FrozenClock
) -> None:
    # Destroying it would drop the other request's write: our removals merge onto it instead.
    manager = manager_for(async_store, clock, destroy_when_emptied=True)
    ticket, _ = await stored(manager, a=1)
    ours = await manager.open(ticket)
    theirs = await manager.open(ticket)
    ours.clear()
    theirs["b"] = 2
    await manager.save(theirs)
    outcome = await manager.save(ours)
    assert not outcome.cleared
    assert dict(await manager.open(ticket)) == {"b": 2}


@pytest.mark.asyncio
async def test_clear_then_set_keeps_the_session(
    async_store: AsyncStore, clock: FrozenClock
) -> None:
    manager = manager_for(async_store, clock, destroy_when_emptied=True)
    ticket, _ = await stored(manager, user_id=7)
    session = await manager.open(ticket)
    session.clear()
    session["flash"] = "logged out"
    outcome = await manager.save(session)
    assert not outcome.cleared
    assert dict(await manager.open(ticket)) == {"flash": "logged out"}


@pytest.mark.asyncio
async def test_without_the_setting_an_emptied_session_stays_stored(
    manager: AsyncSessionManager, async_store: AsyncStore, clock: FrozenClock
) -> None:
    ticket, _ = await stored(manager, n=1)
    session = await manager.open(ticket)
    session.clear()
    outcome = await manager.save(session)
    assert not outcome.cleared
    assert await raw_record(async_store, ticket, clock()) is not None
    assert dict(await manager.open(ticket)) == {}


@pytest.mark.asyncio
async def test_an_emptied_session_with_a_user_is_not_empty(
    async_store: AsyncStore, clock: FrozenClock
) -> None:
    manager = manager_for(async_store, clock, destroy_when_emptied=True)
    ticket, _ = await stored(manager, n=1)
    session = await manager.open(ticket)
    session.user = "ada"
    session.clear()
    assert not (await manager.save(session)).cleared
    assert (await manager.open(ticket)).user == "ada"


# -- ensure_id ------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_a_new_session_can_have_its_id_before_the_response(
    manager: AsyncSessionManager, async_store: AsyncStore, clock: FrozenClock
) -> None:
    session = await manager.open(None)
    session_id = session.ensure_id()
    assert session.id == session_id == session.ensure_id() and session.is_new
    outcome = await manager.save(session)  # stored under it, though empty
    assert outcome.ticket == session_id
    assert await raw_record(async_store, session_id, clock()) is not None
    again = await manager.open(session_id)
    assert not again.is_new and again.ensure_id() == session_id


@pytest.mark.asyncio
async def test_an_assigned_id_that_is_taken_is_a_store_error(manager: AsyncSessionManager) -> None:
    ticket, _ = await stored(manager, n=1)
    session = await manager.open(None)
    session._id = ticket  # what a 2**-128 collision would look like
    session["n"] = 2
    with pytest.raises(StoreError, match="taken"):
        await manager.save(session)
    assert (await manager.open(ticket))["n"] == 1


# -- refresh_cookie ---------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_refresh_cookie_resends_a_cookie_with_a_max_age(
    manager: AsyncSessionManager, clock: FrozenClock
) -> None:
    ticket, _ = await stored(manager, n=1)
    session = await manager.open(ticket)
    assert set_cookie((await manager.save(session, refresh_cookie=True)).headers) is None
    session = await manager.open(ticket)
    session.set_lifetime(cookie_max_age=3600)
    await manager.save(session)
    clock.advance(1)  # within the access resolution: nothing to touch or slide
    session = await manager.open(ticket)
    assert session["n"] == 1
    assert set_cookie((await manager.save(session)).headers) is None
    session = await manager.open(ticket)
    header = set_cookie((await manager.save(session, refresh_cookie=True)).headers)
    assert header is not None and header.startswith(f"session={ticket};")
    assert "Max-Age=3600" in header


# -- modified, accessed -----------------------------------------------------------------------


@pytest.mark.asyncio
async def test_modified_false_drops_the_changes_and_true_writes_everything(
    manager: AsyncSessionManager,
) -> None:
    ticket, _ = await stored(manager, n=1)
    session = await manager.open(ticket)
    session["n"] = 2
    session.modified = False
    assert not session.modified
    await manager.save(session)
    assert (await manager.open(ticket))["n"] == 1
    session = await manager.open(ticket)
    session.modified = True
    assert session.modified and session.changes.whole
    await manager.save(session)
    assert (await manager.open(ticket)).version == 2


@pytest.mark.asyncio
async def test_an_untouched_session_sends_no_vary(manager: AsyncSessionManager) -> None:
    ticket, _ = await stored(manager, n=1)
    session = await manager.open(ticket)
    assert (await manager.save(session)).headers == []
    session = await manager.open(ticket)
    session.accessed = True
    assert (await manager.save(session)).headers == [("Vary", "Cookie")]


# -- session_class ----------------------------------------------------------------------------


class FrameworkSession(Session):
    """A framework's session type: extra properties, no slots of its own."""

    @property
    def new(self) -> bool:
        return self.is_new


@pytest.mark.asyncio
async def test_the_manager_builds_the_session_class_it_is_given(
    async_store: AsyncStore, clock: FrozenClock
) -> None:
    manager = manager_for(async_store, clock, session_class=FrameworkSession)
    session = await manager.open(None)
    assert type(session) is FrameworkSession and session.new
    session["n"] = 1
    ticket = (await manager.save(session)).ticket
    again = await manager.open(ticket)
    assert type(again) is FrameworkSession and not again.new and again["n"] == 1
    with pytest.raises(ConfigurationError):
        manager_for(async_store, clock, session_class=dict)


# -- the dict operators under merge -----------------------------------------------------------


@pytest.mark.asyncio
async def test_every_dict_write_merges_key_by_key(manager: AsyncSessionManager) -> None:
    ticket, _ = await stored(manager, a=1, b=2, c=3, d=4)
    ours = await manager.open(ticket)
    theirs = await manager.open(ticket)
    ours |= {"e": 5}
    ours.pop("a")
    assert ours.popitem() == ("e", 5)  # the newest, as a dict
    ours.setdefault("f", 6)
    ours.update([("g", 7)], h=8)
    theirs["z"] = 26
    await manager.save(theirs)
    await manager.save(ours)
    result: dict[str, Any] = dict(await manager.open(ticket))
    assert result == {"b": 2, "c": 3, "d": 4, "f": 6, "g": 7, "h": 8, "z": 26}


@pytest.mark.asyncio
async def test_clear_merges_as_removals_of_the_keys_it_saw(manager: AsyncSessionManager) -> None:
    ticket, _ = await stored(manager, a=1)
    ours = await manager.open(ticket)
    theirs = await manager.open(ticket)
    ours.clear()
    theirs["b"] = 2  # written meanwhile: not ours to remove
    await manager.save(theirs)
    await manager.save(ours)
    assert dict(await manager.open(ticket)) == {"b": 2}


# -- the presented ticket ---------------------------------------------------------------------


@pytest.mark.asyncio
async def test_a_write_sends_back_the_ticket_presented_and_re_signs_a_stale_one(
    async_store: AsyncStore, clock: FrozenClock
) -> None:
    from coatcheck import CookieConfig

    old = manager_for(
        async_store,
        clock,
        secret_keys=["k" * 32],
        sign_cookie=True,
        cookie=CookieConfig(max_age=3600),
    )
    ticket, _ = await stored(old, n=1)
    session = await old.open(ticket)
    assert session.ticket == ticket
    session["n"] = 2
    header = set_cookie((await old.save(session)).headers)
    assert header is not None and header.startswith(f"session={ticket};")
    rotated = manager_for(
        async_store,
        clock,
        secret_keys=["n" * 32, "k" * 32],
        sign_cookie=True,
        cookie=CookieConfig(max_age=3600),
    )
    session = await rotated.open(ticket)
    assert session.stale_ticket and session.ticket is None and session["n"] == 2
    session["n"] = 3
    outcome = await rotated.save(session)
    assert outcome.ticket is not None and outcome.ticket != ticket
    assert (await rotated.open(outcome.ticket))["n"] == 3
