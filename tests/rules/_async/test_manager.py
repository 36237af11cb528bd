"""The session rules, end to end through the manager (sync twin generated).

On the memory store and one server store per flavour (``tests.support.servers``); the rules
themselves are unit-tested without I/O in tests/sansio, and every store's own semantics in
tests/contract.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

import pytest
import pytest_asyncio

from coatcheck import (
    AsyncSessionManager,
    CookieConfig,
    InvalidKey,
    PayloadTooLarge,
    ReservedNamespace,
    SerializationError,
    SessionConflict,
    SessionDestroyed,
    SessionError,
    SessionInterrupted,
    SessionLocked,
)
from coatcheck._sansio.ids import new_session_id, storage_key
from coatcheck._sansio.session import Session
from coatcheck.stores import AsyncStore, Load, Record, Update
from coatcheck.testing import FrozenClock

from ...support._async.backends import NATIVE_TTL, async_store_for, backends
from ...support.servers import async_rules_store

RULE_BACKENDS = backends("memory", async_rules_store)
IDLE = 1800.0
ABSOLUTE = 12 * 3600.0


@pytest.fixture(params=RULE_BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest_asyncio.fixture
async def async_store(backend: str, tmp_path: Path) -> AsyncIterator[AsyncStore]:
    async with async_store_for(backend, tmp_path) as store:
        yield store


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


def manager_for(store: AsyncStore, clock: FrozenClock, **settings: Any) -> AsyncSessionManager:
    settings.setdefault("idle_timeout", IDLE)
    settings.setdefault("absolute_timeout", ABSOLUTE)
    return AsyncSessionManager(store, clock=clock, **settings)


@pytest.fixture
def manager(async_store: AsyncStore, clock: FrozenClock) -> AsyncSessionManager:
    return manager_for(async_store, clock)


@contextmanager
def security_events(caplog: pytest.LogCaptureFixture) -> Iterator[list[str]]:
    """Collect the reason codes logged on coatcheck.security inside the block."""
    reasons: list[str] = []
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="coatcheck"):
        yield reasons
    for record in caplog.records:
        if record.name == "coatcheck.security":
            reasons.append(record.__dict__["reason"])


async def stored(manager: AsyncSessionManager, **data: Any) -> tuple[str, Session]:
    """A saved session holding ``data``; returns its ticket and the session."""
    session = await manager.open(None)
    session.update(data)
    outcome = await manager.save(session)
    assert outcome.ticket is not None
    return outcome.ticket, session


async def raw_record(store: AsyncStore, ticket: str, now: float) -> Record | None:
    record = await store.load(Load(storage_key(ticket), now))
    assert record is None or isinstance(record, Record)
    return record


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


# -- the session API ------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_non_string_keys_are_refused(manager: AsyncSessionManager) -> None:
    session = await manager.open(None)
    with pytest.raises(InvalidKey):
        session[1] = "x"  # type: ignore[index]
    with pytest.raises(TypeError):
        session.get(None)  # type: ignore[arg-type]
    assert 1 not in session


@pytest.mark.asyncio
async def test_namespaces_and_reservations(manager: AsyncSessionManager) -> None:
    auth = manager.reserve("auth")
    session = await manager.open(None)
    session.namespace("shop")["cart"] = [1]
    session.namespace("auth", auth)["since"] = 5
    with pytest.raises(ReservedNamespace):
        session.namespace("auth")["since"] = 0
    assert session.namespace("auth")["since"] == 5
    session["cart"] = "default namespace"
    outcome = await manager.save(session)
    assert outcome.ticket is not None
    again = await manager.open(outcome.ticket)
    assert again.namespace("shop")["cart"] == [1]
    assert dict(again.namespace("auth")) == {"since": 5}
    assert again["cart"] == "default namespace"
    manager.release("auth")
    again.namespace("auth")["since"] = 6
    assert again.namespace("auth")["since"] == 6


@pytest.mark.asyncio
async def test_form_tokens_are_single_use_and_bounded(manager: AsyncSessionManager) -> None:
    session = await manager.open(None)
    tokens = [session.create_form_token() for _ in range(17)]
    assert not session.has_form_token(tokens[0])  # the oldest was dropped
    outcome = await manager.save(session)
    assert outcome.ticket is not None
    again = await manager.open(outcome.ticket)
    assert again.has_form_token(tokens[5])
    assert again.consume_form_token(tokens[5]) is True
    assert again.consume_form_token(tokens[5]) is False
    assert again.consume_form_token(123) is False
    await manager.save(again)
    third = await manager.open(outcome.ticket)
    assert not third.has_form_token(tokens[5]) and third.has_form_token(tokens[16])


@pytest.mark.asyncio
async def test_flash_messages_show_once(manager: AsyncSessionManager) -> None:
    session = await manager.open(None)
    session.flash("saved")
    session.flash("careful", "warning")
    outcome = await manager.save(session)
    assert outcome.ticket is not None
    nxt = await manager.open(outcome.ticket)
    assert nxt.pop_flashed("warning") == [("warning", "careful")]
    assert nxt.pop_flashed() == [("message", "saved")]
    await manager.save(nxt)
    assert (await manager.open(outcome.ticket)).pop_flashed() == []


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
