"""Lock mode: the load takes the per-session lock, waits while it is held, and every way out of
the request releases it (Update.unlock, Touch.unlock, Unlock, or Delete)."""

from __future__ import annotations

import pytest

from coatcheck._sansio.core import SessionCore
from coatcheck._sansio.ops import (
    LOCKED,
    Create,
    Delete,
    Load,
    LockRequest,
    Sleep,
    Touch,
    Unlock,
    Update,
)
from coatcheck._sansio.session import Session
from coatcheck.errors import PayloadTooLarge, SessionInterrupted, SessionLocked, StoreError
from coatcheck.testing import FrozenClock

from .scripted import ScriptedStore, Step, run, where
from .support import IDLE, NOW, STORE, Stored, make_core, stored


def _open(core: SessionCore, target: Stored) -> tuple[Session, str]:
    """Open ``target`` in lock mode; the session and the lock token its load asked for."""
    store = ScriptedStore((where(Load, key=target.key, now=NOW, slide=None), target.record))
    session = store.run(core.open_flow(target.session_id))
    load = store.seen[0]
    assert isinstance(load, Load) and load.lock is not None
    assert session.lock_token == load.lock.token
    return session, load.lock.token


# -- taking the lock ---------------------------------------------------------------------------


def test_the_load_takes_the_lock_with_a_fresh_token(clock: FrozenClock) -> None:
    core = make_core(clock, concurrency="lock", lock_timeout=12.5)
    target = stored(core, {"n": 1})
    store = ScriptedStore((where(Load, key=target.key), target.record))
    first = store.run(core.open_flow(target.session_id))
    store.expect((where(Load, key=target.key), target.record))
    second = store.run(core.open_flow(target.session_id))
    # Waiting since the open's now: this request has waited nowhere else first.
    assert store.seen[0] == Load(target.key, NOW, LockRequest(first.lock_token or "", 12.5, NOW))
    assert first.lock_token and second.lock_token and first.lock_token != second.lock_token
    assert first["n"] == 1


def test_a_held_lock_is_polled_with_growing_delays(clock: FrozenClock) -> None:
    core = make_core(clock, concurrency="lock")
    target = stored(core, {"n": 1})
    delays = [0.002, 0.004, 0.008, 0.016, 0.032, 0.05, 0.05]
    steps: list[object] = []
    for delay in delays:
        steps += [(Load, LOCKED), where(Sleep, seconds=delay, key=target.key)]
    store = ScriptedStore(*steps, (Load, target.record))
    session = store.run(core.open_flow(target.session_id))
    tokens = {op.lock for op in store.seen if isinstance(op, Load)}
    assert tokens == {LockRequest(session.lock_token or "", 30.0, NOW)}  # one token throughout
    # Each pause names the waiter, so a store that can tell a release may wake it early.
    assert {op.token for op in store.seen if isinstance(op, Sleep)} == {session.lock_token}
    assert session["n"] == 1


def test_each_retry_asks_for_the_lock_at_the_current_time(clock: FrozenClock) -> None:
    core = make_core(clock, concurrency="lock")
    target = stored(core)
    store = ScriptedStore(
        (where(Load, now=NOW), LOCKED),
        Step(Sleep, then=lambda: clock.advance(1)),
        (where(Load, now=NOW + 1), target.record),
    )
    session = store.run(core.open_flow(target.session_id))
    assert session.accessed_at == NOW  # the session's access time is the open's


def test_a_lock_held_past_lock_wait_raises_session_locked(clock: FrozenClock) -> None:
    monotonic = FrozenClock(100.0)
    core = make_core(clock, concurrency="lock", lock_wait=1.0, monotonic=monotonic)
    target = stored(core)
    half_a_second = Step(Sleep, then=lambda: monotonic.advance(0.5))
    store = ScriptedStore((Load, LOCKED), half_a_second, (Load, LOCKED), half_a_second)
    store.expect((Load, LOCKED))  # monotonic() is now 101.0: the wait is over
    store.expect(where(Unlock, key=target.key))  # its claim on the next turn goes
    with pytest.raises(SessionLocked, match=r"held the session lock for over 1\.0 s"):
        store.run(core.open_flow(target.session_id))
    load = store.seen[0]
    assert isinstance(load, Load) and load.lock is not None
    assert store.seen[-1] == Unlock(target.key, load.lock.token)


def test_a_store_failing_the_give_up_unlock_still_answers_session_locked(
    clock: FrozenClock,
) -> None:
    core = make_core(clock, concurrency="lock", lock_wait=0)
    target = stored(core)
    store = ScriptedStore((Load, LOCKED), Step(Unlock, error=StoreError(STORE, "down")))
    with pytest.raises(SessionLocked):
        store.run(core.open_flow(target.session_id))


def test_time_queued_in_the_process_counts_as_waiting(clock: FrozenClock) -> None:
    # The manager passes what is left of lock_wait after its own gate: the rest was waited.
    core = make_core(clock, concurrency="lock", lock_wait=10.0)
    target = stored(core)
    store = ScriptedStore((Load, target.record))
    store.run(core.open_flow(target.session_id, lock_wait=7.5))
    load = store.seen[0]
    assert isinstance(load, Load) and load.lock is not None and load.lock.since == NOW - 2.5


def test_lock_wait_zero_gives_up_at_the_first_locked_answer(clock: FrozenClock) -> None:
    core = make_core(clock, concurrency="lock", lock_wait=0)
    target = stored(core)
    with pytest.raises(SessionLocked):
        run(core.open_flow(target.session_id), (Load, LOCKED), where(Unlock, key=target.key))


