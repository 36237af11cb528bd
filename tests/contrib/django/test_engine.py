"""coatcheck.contrib.django.SessionStore on real stores: keys, rotation, concurrency modes,
expiry, settings. Django's own engine tests run in test_django_suite.py."""

from __future__ import annotations

import asyncio
import inspect
import json
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.sessions.backends.base import CreateError, SessionBase, UpdateError
from django.test.utils import override_settings
from django.utils import timezone

from coatcheck.contrib.django import SessionStore
from coatcheck.contrib.django._config import DjangoSerializer, engine
from coatcheck.errors import ConfigurationError, SessionLocked
from coatcheck.testing import FrozenClock

from .conftest import EngineOn


def stored(key: str | None) -> dict[str, Any] | None:
    """What a fresh request sees under ``key``: the data, or None for no live session."""
    session = SessionStore(key)
    data = dict(session.items())
    return None if session.session_key is None else data


def saved(**data: Any) -> SessionStore:
    session = SessionStore()
    session.update(data)
    session.save()
    return session


def test_the_key_is_a_signed_ticket_and_unknown_keys_are_never_adopted(
    engine_on: EngineOn, store: str
) -> None:
    engine_on(store)
    session = saved(cat="dog")
    key = session.session_key
    assert key is not None and "." in key  # id.signature
    assert stored(key) == {"cat": "dog"}
    forged = key[:-2] + ("AA" if not key.endswith("AA") else "BB")
    for bad in (forged, "x" * 43, "someunknownkey", key.partition(".")[0]):
        other = SessionStore(bad)
        assert other.get("cat") is None and other.session_key is None
        other["x"] = 1
        other.save()
        assert other.session_key not in (bad, key)  # a fresh id, never the client's
        assert stored(bad) is None
    assert stored(key) == {"cat": "dog"}


def test_cycle_key_moves_the_data_and_kills_the_old_key(engine_on: EngineOn, store: str) -> None:
    engine_on(store)
    session = saved(a=1)
    old = session.session_key
    session.cycle_key()
    assert session.session_key != old
    assert stored(old) is None
    assert stored(session.session_key) == {"a": 1}
    # A later save (the middleware's, after login() set its keys) goes to the new record.
    session["b"] = 2
    session.save()
    assert stored(session.session_key) == {"a": 1, "b": 2}
    assert stored(old) is None


def test_flush_deletes_and_starts_over(engine_on: EngineOn, store: str) -> None:
    engine_on(store)
    session = saved(a=1)
    old = session.session_key
    session.flush()
    assert session.session_key is None and stored(old) is None
    session["flash"] = "logged out"
    session.save()
    assert session.session_key != old
    assert stored(session.session_key) == {"flash": "logged out"}


def test_assigning_session_cache_replaces_the_stored_data(engine_on: EngineOn) -> None:
    # What code written for SessionBase does (SessionBase.cycle_key itself, for one).
    engine_on("memory://")
    key = saved(a=1).session_key
    session = SessionStore(key)
    session._session_cache = {"b": 2}
    session.save()
    assert session.session_key == key
    assert stored(key) == {"b": 2}


def test_save_must_create_and_update_error(engine_on: EngineOn, store: str) -> None:
    engine_on(store)
    session = saved(a=1)
    with pytest.raises(CreateError):
        session.save(must_create=True)
    SessionStore(session.session_key).delete()
    session["a"] = 2
    with pytest.raises(UpdateError):
        session.save()
    assert stored(session.session_key) is None  # not brought back


def test_merge_mode_keeps_both_requests_changes(engine_on: EngineOn, store: str) -> None:
    engine_on(store, CONCURRENCY="merge")
    key = saved(cart=["apple"], theme="light").session_key
    first, second = SessionStore(key), SessionStore(key)
    assert first["theme"] == second["theme"] == "light"  # both loaded before either saves
    first["theme"] = "dark"
    # A nested change in place, announced as Django asks: modified = True.
    second["cart"].append("pear")
    second.modified = True
    first.save()
    second.save()  # Django's middleware saves the whole session; coatcheck replays its keys
    assert stored(key) == {"cart": ["apple", "pear"], "theme": "dark"}


def test_none_mode_lets_the_last_writer_win(engine_on: EngineOn, store: str) -> None:
    engine_on(store, CONCURRENCY="none")
    key = saved(a=0, b=0).session_key
    first, second = SessionStore(key), SessionStore(key)
    first["a"], second["b"] = 1, 1
    first.save()
    second.save()
    assert stored(key) == {"a": 0, "b": 1}


def test_lock_mode_serialises_and_settle_releases(engine_on: EngineOn, store: str) -> None:
    engine_on(store, CONCURRENCY="lock", LOCK_WAIT=0.0)
    key = saved(a=0).session_key
    first = SessionStore(key)
    assert first["a"] == 0  # loaded: holds the lock
    with pytest.raises(SessionLocked):
        SessionStore(key).get("a")
    first.settle()  # what coatcheck's middleware does for a request that did not save
    second = SessionStore(key)
    second["a"] = 2
    second.save()  # the save releases it
    assert SessionStore(key)["a"] == 2


