"""The Flask integration on real stores: the session Flask sees, log in and out with rotation,
permanent sessions and their server-side lifetime, clear() logging out, flash messages,
session_transaction, the headers it adds."""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import flask
import pytest
from markupsafe import Markup

from coatcheck import ConfigurationError
from coatcheck.contrib.flask import FlaskSession, Session
from coatcheck.testing import FrozenClock
from tests.contrib.flask.conftest import AppFactory, cookie


def counter_app(make_app: AppFactory, store: object) -> flask.Flask:
    app = make_app(store)

    @app.get("/count")
    def count() -> str:
        flask.session["n"] = flask.session.get("n", 0) + 1
        return str(flask.session["n"])

    @app.post("/login")
    def login() -> str:
        flask.session.regenerate()
        flask.session["user"] = flask.request.form["user"]
        return "in"

    @app.post("/logout")
    def logout() -> str:
        flask.session.clear()
        return "out"

    @app.get("/whoami")
    def whoami() -> str:
        return str(flask.session.get("user"))

    return app


def test_the_session_is_coatchecks_and_flasks(make_app: AppFactory, store: str) -> None:
    app = counter_app(make_app, store)
    seen = []

    @app.get("/kind")
    def kind() -> str:
        seen.append(flask.session._get_current_object())  # type: ignore[attr-defined]
        return ""

    client = app.test_client()
    assert [client.get("/count").text for _ in range(3)] == ["1", "2", "3"]
    client.get("/kind")
    (session,) = seen
    assert isinstance(session, FlaskSession) and isinstance(session, flask.sessions.SessionMixin)
    assert session.new is False and session.permanent is False and session["n"] == 3


def test_login_rotates_the_id_and_logout_deletes_the_session(
    make_app: AppFactory, store: str
) -> None:
    app = counter_app(make_app, store)
    client = app.test_client()
    first = cookie(client.get("/count"))
    assert first
    login = client.post("/login", data={"user": "ada"})
    rotated = cookie(login)
    assert rotated and rotated != first
    assert client.get("/whoami").text == "ada"
    # The id from before the login is dead (session fixation).
    thief = app.test_client()
    thief.set_cookie("session", first)
    assert thief.get("/whoami").text == "None"
    out = client.post("/logout")
    assert cookie(out) == ""  # clear() emptied the session: it is destroyed, cookie deleted
    replay = app.test_client()
    replay.set_cookie("session", rotated)
    assert replay.get("/whoami").text == "None"


def test_permanent_session_lifetime_is_enforced_by_the_server(
    make_app: AppFactory, tmp_path: Path, clock: FrozenClock
) -> None:
    app = make_app(f"sqlite:///{tmp_path / 's.db'}", PERMANENT_SESSION_LIFETIME=3600)

    @app.get("/remember")
    def remember() -> str:
        flask.session["user"] = "ada"
        flask.session.permanent = True
        return ""

    @app.get("/forget")
    def forget() -> str:
        flask.session.permanent = False
        return ""

    @app.get("/who")
    def who() -> str:
        return f"{flask.session.get('user')} {flask.session.permanent}"

    client = app.test_client()
    header = client.get("/remember").headers["Set-Cookie"]
    assert "Max-Age=3600" in header and "Expires=" in header
    for _ in range(3):  # each use slides the idle timeout of an hour, far past 30 minutes
        clock.advance(50 * 60)
        assert client.get("/who").text == "ada True"
    clock.advance(3601)
    assert client.get("/who").text == "None False"

    client.get("/remember")
    header = client.get("/forget").headers["Set-Cookie"]
    assert "Max-Age" not in header and "Expires" not in header  # a browser-session cookie again
    clock.advance(31 * 60)  # past the configured idle timeout of a non-permanent session
    assert client.get("/who").text == "None False"


def test_refresh_each_request_resends_only_a_permanent_cookie(
    make_app: AppFactory, tmp_path: Path
) -> None:
    # SQLite: a read within access_resolution writes nothing (a store that slides the expiry
    # on load, memory or Redis, extends a permanent cookie's life, so re-sends it anyway).
    app = make_app(f"sqlite:///{tmp_path / 's.db'}")

    @app.get("/set/<int:permanent>")
    def set_(permanent: int) -> str:
        flask.session["a"] = 1
        flask.session.permanent = bool(permanent)
        return ""

    @app.get("/read")
    def read() -> str:
        return str(flask.session.get("a"))

    client = app.test_client()
    client.get("/set/1")
    assert "Max-Age" in client.get("/read").headers["Set-Cookie"]
    app.config["SESSION_REFRESH_EACH_REQUEST"] = False
    assert "Set-Cookie" not in client.get("/read").headers
    app.config["SESSION_REFRESH_EACH_REQUEST"] = True
    client.get("/set/0")
    assert "Set-Cookie" not in client.get("/read").headers


