"""SessionCore.save_flow: lazy creation, update, touch, rotation, destruction, headers, cleanup."""

from __future__ import annotations

import random

import pytest

from coatcheck._sansio.cookies import CookieConfig, delete_cookie_header, set_cookie_header
from coatcheck._sansio.ids import storage_key
from coatcheck._sansio.ops import ClearExpired, Create, Delete, Load, Record, Touch, Update
from coatcheck.errors import PayloadTooLarge, SerializationError, StoreError
from coatcheck.testing import FrozenClock

from .scripted import ScriptedStore, Step, run, where
from .support import IDLE, NOW, STORE, contents, make_core, open_stored, stored

COOKIE = CookieConfig()
VARY = ("Vary", "Cookie")
NO_STORE = ("Cache-Control", "no-store")


def cookie_headers(ticket: str) -> list[tuple[str, str]]:
    return [("Set-Cookie", set_cookie_header(COOKIE, ticket)), NO_STORE, VARY]


# -- a new session: stored only once it holds something ------------------------------------


def test_an_untouched_new_session_costs_nothing(clock: FrozenClock) -> None:
    core = make_core(clock)
    outcome = run(core.save_flow(run(core.open_flow(None))))
    assert outcome == ([], None, False)


def test_a_new_session_that_was_only_read_varies_on_cookie(clock: FrozenClock) -> None:
    core = make_core(clock)
    session = run(core.open_flow(None, remote_addr="192.0.2.1"))
    assert session.get("cart") is None
    assert run(core.save_flow(session)).headers == [VARY]  # the address alone is no info


def test_the_first_save_of_data_creates_version_one_and_issues_the_ticket(
    clock: FrozenClock,
) -> None:
    core = make_core(clock)
    session = run(core.open_flow(None))
    session["cart"] = ["book"]
    clock.advance(5)
    store = ScriptedStore(
        (where(Create, accessed_at=NOW + 5, expires_at=NOW + 5 + IDLE, now=NOW + 5), True)
    )
    outcome = store.run(core.save_flow(session))
    (create,) = store.seen
    assert isinstance(create, Create)
    assert session.id is not None and outcome.ticket == session.id
    assert session.key == create.key == storage_key(session.id)
    assert session.stored == Record(create.payload, 1, NOW + 5, NOW + 5 + IDLE)
    assert session.version == 1 and not session.regenerate_requested
    assert contents(core, create.payload) == ({"": {"cart": ["book"]}}, {"c": NOW * 1000})
    assert outcome.headers == cookie_headers(session.id)
    assert not outcome.cleared


def test_the_first_save_expires_at_the_absolute_deadline_when_it_comes_first(
    clock: FrozenClock,
) -> None:
    core = make_core(clock, idle_timeout=1800, absolute_timeout=1000)
    session = run(core.open_flow(None))
    session["n"] = 1
    run(core.save_flow(session), (where(Create, expires_at=NOW + 1000), True))


@pytest.mark.parametrize(
    "use",
    [
        lambda s: setattr(s, "user", "alice"),
        lambda s: s.flash("hello"),
        lambda s: s.create_form_token(),
        lambda s: s.namespace("app").update(x=1),
    ],
    ids=["user", "flash", "form-token", "namespace"],
)
def test_metadata_and_namespaces_are_worth_storing(clock: FrozenClock, use: object) -> None:
    core = make_core(clock)
    session = run(core.open_flow(None))
    use(session)  # type: ignore[operator]
    run(core.save_flow(session), (Create, True))


def test_a_create_collision_retries_under_another_id(clock: FrozenClock) -> None:
    core = make_core(clock)
    session = run(core.open_flow(None))
    session["n"] = 1
    store = ScriptedStore((Create, False), (Create, True))
    outcome = store.run(core.save_flow(session))
    first, second = store.seen
    assert isinstance(first, Create) and isinstance(second, Create)
    assert first.key != second.key and first.payload == second.payload
    assert session.key == second.key and outcome.ticket == session.id


def test_four_collisions_in_a_row_are_a_store_error(clock: FrozenClock) -> None:
    core = make_core(clock)
    session = run(core.open_flow(None))
    session["n"] = 1
    store = ScriptedStore(*[(Create, False)] * 4)
    with pytest.raises(StoreError, match=f"{STORE}.*4 fresh ids in a row already existed"):
        store.run(core.save_flow(session))
    assert len({op.key for op in store.seen if isinstance(op, Create)}) == 4
    assert session.id is None and session.key is None


