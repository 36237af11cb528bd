"""Session: the mapping, change tracking, refused writes, namespaces, form tokens and flash."""

from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import Any

import pytest

from coatcheck._sansio.document import Document
from coatcheck._sansio.namespaces import Reservation
from coatcheck._sansio.ops import Record
from coatcheck._sansio.session import Session
from coatcheck.errors import (
    ConfigurationError,
    InvalidKey,
    ReservedNamespace,
    SessionDestroyed,
    SessionError,
)
from coatcheck.testing import FrozenClock

from .support import NOW, make_core

CREATED_MS = int(NOW * 1000)


def new_session(
    data: dict[str, Any] | None = None,
    *,
    read_only: bool = False,
    reservations: dict[str, Reservation] | None = None,
    **meta: Any,
) -> Session:
    document = Document({"": dict(data or {})}, {"c": CREATED_MS, **meta})
    return Session.build(
        document=document,
        accessed_at=NOW,
        reservations=reservations or {},
        concurrency="merge",
        read_only=read_only,
    )


def changes(session: Session) -> tuple[set[tuple[str, str]], set[str], bool, bool, bool]:
    c = session.changes
    return set(c.keys), set(c.meta), c.whole, c.destroyed, c.rotate


NOTHING: tuple[set[tuple[str, str]], set[str], bool, bool, bool] = (
    set(),
    set(),
    False,
    False,
    False,
)


# -- the mapping -------------------------------------------------------------------------------


def test_a_new_session_is_empty_and_unchanged() -> None:
    session = new_session()
    assert (session.id, session.key, session.version, session.user) == (None, None, None, None)
    assert session.is_new and not session.accessed and not session.modified
    assert not session.has_info() and changes(session) == NOTHING
    assert session.created_at == NOW and session.accessed_at == NOW
    assert repr(session) == "<Session new keys=0>"


def test_it_is_a_mutable_mapping_of_str_keys() -> None:
    session = new_session({"a": 1})
    session["b"] = [2]
    assert session["a"] == 1 and session.get("missing") is None and session.get("x", 0) == 0
    assert "b" in session and "z" not in session and 1 not in session
    assert len(session) == 2 and sorted(session) == ["a", "b"]
    assert dict(session.items()) == {"a": 1, "b": [2]}
    assert session.pop("a") == 1 and session.setdefault("c", 3) == 3
    session.update(d=4)
    del session["b"]
    assert dict(session) == {"c": 3, "d": 4}
    with pytest.raises(KeyError):
        session["missing"]


def test_iteration_is_live_as_on_a_dict() -> None:
    # As a dict: changing the size while iterating is refused, over a copy it is fine.
    session = new_session({"a": 1, "b": 2})
    keys = iter(session)
    del session[next(keys)]
    with pytest.raises(RuntimeError, match="changed size"):
        next(keys)
    for key in list(session):
        del session[key]
    assert len(session) == 0


@pytest.mark.parametrize(
    "use",
    [
        lambda s: s.__setitem__(1, "x"),
        lambda s: s.setdefault(1, "x"),
        lambda s: s.update({1: "x"}),
        lambda s: s.__ior__({1: "x"}),
        lambda s: s.mark_modified(1),
        lambda s: s.namespace(1),
    ],
    ids=["set", "setdefault", "update", "ior", "mark_modified", "namespace"],
)
def test_non_str_keys_are_refused(use: Callable[[Session], object]) -> None:
    session = new_session()
    with pytest.raises(InvalidKey, match="must be str, not int"):
        use(session)
    assert changes(session) == NOTHING


@pytest.mark.parametrize(
    "use",
    [lambda s: s[1], lambda s: s.__delitem__(1), lambda s: s.pop(1)],
    ids=["get", "del", "pop"],
)
def test_reading_a_non_str_key_misses_as_on_a_dict(use: Callable[[Session], object]) -> None:
    session = new_session({"1": "one"})
    with pytest.raises(KeyError):
        use(session)
    assert session.get(1) is None and 1 not in session
    assert changes(session) == NOTHING


def test_reads_and_writes_mark_the_session_accessed() -> None:
    for use in (lambda s: s.get("a"), lambda s: len(s), lambda s: "a" in s, lambda s: list(s)):
        session = new_session()
        use(session)
        assert session.accessed and not session.modified
    session = new_session()
    session["a"] = 1
    assert session.accessed


# -- change tracking ---------------------------------------------------------------------------


