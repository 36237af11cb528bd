"""SessionCore.open_flow and cookie_open_flow: which ticket to trust, expiry, binding, modes."""

from __future__ import annotations

import logging
import math

import pytest

from coatcheck._sansio.ids import new_session_id, storage_key
from coatcheck._sansio.ops import LOCKED, Delete, Load, LockRequest, Unlock
from coatcheck.errors import ConfigurationError, StoreError
from coatcheck.testing import FrozenClock

from .scripted import ScriptedStore, run, where
from .support import ABSOLUTE, IDLE, NOW, make_core, reasons, stored

OLD_KEY = "old-secret-key-0123456789"
NEW_KEY = "new-secret-key-0123456789"


# -- no ticket, or one that never reaches the store ----------------------------------------


@pytest.mark.parametrize("ticket", [None, ""])
def test_no_ticket_is_a_fresh_session_without_any_operation(
    clock: FrozenClock, ticket: str | None
) -> None:
    session = run(make_core(clock).open_flow(ticket, remote_addr="192.0.2.1"))
    assert session.is_new and not session.had_ticket
    assert (session.id, session.key, session.stored, session.version) == (None, None, None, None)
    assert session.created_at == NOW and session.accessed_at == NOW
    assert session.remote_addr == "192.0.2.1"
    assert not session.has_info() and not session.modified


@pytest.mark.parametrize("header", [None, "", "other=1; theme=dark", "session=", 'session=""'])
def test_a_cookie_header_without_the_session_cookie_is_no_ticket(
    clock: FrozenClock, header: str | None
) -> None:
    session = run(make_core(clock).cookie_open_flow(header))
    assert session.is_new and not session.had_ticket


def test_a_ticket_that_is_not_a_str_is_a_clear_error(clock: FrozenClock) -> None:
    with pytest.raises(TypeError, match="a session ticket is a str or None, not int"):
        run(make_core(clock).open_flow(123))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "ticket",
    [
        "not-an-id",
        new_session_id(32)[:-1],  # one character short
        new_session_id(32) + "A",  # one character long
        storage_key(new_session_id(32)),  # the key a store files it under is not a ticket
        new_session_id(32)[:-1] + "\u0663",  # a non-ASCII digit
    ],
)
def test_a_malformed_id_never_reaches_the_store(
    clock: FrozenClock, caplog: pytest.LogCaptureFixture, ticket: str
) -> None:
    session = run(make_core(clock).open_flow(ticket))  # no step: any operation fails
    assert session.is_new and session.had_ticket
    assert reasons(caplog) == ["malformed-id"]


def test_an_unknown_id_is_logged_and_gives_a_fresh_session_creating_nothing(
    clock: FrozenClock, caplog: pytest.LogCaptureFixture
) -> None:
    core = make_core(clock)
    session_id = new_session_id()
    session = run(core.open_flow(session_id), (Load(storage_key(session_id), NOW), None))
    assert session.is_new and session.had_ticket and session.id is None
    assert reasons(caplog) == ["unknown-id"]
    assert session_id not in caplog.text  # the log carries only a keyed fingerprint
    # Nothing is stored for an id the client chose, not even at save.
    outcome = run(core.save_flow(session))
    assert outcome.headers == [] and outcome.ticket is None


def test_a_known_id_opens_the_stored_session(clock: FrozenClock) -> None:
    core = make_core(clock)
    target = stored(core, {"n": 1}, created=NOW - 100, accessed=NOW - 10, version=3)
    session = run(core.open_flow(target.session_id), (Load(target.key, NOW), target.record))
    assert session["n"] == 1
    assert not session.is_new and session.had_ticket and not session.stale_ticket
    assert (session.id, session.key, session.version) == (target.session_id, target.key, 3)
    assert session.stored == target.record
    assert (session.created_at, session.accessed_at) == (NOW - 100, NOW)
    assert session.lock_token is None and session.concurrency == "merge"


def test_a_load_answered_locked_without_a_lock_is_a_store_error(clock: FrozenClock) -> None:
    target = stored(make_core(clock))
    with pytest.raises(StoreError, match=r"scripted-store.*answered Locked to Load"):
        run(make_core(clock).open_flow(target.session_id), (Load, LOCKED))