def test_an_unencodable_value_names_its_key_and_writes_nothing(clock: FrozenClock) -> None:
    core = make_core(clock)
    session = run(core.open_flow(None))
    session["bad"] = object()
    with pytest.raises(SerializationError) as raised:
        run(core.save_flow(session))
    assert raised.value.key == "bad"


def test_a_payload_over_the_limit_writes_nothing(clock: FrozenClock) -> None:
    core = make_core(clock, max_payload_bytes=100)
    session, _ = open_stored(core, stored(core, {"n": 1}))
    session["big"] = "x" * 200
    with pytest.raises(PayloadTooLarge):
        run(core.save_flow(session))


# -- a stored session: update, touch or nothing --------------------------------------------


def test_a_change_updates_at_the_loaded_version_with_its_handle(clock: FrozenClock) -> None:
    core = make_core(clock)
    target = stored(core, {"n": 1}, version=7, accessed=NOW - 10, handle="cas-7")
    session, _ = open_stored(core, target)
    session["n"] = 2
    clock.advance(3)
    store = ScriptedStore(
        (
            where(
                Update,
                key=target.key,
                accessed_at=NOW + 3,
                expires_at=NOW + 3 + IDLE,
                now=NOW + 3,
                expected_version=7,
                unlock=None,
                handle="cas-7",
            ),
            8,
        )
    )
    outcome = store.run(core.save_flow(session))
    (update,) = store.seen
    assert isinstance(update, Update)
    assert contents(core, update.payload) == ({"": {"n": 2}}, {"c": NOW * 1000})
    assert session.version == 8
    assert session.stored == Record(update.payload, 8, NOW + 3, NOW + 3 + IDLE)
    assert outcome == ([VARY], None, False)  # the ticket is unchanged: no cookie


def test_a_nested_mutation_is_saved_only_once_marked(clock: FrozenClock) -> None:
    core = make_core(clock)
    target = stored(core, {"items": [1]})
    session, _ = open_stored(core, target)
    session["items"].append(2)
    assert not session.modified
    run(core.save_flow(session))  # inside the access resolution: nothing at all
    session, _ = open_stored(core, target)
    session["items"].append(2)
    session.mark_modified("items")
    store = ScriptedStore((Update, 2))
    store.run(core.save_flow(session))
    update = store.seen[0]
    assert isinstance(update, Update)
    assert contents(core, update.payload)[0] == {"": {"items": [1, 2]}}


@pytest.mark.parametrize("age", [0.0, 30.0, 59.999])
def test_an_unchanged_session_is_not_touched_inside_the_access_resolution(
    clock: FrozenClock, age: float
) -> None:
    core = make_core(clock)
    session, _ = open_stored(core, stored(core, {"n": 1}, accessed=NOW - age))
    assert session["n"] == 1
    assert run(core.save_flow(session)) == ([VARY], None, False)


@pytest.mark.parametrize("age", [60.0, 600.0])
def test_an_unchanged_session_is_touched_past_the_access_resolution(
    clock: FrozenClock, age: float
) -> None:
    core = make_core(clock)
    target = stored(core, {"n": 1}, version=4, accessed=NOW - age, handle="cas-4")
    session, _ = open_stored(core, target)
    touch = Touch(target.key, NOW, NOW + IDLE, NOW, None, "cas-4")
    outcome = run(core.save_flow(session), (touch, True))
    assert outcome == ([], None, False)  # the application never looked: no Vary either
    assert session.stored == target.record._replace(
        accessed_at=NOW, expires_at=NOW + IDLE, handle=None
    )
    assert session.version == 4  # a touch never rewrites the payload


def test_a_touch_stops_at_the_absolute_deadline(clock: FrozenClock) -> None:
    core = make_core(clock, idle_timeout=600, absolute_timeout=1000)
    clock.advance(900)
    target = stored(core, created=NOW, accessed=NOW + 800)
    session, _ = open_stored(core, target)
    run(
        core.save_flow(session),
        (Touch(target.key, NOW + 900, NOW + 1000, NOW + 900, None, "handle-1"), True),
    )


def test_a_touch_finding_no_record_changes_nothing(clock: FrozenClock) -> None:
    core = make_core(clock, cookie=CookieConfig(max_age=3600))
    target = stored(core, accessed=NOW - 600)
    session, _ = open_stored(core, target)
    outcome = run(core.save_flow(session), (Touch, False))
    assert outcome.ticket is None and session.stored == target.record


def test_access_resolution_zero_touches_every_request(clock: FrozenClock) -> None:
    core = make_core(clock, access_resolution=0)
    session, _ = open_stored(core, stored(core))
    run(core.save_flow(session), (Touch, True))


