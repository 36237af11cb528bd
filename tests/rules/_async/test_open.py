"""The session rules through the manager: which session a request gets. Lazy creation, ids that
are unknown, malformed or duplicated, signed cookies and bindings (sync twin generated)."""

from __future__ import annotations

import pytest

from coatcheck import AsyncSessionManager, CookieConfig
from coatcheck._sansio.ids import new_session_id, storage_key
from coatcheck.stores import AsyncStore
from coatcheck.testing import FrozenClock

from ._support import manager_for, raw_record, security_events, stored

# -- lazy creation and strict open ---------------------------------------------------------


@pytest.mark.asyncio
async def test_untouched_session_without_cookie_costs_nothing(
    manager: AsyncSessionManager, async_store: AsyncStore, clock: FrozenClock
) -> None:
    session = await manager.open(None)
    assert session.is_new and session.id is None
    outcome = await manager.save(session)
    assert outcome.headers == [] and outcome.ticket is None
    assert await async_store.count(clock()) in (0, None)


@pytest.mark.asyncio
async def test_read_only_new_session_writes_nothing_but_varies(
    manager: AsyncSessionManager, async_store: AsyncStore, clock: FrozenClock
) -> None:
    session = await manager.open(None)
    assert session.get("cart") is None
    outcome = await manager.save(session)
    assert outcome.headers == [("Vary", "Cookie")]
    assert await async_store.count(clock()) in (0, None)


@pytest.mark.asyncio
async def test_data_round_trips_and_cookie_is_set(
    manager: AsyncSessionManager, async_store: AsyncStore, clock: FrozenClock
) -> None:
    session = await manager.open(None, remote_addr="192.0.2.7")
    session["cart"] = ["apple", 2]
    session.user = "alice"
    outcome = await manager.save(session)
    ticket = outcome.ticket
    assert ticket is not None and session.id == ticket
    names = [name for name, _ in outcome.headers]
    assert names == ["Set-Cookie", "Cache-Control", "Vary"]
    cookie = dict(outcome.headers)["Set-Cookie"]
    assert cookie.startswith(f"session={ticket}") and "HttpOnly" in cookie
    assert dict(outcome.headers)["Cache-Control"] == "no-store"
    # The store is keyed by a digest: the id itself is nowhere in it.
    record = await raw_record(async_store, ticket, clock())
    assert record is not None and ticket.encode() not in record.payload
    again = await manager.open(ticket, remote_addr="198.51.100.1")
    assert not again.is_new
    assert again["cart"] == ["apple", 2]
    assert again.user == "alice"
    assert again.remote_addr == "192.0.2.7"
    assert again.created_at == session.created_at


@pytest.mark.asyncio
async def test_unknown_id_gives_fresh_session_and_creates_nothing(
    manager: AsyncSessionManager,
    async_store: AsyncStore,
    clock: FrozenClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    planted = new_session_id()
    with security_events(caplog) as reasons:
        session = await manager.open(planted)
        assert session.is_new and session.id is None
        session["x"] = 1
        outcome = await manager.save(session)
    assert reasons == ["unknown-id"]
    assert outcome.ticket != planted
    assert await raw_record(async_store, planted, clock()) is None
    for message in caplog.messages:
        assert planted not in message


@pytest.mark.asyncio
async def test_many_random_ids_create_no_records(
    manager: AsyncSessionManager, async_store: AsyncStore, clock: FrozenClock
) -> None:
    for _ in range(50):
        session = await manager.open(new_session_id())
        await manager.save(session)
    assert await async_store.count(clock()) in (0, None)


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "ticket",
    [
        "AAAA",
        "A" * 10_000,
        "../../../etc/passwd",
        "..\\..\\x",
        "%2e%2e%2f" + "A" * 34,
        "abc\r\nSet-Cookie: evil=1",
        "\x00" * 43,
        "A" * 42 + "=",
        "٣" * 43,
        "' OR '1'='1",
        "*",
    ],
)
async def test_malformed_ids_never_reach_the_store(
    manager: AsyncSessionManager, ticket: str, caplog: pytest.LogCaptureFixture
) -> None:
    with security_events(caplog) as reasons:
        session = await manager.open(ticket)
    assert session.is_new
    assert reasons == ["malformed-id"]
    for record in caplog.records:
        assert ticket not in record.getMessage()
        assert all(ticket != value for value in record.__dict__.values())