# -- signed tickets --------------------------------------------------------------------------


def test_a_bad_signature_never_reaches_the_store(
    clock: FrozenClock, caplog: pytest.LogCaptureFixture
) -> None:
    core = make_core(clock, secret_keys=[OLD_KEY], sign_cookie=True)
    session_id = new_session_id()
    ticket = core.tickets.issue(session_id)
    _, _, mac = ticket.rpartition(".")
    flipped = session_id + "." + ("A" if mac[0] != "A" else "B") + mac[1:]
    for forged in (flipped, session_id, ticket + "x" * 5000):
        session = run(core.open_flow(forged))
        assert session.is_new and session.had_ticket
    assert reasons(caplog) == ["bad-signature"] * 3
    opened = run(core.open_flow(ticket), (Load(storage_key(session_id), NOW), None))
    assert opened.is_new  # a good signature is looked up (here: unknown)


def test_a_ticket_signed_with_an_older_key_is_accepted_and_reissued(clock: FrozenClock) -> None:
    before = make_core(clock, secret_keys=[OLD_KEY], sign_cookie=True)
    rotated = make_core(clock, secret_keys=[NEW_KEY, OLD_KEY], sign_cookie=True)
    target = stored(rotated, {"n": 1})
    old_ticket = before.tickets.issue(target.session_id)
    session = run(rotated.open_flow(old_ticket), (Load(target.key, NOW), target.record))
    assert session.stale_ticket and session["n"] == 1
    outcome = run(rotated.save_flow(session))  # unchanged, inside the access resolution
    new_ticket = rotated.tickets.issue(target.session_id)
    assert new_ticket != old_ticket and outcome.ticket == new_ticket
    assert outcome.headers[0] == ("Set-Cookie", f"session={new_ticket}; " + _attributes())
    assert ("Cache-Control", "no-store") in outcome.headers
    # A ticket under the newest key is not stale.
    fresh_read = run(rotated.open_flow(new_ticket), (Load(target.key, NOW), target.record))
    assert not fresh_read.stale_ticket


def _attributes() -> str:
    return "Path=/; Secure; HttpOnly; SameSite=Lax"


# -- duplicate cookies ------------------------------------------------------------------------


def test_two_different_session_cookies_are_ambiguous(
    clock: FrozenClock, caplog: pytest.LogCaptureFixture
) -> None:
    first, second = new_session_id(), new_session_id()
    session = run(make_core(clock).cookie_open_flow(f"session={first}; session={second}"))
    assert session.is_new and session.had_ticket
    assert reasons(caplog) == ["ambiguous-cookie"]


def test_the_same_session_cookie_twice_is_one_ticket(clock: FrozenClock) -> None:
    core = make_core(clock)
    target = stored(core, {"n": 1})
    header = f"theme=dark; session={target.session_id}; session={target.session_id}"
    session = run(core.cookie_open_flow(header), (Load(target.key, NOW), target.record))
    assert session["n"] == 1


# -- corrupt and foreign payloads --------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"garbage", "corrupt-payload"),
        (b"", "corrupt-payload"),
        (b"cc1:json:{}", "foreign-format"),  # an older format version
        (b"cc2:msgpack:\x80", "foreign-format"),  # another serializer
        (b"cc2:json:{not json", "corrupt-payload"),
        (b"cc2:json:[]", "corrupt-payload"),
        (b'cc2:json:{"":{}}', "corrupt-payload"),  # no creation time
        (b'cc2:json:{"c":1.5}', "corrupt-payload"),  # a creation time that is not an int
        (b'cc2:json:{"c":1,"":[]}', "corrupt-payload"),
        (b'cc2:json:{"c":1,"n":{"":{}}}', "corrupt-payload"),  # the default namespace twice
        (b'cc2:json:{"c":1,"n":{"app":1}}', "corrupt-payload"),
    ],
)
def test_an_unreadable_payload_is_logged_deleted_and_replaced(
    clock: FrozenClock, caplog: pytest.LogCaptureFixture, payload: bytes, reason: str
) -> None:
    core = make_core(clock)
    target = stored(core)
    bad = target.record._replace(payload=payload)
    session = run(
        core.open_flow(target.session_id), (Load(target.key, NOW), bad), Delete(target.key)
    )
    assert session.is_new and session.had_ticket and session.key is None
    assert reasons(caplog) == [reason]


