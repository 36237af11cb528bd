"""SessionCore.open_flow on a damaged record: whatever a store holds is untrusted input.

A store answers :class:`Damaged` for a key that holds something not its own, and may hand over
a record's fields as its driver read them; the core checks them. Either way the request gets
a fresh session, one security line with the reason, and the key deleted: never an error (a
503 for as long as the damage stays) and never a timeout switched off by a NaN.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import pytest

from coatcheck._sansio.ops import Damaged, Delete, Load, Record
from coatcheck.testing import FrozenClock

from .scripted import run, where
from .support import IDLE, NOW, make_core, reasons, stored

GOOD = b'cc2:json:{"c":1}'


def raw(payload: Any, version: Any, accessed_at: Any, expires_at: Any) -> Record:
    """A record as a store's driver might hand it over: any type in any field."""
    return Record(payload, version, accessed_at, expires_at)


DAMAGED = [
    pytest.param(Damaged("wrong-type"), "wrong-type", id="another-type"),
    pytest.param(Damaged("foreign-record"), "foreign-record", id="foreign-framing"),
    pytest.param(raw(GOOD, 1, math.nan, NOW + IDLE), "damaged-times", id="nan-accessed"),
    pytest.param(raw(GOOD, 1, NOW, math.nan), "damaged-times", id="nan-expires"),
    pytest.param(raw(GOOD, 1, NOW, math.inf), "damaged-times", id="endless"),
    pytest.param(raw(GOOD, 1, -math.inf, NOW + IDLE), "damaged-times", id="minus-inf"),
    pytest.param(raw(GOOD, 1, "now", NOW + IDLE), "damaged-times", id="text-time"),
    pytest.param(raw(GOOD, 1, NOW, None), "damaged-times", id="null-time"),
    pytest.param(raw(GOOD, "3", NOW, NOW + IDLE), "damaged-version", id="text-version"),
    pytest.param(raw(GOOD, 2.0, NOW, NOW + IDLE), "damaged-version", id="float-version"),
    pytest.param(raw(GOOD, True, NOW, NOW + IDLE), "damaged-version", id="bool-version"),
    pytest.param(raw(GOOD, 0, NOW, NOW + IDLE), "damaged-version", id="version-zero"),
    pytest.param(raw(GOOD, -4, NOW, NOW + IDLE), "damaged-version", id="negative-version"),
    pytest.param(raw(GOOD.decode(), 1, NOW, NOW + IDLE), "damaged-payload", id="text-payload"),
    pytest.param(Record(bytearray(GOOD), 1, NOW, NOW + IDLE), "damaged-payload", id="bytearray"),
]


@pytest.mark.parametrize(("answer", "reason"), DAMAGED)
def test_damage_is_logged_deleted_and_gives_a_fresh_session(
    clock: FrozenClock, caplog: pytest.LogCaptureFixture, answer: object, reason: str
) -> None:
    core = make_core(clock)
    target = stored(core)
    caplog.set_level(logging.INFO, "coatcheck.security")
    session = run(
        core.open_flow(target.session_id), (Load(target.key, NOW), answer), Delete(target.key)
    )
    assert session.is_new and session.had_ticket and session.key is None
    assert reasons(caplog) == [reason]


@pytest.mark.parametrize(("answer", "reason"), DAMAGED[:3])
def test_damage_under_a_lock_is_deleted_with_its_lock(
    clock: FrozenClock, caplog: pytest.LogCaptureFixture, answer: object, reason: str
) -> None:
    core = make_core(clock, concurrency="lock")
    target = stored(core)
    caplog.set_level(logging.INFO, "coatcheck.security")
    session = run(
        core.open_flow(target.session_id),
        (where(Load, key=target.key), answer),
        Delete(target.key),  # a plain delete takes the lock with it: no Unlock follows
    )
    assert session.is_new and session.lock_token is None
    assert reasons(caplog) == [reason]


def test_a_nan_access_time_never_switches_the_idle_timeout_off(clock: FrozenClock) -> None:
    # now - nan >= idle is always false: without the check this record would live forever.
    core = make_core(clock)
    target = stored(core, accessed=NOW - 10 * IDLE)
    forever = target.record._replace(accessed_at=math.nan)
    clock.advance(10 * IDLE)
    session = run(core.open_flow(target.session_id), (Load, forever), Delete(target.key))
    assert session.is_new


def test_a_sound_record_is_not_damage(clock: FrozenClock) -> None:
    core = make_core(clock)
    target = stored(core, {"n": 1})
    as_ints = target.record._replace(accessed_at=int(NOW), expires_at=int(NOW + IDLE))
    session = run(core.open_flow(target.session_id), (Load, as_ints))
    assert session["n"] == 1 and not session.is_new


def test_the_next_request_after_damage_is_a_plain_unknown_id(clock: FrozenClock) -> None:
    # No lasting lock-out: once deleted, the cookie is an unknown id like any other.
    core = make_core(clock, concurrency="lock")
    target = stored(core)
    run(core.open_flow(target.session_id), (Load, Damaged("wrong-type")), Delete(target.key))
    session = run(core.open_flow(target.session_id), (Load, None))
    assert session.is_new
