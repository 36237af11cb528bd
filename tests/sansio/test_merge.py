"""merge() and changed_keys(): one request's changes replayed on a newer stored document."""

from __future__ import annotations

from typing import Any

import pytest

from coatcheck._sansio.document import Document
from coatcheck._sansio.merge import changed_keys, merge

C = 1_700_000_000_000


def doc(
    data: dict[str, Any] | None = None, ns: dict[str, dict[str, Any]] | None = None, **meta: Any
) -> Document:
    return Document({"": dict(data or {}), **(ns or {})}, {"c": C, **meta})


def test_no_changes_keep_theirs_as_a_copy() -> None:
    theirs = doc({"a": 1}, {"app": {"k": 1}}, u="alice")
    merged = merge(doc(), doc(), theirs, [], [])
    assert merged.conflicts == []
    assert (merged.document.data, merged.document.meta) == (theirs.data, theirs.meta)
    merged.document.data[""]["b"] = 2
    merged.document.data["app"]["k"] = 2
    merged.document.meta["u"] = "bob"
    assert theirs.data == {"": {"a": 1}, "app": {"k": 1}} and theirs.meta["u"] == "alice"


def test_our_sets_and_deletes_go_on_top_of_theirs() -> None:
    base = doc({"a": 1, "gone": 0}, {"app": {"k": 1}})
    ours = doc({"a": 1, "new": 2}, {"app": {"k": 1, "x": 1}})
    theirs = doc({"a": 1, "gone": 0, "their": 3}, {"app": {"k": 5}})
    changed = [("", "new"), ("", "gone"), ("app", "x")]
    merged = merge(ours, base, theirs, changed, [])
    assert merged.conflicts == []
    assert merged.document.data == {"": {"a": 1, "their": 3, "new": 2}, "app": {"k": 5, "x": 1}}


def test_deleting_a_key_nobody_has_creates_nothing() -> None:
    merged = merge(doc(), doc(), doc(), [("", "a"), ("app", "a")], [])
    assert merged.document.data == {"": {}} and merged.conflicts == []


def test_an_emptied_namespace_is_dropped_and_the_default_one_stays() -> None:
    base = doc({"d": 1}, {"app": {"k": 1}})
    ours = doc({}, {"app": {}})
    merged = merge(ours, base, base, [("", "d"), ("app", "k")], [])
    assert merged.document.data == {"": {}} and merged.conflicts == []


@pytest.mark.parametrize(
    ("mine", "theirs", "conflict"),
    [
        (2, 1, False),  # only we changed it
        (2, 5, True),
        (6, 6, True),  # the same value from both is still two changes
        (None, 5, True),
    ],
)
def test_a_key_both_changed_is_a_conflict_and_ours_wins(
    mine: int | None, theirs: int, conflict: bool
) -> None:
    ours = doc({} if mine is None else {"n": mine})
    merged = merge(ours, doc({"n": 1}), doc({"n": theirs}), [("", "n")], [])
    assert merged.conflicts == (["n"] if conflict else [])
    assert merged.document.data[""] == ({} if mine is None else {"n": mine})


def test_a_key_both_deleted_counts_as_both_changed() -> None:
    merged = merge(doc(), doc({"n": 1}), doc(), [("", "n")], [])
    assert merged.conflicts == ["n"] and merged.document.data[""] == {}


def test_conflicts_are_labelled_by_namespace() -> None:
    base = doc({"k": 1}, {"app": {"k": 1}}, u="alice")
    ours = doc({"k": 2}, {"app": {"k": 2}}, u="bob")
    theirs = doc({"k": 3}, {"app": {"k": 3}}, u="carol")
    merged = merge(ours, base, theirs, [("", "k"), ("app", "k")], ["u"])
    assert sorted(merged.conflicts) == ["app/k", "k", "user"]
    assert merged.document.meta["u"] == "bob"


def test_the_user_is_merged_like_a_key() -> None:
    base = doc(u="alice")
    assert merge(doc(u="bob"), base, doc(u="alice"), [], ["u"]).document.meta["u"] == "bob"
    logged_out = merge(doc(), base, doc(u="alice", t=["x"]), [], ["u"])
    assert "u" not in logged_out.document.meta and logged_out.document.meta["t"] == ["x"]
    untouched = merge(doc(u="bob"), base, doc(u="carol"), [], [])
    assert untouched.document.meta["u"] == "carol" and untouched.conflicts == []


def test_form_tokens_merge_as_a_queue_without_duplicates() -> None:
    base = doc(t=["a", "b"])
    ours = doc(t=["b", "mine", "shared"])  # consumed a, created mine and shared
    theirs = doc(t=["a", "b", "theirs", "shared"])
    merged = merge(ours, base, theirs, [], ["t"])
    assert merged.document.meta["t"] == ["b", "theirs", "shared", "mine"]
    assert merged.conflicts == []


def test_merged_form_tokens_keep_the_newest_sixteen() -> None:
    theirs = [f"t{i}" for i in range(16)]
    merged = merge(doc(t=["m1", "m2"]), doc(), doc(t=theirs), [], ["t"])
    assert merged.document.meta["t"] == [*theirs[2:], "m1", "m2"]


def test_flash_messages_merge_as_a_queue_that_may_repeat() -> None:
    hi, bye = ["message", "hi"], ["message", "bye"]
    merged = merge(doc(f=[hi, hi]), doc(f=[hi]), doc(f=[hi, bye]), [], ["f"])
    assert merged.document.meta["f"] == [hi, bye, hi]
    shown = merge(doc(f=[]), doc(f=[hi, hi]), doc(f=[hi, hi, bye]), [], ["f"])
    assert shown.document.meta["f"] == [bye]  # each removal takes one occurrence


def test_a_queue_we_did_not_touch_is_theirs() -> None:
    merged = merge(doc(f=[]), doc(f=[["message", "x"]]), doc(f=[["message", "x"]]), [], [])
    assert merged.document.meta["f"] == [["message", "x"]]


def test_changed_keys_are_the_recorded_ones_unless_the_whole_session_was_marked() -> None:
    ours = doc({"a": 1, "b": 2}, {"app": {"k": 1}})
    base = doc({"a": 1, "old": 0}, {"other": {"x": 1}})
    recorded = {("", "z")}
    keys = changed_keys(ours, base, recorded, False)
    assert keys == recorded and keys is not recorded
    assert changed_keys(ours, base, recorded, True) == {
        ("", "z"),
        ("", "a"),
        ("", "b"),
        ("", "old"),
        ("app", "k"),
        ("other", "x"),
    }
    assert recorded == {("", "z")}