def test_set_expiry_is_enforced_by_the_store(
    engine_on: EngineOn, store: str, clock: FrozenClock
) -> None:
    engine_on(store)
    idle = saved(a=1)
    idle.set_expiry(60)
    idle.save()
    fixed = saved(b=1)
    fixed.set_expiry(timezone.now() + timedelta(seconds=90))
    fixed.save()
    default = saved(c=1)
    assert idle.get_expiry_age() == 60
    clock.advance(50)
    again = SessionStore(idle.session_key)
    assert again["a"] == 1
    again["a"] = 2
    again.save()  # a request that saves it: idle counts from here, as in Django
    clock.advance(50)
    assert stored(idle.session_key) is not None
    assert stored(fixed.session_key) is None  # 100 s > 90 s, however active
    clock.advance(61)
    assert stored(idle.session_key) is None
    assert stored(default.session_key) == {"c": 1}  # SESSION_COOKIE_AGE: two weeks idle


def test_session_cookie_age_is_the_idle_timeout(
    engine_on: EngineOn, store: str, clock: FrozenClock
) -> None:
    with override_settings(SESSION_COOKIE_AGE=30):
        engine_on(store)
        key = saved(a=1).session_key
        clock.advance(31)
        assert stored(key) is None


def test_absolute_timeout_option(engine_on: EngineOn, store: str, clock: FrozenClock) -> None:
    engine_on(store, ABSOLUTE_TIMEOUT=100, ACCESS_RESOLUTION=0)
    key = saved(a=1).session_key
    for _ in range(3):
        clock.advance(40)
        session = SessionStore(key)
        if session.session_key is not None:
            session.save()  # used and saved: idle never runs out
    assert stored(key) is None  # 120 s > the 100 s cap


def test_secret_key_fallbacks_keep_sessions_and_reissue(engine_on: EngineOn) -> None:
    engine_on("memory://")
    key = saved(a=1).session_key
    with override_settings(SECRET_KEY="a new secret", SECRET_KEY_FALLBACKS=[_secret()]):
        session = SessionStore(key)
        assert session["a"] == 1
        assert session.modified  # so Django's middleware saves and re-sends the cookie
        session.save()
        assert session.session_key != key
        assert stored(session.session_key) == {"a": 1}
    with override_settings(SECRET_KEY="another secret"):
        assert stored(key) is None


def _secret() -> str:
    from django.conf import settings

    secret: str = settings.SECRET_KEY
    return secret


def test_the_async_methods_run_on_the_async_manager(engine_on: EngineOn, store: str) -> None:
    engine_on(store)
    # Every a* method of SessionBase that would run its sync twin in a thread is replaced.
    for name, member in inspect.getmembers(SessionBase):
        threaded = inspect.iscoroutinefunction(member) and "sync_to_async" in inspect.getsource(
            member
        )
        if name.startswith("a") and threaded:
            assert getattr(SessionStore, name) is not member, name

    async def scenario() -> dict[str, Any]:
        session = SessionStore()
        await session.aset("a", 1)
        await session.asave()
        key = session.session_key
        other = SessionStore(key)
        assert await other.aget("a") == 1
        await other.acycle_key()
        assert not await other.aexists(key)
        await other.aset("b", 2)
        await other.asave()
        last = SessionStore(other.session_key)
        data = dict(await last.aitems())
        await last.aflush()
        assert not await last.aexists(other.session_key)
        return data

    assert asyncio.run(scenario()) == {"a": 1, "b": 2}


class ReversingSerializer:
    """A Django-style serializer (for SESSION_SERIALIZER) that stores reversed JSON."""

    def dumps(self, obj: Any) -> bytes:
        return json.dumps(obj).encode()[::-1]

    def loads(self, data: bytes) -> Any:
        return json.loads(data[::-1])


def test_session_serializer_setting(engine_on: EngineOn) -> None:
    engine_on("memory://")
    # coatcheck's tagged JSON for Django's JSONSerializer: values come back as they went in.
    key = saved(when=(1, 2)).session_key
    assert stored(key) == {"when": (1, 2)}
    with override_settings(SESSION_SERIALIZER=f"{__name__}.ReversingSerializer"):
        assert isinstance(engine().config.serializer, DjangoSerializer)
        key = saved(a=[1, 2]).session_key
        assert stored(key) == {"a": [1, 2]}
        stores = engine().manager.store
    payloads = [entry.payload for entry in stores._entries.values()]  # type: ignore[attr-defined]
    assert any(b"]2 ,1[" in payload for payload in payloads)


def test_bad_settings_are_refused() -> None:
    unknown = {"STORE": "memory://", "NO_SUCH_OPTION": 1}
    with override_settings(COATCHECK=unknown), pytest.raises(ConfigurationError, match="NO_SUCH"):
        SessionStore().save()
    mode = {"STORE": "memory://", "CONCURRENCY": "optimistic"}
    with override_settings(COATCHECK=mode), pytest.raises(ConfigurationError, match="concurrency"):
        SessionStore().save()
    with override_settings(COATCHECK={}), pytest.raises(ConfigurationError, match="STORE"):
        SessionStore().save()