@pytest.mark.asyncio
async def test_empty_cookie_is_no_cookie(
    manager: AsyncSessionManager, caplog: pytest.LogCaptureFixture
) -> None:
    with security_events(caplog) as reasons:
        session = await manager.open("")
    assert session.is_new and reasons == []


@pytest.mark.asyncio
async def test_the_storage_key_is_not_a_usable_ticket(manager: AsyncSessionManager) -> None:
    ticket, _ = await stored(manager, secret="s")
    session = await manager.open(storage_key(ticket))
    assert session.is_new and "secret" not in session


@pytest.mark.asyncio
async def test_explicit_id_of_wrong_type_is_a_clear_error(manager: AsyncSessionManager) -> None:
    with pytest.raises(TypeError):
        await manager.open(123)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        await manager.open(b"abc")  # type: ignore[arg-type]


@pytest.mark.asyncio
async def test_duplicate_session_cookies_are_ambiguous(
    manager: AsyncSessionManager, caplog: pytest.LogCaptureFixture
) -> None:
    ticket_a, _ = await stored(manager, owner="a")
    ticket_b, _ = await stored(manager, owner="b")
    with security_events(caplog) as reasons:
        session = await manager.open_from_cookie_header(
            f"session={ticket_a}; other=1; session={ticket_b}"
        )
    assert session.is_new and "owner" not in session
    assert reasons == ["ambiguous-cookie"]
    same = await manager.open_from_cookie_header(f"session={ticket_a}; session={ticket_a}")
    assert same["owner"] == "a"
    assert (await manager.open_from_cookie_header(f"Session={ticket_a}")).is_new


# -- signing and binding ----------------------------------------------------------------------


@pytest.mark.asyncio
async def test_signed_cookies_reject_forgery_and_rotate_keys(
    async_store: AsyncStore, clock: FrozenClock, caplog: pytest.LogCaptureFixture
) -> None:
    old_key, new_key = "old-secret-key-0123456789", "new-secret-key-0123456789"
    before = manager_for(async_store, clock, secret_keys=[old_key], sign_cookie=True)
    ticket, _ = await stored(before, n=1)
    session_id, _, mac = ticket.rpartition(".")
    flipped = session_id + "." + ("A" if mac[0] != "A" else "B") + mac[1:]
    with security_events(caplog) as reasons:
        assert (await before.open(flipped)).is_new
        assert (await before.open(session_id)).is_new  # unsigned while signing is on
    assert reasons == ["bad-signature", "bad-signature"]
    rotated = manager_for(async_store, clock, secret_keys=[new_key, old_key], sign_cookie=True)
    session = await rotated.open(ticket)
    assert session["n"] == 1
    outcome = await rotated.save(session)
    assert outcome.ticket is not None and outcome.ticket != ticket
    assert outcome.ticket.startswith(session_id + ".")
    dropped = manager_for(async_store, clock, secret_keys=[new_key], sign_cookie=True)
    assert (await dropped.open(ticket)).is_new
    assert (await dropped.open(outcome.ticket))["n"] == 1
    other_name = manager_for(
        async_store,
        clock,
        secret_keys=[new_key],
        sign_cookie=True,
        cookie=CookieConfig(name="other"),
    )
    assert (await other_name.open(outcome.ticket)).is_new


@pytest.mark.asyncio
async def test_binding_mismatch_refuses_but_keeps_the_session(
    async_store: AsyncStore, clock: FrozenClock, caplog: pytest.LogCaptureFixture
) -> None:
    manager = manager_for(async_store, clock, bind_remote_addr=True, bind_user_agent=True)
    session = await manager.open(None, remote_addr="192.0.2.1", user_agent="UA/1")
    session["n"] = 1
    ticket = (await manager.save(session)).ticket
    assert ticket is not None
    with security_events(caplog) as reasons:
        assert (await manager.open(ticket, remote_addr="192.0.2.99", user_agent="UA/1")).is_new
        assert (await manager.open(ticket, remote_addr="192.0.2.1", user_agent="UA/2")).is_new
    assert reasons == ["binding-mismatch", "binding-mismatch"]
    assert (await manager.open(ticket, remote_addr="192.0.2.1", user_agent="UA/1"))["n"] == 1
