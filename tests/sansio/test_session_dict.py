"""The session is a dict: every method and operator answers as a dict's does, C code sees its
data, and each write is recorded for the save (and the merge)."""

from __future__ import annotations

import copy
import json
import pickle
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from coatcheck import Session

Op = Callable[[dict[str, Any]], Any]

# Each operation runs on a plain dict and on a session holding the same data: the results,
# the exceptions and the data after it must be the same.
OPERATIONS: dict[str, Op] = {
    "getitem": lambda d: d["a"],
    "getitem-missing": lambda d: d["zz"],
    "get": lambda d: d.get("a"),
    "get-default": lambda d: d.get("zz", 0),
    "contains": lambda d: ("a" in d, "zz" in d, 1 in d),
    "len": lambda d: len(d),
    "bool": lambda d: bool(d),
    "iter": lambda d: list(iter(d)),
    "reversed": lambda d: list(reversed(d)),
    "keys": lambda d: list(d.keys()),
    "values": lambda d: list(d.values()),
    "items": lambda d: list(d.items()),
    "keys-set-ops": lambda d: d.keys() & {"a", "zz"},
    "eq": lambda d: (d == {"a": 1, "b": [2], "c": "3"}, d != {}, d == dict(d)),
    "copy": lambda d: (d.copy(), type(d.copy())),
    "or": lambda d: (d | {"x": 1}, type(d | {"x": 1})),
    "ror": lambda d: ({"x": 1, "a": 0} | d, type({"x": 1} | d)),
    "or-not-mapping": lambda d: d | [("x", 1)],  # type: ignore[operator]
    "setitem": lambda d: d.__setitem__("x", 1),
    "delitem": lambda d: d.__delitem__("a"),
    "delitem-missing": lambda d: d.__delitem__("zz"),
    "pop": lambda d: d.pop("a"),
    "pop-missing": lambda d: d.pop("zz"),
    "pop-default": lambda d: d.pop("zz", None),
    "popitem": lambda d: d.popitem(),
    "popitem-all": lambda d: [d.popitem() for _ in range(4)],
    "setdefault-present": lambda d: d.setdefault("a", 9),
    "setdefault-missing": lambda d: d.setdefault("x", 9),
    "setdefault-none": lambda d: d.setdefault("x"),
    "update-mapping": lambda d: d.update({"a": 10, "x": 1}),
    "update-pairs": lambda d: d.update([("a", 10), ("y", 2)], z=3),
    "update-kwargs": lambda d: d.update(a=5),
    "update-bad-pair": lambda d: d.update([("a", 1, 2)]),
    "update-two-args": lambda d: d.update({}, {}),  # type: ignore[call-arg]
    "ior": lambda d: d.__ior__({"x": 1}),
    "ior-pairs": lambda d: d.__ior__([("x", 1)]),
    "clear": lambda d: d.clear(),
    "json": lambda d: json.dumps(d, sort_keys=True),
    "json-nested": lambda d: json.dumps({"session": d}),
    "dict": lambda d: dict(d),
    "splat": lambda d: {**d},
    "kwargs": lambda d: (lambda **kw: kw)(**d),
    "isinstance": lambda d: isinstance(d, dict),
    "copy-module": lambda d: (copy.copy(d), copy.deepcopy(d)),
    "pickle": lambda d: pickle.loads(pickle.dumps(d)),  # noqa: S301  # our own bytes
    "hash": lambda d: hash(d),
    "sorted": lambda d: sorted(d),
    "str-format": lambda d: len(str(list(d))),
}

DATA = {"a": 1, "b": [2], "c": "3"}


def outcome(op: Op, target: dict[str, Any]) -> tuple[str, Any]:
    try:
        result = op(target)
    except Exception as exc:
        return ("raised", type(exc))
    if result is target:
        return ("itself", None)
    return ("value", result)


@pytest.mark.parametrize("name", OPERATIONS)
def test_each_operation_answers_as_on_a_dict(name: str) -> None:
    plain = copy.deepcopy(DATA)
    session = Session(copy.deepcopy(DATA))
    expected = outcome(OPERATIONS[name], plain)
    got = outcome(OPERATIONS[name], session)
    if got[0] == "value" and isinstance(got[1], tuple):
        # A plain dict's copy says "dict"; so must the session's copies.
        got = ("value", tuple(got[1]))
        expected = ("value", tuple(expected[1]))
    assert got == expected
    assert dict(session) == plain and dict.items(session) == plain.items()


WRITES = {
    "setitem": (lambda s: s.__setitem__("x", 1), {"x"}),
    "delitem": (lambda s: s.__delitem__("a"), {"a"}),
    "pop": (lambda s: s.pop("a"), {"a"}),
    "popitem": (lambda s: s.popitem(), {"c"}),
    "setdefault-missing": (lambda s: s.setdefault("x", 1), {"x"}),
    "update": (lambda s: s.update({"a": 2}, y=3), {"a", "y"}),
    "ior": (lambda s: s.__ior__({"x": 1}), {"x"}),
    "clear": (lambda s: s.clear(), {"a", "b", "c"}),
}


@pytest.mark.parametrize("name", WRITES)
def test_each_write_records_its_keys_and_marks_the_session(name: str) -> None:
    write, keys = WRITES[name]
    session = Session(DATA)
    write(session)
    assert session.modified and session.accessed
    assert set(session.changes.keys) == {("", key) for key in keys}


@pytest.mark.parametrize(
    "use",
    [
        lambda s: s.pop("missing", None),
        lambda s: s.get,  # only looked up, never called
        lambda s: repr(s),
    ],
)
def test_what_is_neither_a_read_nor_a_write(use: Callable[[Session], Any]) -> None:
    session = Session(DATA)
    use(session)
    assert not session.accessed and not session.modified


def test_reads_change_nothing_but_accessed() -> None:
    for name in ("get", "len", "iter", "items", "eq", "json", "dict", "setdefault-present"):
        session = Session(DATA)
        OPERATIONS[name](session)
        assert session.accessed and not session.modified, name


def test_a_detached_session_is_new_unchanged_and_tied_to_nothing() -> None:
    session = Session({"a": "1"}, b="2")
    assert session.is_new and session.id is None and not session.modified
    assert not session.accessed
    assert dict(session) == {"a": "1", "b": "2"}
    assert Session() == {} and Session.fromkeys(["a"], 0) == {"a": 0}
    assert type(Session.fromkeys(["a"])) is Session


def test_repr_never_shows_values() -> None:
    assert "secret" not in repr(Session(token="secret"))


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["set", "del", "pop", "popitem", "setdefault", "update", "clear"]),
            st.sampled_from(["a", "b", "c", "d"]),
            st.integers(0, 3),
        ),
        max_size=20,
    )
)
def test_any_sequence_of_writes_leaves_what_a_dict_would(
    steps: list[tuple[str, str, int]],
) -> None:
    plain: dict[str, Any] = {"a": 0}
    session = Session({"a": 0})
    for kind, key, value in steps:
        for target in (plain, session):
            try:
                if kind == "set":
                    target[key] = value
                elif kind == "del":
                    del target[key]
                elif kind == "pop":
                    target.pop(key, None)
                elif kind == "popitem":
                    target.popitem()
                elif kind == "setdefault":
                    target.setdefault(key, value)
                elif kind == "update":
                    target.update({key: value})
                else:
                    target.clear()
            except KeyError:
                pass
        assert list(session.items()) == list(plain.items())