# -- expiry on access ----------------------------------------------------------------------------


def test_idle_expiry_deletes_on_access(
    clock: FrozenClock, caplog: pytest.LogCaptureFixture
) -> None:
    core = make_core(clock)
    target = stored(core, {"n": 1})  # created and last used at NOW
    clock.advance(IDLE - 1)
    alive = run(
        core.open_flow(target.session_id), (Load(target.key, NOW + IDLE - 1), target.record)
    )
    assert alive["n"] == 1
    clock.advance(1)  # exactly idle_timeout since the last use: dead
    caplog.set_level(logging.INFO, logger="coatcheck")
    dead = run(
        core.open_flow(target.session_id),
        (Load(target.key, NOW + IDLE), target.record),
        (Delete(target.key, 1, "handle-1"), True),  # at the version seen
    )
    assert dead.is_new and dead.had_ticket
    assert "session expired; deleted on access" in caplog.messages
    assert reasons(caplog) == []  # expiry is no security event


def test_absolute_expiry_ends_even_a_recently_used_session(clock: FrozenClock) -> None:
    core = make_core(clock, idle_timeout=600, absolute_timeout=3600)
    clock.advance(3599)
    recent = stored(core, {"n": 1}, created=NOW, accessed=NOW + 3500)
    alive = run(core.open_flow(recent.session_id), (Load, recent.record))
    assert alive["n"] == 1
    clock.advance(1)
    dead = run(
        core.open_flow(recent.session_id),
        (Load, recent.record),
        (where(Delete, key=recent.key), True),
    )
    assert dead.is_new


def test_a_record_past_the_stores_own_deadline_is_expired(clock: FrozenClock) -> None:
    # Stored under a shorter idle timeout than today's: by the core's rule it would live on,
    # but the store says it is dead (Redis and memcached would have dropped it already).
    core = make_core(clock, idle_timeout=2 * IDLE)
    target = stored(core, {"n": 1}, expires=NOW + IDLE)
    clock.advance(IDLE)
    dead = run(core.open_flow(target.session_id), (Load, target.record), (Delete, True))
    assert dead.is_new and "n" not in dead


def test_idle_timeout_off_leaves_only_the_absolute_deadline(clock: FrozenClock) -> None:
    core = make_core(clock, idle_timeout=None)
    target = stored(core, created=NOW - ABSOLUTE + 1, accessed=NOW - ABSOLUTE + 1)
    assert target.record.expires_at == NOW + 1
    assert not run(core.open_flow(target.session_id), (Load, target.record)).is_new


def test_a_shorter_idle_timeout_than_stored_decides(clock: FrozenClock) -> None:
    # Stored under a 2 h idle timeout and idle for 40 min: dead under today's 30 min.
    core = make_core(clock)
    target = stored(core, accessed=NOW - 2400, expires=NOW + 4800)
    session = run(core.open_flow(target.session_id), (Load, target.record), (Delete, True))
    assert session.is_new


def test_adjust_time_keeps_session_ages_across_a_clock_jump(clock: FrozenClock) -> None:
    core = make_core(clock)
    target = stored(core, {"n": 1})
    clock.advance(86_400)
    core.adjust_time(86_400)
    assert core.now() == NOW
    session = run(core.open_flow(target.session_id), (Load(target.key, NOW), target.record))
    assert session["n"] == 1 and session.accessed_at == NOW
    unadjusted = make_core(clock)
    gone = run(unadjusted.open_flow(target.session_id), (Load, target.record), (Delete, True))
    assert gone.is_new


@pytest.mark.parametrize("delta", [math.inf, -math.inf, math.nan])
def test_adjust_time_refuses_a_non_finite_jump(clock: FrozenClock, delta: float) -> None:
    with pytest.raises(ConfigurationError):
        make_core(clock).adjust_time(delta)


# -- binding to the client ------------------------------------------------------------------------