def test_no_lock_is_left_behind_when_there_is_no_session(clock: FrozenClock) -> None:
    core = make_core(clock, concurrency="lock")
    target = stored(core)
    unknown = run(core.open_flow(target.session_id), (Load, None))  # no lock without a record
    expired = target.record._replace(accessed_at=NOW - IDLE)
    gone = run(core.open_flow(target.session_id), (Load, expired), (Delete, True))
    assert unknown.lock_token is None and gone.lock_token is None


def test_an_expired_record_renewed_meanwhile_is_kept_and_unlocked(clock: FrozenClock) -> None:
    # The delete of an expired record is at the version seen: when a save got in first (a
    # worker whose clock disagrees), the record stays, and the lock this load took goes.
    core = make_core(clock, concurrency="lock")
    target = stored(core, version=4)
    expired = target.record._replace(accessed_at=NOW - IDLE)
    store = ScriptedStore(
        (Load, expired),
        (Delete(target.key, 4, "handle-1"), False),
        where(Unlock, key=target.key),
    )
    assert store.run(core.open_flow(target.session_id)).is_new


# -- releasing it at save ---------------------------------------------------------------------


def test_an_update_releases_the_lock_in_the_same_step(clock: FrozenClock) -> None:
    core = make_core(clock, concurrency="lock")
    target = stored(core, {"n": 1})
    session, token = _open(core, target)
    session["n"] = 2
    run(core.save_flow(session), (where(Update, expected_version=1, unlock=token), 2))
    assert session.lock_token is None


def test_a_touch_releases_the_lock_in_the_same_step(clock: FrozenClock) -> None:
    core = make_core(clock, concurrency="lock")
    target = stored(core, accessed=NOW - 600)
    session, token = _open(core, target)
    touch = Touch(target.key, NOW, NOW + IDLE, NOW, token, "handle-1")
    run(core.save_flow(session), (touch, True))
    assert session.lock_token is None


def test_nothing_to_write_still_releases_the_lock(clock: FrozenClock) -> None:
    core = make_core(clock, concurrency="lock")
    target = stored(core, {"n": 1})
    session, token = _open(core, target)
    assert session["n"] == 1
    run(core.save_flow(session), Unlock(target.key, token))
    assert session.lock_token is None


def test_destroy_and_rotation_release_the_lock_by_deleting_the_record(clock: FrozenClock) -> None:
    core = make_core(clock, concurrency="lock")
    target = stored(core, {"n": 1})
    destroyed, _ = _open(core, target)
    destroyed.destroy()
    run(core.save_flow(destroyed), Delete(target.key))
    rotated, _ = _open(core, target)
    rotated.regenerate()
    run(core.save_flow(rotated), (Delete(target.key, 1, "handle-1"), True), (Create, True))
    assert destroyed.lock_token is None and rotated.lock_token is None


# -- releasing it on the way out --------------------------------------------------------------


def test_abandon_releases_the_lock_once(clock: FrozenClock) -> None:
    core = make_core(clock, concurrency="lock")
    target = stored(core)
    session, token = _open(core, target)
    session["n"] = 1
    run(core.abandon_flow(session), Unlock(target.key, token))
    assert session.lock_token is None
    run(core.abandon_flow(session))  # nothing left to release
    run(core.save_flow(session), (where(Update, unlock=None), 2))


def test_abandon_without_a_lock_does_nothing(clock: FrozenClock) -> None:
    core = make_core(clock)
    target = stored(core)
    run(core.abandon_flow(run(core.open_flow(None))))
    run(core.abandon_flow(run(core.open_flow(target.session_id), (Load, target.record))))


@pytest.mark.parametrize(
    ("change", "failing"),
    [(True, Update), (False, Touch)],
    ids=["update", "touch"],
)
def test_a_store_error_in_a_locked_save_unlocks_before_it_propagates(
    clock: FrozenClock, change: bool, failing: type
) -> None:
    core = make_core(clock, concurrency="lock")
    target = stored(core, accessed=NOW - 600)
    session, token = _open(core, target)
    if change:
        session["n"] = 1
    boom = StoreError(STORE, "TimeoutError: slow")
    with pytest.raises(StoreError) as raised:
        run(core.save_flow(session), Step(failing, error=boom), Unlock(target.key, token))
    assert raised.value is boom and session.lock_token is None


def test_a_save_that_fails_before_any_write_unlocks(clock: FrozenClock) -> None:
    core = make_core(clock, concurrency="lock", max_payload_bytes=200)
    target = stored(core)
    session, token = _open(core, target)
    session["big"] = "x" * 500
    with pytest.raises(PayloadTooLarge):
        run(core.save_flow(session), Unlock(target.key, token))


def test_an_interrupted_locked_save_unlocks(clock: FrozenClock) -> None:
    core = make_core(clock, concurrency="lock")
    target = stored(core)
    session, token = _open(core, target)
    session["n"] = 1
    with pytest.raises(SessionInterrupted):
        run(
            core.save_flow(session),
            (where(Update, unlock=token), None),
            (Load(target.key, NOW), None),  # the reload takes no lock
            Unlock(target.key, token),
        )


def test_a_locked_save_abandoned_mid_write_can_be_closed(clock: FrozenClock) -> None:
    # What a driver leaves behind when the task is cancelled (CancelledError, KeyboardInterrupt
    # are not thrown into the flow): a suspended flow that the garbage collector closes.
    core = make_core(clock, concurrency="lock")
    session, _ = _open(core, stored(core))
    session["n"] = 1
    flow = core.save_flow(session)
    assert isinstance(next(flow), Update)
    flow.close()