def test_flask_types_flashes_and_session_transaction(make_app: AppFactory, store: str) -> None:
    app = make_app(store)
    moment = datetime(2024, 5, 1, 12, tzinfo=timezone.utc)
    ident = uuid.uuid4()

    @app.get("/put")
    def put() -> str:
        flask.session.update(t=(1, 2), b=b"\xff", m=Markup("<b>"), u=ident, d=moment)
        flask.flash("saved")
        flask.flash(Markup("<em>careful</em>"), "warning")
        return ""

    @app.get("/get")
    def get() -> str:
        s = flask.session
        assert (s["t"], s["b"], s["m"], s["u"], s["d"]) == ((1, 2), b"\xff", "<b>", ident, moment)
        assert type(s["m"]) is Markup and type(s["t"]) is tuple
        messages = flask.get_flashed_messages(with_categories=True)
        assert messages == [("message", "saved"), ("warning", Markup("<em>careful</em>"))]
        return "ok"

    @app.get("/planted")
    def planted() -> str:
        return str(flask.session["planted"])

    client = app.test_client()
    client.get("/put")
    assert client.get("/get").text == "ok"
    with client.session_transaction() as session:
        assert isinstance(session, FlaskSession)
        assert "_flashes" not in session and session["t"] == (1, 2)
        session["planted"] = [42]
    assert client.get("/planted").text == "[42]"


def test_headers_merge_with_the_apps_own(make_app: AppFactory) -> None:
    app = make_app()

    @app.get("/vary")
    def vary() -> flask.Response:
        response = flask.Response("")
        response.vary.add("Accept-Encoding")
        response.headers["Cache-Control"] = "private"
        flask.session["a"] = 1
        return response

    @app.get("/public")
    def public() -> flask.Response:
        flask.session["a"] = 2
        return flask.Response("", headers={"Cache-Control": "public, max-age=60"})

    @app.get("/untouched")
    def untouched() -> str:
        return ""

    client = app.test_client()
    response = client.get("/vary")
    assert response.headers.getlist("Vary") == ["Accept-Encoding, Cookie"]
    assert response.headers.getlist("Cache-Control") == ["private"]
    assert cookie(response)
    response = client.get("/public")
    assert response.headers.getlist("Cache-Control") == ["no-store"]
    response = client.get("/untouched")
    assert "Vary" not in response.headers and "Set-Cookie" not in response.headers


def test_error_responses_save_nothing(make_app: AppFactory, store: str) -> None:
    app = make_app(store)

    @app.get("/fail")
    def fail() -> tuple[str, int]:
        flask.session["lost"] = True
        return "broken", 500

    @app.get("/read")
    def read() -> str:
        return repr(flask.session.get("lost"))

    client = app.test_client()
    response = client.get("/fail")
    assert response.status_code == 500 and "Set-Cookie" not in response.headers
    assert client.get("/read").text == "None"


def test_a_concurrent_logout_interrupts_a_slower_save(make_app: AppFactory) -> None:
    app = counter_app(make_app, "memory://")
    tickets: list[str] = []

    @app.get("/slow")
    def slow() -> str:
        flask.session["late"] = True
        other = app.test_client()  # another tab logs out while this request runs
        other.set_cookie("session", tickets[0])
        other.post("/logout")
        return ""

    client = app.test_client()
    client.post("/login", data={"user": "ada"})
    ticket = client.get_cookie("session")
    assert ticket is not None
    tickets.append(ticket.value)
    response = client.get("/slow")
    assert response.status_code == 200 and cookie(response) == ""
    assert client.get("/whoami").text == "None"


def test_without_a_secret_key_flask_gets_its_null_session(make_app: AppFactory) -> None:
    app = make_app(SECRET_KEY=None)

    @app.get("/")
    def index() -> str:
        assert isinstance(flask.session._get_current_object(), flask.sessions.NullSession)  # type: ignore[attr-defined]
        return str(flask.session.get("a"))

    assert app.test_client().get("/").text == "None"


def test_the_default_store_is_an_sqlite_file_in_the_instance_folder(tmp_path: Path) -> None:
    app = flask.Flask(__name__, instance_path=str(tmp_path / "made" / "here"))
    app.config.update(TESTING=True, SECRET_KEY="s" * 32)
    Session(app)
    interface = app.extensions["coatcheck"]

    @app.get("/")
    def index() -> str:
        flask.session["a"] = 1
        return ""

    try:
        app.test_client().get("/")
        assert (tmp_path / "made" / "here" / "coatcheck-sessions.db").is_file()
    finally:
        interface.close()


def test_settings_are_checked_at_start_up(make_app: AppFactory) -> None:
    with pytest.raises(ConfigurationError, match="SESSION_COATCHECK_IDLE_TIMOUT"):
        make_app(SESSION_COATCHECK_IDLE_TIMOUT=5)
    with pytest.raises(ConfigurationError, match="concurrency"):
        make_app(SESSION_COATCHECK_CONCURRENCY="optimistic")
    app = make_app(SESSION_COATCHECK_IDLE_TIMEOUT=timedelta(minutes=5))
    assert app.extensions["coatcheck"].options.fields["idle_timeout"] == 300


def test_one_start_up_warning_unless_debug_or_testing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="coatcheck")
    counts = []
    for testing in (False, True):
        caplog.clear()
        app = flask.Flask(__name__, instance_path=str(tmp_path))
        app.config.update(TESTING=testing, SECRET_KEY="short")
        Session(app)
        app.extensions["coatcheck"].close()
        records = [r for r in caplog.records if r.name == "coatcheck"]
        counts.append(len(records))
        if records:
            message = records[0].getMessage()
            assert "SESSION_COOKIE_SECURE = True" in message and "SECRET_KEY is 5 bytes" in message
    assert counts == [1, 0]
