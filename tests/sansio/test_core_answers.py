"""What a store answers is untrusted too: an answer of the wrong type stops at the seam."""

from __future__ import annotations

import pytest

from coatcheck._sansio.ops import ClearExpired, Create, Load, Touch, Update
from coatcheck.errors import StoreError
from coatcheck.testing import FrozenClock

from .scripted import run
from .support import NOW, STORE, make_core, open_stored, stored

WRONG = ["a record", b"payload", 2.5, object()]


@pytest.mark.parametrize("answer", [*WRONG, 1, True])
def test_a_load_answered_with_anything_but_a_record_is_a_store_error(
    clock: FrozenClock, answer: object
) -> None:
    core = make_core(clock)
    target = stored(core)
    with pytest.raises(StoreError, match=rf"{STORE}.*answered {type(answer).__name__} to Load"):
        run(core.open_flow(target.session_id), (Load, answer))


@pytest.mark.parametrize("answer", WRONG)
def test_an_update_answered_with_anything_but_a_version_is_a_store_error(
    clock: FrozenClock, answer: object
) -> None:
    core = make_core(clock)
    session, _ = open_stored(core, stored(core, {"n": 1}))
    session["n"] = 2
    with pytest.raises(StoreError, match=rf"{STORE}.*answered {type(answer).__name__} to Update"):
        run(core.save_flow(session), (Update, answer))


@pytest.mark.parametrize("answer", [*WRONG, None, 1])
def test_a_create_or_touch_answered_with_anything_but_a_bool_is_a_store_error(
    clock: FrozenClock, answer: object
) -> None:
    core = make_core(clock)
    new = run(core.open_flow(None))
    new["n"] = 1
    with pytest.raises(StoreError, match=rf"answered {type(answer).__name__} to Create"):
        run(core.save_flow(new), (Create, answer))
    stale, _ = open_stored(core, stored(core, {"n": 1}, accessed=NOW - 600))
    with pytest.raises(StoreError, match=rf"answered {type(answer).__name__} to Touch"):
        run(core.save_flow(stale), (Touch, answer))


@pytest.mark.parametrize("answer", ["3", None, 2.0])
def test_a_cleanup_answered_with_anything_but_a_count_is_a_store_error(
    clock: FrozenClock, answer: object
) -> None:
    with pytest.raises(StoreError, match=rf"answered {type(answer).__name__} to ClearExpired"):
        run(make_core(clock).cleanup_flow(), (ClearExpired, answer))