def test_a_max_age_cookie_is_reissued_when_the_session_is_extended(clock: FrozenClock) -> None:
    core = make_core(clock, cookie=CookieConfig(max_age=3600))
    changed, _ = open_stored(core, stored(core, {"n": 1}))
    changed["n"] = 2
    outcome = run(core.save_flow(changed), (Update, 2))
    assert outcome.ticket == changed.id
    assert "Max-Age=3600" in outcome.headers[0][1]
    assert outcome.headers[1:] == [NO_STORE, VARY]
    touched, _ = open_stored(core, stored(core, accessed=NOW - 600))
    outcome = run(core.save_flow(touched), (Touch, True))
    assert outcome.ticket == touched.id and outcome.headers[0][0] == "Set-Cookie"
    untouched, _ = open_stored(core, stored(core, accessed=NOW - 1))
    assert run(core.save_flow(untouched)).ticket is None


def test_a_store_error_on_update_propagates(clock: FrozenClock) -> None:
    core = make_core(clock)
    session, _ = open_stored(core, stored(core, {"n": 1}))
    session["n"] = 2
    boom = StoreError(STORE, "ConnectionError: down")
    with pytest.raises(StoreError) as raised:
        run(core.save_flow(session), Step(Update, error=boom))
    assert raised.value is boom


# -- read-only requests ----------------------------------------------------------------------


def test_a_read_only_request_never_writes_not_even_a_touch(clock: FrozenClock) -> None:
    core = make_core(clock)
    target = stored(core, {"n": 1}, accessed=NOW - 600)
    session, _ = open_stored(core, target, read_only=True)
    assert session["n"] == 1
    assert run(core.save_flow(session)) == ([VARY], None, False)


# -- destruction -------------------------------------------------------------------------------


def test_destroy_deletes_the_record_and_clears_the_cookie(clock: FrozenClock) -> None:
    core = make_core(clock)
    target = stored(core, {"n": 1})
    session, _ = open_stored(core, target)
    session.destroy()
    outcome = run(core.save_flow(session), Delete(target.key))
    assert outcome.cleared and outcome.ticket is None
    assert outcome.headers == [("Set-Cookie", delete_cookie_header(COOKIE)), NO_STORE, VARY]


def test_destroy_without_a_ticket_clears_no_cookie(clock: FrozenClock) -> None:
    core = make_core(clock)
    session = run(core.open_flow(None))
    session["n"] = 1
    session.destroy()
    assert run(core.save_flow(session)) == ([VARY], None, False)


def test_destroy_after_a_refused_ticket_clears_the_cookie_without_a_delete(
    clock: FrozenClock,
) -> None:
    core = make_core(clock)
    session = run(core.open_flow("not-an-id"))
    session.destroy()
    outcome = run(core.save_flow(session))
    assert outcome.cleared and outcome.headers[0] == ("Set-Cookie", delete_cookie_header(COOKIE))


# -- housekeeping ------------------------------------------------------------------------------


def test_cleanup_probability_zero_never_clears(clock: FrozenClock) -> None:
    core = make_core(clock, cleanup_probability=0.0)
    session = run(core.open_flow(None))
    session["n"] = 1
    run(core.save_flow(session), (Create, True))


def test_cleanup_probability_one_clears_after_every_save(clock: FrozenClock) -> None:
    core = make_core(clock, cleanup_probability=1.0)
    session = run(core.open_flow(None))
    session["n"] = 1
    run(core.save_flow(session), (Create, True), (ClearExpired(NOW), 3))
    run(core.save_flow(run(core.open_flow(None))), (ClearExpired(NOW), 0))


def test_a_read_only_request_does_no_housekeeping(clock: FrozenClock) -> None:
    core = make_core(clock, cleanup_probability=1.0)
    target = stored(core, {"n": 1})
    session = run(core.open_flow(target.session_id, read_only=True), (Load, target.record))
    assert session["n"] == 1
    run(core.save_flow(session))  # no ClearExpired: read-only promised no writes


def test_cleanup_probability_draws_per_save(
    clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    core = make_core(clock, cleanup_probability=0.25)
    monkeypatch.setattr(random, "random", lambda: 0.2499)
    run(core.save_flow(run(core.open_flow(None))), ClearExpired(NOW))
    monkeypatch.setattr(random, "random", lambda: 0.25)
    run(core.save_flow(run(core.open_flow(None))))


def test_cleanup_flow_clears_at_the_adjusted_now(clock: FrozenClock) -> None:
    core = make_core(clock)
    assert run(core.cleanup_flow(), (ClearExpired(NOW), 2)) == 2
    clock.advance(100)
    core.adjust_time(40)
    assert run(core.cleanup_flow(), (ClearExpired(NOW + 60), 0)) == 0