def test_each_write_records_which_key_it_changed() -> None:
    session = new_session({"gone": 1})
    session["a"] = 1
    session["a"] = 2
    del session["gone"]
    app = session.namespace("app")
    app["k"] = 1
    del app["k"]
    assert changes(session) == ({("", "a"), ("", "gone"), ("app", "k")}, set(), False, False, False)
    assert session.modified and session.changes.content


def test_deleting_a_missing_key_records_nothing() -> None:
    session = new_session()
    with pytest.raises(KeyError):
        del session["missing"]
    assert changes(session) == NOTHING


def test_metadata_changes_are_recorded_by_field() -> None:
    session = new_session()
    session.user = "alice"
    assert changes(session)[1] == {"u"} and session.user == "alice"
    session.create_form_token()
    session.flash("hi")
    assert changes(session)[1] == {"u", "t", "f"}


def test_a_nested_mutation_is_invisible_until_marked() -> None:
    session = new_session({"items": [1]})
    session["items"].append(2)
    assert not session.modified
    session.mark_modified("items")
    assert changes(session)[0] == {("", "items")}
    whole = new_session({"items": [1]})
    whole.mark_modified()
    assert changes(whole) == (set(), set(), True, False, False) and whole.modified


def test_regenerate_asks_for_rotation_without_changing_content() -> None:
    session = new_session({"a": 1})
    session.regenerate()
    assert session.regenerate_requested and session.modified and not session.changes.content
    assert changes(session) == (set(), set(), False, False, True)


def test_destroy_empties_the_session_and_records_it() -> None:
    session = new_session({"a": 1}, u="alice", f=[["message", "x"]])
    session.namespace("app")["k"] = 1
    session.destroy()
    assert session.destroyed and session.changes.destroyed and session.accessed
    assert len(session) == 0 and session.user is None and not session.has_info()
    assert len(session.namespace("app")) == 0


def test_adopt_and_rebase_are_what_a_save_records() -> None:
    session = new_session({"a": 1})
    session.regenerate()
    stored = Record(b"payload", 1, NOW, NOW + 60)
    session.adopt("the-id", "the-key", stored)
    assert (session.id, session.key, session.stored, session.version) == (
        "the-id",
        "the-key",
        stored,
        1,
    )
    assert not session.regenerate_requested
    session.mark_modified()
    newer = Record(b"newer", 2, NOW, NOW + 60)
    session.rebase(Document({"": {"a": 1, "b": 2}}, {"c": CREATED_MS}), newer, {("", "a")})
    assert session["b"] == 2 and session.version == 2
    assert changes(session) == ({("", "a")}, set(), False, False, False)


# -- refused writes ----------------------------------------------------------------------------

TOKEN = "token-0123456789abcdef"
WRITES: list[tuple[str, Callable[[Session], object]]] = [
    ("set", lambda s: s.__setitem__("a", 1)),
    ("del", lambda s: s.__delitem__("a")),
    ("user", lambda s: setattr(s, "user", "bob")),
    ("mark_modified", lambda s: s.mark_modified()),
    ("mark_modified-key", lambda s: s.mark_modified("a")),
    ("regenerate", lambda s: s.regenerate()),
    ("form-token", lambda s: s.create_form_token()),
    ("flash", lambda s: s.flash("x")),
    ("consume-form-token", lambda s: s.consume_form_token(TOKEN)),  # unsaved, it could replay
    ("namespace-set", lambda s: s.namespace("app").__setitem__("k", 1)),
]


@pytest.mark.parametrize("write", [w for _, w in WRITES], ids=[n for n, _ in WRITES])
def test_a_read_only_session_refuses_every_write(write: Callable[[Session], object]) -> None:
    session = new_session({"a": 1}, read_only=True, t=[TOKEN])
    with pytest.raises(SessionError, match="opened read-only") as raised:
        write(session)
    assert not isinstance(raised.value, SessionDestroyed)
    assert session["a"] == 1 and session.has_form_token(TOKEN) and changes(session) == NOTHING


def test_a_read_only_session_cannot_be_destroyed() -> None:
    session = new_session({"a": 1}, read_only=True)
    with pytest.raises(SessionError, match="opened read-only"):
        session.destroy()
    assert session["a"] == 1 and not session.destroyed


@pytest.mark.parametrize("write", [w for _, w in WRITES], ids=[n for n, _ in WRITES])
def test_a_destroyed_session_refuses_every_write(write: Callable[[Session], object]) -> None:
    session = new_session({"a": 1})
    session.destroy()
    with pytest.raises(SessionDestroyed, match="destroyed in this request"):
        write(session)
    assert session.get("a") is None


