"""Concurrent saves: a losing Update reloads, merges key by key and retries, or gives up."""

from __future__ import annotations

import logging
import math
from typing import Any

import pytest

from coatcheck._sansio.core import SessionCore
from coatcheck._sansio.ops import Damaged, Delete, Load, Record, Sleep, Update
from coatcheck._sansio.session import Session
from coatcheck.errors import SessionConflict, SessionInterrupted
from coatcheck.testing import FrozenClock

from .scripted import ScriptedStore, Step, run, where
from .support import (
    IDLE,
    NOW,
    Stored,
    contents,
    document,
    make_core,
    open_stored,
    reasons,
    record,
    stored,
)


def newer(core: SessionCore, version: int, data: dict[str, Any], **meta: Any) -> Record:
    """The record another request saved meanwhile, at ``version`` (handle ``h<version>``)."""
    return record(core, document(core, data, **meta), version=version, handle=f"h{version}")


def lost_then_merged(
    core: SessionCore, target: Stored, session: Session, theirs: Record
) -> dict[str, Any]:
    """Save ``session``: the first Update loses to ``theirs``; the default namespace saved."""
    store = ScriptedStore(
        (where(Update, expected_version=1, handle="handle-1"), None),
        (Load(target.key, NOW), theirs),
        (where(Update, expected_version=theirs.version, handle=theirs.handle), theirs.version + 1),
    )
    store.run(core.save_flow(session))
    update = store.seen[-1]
    assert isinstance(update, Update)
    assert session.version == theirs.version + 1
    data, _ = contents(core, update.payload)
    return data[""]


def test_different_keys_of_both_requests_are_kept(clock: FrozenClock) -> None:
    core = make_core(clock)
    target = stored(core, {"kept": 1, "gone": "x", "theirs-gone": 0})
    session, _ = open_stored(core, target)
    session["a"] = 1
    del session["gone"]
    theirs = newer(core, 2, {"kept": 1, "gone": "x", "b": 2})
    assert lost_then_merged(core, target, session, theirs) == {"kept": 1, "a": 1, "b": 2}
    assert session["b"] == 2  # the session now shows what was saved


def test_a_key_both_changed_goes_to_the_last_writer_by_default(clock: FrozenClock) -> None:
    core = make_core(clock)
    target = stored(core, {"n": 1})
    session, _ = open_stored(core, target)
    session["n"] = 2
    assert lost_then_merged(core, target, session, newer(core, 2, {"n": 5})) == {"n": 2}


@pytest.mark.parametrize(
    ("ours", "theirs", "label"),
    [
        ({"n": 2}, {"n": 5}, "n"),
        ({"n": 6}, {"n": 6}, "n"),  # the same value from both: two increments, one lost
        ({"n": 1, "x": 1}, {}, "n"),  # they deleted it
    ],
)
def test_a_key_both_changed_raises_under_merge_conflict_raise(
    clock: FrozenClock, ours: dict[str, int], theirs: dict[str, int], label: str
) -> None:
    core = make_core(clock, merge_conflict="raise")
    target = stored(core, {"n": 1})
    session, _ = open_stored(core, target)
    session.update(ours)
    with pytest.raises(SessionConflict) as raised:
        run(core.save_flow(session), (Update, None), (Load, newer(core, 2, theirs)))
    assert raised.value.keys == [label]


def test_conflicts_in_namespaces_and_the_user_are_named(clock: FrozenClock) -> None:
    core = make_core(clock, merge_conflict="raise")
    target = stored(core, namespaces={"app": {"k": 1}}, u="alice")
    session, _ = open_stored(core, target)
    session.namespace("app")["k"] = 2
    session.user = "bob"
    theirs = record(
        core,
        document(core, namespaces={"app": {"k": 3}}, u="carol"),
        version=2,
    )
    with pytest.raises(SessionConflict) as raised:
        run(core.save_flow(session), (Update, None), (Load, theirs))
    assert sorted(raised.value.keys) == ["app/k", "user"]


def test_mark_modified_replays_every_key_this_request_saw(clock: FrozenClock) -> None:
    core = make_core(clock)
    target = stored(core, {"items": [1], "old": 0})
    session, _ = open_stored(core, target)
    session["items"].append(2)
    session.mark_modified()
    theirs = newer(core, 2, {"items": [1, 9], "b": 2})  # they also dropped "old"
    merged = lost_then_merged(core, target, session, theirs)
    assert merged == {"items": [1, 2], "old": 0, "b": 2}


def test_form_tokens_and_flash_merge_as_queues(clock: FrozenClock) -> None:
    core = make_core(clock)
    target = stored(core, t=["t0"], f=[["message", "old"]])
    session, _ = open_stored(core, target)
    assert session.consume_form_token("t0")
    mine = session.create_form_token()
    assert session.pop_flashed() == [("message", "old")]
    session.flash("mine")
    theirs = newer(core, 2, {}, t=["t0", "t2"], f=[["message", "old"], ["message", "theirs"]])
    store = ScriptedStore((Update, None), (Load, theirs), (where(Update, expected_version=2), 3))
    store.run(core.save_flow(session))
    update = store.seen[-1]
    assert isinstance(update, Update)
    _, meta = contents(core, update.payload)
    assert meta["t"] == ["t2", mine]
    assert meta["f"] == [["message", "theirs"], ["message", "mine"]]


