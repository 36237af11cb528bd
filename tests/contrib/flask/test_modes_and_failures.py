"""The Flask integration's concurrency modes per route, its 503s when the store fails, its
lock release, and the ``flask coatcheck`` commands."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path

import flask
import pytest

from coatcheck import SessionError
from coatcheck.contrib.flask import session_mode
from coatcheck.testing import FrozenClock
from tests.contrib.flask.conftest import AppFactory, cookie
from tests.middleware._support import ProbeStore

# Port 1 (tcpmux): nothing listens there, a connection is refused at once.
DOWN = "redis://127.0.0.1:1/0?timeout=0.5"


def modes_app(make_app: AppFactory, store: object, **config: object) -> flask.Flask:
    app = make_app(store, mode_for=lambda method, path: "none" if path == "/hooked" else None)

    def counting() -> Callable[[], str]:
        def mode() -> str:  # a function per route: session_mode marks the function
            flask.session["n"] = flask.session.get("n", 0) + 1
            return flask.session.concurrency  # type: ignore[attr-defined,no-any-return]

        return mode

    app.add_url_rule("/default", "default", counting())
    app.add_url_rule("/hooked", "hooked", counting())
    app.add_url_rule("/locked", "locked", session_mode("lock")(counting()))

    @app.get("/peek")
    @session_mode("read-only")
    def peek() -> str:
        try:
            flask.session["n"] = -1
        except SessionError:
            return f"read-only {flask.session['n']}"
        return "written"

    @app.get("/crash")
    @session_mode("lock")
    def crash() -> str:
        flask.session["n"] = 0
        raise RuntimeError("the view failed")

    app.config.update(config)
    return app


def test_modes_per_route(make_app: AppFactory, store: str) -> None:
    app = modes_app(make_app, store)
    client = app.test_client()
    assert client.get("/default").text == "merge"
    assert client.get("/hooked").text == "none"  # mode_for
    assert client.get("/locked").text == "lock"  # session_mode
    assert client.get("/locked").text == "lock"  # the lock was released by the save
    assert client.get("/peek").text == "read-only 4"
    assert client.get("/default").text == "merge"


def test_a_view_that_raises_releases_its_lock(make_app: AppFactory, store: str) -> None:
    app = modes_app(make_app, store, SESSION_COATCHECK_LOCK_WAIT=0.2)
    client = app.test_client()
    client.get("/locked")
    with pytest.raises(RuntimeError):  # TESTING: Flask propagates, save_session never runs
        client.get("/crash")
    assert client.get("/locked").text == "lock"  # no SessionLocked: teardown released it
    app.testing = False
    assert client.get("/crash").status_code == 500  # a 500 abandons the session
    assert client.get("/locked").text == "lock"


def test_a_store_that_is_down_answers_503(
    make_app: AppFactory, caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app(DOWN)

    @app.get("/")
    def index() -> str:
        flask.session["a"] = 1
        return "never sent"

    with caplog.at_level(logging.WARNING, logger="coatcheck"):
        response = app.test_client().get("/")
    assert response.status_code == 503 and response.headers["Retry-After"] == "1"
    assert "Set-Cookie" not in response.headers and b"never sent" not in response.data
    assert response.data.startswith(b"Service Unavailable: the session store")
    assert any("127.0.0.1:1" in record.getMessage() for record in caplog.records)


def test_a_store_that_fails_at_open_answers_503_before_the_view(make_app: AppFactory) -> None:
    store = ProbeStore()
    app = make_app(store)
    ran = []

    @app.get("/")
    def index() -> str:
        ran.append(True)
        flask.session["a"] = 1
        return ""

    client = app.test_client()
    client.get("/")
    store.down = True
    response = client.get("/")
    assert response.status_code == 503 and response.headers["Retry-After"] == "1"
    assert ran == [True] and "Set-Cookie" not in response.headers
    store.down = False
    assert client.get("/").status_code == 200


def test_a_store_that_fails_at_save_answers_503(make_app: AppFactory) -> None:
    store = ProbeStore()
    app = make_app(store)

    @app.get("/")
    def index() -> str:
        flask.session["a"] = 1
        store.down = True  # the server goes away while the view runs
        return "saved?"

    response = app.test_client().get("/")
    assert response.status_code == 503 and response.headers["Retry-After"] == "1"
    assert "Set-Cookie" not in response.headers and b"saved?" not in response.data
    store.down = False
    assert store.writes() == 0


def test_a_held_lock_answers_503(make_app: AppFactory, clock: FrozenClock) -> None:
    app = make_app(SESSION_COATCHECK_LOCK_WAIT=0.0, SESSION_COATCHECK_CONCURRENCY="lock")
    statuses = []

    @app.get("/")
    def index() -> str:
        flask.session["a"] = 1
        return ""

    @app.get("/nested")
    def nested() -> str:
        flask.session["a"] = 2  # holds the lock while another request on the session runs
        other = app.test_client()
        other.set_cookie("session", flask.request.cookies["session"])
        statuses.append(other.get("/").status_code)
        return ""

    client = app.test_client()
    client.get("/")
    assert client.get("/nested").status_code == 200
    assert statuses == [503]


def test_cli_group(make_app: AppFactory, tmp_path: Path) -> None:
    app = make_app(f"sqlite:///{tmp_path / 'cli.db'}")

    @app.get("/")
    def index() -> str:
        flask.session["a"] = 1
        return ""

    for _ in range(2):
        assert cookie(app.test_client().get("/"))
    runner = app.test_cli_runner()
    result = runner.invoke(args=["coatcheck", "stats", "--json"])
    assert result.exit_code == 0, result.output
    stats = json.loads(result.output)
    assert stats["sessions"] == 2 and stats["expired"] == 0
    result = runner.invoke(args=["coatcheck", "stats"])
    assert result.exit_code == 0 and "sessions:      2" in result.output
    result = runner.invoke(args=["coatcheck", "cleanup"])
    assert result.exit_code == 0 and result.output == "0\n"


def test_cli_group_on_a_store_that_is_down(make_app: AppFactory) -> None:
    # stats, not cleanup: Redis expires sessions itself, so cleanup does not call it.
    result = make_app(DOWN).test_cli_runner().invoke(args=["coatcheck", "stats"])
    assert result.exit_code not in (0, 1), result.output
    assert "127.0.0.1:1" in result.output


def test_session_transaction_in_lock_mode(make_app: AppFactory) -> None:
    app = make_app(SESSION_COATCHECK_CONCURRENCY="lock", SESSION_COATCHECK_LOCK_WAIT=0.2)

    @app.get("/")
    def index() -> str:
        return str(flask.session.get("a"))

    client = app.test_client()
    for value in (1, 2):  # the second finds a stored session, so a lock to take
        with client.session_transaction() as session:
            session["a"] = value
        assert client.get("/").text == str(value)
