"""Requests through Django's SessionMiddleware and coatcheck's on the coatcheck engine: what
Django's excluded middleware tests check (here on this engine's store), concurrent requests,
the lock's release, the 503 on a failing store, and the management commands."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.contrib.sessions.exceptions import SessionInterrupted
from django.contrib.sessions.middleware import SessionMiddleware as DjangoSessionMiddleware
from django.core.management import call_command
from django.http import HttpRequest, HttpResponse
from django.test import RequestFactory

from coatcheck.contrib.django import SessionMiddleware, SessionStore
from coatcheck.contrib.django._config import engine
from coatcheck.errors import SessionLocked, StoreError
from coatcheck.testing import FrozenClock

from .conftest import EngineOn

factory = RequestFactory()
View = Callable[[HttpRequest], HttpResponse]
MIDDLEWARES = [DjangoSessionMiddleware, SessionMiddleware]


def run(view: View, key: str | None = None, middleware: Any = SessionMiddleware) -> Any:
    """One request with the session cookie ``key`` (none when None); the response, with the
    request's session as ``response.session``."""
    request = factory.get("/")
    if key is not None:
        request.COOKIES["sessionid"] = key
    response = middleware(view)(request)
    response.session = request.session
    return response


def cookie(response: Any) -> str | None:
    morsel = response.cookies.get("sessionid")
    return None if morsel is None else str(morsel.value)


def setter(**data: Any) -> View:
    def view(request: HttpRequest) -> HttpResponse:
        request.session.update(data)
        return HttpResponse("ok")

    return view


def reader(request: HttpRequest) -> HttpResponse:
    return HttpResponse(repr(sorted(request.session.items())))


@pytest.mark.parametrize("middleware", MIDDLEWARES)
def test_update_error_raises_session_interrupted(engine_on: EngineOn, middleware: Any) -> None:
    # Django's test_session_update_error_redirect, with this engine's session.
    engine_on("memory://")

    def view(request: HttpRequest) -> HttpResponse:
        request.session = SessionStore()
        request.session.save(must_create=True)
        request.session.delete()
        return HttpResponse()

    with pytest.raises(SessionInterrupted, match="deleted before the request completed"):
        run(view, middleware=middleware)


@pytest.mark.parametrize("middleware", MIDDLEWARES)
def test_emptied_session_is_saved_and_keeps_its_cookie(
    engine_on: EngineOn, store: str, middleware: Any
) -> None:
    # Django's test_empty_session_saved, reading the store instead of Django's model.
    engine_on(store)
    first = run(setter(foo="bar"), middleware=middleware)
    key = cookie(first)
    assert key == first.session.session_key
    request = factory.get("/")
    request.COOKIES["sessionid"] = key
    session = request.session = SessionStore(key)
    del session["foo"]
    response = middleware(reader).process_response(request, HttpResponse())
    assert cookie(response) == key and response.headers["Vary"] == "Cookie"
    assert run(reader, key).content == b"[]"
    assert SessionStore(key).exists(key)


def test_concurrent_requests_that_change_different_keys_both_win(
    engine_on: EngineOn, store: str
) -> None:
    engine_on(store, CONCURRENCY="merge")
    key = cookie(run(setter(a=0, b=0)))

    def slow(request: HttpRequest) -> HttpResponse:
        request.session["a"] = request.session["a"] + 1
        # Another request on the same session starts and ends while this one runs.
        run(setter(b=1), key)
        return HttpResponse("ok")

    run(slow, key)
    assert run(reader, key).content == b"[('a', 1), ('b', 1)]"


def test_lock_mode_releases_the_lock_of_an_unsaved_request(engine_on: EngineOn) -> None:
    engine_on("memory://", CONCURRENCY="lock", LOCK_WAIT=0.0)
    key = cookie(run(setter(a=1)))
    assert run(reader, key).content == b"[('a', 1)]"  # read, not saved: the lock is released
    assert run(reader, key).content == b"[('a', 1)]"
    # Django's own middleware leaves the lock held (until LOCK_TIMEOUT) after such a request.
    run(reader, key, middleware=DjangoSessionMiddleware)
    with pytest.raises(SessionLocked):
        run(reader, key, middleware=DjangoSessionMiddleware)


def test_a_5xx_response_saves_nothing_and_releases_the_lock(engine_on: EngineOn) -> None:
    engine_on("memory://", CONCURRENCY="lock", LOCK_WAIT=0.0)
    key = cookie(run(setter(a=1)))

    def failing(request: HttpRequest) -> HttpResponse:
        request.session["a"] = 2
        return HttpResponse("boom", status=500)

    assert run(failing, key).status_code == 500
    assert run(reader, key).content == b"[('a', 1)]"


def test_a_failing_store_answers_503(engine_on: EngineOn) -> None:
    # Nothing listens on port 1: every store operation fails at once.
    engine_on("memory://")
    from django.test.utils import override_settings

    with override_settings(COATCHECK={"STORE": "redis://127.0.0.1:1/0?timeout=0.5"}):
        response = run(setter(a=1))  # the save fails
        assert response.status_code == 503 and cookie(response) is None
        ticket = engine().manager.core.tickets.issue("A" * 43)
        request = factory.get("/")
        request.COOKIES["sessionid"] = ticket
        handler = SessionMiddleware(reader)
        # A load in the view: Django's handler calls process_exception with the error.
        request.session = SessionStore(ticket)
        with pytest.raises(StoreError) as caught:
            reader(request)
        answer = handler.process_exception(request, caught.value)
        assert answer is not None and answer.status_code == 503


def test_clearsessions_removes_expired_sessions(
    engine_on: EngineOn, store: str, clock: FrozenClock
) -> None:
    engine_on(store)
    short, long = SessionStore(), SessionStore()
    short["a"], long["b"] = 1, 2
    short.set_expiry(10)
    short.save()
    long.save()
    clock.advance(20)
    rows = _rows(store)
    call_command("clearsessions")
    if rows is not None:  # an SQLite file: the expired row is gone
        assert (rows, _rows(store)) == (2, 1)
    assert engine().manager.cleanup() == 0  # nothing expired is left
    assert not SessionStore(short.session_key).exists(short.session_key)
    assert SessionStore(long.session_key).exists(long.session_key)


def _rows(url: str) -> int | None:
    if not url.startswith("sqlite:///"):
        return None
    with sqlite3.connect(url.removeprefix("sqlite:///")) as connection:
        (count,) = connection.execute("SELECT count(*) FROM coatcheck_sessions").fetchone()
    connection.close()
    return int(count)


def test_tables_are_created_by_migrate_and_by_the_command(
    engine_on: EngineOn, tmp_path: Path
) -> None:
    path = tmp_path / "made-here.db"
    engine_on("memory://")
    from django.test.utils import override_settings

    with override_settings(COATCHECK={"STORE": f"sqlite:///{path}?table=made_by_migrate"}):
        call_command("migrate", verbosity=0)
    with override_settings(COATCHECK={"STORE": f"sqlite:///{path}?table=made_by_command"}):
        out = StringIO()
        call_command("coatcheck_createtables", stdout=out)
        assert "session store ready" in out.getvalue()
        session = SessionStore()
        session["a"] = 1
        session.save()
    with sqlite3.connect(path) as connection:
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master")}
    connection.close()
    assert {"made_by_migrate", "made_by_command"} <= tables