def test_losing_twice_backs_off_then_merges_every_newer_version(clock: FrozenClock) -> None:
    core = make_core(clock)
    target = stored(core, {"n": 1})
    session, _ = open_stored(core, target)
    session["a"] = 1
    store = ScriptedStore(
        (where(Update, expected_version=1), None),
        (Load, newer(core, 2, {"n": 1, "b": 2})),
        (where(Update, expected_version=2, handle="h2"), None),
        (Load, newer(core, 3, {"n": 1, "b": 2, "c": 3})),
        lambda op: isinstance(op, Sleep) and 0 <= op.seconds <= 0.002,
        (where(Update, expected_version=3, handle="h3"), 4),
    )
    store.run(core.save_flow(session))
    update = store.seen[-1]
    assert isinstance(update, Update)
    assert contents(core, update.payload)[0][""] == {"n": 1, "a": 1, "b": 2, "c": 3}
    assert session.version == 4


def test_losing_for_longer_than_lock_wait_raises_session_conflict(clock: FrozenClock) -> None:
    monotonic = FrozenClock(100.0)
    core = make_core(clock, lock_wait=1.0, monotonic=monotonic)
    target = stored(core, {"n": 1})
    session, _ = open_stored(core, target)
    session["a"] = 1
    store = ScriptedStore(
        (Update, None),
        (Load, newer(core, 2, {"n": 1})),
        (Update, None),
        (Load, newer(core, 3, {"n": 1})),
        lambda op: isinstance(op, Sleep) and 0 <= op.seconds <= 0.002,  # give-up time set
        (Update, None),
        (Load, newer(core, 4, {"n": 1})),
        lambda op: isinstance(op, Sleep) and 0 <= op.seconds <= 0.004,  # a growing ceiling
        Step(Update, None, then=lambda: monotonic.advance(1.0)),
        (Load, newer(core, 5, {"n": 1})),
    )
    with pytest.raises(SessionConflict) as raised:
        store.run(core.save_flow(session))
    assert raised.value.keys == []


def test_a_record_gone_meanwhile_interrupts_the_save(
    clock: FrozenClock, caplog: pytest.LogCaptureFixture
) -> None:
    core = make_core(clock)
    target = stored(core, {"n": 1})
    session, _ = open_stored(core, target)
    session["n"] = 2
    with pytest.raises(SessionInterrupted, match="destroyed or rotated"):
        run(core.save_flow(session), (Update, None), (Load(target.key, NOW), None))
    assert reasons(caplog) == ["session-interrupted"]


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        (Damaged("wrong-type"), "wrong-type"),
        (Record(b"garbage", 2, NOW, NOW + IDLE), "corrupt-payload"),
        (Record(b"", 2, math.nan, NOW + IDLE), "damaged-times"),
    ],
)
def test_a_newer_record_that_cannot_be_read_is_deleted_and_interrupts_the_save(
    clock: FrozenClock, caplog: pytest.LogCaptureFixture, answer: object, reason: str
) -> None:
    core = make_core(clock)
    target = stored(core, {"n": 1})
    session, _ = open_stored(core, target)
    session["n"] = 2
    caplog.set_level(logging.INFO, "coatcheck.security")
    with pytest.raises(SessionInterrupted, match="unreadable"):
        run(core.save_flow(session), (Update, None), (Load, answer), Delete(target.key))
    assert reasons(caplog) == [reason]


def test_mode_none_writes_any_version_and_never_reloads(
    clock: FrozenClock, caplog: pytest.LogCaptureFixture
) -> None:
    core = make_core(clock, concurrency="none")
    target = stored(core, {"n": 1}, version=3)
    session, _ = open_stored(core, target)
    session["n"] = 2
    run(core.save_flow(session), (where(Update, expected_version=None, handle="handle-1"), 9))
    assert session.version == 9
    session, _ = open_stored(core, target)
    session["n"] = 3
    with pytest.raises(SessionInterrupted):
        run(core.save_flow(session), (where(Update, expected_version=None), None))
    assert reasons(caplog) == ["session-interrupted"]


def test_a_lock_mode_save_that_lost_its_lock_merges_and_still_unlocks(
    clock: FrozenClock,
) -> None:
    core = make_core(clock, concurrency="lock")
    target = stored(core, {"n": 1})
    session, _ = open_stored(core, target)
    token = session.lock_token
    session["a"] = 1
    run(
        core.save_flow(session),
        (where(Update, expected_version=1, unlock=token), None),
        (Load(target.key, NOW), newer(core, 2, {"n": 1, "b": 2})),
        (where(Update, expected_version=2, unlock=token, handle="h2"), 3),
    )
    assert session.lock_token is None and session["b"] == 2
