"""Session operations (incr, set_add, set_discard, list_append): what they do to the data,
how they are recorded beside plain writes, and how a merge replays them."""

from __future__ import annotations

import math

import pytest

from coatcheck import Session
from coatcheck._sansio.document import Document
from coatcheck._sansio.merge import merge
from coatcheck._sansio.operations import MISSING, NotApplicable, apply, replay
from coatcheck.errors import ReservedNamespace, SessionError


def _document(**data: object) -> Document:
    return Document({"": dict(data)}, {"c": 0})


def test_incr_starts_from_zero_and_returns_the_new_value() -> None:
    session = Session({"n": 2})
    assert session.incr("n") == 3 and session.incr("n", -5) == -2
    assert session.incr("new", 0.5) == 0.5 and session["new"] == 0.5
    assert session.changes.ops == {
        ("", "n"): [("incr", 1), ("incr", -5)],
        ("", "new"): [("incr", 0.5)],
    }
    assert {("", "n"), ("", "new")} <= session.changes.keys and session.modified


@pytest.mark.parametrize("delta", [True, "1", None, math.nan, math.inf, [1]])
def test_incr_takes_only_a_finite_number(delta: object) -> None:
    session = Session({"n": 1})
    with pytest.raises(TypeError):
        session.incr("n", delta)  # type: ignore[arg-type]
    assert session["n"] == 1 and not session.modified


@pytest.mark.parametrize("value", ["1", True, [1], None])
def test_an_operation_on_a_value_of_another_type_is_refused_at_the_call(value: object) -> None:
    session = Session({"k": value})
    with pytest.raises(TypeError, match="cannot apply"):
        session.incr("k")
    with pytest.raises(TypeError, match="cannot apply"):
        session.set_add("k", 1)
    if type(value) is not list:
        with pytest.raises(TypeError, match="cannot apply"):
            session.list_append("k", 1)
    assert session["k"] == value and not session.changes.ops


def test_sets_and_lists_are_new_objects_every_time() -> None:
    tags = {"a"}
    session = Session({"tags": tags})
    session.set_add("tags", "b", "c")
    session.set_discard("tags", "a", "zz")
    assert session["tags"] == {"b", "c"} and tags == {"a"}  # the loaded value is untouched
    session.list_append("log", 1, 2)
    assert session["log"] == [1, 2]
    with pytest.raises(TypeError):
        session.set_add("tags", ["unhashable"])


def test_a_plain_write_makes_the_key_a_plain_change_again() -> None:
    session = Session({"n": 1})
    session.incr("n")
    session["n"] = 10  # after the operation: the value is what is written
    assert ("", "n") not in session.changes.ops and session["n"] == 10
    session.incr("n")  # after a plain write: still plain, only the value moves
    assert ("", "n") not in session.changes.ops and session["n"] == 11
    session.incr("m")
    del session["m"]
    assert not session.changes.ops and ("", "m") in session.changes.keys
    session.incr("k")
    session.mark_modified("k")
    assert not session.changes.ops


def test_modified_false_forgets_the_operations_too() -> None:
    session = Session({"n": 1})
    session.incr("n")
    session.modified = False
    assert not session.changes.ops and not session.changes.keys and not session.modified


def test_namespaces_have_the_operations_and_reservations_guard_them() -> None:
    session = Session({})
    cart = session.namespace("cart")
    assert cart.incr("items", 3) == 3
    cart.set_add("ids", 7)
    assert dict(cart) == {"items": 3, "ids": {7}}
    assert session.changes.ops[("cart", "items")] == [("incr", 3)]
    read_only = Session({})
    read_only.read_only = True
    with pytest.raises(SessionError):
        read_only.incr("n")
    from coatcheck._sansio.namespaces import Namespace

    guarded = Namespace(session, "auth", None, None)
    with pytest.raises(ReservedNamespace):
        guarded.incr("logins")


def test_replay_applies_in_order_on_the_other_requests_value() -> None:
    ops = [("incr", 2), ("incr", 3)]
    assert replay(ops, 10) == 15 and replay(ops, MISSING) == 5
    assert replay([("add", (1, 2)), ("discard", (1,))], {5}) == {2, 5}
    assert replay([("append", ("x",))], ["a"]) == ["a", "x"]
    with pytest.raises(NotApplicable):
        apply("incr", 1, "text")
    with pytest.raises(NotApplicable):
        apply("add", (1,), [1])


def test_merge_replays_operations_and_reports_no_conflict() -> None:
    base = _document(n=1, seen={"a"})
    theirs = _document(n=5, seen={"a", "b"}, other=1)
    ours = _document(n=2, seen={"a", "c"})
    ops = {("", "n"): [("incr", 1)], ("", "seen"): [("add", ("c",))]}
    merged = merge(ours, base, theirs, [("", "n"), ("", "seen")], [], ops)
    assert merged.conflicts == []
    assert merged.document.data[""] == {"n": 6, "seen": {"a", "b", "c"}, "other": 1}


def test_an_operation_that_no_longer_applies_is_a_conflict_settled_as_a_plain_write() -> None:
    base, theirs, ours = _document(n=1), _document(n="reset"), _document(n=2)
    merged = merge(ours, base, theirs, [("", "n")], [], {("", "n"): [("incr", 1)]})
    assert merged.conflicts == ["n"] and merged.document.data[""] == {"n": 2}