def test_a_remote_address_mismatch_refuses_but_keeps_the_session(
    clock: FrozenClock, caplog: pytest.LogCaptureFixture
) -> None:
    core = make_core(clock, bind_remote_addr=True)
    target = stored(core, {"n": 1}, remote_addr="192.0.2.1")
    refused = run(core.open_flow(target.session_id, "198.51.100.7"), (Load, target.record))
    assert refused.is_new and refused.had_ticket  # and no Delete: the script has none
    assert refused.remote_addr == "198.51.100.7"
    assert reasons(caplog) == ["binding-mismatch"]
    kept = run(core.open_flow(target.session_id, "192.0.2.1"), (Load, target.record))
    assert kept["n"] == 1 and kept.remote_addr == "192.0.2.1"


def test_a_user_agent_mismatch_refuses_but_keeps_the_session(
    clock: FrozenClock, caplog: pytest.LogCaptureFixture
) -> None:
    core = make_core(clock, bind_user_agent=True)
    target = stored(core, {"n": 1}, user_agent="UA/1")
    assert "UA/1" not in target.record.payload.decode()  # only a digest is stored
    refused = run(core.open_flow(target.session_id, None, "UA/2"), (Load, target.record))
    assert refused.is_new and reasons(caplog) == ["binding-mismatch"]
    kept = run(core.open_flow(target.session_id, None, "UA/1"), (Load, target.record))
    assert kept["n"] == 1


def test_without_binding_another_address_is_fine(clock: FrozenClock) -> None:
    core = make_core(clock)
    target = stored(core, {"n": 1}, remote_addr="192.0.2.1")
    session = run(core.open_flow(target.session_id, "198.51.100.7", "UA/9"), (Load, target.record))
    assert session["n"] == 1 and session.remote_addr == "192.0.2.1"


def test_a_binding_mismatch_in_lock_mode_releases_the_lock(clock: FrozenClock) -> None:
    core = make_core(clock, bind_remote_addr=True, concurrency="lock")
    target = stored(core, remote_addr="192.0.2.1")
    store = ScriptedStore((where(Load, key=target.key), target.record), Unlock)
    refused = store.run(core.open_flow(target.session_id, "198.51.100.7"))
    load, unlock = store.seen
    assert isinstance(load, Load) and load.lock is not None
    assert unlock == Unlock(target.key, load.lock.token)
    assert refused.is_new and refused.lock_token is None


# -- read-only requests and concurrency overrides ---------------------------------------------


@pytest.mark.parametrize("mode", ["none", "merge", "lock"])
def test_a_read_only_open_takes_no_lock_and_slides_nothing(clock: FrozenClock, mode: str) -> None:
    core = make_core(clock, concurrency=mode, slides_on_load=True)
    target = stored(core, {"n": 1}, accessed=NOW - 600)
    session = run(
        core.open_flow(target.session_id, read_only=True), (Load(target.key, NOW), target.record)
    )
    assert session.read_only and session["n"] == 1 and session.lock_token is None


def test_a_request_may_override_the_concurrency_mode(clock: FrozenClock) -> None:
    core = make_core(clock)  # merge
    target = stored(core)
    store = ScriptedStore((where(Load, key=target.key), target.record))
    session = store.run(core.open_flow(target.session_id, concurrency="lock"))
    load = store.seen[0]
    assert isinstance(load, Load) and load.lock == LockRequest(session.lock_token or "", 30.0, NOW)
    assert session.concurrency == "lock"
    assert run(core.open_flow(None, concurrency="none")).concurrency == "none"
    with pytest.raises(ConfigurationError, match="concurrency must be one of"):
        run(core.open_flow(target.session_id, concurrency="bogus"))  # type: ignore[arg-type]


def test_regenerate_every_request_marks_a_loaded_session_for_rotation(clock: FrozenClock) -> None:
    core = make_core(clock, regenerate_every_request=True)
    target = stored(core)
    assert run(core.open_flow(target.session_id), (Load, target.record)).regenerate_requested
    read_only = run(core.open_flow(target.session_id, read_only=True), (Load, target.record))
    assert not read_only.regenerate_requested
    assert not run(core.open_flow(None)).regenerate_requested
