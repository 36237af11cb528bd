"""SessionCore.save_flow for a rotation: retire the loaded record by version, then create.

A rotation is the one save that writes under a new id, so it is where a logged-out session
could come back (writing the old data anew after a destroy) or a concurrent update could be
dropped (deleting a newer record than the one copied). These scripts pin the order of its
writes and what it does when the old record is gone or newer, in every concurrency mode.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest

from coatcheck._sansio.cookies import CookieConfig, set_cookie_header
from coatcheck._sansio.core import SessionCore
from coatcheck._sansio.ops import Create, Delete, Load, Record, Sleep, Unlock
from coatcheck._sansio.session import Session
from coatcheck.errors import SessionConflict, SessionInterrupted, StoreError
from coatcheck.testing import FrozenClock

from .scripted import ScriptedStore, Step, run, where
from .support import (
    IDLE,
    NOW,
    STORE,
    Stored,
    contents,
    document,
    make_core,
    open_stored,
    reasons,
    record,
    stored,
)

COOKIE = CookieConfig()


def cookie_headers(ticket: str) -> list[tuple[str, str]]:
    cookie = ("Set-Cookie", set_cookie_header(COOKIE, ticket))
    return [cookie, ("Cache-Control", "no-store"), ("Vary", "Cookie")]


def rotating(core: SessionCore, target: Stored, **data: Any) -> Session:
    """``target`` opened, changed with ``data`` and asked to rotate."""
    session, _ = open_stored(core, target)
    session.update(data)
    session.regenerate()
    return session


def newer(core: SessionCore, version: int, data: dict[str, Any]) -> Record:
    """The record a concurrent save left, at ``version`` (handle ``h<version>``)."""
    return record(core, document(core, data), version=version, handle=f"h{version}")


# -- the order of the writes ------------------------------------------------------------------


def test_a_rotation_retires_the_loaded_version_first_then_creates_under_a_new_id(
    clock: FrozenClock,
) -> None:
    core = make_core(clock)
    target = stored(core, {"cart": ["x"]}, created=NOW - 100, version=5, handle="h5")
    session, _ = open_stored(core, target)
    session.user = "alice"
    session.regenerate()
    assert session.modified
    store = ScriptedStore(
        (Delete(target.key, 5, "h5"), True), (where(Create, expires_at=NOW + IDLE), True)
    )
    outcome = store.run(core.save_flow(session))
    create = store.seen[1]
    assert isinstance(create, Create) and create.key != target.key
    assert session.key == create.key and session.id != target.session_id
    assert session.version == 1 and not session.regenerate_requested
    assert contents(core, create.payload) == (
        {"": {"cart": ["x"]}},
        {"c": (NOW - 100) * 1000, "u": "alice"},
    )
    assert outcome.ticket == session.id and outcome.headers == cookie_headers(session.id or "")


def test_a_failed_create_after_the_retirement_logs_the_user_out_rather_than_keep_two_ids(
    clock: FrozenClock,
) -> None:
    core = make_core(clock)
    target = stored(core, {"n": 1})
    session = rotating(core, target)
    with pytest.raises(StoreError):
        run(core.save_flow(session), (Delete, True), Step(Create, error=StoreError(STORE)))


def test_a_failed_retirement_writes_nothing_under_a_new_id(clock: FrozenClock) -> None:
    core = make_core(clock)
    session = rotating(core, stored(core, {"n": 1}))
    with pytest.raises(StoreError):
        run(core.save_flow(session), Step(Delete, error=StoreError(STORE)))  # and no Create


def test_an_emptied_stored_session_is_still_rotated(clock: FrozenClock) -> None:
    core = make_core(clock)
    target = stored(core, {"n": 1})
    session, _ = open_stored(core, target)
    del session["n"]
    session.regenerate()
    run(core.save_flow(session), (Delete(target.key, 1, "handle-1"), True), (Create, True))


def test_regenerating_an_empty_new_session_stores_nothing(clock: FrozenClock) -> None:
    core = make_core(clock)
    session = run(core.open_flow(None))
    session.regenerate()
    assert run(core.save_flow(session)).ticket is None


def test_regenerate_every_request_rotates_an_unchanged_session_by_version(
    clock: FrozenClock,
) -> None:
    core = make_core(clock, regenerate_every_request=True)
    target = stored(core, {"n": 1}, version=3)
    session, _ = open_stored(core, target)
    outcome = run(
        core.save_flow(session), (where(Delete, expected_version=3), True), (Create, True)
    )
    assert outcome.ticket == session.id != target.session_id


# -- the old record is gone: nothing comes back --------------------------------------------------


@pytest.mark.parametrize("mode", ["none", "merge", "lock"])
def test_a_rotation_after_a_logout_writes_nothing_and_interrupts_the_request(
    clock: FrozenClock, mode: str, caplog: pytest.LogCaptureFixture
) -> None:
    core = make_core(clock, concurrency=mode)
    target = stored(core, {"user": "alice"})
    session = rotating(core, target)
    caplog.set_level(logging.INFO, "coatcheck.security")
    # The retirement finds no record at that version, and the reload finds none at all; a
    # lock is released on the way out, as after any refused save.
    steps: list[object] = [(Delete, False), (Load(target.key, NOW), None)]
    steps += [Unlock] if mode == "lock" else []
    with pytest.raises(SessionInterrupted):
        run(core.save_flow(session), *steps)
    assert reasons(caplog) == ["session-interrupted"]


def test_regenerate_every_request_never_brings_a_destroyed_session_back(clock: FrozenClock) -> None:
    core = make_core(clock, regenerate_every_request=True)
    target = stored(core, {"user": "alice"})
    session, _ = open_stored(core, target)
    assert session["user"] == "alice"  # a read: the rotation is the only write
    with pytest.raises(SessionInterrupted):
        run(core.save_flow(session), (Delete, False), (Load, None))


# -- the old record is newer: the concurrent save is kept ---------------------------------------


def test_merge_mode_rebases_a_rotation_onto_a_concurrent_save(clock: FrozenClock) -> None:
    core = make_core(clock)
    target = stored(core, {"n": 1})
    session = rotating(core, target, mine=1)
    theirs = newer(core, 2, {"n": 1, "theirs": 2})
    store = ScriptedStore(
        (Delete(target.key, 1, "handle-1"), False),
        (Load(target.key, NOW), theirs),
        (Delete(target.key, 2, "h2"), True),
        (Create, True),
    )
    store.run(core.save_flow(session))
    create = store.seen[-1]
    assert isinstance(create, Create)
    assert contents(core, create.payload)[0] == {"": {"n": 1, "mine": 1, "theirs": 2}}


def test_lock_mode_rebases_too_when_its_lock_was_outlived(clock: FrozenClock) -> None:
    core = make_core(clock, concurrency="lock")
    target = stored(core, {"n": 1})
    session = rotating(core, target, mine=1)
    theirs = newer(core, 2, {"n": 5})
    store = ScriptedStore((Delete, False), (Load, theirs), (Delete, True), (Create, True))
    store.run(core.save_flow(session))
    create = store.seen[-1]
    assert isinstance(create, Create)
    assert contents(core, create.payload)[0] == {"": {"n": 5, "mine": 1}}


def test_none_mode_overwrites_a_concurrent_save_as_its_updates_do_but_never_drops_it_silently(
    clock: FrozenClock,
) -> None:
    # Last writer wins in "none" mode: this request's document is the one kept, as its update
    # would have been, and the retirement is still by version so it sees the newer record.
    core = make_core(clock, concurrency="none")
    target = stored(core, {"n": 1})
    session = rotating(core, target, mine=1)
    theirs = newer(core, 2, {"n": 1, "theirs": 2})
    store = ScriptedStore(
        (Delete(target.key, 1, "handle-1"), False),
        (Load, theirs),
        (Delete(target.key, 2, "h2"), True),
        (Create, True),
    )
    store.run(core.save_flow(session))
    create = store.seen[-1]
    assert isinstance(create, Create)
    assert contents(core, create.payload)[0] == {"": {"n": 1, "mine": 1}}


def test_a_rotation_losing_for_longer_than_lock_wait_raises_session_conflict(
    clock: FrozenClock,
) -> None:
    monotonic = FrozenClock(100.0)
    core = make_core(clock, lock_wait=1.0, monotonic=monotonic)
    session = rotating(core, stored(core, {"n": 1}), mine=1)
    store = ScriptedStore(
        (Delete, False),
        (Load, newer(core, 2, {"n": 1})),
        (where(Delete, expected_version=2, handle="h2"), False),
        (Load, newer(core, 3, {"n": 1})),
        lambda op: isinstance(op, Sleep) and 0 <= op.seconds <= 0.002,  # the same back-off
        Step(Delete, False, then=lambda: monotonic.advance(1.0)),
        (Load, newer(core, 4, {"n": 1})),
    )
    with pytest.raises(SessionConflict):
        store.run(core.save_flow(session))  # and no Create


def test_merge_policy_raise_refuses_a_rotation_over_a_conflicting_save(clock: FrozenClock) -> None:
    core = make_core(clock, merge_conflict="raise")
    target = stored(core, {"n": 1})
    session = rotating(core, target, n=2)
    with pytest.raises(SessionConflict) as raised:
        run(core.save_flow(session), (Delete, False), (Load, newer(core, 2, {"n": 3})))
    assert raised.value.keys == ["n"]