# -- namespaces --------------------------------------------------------------------------------


def test_namespaces_are_separate_from_the_default_one() -> None:
    session = new_session({"k": "default"})
    app = session.namespace("app")
    assert app.name == "app" and len(app) == 0 and "k" not in app
    assert "app" not in session.document.data  # reading creates nothing
    app["k"] = "app"
    assert session["k"] == "default" and app["k"] == "app" and list(app) == ["k"]
    assert session.namespace("app")["k"] == "app" and session.namespace("other").get("k") is None
    assert repr(app) == "<Namespace 'app' keys=1>"


def test_a_reserved_namespace_is_written_only_with_its_reservation(clock: FrozenClock) -> None:
    core = make_core(clock)
    auth = core.reserve("auth")
    assert repr(auth) == "<Reservation 'auth'>"
    session = core.fresh(NOW, None, None)
    owner = session.namespace("auth", auth)
    owner["uid"] = 7
    anyone = session.namespace("auth")
    assert anyone["uid"] == 7  # anyone may read
    for write in (lambda: anyone.__setitem__("uid", 8), lambda: anyone.__delitem__("uid")):
        with pytest.raises(ReservedNamespace) as raised:
            write()
        assert raised.value.namespace == "auth"
    impostor = Reservation("auth")
    with pytest.raises(ReservedNamespace):
        session.namespace("auth", impostor)["uid"] = 9
    assert owner["uid"] == 7
    core.release("auth")
    session.namespace("auth")["uid"] = 8  # free for everyone again, even in open sessions
    core.release("auth")  # releasing twice is fine


@pytest.mark.parametrize("name", ["", None, 3])
def test_a_reservation_needs_a_non_empty_str(clock: FrozenClock, name: object) -> None:
    with pytest.raises(ConfigurationError):
        make_core(clock).reserve(name)  # type: ignore[arg-type]


def test_a_namespace_is_reserved_once(clock: FrozenClock) -> None:
    core = make_core(clock)
    core.reserve("auth")
    with pytest.raises(ConfigurationError, match="already reserved"):
        core.reserve("auth")


# -- form tokens -------------------------------------------------------------------------------


def test_form_tokens_are_random_and_single_use() -> None:
    session = new_session()
    first, second = session.create_form_token(), session.create_form_token()
    assert first != second and len(first) >= 22
    assert session.has_form_token(first) and session.has_form_token(second)
    assert session.consume_form_token(first) is True
    assert session.consume_form_token(first) is False
    assert not session.has_form_token(first) and session.has_form_token(second)


def test_at_most_sixteen_form_tokens_stay_outstanding() -> None:
    session = new_session()
    tokens = [session.create_form_token() for _ in range(17)]
    assert session.document.meta["t"] == tokens[1:]
    assert not session.has_form_token(tokens[0])
    assert all(session.has_form_token(t) for t in tokens[1:])


@pytest.mark.parametrize("bad", [None, 123, b"bytes", "", "unknown", "\ud800"])
def test_anything_else_is_not_a_form_token(bad: object) -> None:
    session = new_session(t=[TOKEN])
    assert not session.has_form_token(bad)
    assert session.consume_form_token(bad) is False
    assert changes(session) == NOTHING


def test_the_form_token_check_compares_every_token_in_constant_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def counting(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", counting)
    session = new_session()
    tokens = [session.create_form_token() for _ in range(5)]
    assert session.has_form_token(tokens[0])
    assert len(calls) == 5  # no early exit at the match
    assert all(isinstance(a, bytes) and isinstance(b, bytes) for a, b in calls)


# -- flash messages ----------------------------------------------------------------------------


def test_flash_messages_queue_by_category_and_pop_once() -> None:
    session = new_session()
    session.flash("saved")
    session.flash("careful", "warning")
    session.flash({"n": 2}, "info")
    assert session.has_info()
    assert session.pop_flashed("warning") == [("warning", "careful")]
    assert session.pop_flashed() == [("message", "saved"), ("info", {"n": 2})]
    assert session.pop_flashed() == [] and session.pop_flashed("warning") == []


def test_popping_nothing_records_no_change() -> None:
    session = new_session(f=[["message", "kept"]])
    assert session.pop_flashed("warning") == []
    assert changes(session) == NOTHING
    assert session.pop_flashed() == [("message", "kept")]
    assert changes(session)[1] == {"f"}
