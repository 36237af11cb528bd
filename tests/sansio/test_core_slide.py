"""Stores that slide on load: the idle timeout's touch rides on the Load (ops.Slide)."""

from __future__ import annotations

import pytest

from coatcheck._sansio.cookies import CookieConfig
from coatcheck._sansio.ops import LOCKED, Load, LockRequest, Record, Sleep, Slide, Touch, Unlock
from coatcheck.testing import FrozenClock

from .scripted import ScriptedStore, Step, run, where
from .support import IDLE, NOW, Stored, make_core, stored


def slid(target: Stored, now: float, idle: float = IDLE) -> Record:
    """The record as a sliding store answers it: moved to ``now``, expiring ``idle`` later."""
    return target.record._replace(accessed_at=now, expires_at=now + idle)


def test_the_load_asks_for_a_slide_of_a_stale_live_record(clock: FrozenClock) -> None:
    core = make_core(clock, slides_on_load=True, idle_timeout=600, access_resolution=10)
    target = stored(core, {"n": 1}, accessed=NOW - 300)
    slide = Slide(NOW, NOW + 600, NOW - 10, NOW - 600)
    session = run(
        core.open_flow(target.session_id),
        (Load(target.key, NOW, None, slide), slid(target, NOW, 600)),
    )
    assert session["n"] == 1
    assert run(core.save_flow(session)).ticket is None  # and no touch: the load did it


@pytest.mark.parametrize(
    ("settings", "options"),
    [
        ({"slides_on_load": False}, {}),
        ({}, {"read_only": True}),
        ({"bind_remote_addr": True}, {}),
        ({"bind_user_agent": True}, {}),
        ({"idle_timeout": None}, {}),
    ],
    ids=["store-cannot", "read-only", "bound-addr", "bound-agent", "no-idle-timeout"],
)
def test_no_slide_is_asked_for(
    clock: FrozenClock, settings: dict[str, object], options: dict[str, object]
) -> None:
    settings.setdefault("slides_on_load", True)
    core = make_core(clock, **settings)
    target = stored(core, accessed=NOW - 10)
    run(core.open_flow(target.session_id, **options), (where(Load, slide=None), target.record))


def test_a_locked_load_keeps_the_slide_of_the_open_across_retries(clock: FrozenClock) -> None:
    core = make_core(clock, slides_on_load=True, concurrency="lock")
    target = stored(core, accessed=NOW - 120)
    slide = Slide(NOW, NOW + IDLE, NOW - 60, NOW - IDLE)
    store = ScriptedStore(
        (where(Load, now=NOW, slide=slide), LOCKED),
        Step(Sleep, then=lambda: clock.advance(2)),
        (where(Load, now=NOW + 2, slide=slide), slid(target, NOW)),
    )
    session = store.run(core.open_flow(target.session_id))
    lock = store.seen[0].lock  # type: ignore[union-attr]
    assert lock == LockRequest(session.lock_token or "", 30.0, NOW)
    # Slid already: the save only releases the lock.
    run(core.save_flow(session), Unlock(target.key, session.lock_token or ""))


def test_a_record_the_store_did_not_slide_is_touched_at_save(clock: FrozenClock) -> None:
    core = make_core(clock, slides_on_load=True)
    target = stored(core, accessed=NOW - 120)
    session = run(
        core.open_flow(target.session_id),
        (where(Load, slide=Slide(NOW, NOW + IDLE, NOW - 60, NOW - IDLE)), target.record),
    )
    run(core.save_flow(session), (Touch(target.key, NOW, NOW + IDLE, NOW, None, "handle-1"), True))


@pytest.mark.parametrize("mode", ["merge", "lock"])
def test_a_slide_past_the_absolute_deadline_is_put_back_by_a_touch(
    clock: FrozenClock, mode: str
) -> None:
    core = make_core(
        clock, slides_on_load=True, idle_timeout=3000, absolute_timeout=3600, concurrency=mode
    )
    target = stored(core, {"n": 1}, created=NOW, accessed=NOW)
    clock.advance(2900)  # stale, alive, 700 s before the absolute deadline
    now = NOW + 2900
    overshot = slid(target, now, 3000)  # the store moved the expiry to now + 3000
    session = run(core.open_flow(target.session_id), (where(Load, key=target.key), overshot))
    assert session["n"] == 1
    touch = Touch(target.key, now, NOW + 3600, now, session.lock_token, "handle-1")
    run(core.save_flow(session), (touch, True))


def test_a_slide_inside_the_absolute_deadline_needs_no_touch(clock: FrozenClock) -> None:
    core = make_core(clock, slides_on_load=True, idle_timeout=3000, absolute_timeout=3600)
    target = stored(core, created=NOW, accessed=NOW)
    clock.advance(500)
    session = run(core.open_flow(target.session_id), (Load, slid(target, NOW + 500, 3000)))
    run(core.save_flow(session))


def test_a_max_age_cookie_is_reissued_after_a_slide_as_after_a_touch(clock: FrozenClock) -> None:
    cookie = CookieConfig(max_age=3600)
    touching = make_core(clock, cookie=cookie)
    sliding = make_core(clock, cookie=cookie, slides_on_load=True)
    target = stored(touching, accessed=NOW - 600)
    session = run(touching.open_flow(target.session_id), (Load, target.record))
    assert run(touching.save_flow(session), (Touch, True)).ticket == target.session_id
    session = run(sliding.open_flow(target.session_id), (Load, slid(target, NOW)))
    assert run(sliding.save_flow(session)).ticket == target.session_id
